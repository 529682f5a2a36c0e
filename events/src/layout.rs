//! The recorded layout of an installation, and where its Kafka consumer groups start.
//!
//! One writer per account holds only while every key stays on the partition its history is on.
//! Kafka can add partitions to a topic (its own tools do it), and murmur2 would then send keys
//! elsewhere. So `logbook topics` records the partition count once, in a compacted one-partition
//! topic `<prefix>.layout`, and the processor and `logbook topics` refuse to run when the live
//! count differs from it. (Kafka refuses topic configurations it does not know, so the record
//! cannot be a topic config.)
//!
//! The processors and sagas refuse to start on partitions that hold data but have no committed
//! offset (a lost group would otherwise replay all history). For a fresh installation
//! [`initialise_groups`] commits their first offsets while the topics are still empty, so an
//! empty installation is told apart from a lost group.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::kafka::{KafkaSettings, Reporting};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long one metadata or offsets call may take inside [`retry_transient`] (a refused client
/// never gets an answer: it must not wait the whole [`TIMEOUT`] to notice).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The key of the layout record.
const KEY: &str = "partitions";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "{topic} holds no recorded partition count: run `logbook topics` once (it records the \
         count the topics have now)"
    )]
    Missing { topic: String },
    #[error(
        "the topics were created with {recorded} partitions but {topic} now has {live}: keys \
         would move away from their history. Partitions cannot be added to a Logbook \
         installation; grow it with a new topic generation (a new LOGBOOK_TOPIC_PREFIX) and a \
         replay of the log into it"
    )]
    Changed {
        topic: String,
        recorded: i32,
        live: i32,
    },
    #[error("the layout record of {topic} is unreadable: {source}")]
    Unreadable {
        topic: String,
        source: serde_json::Error,
    },
}

/// The layout record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Layout {
    partitions: i32,
}

/// Records `live` as the partition count when none is recorded; otherwise checks that the
/// recorded count is `live`. Blocking.
pub fn record_or_check(settings: &KafkaSettings, live: i32) -> Result<(), LayoutError> {
    let topic = settings.topics().layout;
    match recorded(settings)? {
        Some(recorded) if recorded != live => Err(LayoutError::Changed {
            topic: settings.topics().commands,
            recorded,
            live,
        }),
        Some(_) => Ok(()),
        None => {
            let value = serde_json::to_vec(&Layout { partitions: live }).map_err(|source| {
                LayoutError::Unreadable {
                    topic: topic.clone(),
                    source,
                }
            })?;
            let producer: ThreadedProducer<DefaultProducerContext> = settings
                .client_config()
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .create()?;
            producer
                .send(BaseRecord::to(&topic).key(KEY).payload(&value))
                .map_err(|(error, _)| error)?;
            producer.flush(TIMEOUT)?;
            tracing::info!(partitions = live, "partition count recorded");
            Ok(())
        }
    }
}

/// The recorded partition count, checked against the live commands and events topics: what
/// the processor calls before it takes any partition. Blocking.
pub fn check(settings: &KafkaSettings) -> Result<i32, LayoutError> {
    let topics = settings.topics();
    let recorded = recorded(settings)?.ok_or_else(|| LayoutError::Missing {
        topic: topics.layout.clone(),
    })?;
    let consumer: BaseConsumer = settings.client_config().create()?;
    for topic in [&topics.commands, &topics.events] {
        let metadata = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
        let described = metadata.topics().first();
        if let Some(code) = described.and_then(|t| t.error()) {
            // e.g. an ACL that hides the topic from this identity: not "0 partitions"
            let error = KafkaError::MetadataFetch(code.into());
            crate::refusal::note(&error, topic);
            return Err(error.into());
        }
        let live = described.map_or(0, |t| t.partitions().len() as i32);
        if live != recorded {
            return Err(LayoutError::Changed {
                topic: topic.clone(),
                recorded,
                live,
            });
        }
    }
    Ok(recorded)
}

/// The last layout record, if any. Blocking.
fn recorded(settings: &KafkaSettings) -> Result<Option<i32>, LayoutError> {
    let topic = settings.topics().layout;
    let consumer: BaseConsumer<Reporting> = settings
        .end_reader_config("logbook-layout-reader-unused")
        .create_with_context(Reporting)?;
    let (low, high) = retry_transient(|| consumer.fetch_watermarks(&topic, 0, CALL_TIMEOUT))?;
    if high <= low {
        return Ok(None);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut last = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => {
                if message.key() == Some(KEY.as_bytes()) {
                    let layout: Layout = serde_json::from_slice(
                        message.payload().unwrap_or_default(),
                    )
                    .map_err(|source| LayoutError::Unreadable {
                        topic: topic.clone(),
                        source,
                    })?;
                    last = Some(layout.partitions);
                }
                if message.offset() + 1 >= high {
                    break;
                }
            }
        }
    }
    Ok(last)
}

/// Commits the first offsets of the processors' and the sagas' groups on every partition that
/// is still empty and has no committed offset. Blocking.
pub fn initialise_groups(settings: &KafkaSettings, partitions: i32) -> Result<(), LayoutError> {
    let (topics, groups) = (settings.topics(), settings.groups());
    for (group, topic, count) in [
        (&groups.processors, &topics.commands, partitions),
        (&groups.sagas, &topics.events, partitions),
        (&groups.sagas, &topics.results, partitions),
    ] {
        let consumer: BaseConsumer = settings
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut wanted = TopicPartitionList::new();
        for partition in 0..count {
            wanted.add_partition(topic, partition);
        }
        let committed =
            retry_transient(|| consumer.committed_offsets(wanted.clone(), CALL_TIMEOUT))?;
        let mut first = TopicPartitionList::new();
        for element in committed.elements() {
            if matches!(element.offset(), Offset::Offset(_)) {
                continue;
            }
            let (low, high) = retry_transient(|| {
                consumer.fetch_watermarks(topic, element.partition(), CALL_TIMEOUT)
            })?;
            if low == high {
                first.add_partition_offset(topic, element.partition(), Offset::Offset(low))?;
            }
        }
        if first.count() > 0 {
            consumer.commit(&first, CommitMode::Sync)?;
            tracing::debug!(
                group,
                topic,
                partitions = first.count(),
                "first offsets set"
            );
        }
    }
    Ok(())
}

/// Retries a call for a while: right after topics are created, or while a leader moves,
/// brokers answer "not leader" or "unknown partition" for a moment.
fn retry_transient<T>(mut call: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() < deadline && crate::refusal::refused().is_none() => {
                tracing::debug!(%error, "transient error right after topic creation: retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => return Err(error),
        }
    }
}
