//! Reading a partition for a backup: committed records only (`read_committed`), from a start
//! offset up to the last stable offset seen when the run began. Blocking; run it on a blocking
//! thread or in the CLI's blocking context.

use std::time::{Duration, Instant};

use logbook_events::KafkaSettings;
use logbook_events::kafka::{Reporting, is_end_of_partition};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::segment::{StoredRecord, TimestampKind};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a read may go without any progress before it is given up.
const STALL: Duration = Duration::from_secs(120);

/// A read_committed reader of single partitions.
pub struct PartitionSource {
    consumer: BaseConsumer<Reporting>,
}

impl std::fmt::Debug for PartitionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartitionSource")
    }
}

/// The readable range of a partition: `[low, stable_end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub low: i64,
    /// The last stable offset (with `read_committed`, librdkafka's ListOffsets answers it):
    /// nothing below it can still change, open transactions start at or above it.
    pub stable_end: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{topic} p{partition}: no progress for {STALL:?} before offset {end}")]
    Stalled {
        topic: String,
        partition: i32,
        end: i64,
    },
}

impl PartitionSource {
    pub fn new(kafka: &KafkaSettings) -> Result<PartitionSource, SourceError> {
        let consumer = kafka
            .client_config()
            .set("group.id", "logbook-backup")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "10485760")
            .create_with_context(Reporting)?;
        Ok(PartitionSource { consumer })
    }

    pub fn bounds(&self, topic: &str, partition: i32) -> Result<Bounds, SourceError> {
        let (low, stable_end) = self.consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        Ok(Bounds { low, stable_end })
    }

    /// Hands every committed record of `[from, end)` to `sink`, in offset order. Aborted records
    /// and transaction markers are skipped by the client; they leave gaps in the offsets.
    pub fn read<E>(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        end: i64,
        mut sink: impl FnMut(StoredRecord) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<SourceError>,
    {
        if from >= end {
            return Ok(());
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(SourceError::from)?;
        self.consumer
            .assign(&assignment)
            .map_err(SourceError::from)?;
        let mut last_progress = Instant::now();
        loop {
            match self.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(message)) => {
                    last_progress = Instant::now();
                    if message.offset() >= end {
                        break;
                    }
                    let offset = message.offset();
                    sink(stored_record(&message))?;
                    if offset + 1 >= end {
                        break;
                    }
                }
                // At the end of the partition: the stable end only grows, so everything
                // below `end` has been handed out.
                Some(Err(error)) if is_end_of_partition(&error) => break,
                Some(Err(error)) => return Err(SourceError::from(error).into()),
                None if last_progress.elapsed() > STALL => {
                    return Err(SourceError::Stalled {
                        topic: topic.to_owned(),
                        partition,
                        end,
                    }
                    .into());
                }
                None => {}
            }
        }
        self.consumer
            .unassign()
            .map_err(SourceError::from)
            .map_err(E::from)
    }
}

pub(super) fn stored_record(message: &BorrowedMessage<'_>) -> StoredRecord {
    let (timestamp_kind, timestamp) = match message.timestamp() {
        Timestamp::NotAvailable => (TimestampKind::None, -1),
        Timestamp::CreateTime(t) => (TimestampKind::CreateTime, t),
        Timestamp::LogAppendTime(t) => (TimestampKind::LogAppendTime, t),
    };
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    StoredRecord {
        offset: message.offset(),
        timestamp_kind,
        timestamp,
        key: message.key().map(<[u8]>::to_vec),
        headers,
        payload: message.payload().map(<[u8]>::to_vec),
    }
}
