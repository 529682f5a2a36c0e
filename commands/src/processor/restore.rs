//! Rebuilds a partition's state from the events topic (read_committed) before the processor
//! decides any command of that partition.
//!
//! It is called after the consumer group has handed the commands partition to this processor,
//! and after an unclear commit. An earlier writer (a previous owner that died or paused, or this
//! processor's own producer before it was replaced) may still have a transaction open on the
//! events partition, which could yet commit. So the restore reads until no open transaction
//! remains: the partition's end as a read_committed reader sees it (the last stable offset) must
//! reach the high watermark. A dead producer's transaction is aborted by the broker after
//! `transaction.timeout.ms`; until then the restore waits.

use std::time::{Duration, Instant};

use chrono::Utc;

use logbook_events::kafka::Reporting;
use logbook_events::{KafkaSettings, Position, decode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::state::{FoldError, PartitionState};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("undecodable event at offset {offset}: {source}")]
    Codec {
        offset: i64,
        source: logbook_events::CodecError,
    },
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("restore of partition {0} did not reach the end within {1:?}")]
    Timeout(i32, Duration),
}

/// How long a restore may take, and the dedupe window it rebuilds.
#[derive(Debug, Clone, Copy)]
pub struct RestoreLimits {
    pub timeout: Duration,
    pub dedupe_horizon: Duration,
    pub dedupe_capacity: usize,
}

/// Reads events partition `partition` from the start until no transaction is open on it, and
/// folds it.
pub fn restore_partition(
    kafka: &KafkaSettings,
    partition: i32,
    limits: RestoreLimits,
) -> Result<PartitionState, RestoreError> {
    let timeout = limits.timeout;
    let topic = kafka.topics().events;
    let consumer: BaseConsumer<Reporting> = kafka
        .client_config()
        .set("group.id", "logbook-restore-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // librdkafka's default prefetch queue (64 MB) stays: a smaller one made the fold 20%
        // slower, and the pages it used are given back after the restore anyway (see below)
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create_with_context(Reporting)?;
    let probe: BaseConsumer = kafka
        .client_config()
        .set("isolation.level", "read_uncommitted")
        .create()?;
    let started = Instant::now();
    let high = stable_end(&consumer, &probe, &topic, partition, timeout)?;
    let low = consumer.fetch_watermarks(&topic, partition, timeout)?.0;
    let mut state = PartitionState::new(limits.dedupe_horizon, limits.dedupe_capacity);
    let now = Utc::now();
    if high > low {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        loop {
            if started.elapsed() > timeout {
                return Err(RestoreError::Timeout(partition, timeout));
            }
            let message = match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                // read_committed: the end is the last stable offset, which was `high`
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(message)) => message,
            };
            let offset = message.offset();
            let envelope = decode(message.payload().unwrap_or_default())
                .map_err(|source| RestoreError::Codec { offset, source })?;
            state.fold(&envelope, Position::new(partition, offset), now)?;
            if offset + 1 >= high {
                break;
            }
        }
    }
    state.next_write = Some(high);
    let folded = started.elapsed();
    state.accounts.shrink_to_fit();
    // the decoded records are gone: give their pages back
    drop((consumer, probe));
    super::memory::trim();
    crate::metrics::partition_restored(high, started.elapsed().as_secs_f64());
    tracing::info!(
        partition,
        accounts = state.accounts.len(),
        account_bytes = state.accounts.allocated_bytes(),
        heap_in_use_bytes = super::memory::heap_in_use(),
        remembered_commands = state.dedupe.len(),
        events = high,
        ms = folded.as_millis() as u64,
        release_ms = (started.elapsed() - folded).as_millis() as u64,
        "partition restored"
    );
    Ok(state)
}

/// The partition's end once no transaction is open on it: the last stable offset (what a
/// read_committed client is told is the end) has reached the high watermark (what a
/// read_uncommitted client is told).
fn stable_end<C: rdkafka::consumer::ConsumerContext>(
    committed: &BaseConsumer<C>,
    uncommitted: &BaseConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<i64, RestoreError> {
    let started = Instant::now();
    loop {
        let stable = committed.fetch_watermarks(topic, partition, timeout)?.1;
        let high = uncommitted.fetch_watermarks(topic, partition, timeout)?.1;
        if stable >= high {
            return Ok(high);
        }
        if started.elapsed() > timeout {
            return Err(RestoreError::Timeout(partition, timeout));
        }
        tracing::debug!(
            partition,
            stable,
            high,
            "waiting for an open transaction to end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
