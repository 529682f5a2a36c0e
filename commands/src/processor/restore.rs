//! Rebuilds a partition's state from the events topic (read_committed) before the processor
//! decides any command of that partition (DESIGN.md §3, step 3).
//!
//! It is called only after the consumer group has handed the commands partition to this
//! processor and its committed offset has been fetched, which with `read_committed` waits for any
//! pending transactional offset commit of a previous owner. So no earlier owner can still have an
//! open transaction on the events partition: reading to its end sees every committed event.

use std::time::{Duration, Instant};

use logbook_events::kafka::EndOfLogReader;
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

/// Reads events partition `partition` from the start to its end and folds it.
pub fn restore_partition(
    kafka: &KafkaSettings,
    partition: i32,
    dedupe_capacity: usize,
    timeout: Duration,
) -> Result<PartitionState, RestoreError> {
    let topic = kafka.topics().events;
    let consumer: BaseConsumer<EndOfLogReader> = kafka
        .client_config()
        .set("group.id", "logbook-restore-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create_with_context(EndOfLogReader)?;
    let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
    let mut state = PartitionState::new(dedupe_capacity);
    state.next_write = Some(high);
    if high <= low {
        return Ok(state);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let started = Instant::now();
    loop {
        if started.elapsed() > timeout {
            return Err(RestoreError::Timeout(partition, timeout));
        }
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            // read_committed: end of partition means the last stable offset, which is the high
            // watermark here since no other writer has an open transaction (module doc).
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => message,
        };
        let offset = message.offset();
        let envelope = decode(message.payload().unwrap_or_default())
            .map_err(|source| RestoreError::Codec { offset, source })?;
        state.fold(&envelope, Position::new(partition, offset))?;
        if offset + 1 >= high {
            break;
        }
    }
    state.next_write = Some(high);
    crate::metrics::partition_restored(high, started.elapsed().as_secs_f64());
    tracing::info!(
        partition,
        accounts = state.accounts.len(),
        events = high,
        ms = started.elapsed().as_millis() as u64,
        "partition restored"
    );
    Ok(state)
}
