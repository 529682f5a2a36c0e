//! The Kafka side of a restore: what the target partitions already hold, and an idempotent,
//! gapless producer that writes records back with their partition, key, headers and timestamp.
//! Blocking; run it on a blocking thread or in the CLI's blocking context.

use std::sync::Mutex;
use std::time::Duration;

use logbook_events::KafkaSettings;
use logbook_events::kafka::{Reporting, is_end_of_partition};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::segment::{StoredRecord, TimestampKind};
use super::source::{PartitionSource, SourceError};

const TIMEOUT: Duration = Duration::from_secs(30);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("a record was not delivered: {0}")]
    Delivery(String),
}

/// Remembers the first failed delivery (the producer is gapless: nothing after it lands).
#[derive(Debug, Default)]
pub struct DeliveryWatch {
    failed: Mutex<Option<String>>,
}

impl ClientContext for DeliveryWatch {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        logbook_events::kafka::client_error(&error, reason);
    }
}

impl ProducerContext for DeliveryWatch {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result
            && let Ok(mut failed) = self.failed.lock()
        {
            failed.get_or_insert_with(|| error.to_string());
        }
    }
}

/// Writes records to fixed partitions with `enable.idempotence` and `enable.gapless.guarantee`:
/// librdkafka retries without duplicating, and a record that cannot be written stops the
/// producer, so what landed in a partition is always a prefix of what was sent.
pub struct RestoreProducer {
    producer: BaseProducer<DeliveryWatch>,
}

impl std::fmt::Debug for RestoreProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestoreProducer")
    }
}

impl RestoreProducer {
    pub fn new(kafka: &KafkaSettings) -> Result<RestoreProducer, TargetError> {
        let producer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("enable.gapless.guarantee", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("compression.type", "lz4")
            .create_with_context(DeliveryWatch::default())?;
        Ok(RestoreProducer { producer })
    }

    pub fn send(
        &self,
        topic: &str,
        partition: i32,
        record: &StoredRecord,
    ) -> Result<(), TargetError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut out = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key);
        }
        if let Some(payload) = &record.payload {
            out = out.payload(payload);
        }
        if record.timestamp_kind != TimestampKind::None && record.timestamp >= 0 {
            out = out.timestamp(record.timestamp);
        }
        loop {
            match self.producer.send(out) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    out = back;
                    self.producer.poll(Duration::from_millis(10));
                    self.check()?;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }

    /// Waits until everything sent is acknowledged by all in-sync replicas.
    pub fn flush(&self) -> Result<(), TargetError> {
        self.producer.flush(FLUSH_TIMEOUT)?;
        self.check()
    }

    fn check(&self) -> Result<(), TargetError> {
        let failed = self
            .producer
            .context()
            .failed
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        match failed {
            Some(error) => Err(TargetError::Delivery(error)),
            None => Ok(()),
        }
    }
}

/// What a target partition holds already: its offset range and its first and last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPartition {
    pub low: i64,
    pub high: i64,
    pub first: Option<StoredRecord>,
    pub last: Option<StoredRecord>,
}

/// Reads the range and the first and last records of a target partition.
pub fn inspect(
    kafka: &KafkaSettings,
    source: &PartitionSource,
    topic: &str,
    partition: i32,
) -> Result<TargetPartition, TargetError> {
    let bounds = source.bounds(topic, partition)?;
    let (low, high) = (bounds.low, bounds.stable_end);
    if high <= low {
        return Ok(TargetPartition {
            low,
            high,
            first: None,
            last: None,
        });
    }
    Ok(TargetPartition {
        low,
        high,
        first: record_at(kafka, topic, partition, low)?,
        last: record_at(kafka, topic, partition, high - 1)?,
    })
}

/// The record at exactly `offset`, or None when that offset holds no committed record.
fn record_at(
    kafka: &KafkaSettings,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Option<StoredRecord>, TargetError> {
    let consumer: BaseConsumer<Reporting> = kafka
        .client_config()
        .set("group.id", "logbook-restore")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(Reporting)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) if message_offset(&message) == offset => {
                return Ok(Some(super::source::stored_record(&message)));
            }
            Some(Ok(_)) => return Ok(None),
            Some(Err(error)) if is_end_of_partition(&error) => return Ok(None),
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    Ok(None)
}

fn message_offset(message: &rdkafka::message::BorrowedMessage<'_>) -> i64 {
    use rdkafka::message::Message;
    message.offset()
}
