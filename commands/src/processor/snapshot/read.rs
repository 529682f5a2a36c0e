//! Finding the newest readable snapshot of a partition on the snapshots topic.
//!
//! The topic is compacted, but its newest segment is not: it may hold many snapshots of a
//! partition. The reader looks at the last records first (a window of 64), because a snapshot's
//! chunks are written one after the other in one transaction: when the window holds no complete
//! snapshot, the next one starts where the newest snapshot seen began (its chunk `i` at offset
//! `o` puts its first chunk at about `o - i`), or eight times wider, down to the start. It takes the newest snapshot that is complete, matches its
//! checksum, is in a format this build reads and covers no more than the events partition
//! holds. A snapshot that fails any of these is logged, counted and passed over for an older
//! one; none at all means a restore from the full log.

use std::time::{Duration, Instant};

use logbook_events::KafkaSettings;
use logbook_events::kafka::Reporting;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::chunks::{Assembly, ChunkHeader};
use super::codec::{Decoded, decode};
use super::write::SnapshotPolicy;

/// Records read at first from the end of the partition.
const FIRST_WINDOW: i64 = 64;

/// What a restore needs to rebuild the dedupe memory of a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct DedupeLimits {
    pub horizon: Duration,
    pub capacity: usize,
}

/// The newest usable snapshot of `partition` covering at most `events_end`, if any.
pub fn load_latest(
    kafka: &KafkaSettings,
    partition: i32,
    events_end: i64,
    dedupe: DedupeLimits,
    timeout: Duration,
) -> Result<Option<Decoded>, KafkaError> {
    let topic = kafka.topics().snapshots;
    let consumer: BaseConsumer<Reporting> = kafka
        .end_reader_config("logbook-snapshot-reader-unused")
        .create_with_context(Reporting)?;
    // no topic (deleted since the processor started) is an error like any other: the caller
    // restores from the log
    let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
    let deadline = Instant::now() + timeout;
    let mut start = high.saturating_sub(FIRST_WINDOW).max(low);
    if high <= low {
        return Ok(None);
    }
    loop {
        let (assembly, newest_from) = read_range(&consumer, &topic, partition, start, deadline)?;
        for whole in assembly.complete(events_end) {
            let decoded = whole
                .body
                .map_err(|error| error.to_string())
                .and_then(|body| {
                    decode(&body, dedupe.horizon, dedupe.capacity).map_err(|e| e.to_string())
                });
            match decoded {
                Ok(decoded) if decoded.partition == partition => return Ok(Some(decoded)),
                Ok(decoded) => unusable(
                    partition,
                    whole.covers,
                    &format!("it is partition {}'s", decoded.partition),
                ),
                Err(error) => unusable(partition, whole.covers, &error),
            }
        }
        if start == low {
            return Ok(None);
        }
        let wider = high.saturating_sub((high - start).saturating_mul(8));
        start = match newest_from {
            Some(from) if from < start => from,
            _ => wider,
        }
        .max(low);
    }
}

/// `policy`, or snapshots off (with a warning) when the installation has no snapshots topic
/// yet (made before snapshots existed: `logbook topics` creates it). Blocking.
pub fn policy_in_effect(
    kafka: &KafkaSettings,
    policy: SnapshotPolicy,
) -> Result<SnapshotPolicy, KafkaError> {
    if !policy.enabled() {
        return Ok(policy);
    }
    let topic = kafka.topics().snapshots;
    let consumer: BaseConsumer = kafka.client_config().create()?;
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let exists = metadata
        .topics()
        .first()
        .is_some_and(|t| t.error().is_none() && !t.partitions().is_empty());
    if exists {
        return Ok(policy);
    }
    tracing::warn!(
        %topic,
        "no snapshots topic: partitions are restored from the whole log; run `logbook topics` \
         to create it"
    );
    Ok(SnapshotPolicy {
        every_events: 0,
        ..policy
    })
}

/// Logs and counts a snapshot passed over.
pub(crate) fn unusable(partition: i32, covers: i64, why: &str) {
    crate::metrics::snapshot_unusable();
    tracing::warn!(
        partition,
        covers,
        why,
        "snapshot unusable: an older one or the full log is read instead"
    );
}

/// Every chunk of the partition from `start` to its (read_committed) end, and where the newest
/// snapshot seen begins (the offset of its chunk 0, if the chunks are one after the other).
fn read_range(
    consumer: &BaseConsumer<Reporting>,
    topic: &str,
    partition: i32,
    start: i64,
    deadline: Instant,
) -> Result<(Assembly, Option<i64>), KafkaError> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let mut assembly = Assembly::default();
    let mut newest: Option<(i64, i64)> = None;
    loop {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => return Err(error),
            Some(Ok(message)) => message,
        };
        // a tombstone (a chunk index the newest snapshot no longer has)
        let Some(payload) = message.payload() else {
            continue;
        };
        let headers = message.headers();
        let header = ChunkHeader::parse(|name| {
            headers?
                .iter()
                .find(|header| header.key == name)
                .and_then(|header| header.value)
        });
        match header {
            Ok(header) => {
                let from = message.offset() - i64::from(header.index);
                if newest.is_none_or(|(covers, _)| header.covers >= covers) {
                    newest = Some((header.covers, from));
                }
                assembly.add(header, payload.to_vec());
            }
            Err(error) => tracing::warn!(
                partition,
                offset = message.offset(),
                %error,
                "a record of the snapshots topic is not a snapshot chunk: ignored"
            ),
        }
    }
    Ok((assembly, newest.map(|(_, from)| from)))
}
