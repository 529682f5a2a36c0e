//! Creates and checks Logbook's topics (`logbook topics`).
//!
//! The commands and events topics MUST have the same partition count: the processor that owns
//! commands partition *p* is the only writer of events partition *p* (docs/architecture.md).
//! Creating is idempotent; a mismatch between existing topics is refused rather than papered
//! over. The partition count the topics were created with is recorded once (see [`crate::layout`]),
//! and a live count that differs from it is refused too: Kafka can add partitions, but keys
//! would then move away from their history.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka::{KafkaSettings, Topics};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Results only serve waiting requests and idempotent retries: a week is plenty.
const RESULTS_RETENTION_MS: &str = "604800000";

/// How the topics are laid out.
#[derive(Debug, Clone, Copy)]
pub struct TopicLayout {
    pub partitions: i32,
    pub replication_factor: i32,
    /// `min.insync.replicas` for new topics; None leaves the broker default.
    pub min_insync_replicas: Option<i32>,
}

/// What `ensure_topics` found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReport {
    pub created: Vec<String>,
    pub partitions: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("could not create topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error(
        "topic {commands} has {commands_partitions} partitions but {events} has {events_partitions}: \
         they must be equal (one writer per partition)"
    )]
    PartitionMismatch {
        commands: String,
        commands_partitions: i32,
        events: String,
        events_partitions: i32,
    },
    #[error("topic {0} is missing after creation")]
    Missing(String),
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    #[error("could not describe the configuration of topic {topic}: {code}")]
    Describe {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates the missing topics and checks the partition invariant. Blocking: call it from a
/// blocking thread in async code.
pub fn ensure_topics(
    settings: &KafkaSettings,
    layout: &TopicLayout,
) -> Result<TopicReport, TopicError> {
    let topics = settings.topics();
    let existing = partition_counts(settings, &topics)?;
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let retention_forever = [("retention.ms", "-1"), ("retention.bytes", "-1")];
    let results_retention = [("retention.ms", RESULTS_RETENTION_MS)];
    let compacted = [
        ("cleanup.policy", "compact"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
    ];
    // snapshots are read back from the newest records: an hour's segment is compacted after it
    let snapshots = [
        ("cleanup.policy", "compact"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.ms", "3600000"),
    ];
    // an installation from before the snapshots topic gets it with its events' partition count
    let events_partitions = existing
        .iter()
        .find(|(topic, _)| *topic == topics.events)
        .map_or(layout.partitions, |(_, count)| *count);
    let min_isr = layout.min_insync_replicas.map(|n| n.to_string());
    let mut wanted = Vec::new();
    for (name, configs, partitions) in [
        (&topics.commands, &retention_forever[..], layout.partitions),
        (&topics.events, &retention_forever[..], layout.partitions),
        (&topics.results, &results_retention[..], layout.partitions),
        (&topics.layout, &compacted[..], 1),
        (&topics.snapshots, &snapshots[..], events_partitions),
    ] {
        if existing.iter().any(|(topic, _)| topic == name) {
            continue;
        }
        let mut topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(layout.replication_factor),
        );
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        if let Some(min_isr) = &min_isr {
            topic = topic.set("min.insync.replicas", min_isr);
        }
        wanted.push(topic);
    }
    let mut created = Vec::new();
    if !wanted.is_empty() {
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = futures::executor::block_on(admin.create_topics(&wanted, &options))?;
        for result in results {
            match result {
                Ok(topic) => created.push(topic),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(TopicError::Create { topic, code }),
            }
        }
    }
    let counts = wait_for_topics(settings, &topics)?;
    let count_of = |name: &str| counts.iter().find(|(t, _)| t == name).map(|(_, n)| *n);
    let commands =
        count_of(&topics.commands).ok_or(TopicError::Missing(topics.commands.clone()))?;
    let events = count_of(&topics.events).ok_or(TopicError::Missing(topics.events.clone()))?;
    if commands != events {
        return Err(TopicError::PartitionMismatch {
            commands: topics.commands,
            commands_partitions: commands,
            events: topics.events,
            events_partitions: events,
        });
    }
    if commands != layout.partitions {
        tracing::warn!(
            existing = commands,
            configured = layout.partitions,
            "topics exist with another partition count than configured; keeping theirs"
        );
    }
    crate::layout::record_or_check(settings, commands)?;
    crate::layout::initialise_groups(settings, commands)?;
    Ok(TopicReport {
        created,
        partitions: commands,
    })
}

/// Partition count of each of the topics that exists. Blocking.
pub fn partition_counts(
    settings: &KafkaSettings,
    topics: &Topics,
) -> Result<Vec<(String, i32)>, TopicError> {
    let consumer: BaseConsumer = settings.client_config().create()?;
    let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
    let names = topics.all();
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| names.contains(&t.name()))
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        // a partition without a leader yet cannot take reads or writes
        .filter(|t| {
            t.partitions()
                .iter()
                .all(|p| p.leader() >= 0 && p.error().is_none())
        })
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Metadata may lag a moment behind creation: wait until all five topics show up.
fn wait_for_topics(
    settings: &KafkaSettings,
    topics: &Topics,
) -> Result<Vec<(String, i32)>, TopicError> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let counts = partition_counts(settings, topics)?;
        if counts.len() == topics.all().len() || std::time::Instant::now() > deadline {
            return Ok(counts);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
