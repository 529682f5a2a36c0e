//! The consumer side of a transactional loop: group membership, where partitions start, and
//! rewinding.
//!
//! Offsets are committed only inside transactions (no auto commit) and read back with
//! `read_committed`, which also makes the committed-offset fetch wait for a previous owner's
//! pending transaction (KIP-447). A partition that holds data but has no committed offset is
//! refused ([`MissingOffsets::Refuse`]): on a log kept for ever, resetting to the beginning would
//! replay all history, and resetting to the end would skip what was never processed. Fresh
//! installations get their first offsets from `logbook topics` (`logbook_events::layout`).

use std::collections::BTreeMap;
use std::time::Duration;

use logbook_events::KafkaSettings;
use logbook_events::kafka::Reporting;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::epochs::RebalanceContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(10);

/// What a loop does with a partition that holds data but has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingOffsets {
    /// Stop with an error that says what to do (the default).
    #[default]
    Refuse,
    /// Start at the beginning of the partition (replays history: see docs/operations.md).
    Earliest,
    /// Start at the end (skips what was never processed).
    Latest,
}

/// Group membership of a loop.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub kafka: KafkaSettings,
    pub group_id: String,
    /// `session.timeout.ms`: how soon a dead member's partitions move.
    pub session_timeout: Duration,
    pub missing_offsets: MissingOffsets,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "group {group} has no committed offset for {partitions:?}, which hold data: refusing to \
         replay or skip history. If the offsets were lost on purpose, start once with \
         --missing-offsets earliest (replay; see docs/operations.md) or latest (skip)"
    )]
    OffsetsMissing {
        group: String,
        partitions: Vec<(String, i32)>,
    },
}

/// A member of `settings.group_id` subscribed to `topics` (manual offsets, read_committed,
/// incremental rebalances, no automatic offset reset), with the rebalance callbacks of `role`.
pub fn consumer(
    settings: &GroupSettings,
    topics: &[&str],
    role: &'static str,
) -> Result<BaseConsumer<RebalanceContext>, KafkaError> {
    let probe: BaseConsumer<Reporting> = settings
        .kafka
        .client_config()
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create_with_context(Reporting)?;
    let context = RebalanceContext::new(role, settings.missing_offsets, Some(probe));
    let millis = |d: Duration| d.as_millis().to_string();
    let consumer: BaseConsumer<RebalanceContext> = settings
        .kafka
        .client_config()
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", millis(settings.session_timeout))
        .set(
            "heartbeat.interval.ms",
            millis(settings.session_timeout / 6),
        )
        .set("fetch.wait.max.ms", "20")
        .set("fetch.min.bytes", "1")
        .create_with_context(context)?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}

/// Whether a consumer error says that a partition has no committed offset (the rebalance
/// callback refused it, or could not tell).
pub fn is_missing_offset(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)
    )
}

/// The error of a loop that was handed partitions without committed offsets.
pub fn refused(settings: &GroupSettings, partitions: Vec<(String, i32)>) -> GroupError {
    GroupError::OffsetsMissing {
        group: settings.group_id.clone(),
        partitions,
    }
}

/// The first offset of each partition among `records` ((topic, partition), offset): where a
/// batch starts again.
pub fn first_offsets(
    records: impl IntoIterator<Item = ((String, i32), i64)>,
) -> BTreeMap<(String, i32), i64> {
    let mut firsts: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (key, offset) in records {
        let first = firsts.entry(key).or_insert(offset);
        *first = (*first).min(offset);
    }
    firsts
}

/// Seeks each partition to the offset given (the first record of an aborted batch). A
/// partition that is no longer assigned is skipped: its new owner reads it.
pub fn rewind_to<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    firsts: &BTreeMap<(String, i32), i64>,
    assigned: impl Fn(&str, i32) -> bool,
) -> Result<(), KafkaError> {
    for ((topic, partition), offset) in firsts {
        if let Err(error) = consumer.seek(topic, *partition, Offset::Offset(*offset), TIMEOUT)
            && assigned(topic, *partition)
        {
            return Err(error);
        }
    }
    Ok(())
}

/// Seeks each partition of an unclear batch back to the group's committed offset (once the old
/// transaction is settled, the committed offsets tell whether it landed). `firsts`: the batch's
/// first offset per partition.
pub fn rewind_to_committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    firsts: &BTreeMap<(String, i32), i64>,
    assigned: impl Fn(&str, i32) -> bool,
) -> Result<(), KafkaError> {
    let mut wanted = TopicPartitionList::new();
    for (topic, partition) in firsts.keys() {
        wanted.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(wanted, TIMEOUT)?;
    let read = committed
        .elements()
        .iter()
        .map(|e| {
            (
                (e.topic().to_string(), e.partition()),
                e.error().map(|()| e.offset()),
            )
        })
        .collect();
    rewind_to(consumer, &committed_targets(read, firsts)?, assigned)
}

/// Where each partition of an unclear batch goes back to: its committed offset; the batch's
/// first offset when the group has none (a transaction that landed would have committed one).
/// A partition whose committed offset could not be read is an error, never left where it is:
/// that would skip the batch if its transaction did not land.
fn committed_targets(
    read: BTreeMap<(String, i32), Result<Offset, KafkaError>>,
    firsts: &BTreeMap<(String, i32), i64>,
) -> Result<BTreeMap<(String, i32), i64>, KafkaError> {
    let mut targets = BTreeMap::new();
    for (key, first) in firsts {
        let target = match read.get(key) {
            Some(Ok(Offset::Offset(offset))) => *offset,
            Some(Ok(Offset::Invalid)) => *first,
            Some(Err(error)) => return Err(error.clone()),
            Some(Ok(_)) | None => {
                return Err(KafkaError::OffsetFetch(RDKafkaErrorCode::InvalidPartitions));
            }
        };
        targets.insert(key.clone(), target);
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: i32) -> (String, i32) {
        ("t.results".to_string(), partition)
    }

    fn firsts() -> BTreeMap<(String, i32), i64> {
        BTreeMap::from([(key(0), 40), (key(1), 70)])
    }

    #[test]
    fn an_unclear_batch_goes_back_to_the_committed_offsets() {
        let read = BTreeMap::from([
            (key(0), Ok(Offset::Offset(52))),
            (key(1), Ok(Offset::Offset(70))),
        ]);
        let targets = committed_targets(read, &firsts()).expect("targets");
        assert_eq!(targets, BTreeMap::from([(key(0), 52), (key(1), 70)]));
    }

    #[test]
    fn a_partition_without_a_committed_offset_goes_back_to_the_batch() {
        let read = BTreeMap::from([
            (key(0), Ok(Offset::Invalid)),
            (key(1), Ok(Offset::Offset(75))),
        ]);
        let targets = committed_targets(read, &firsts()).expect("targets");
        assert_eq!(targets, BTreeMap::from([(key(0), 40), (key(1), 75)]));
    }

    #[test]
    fn an_offset_that_could_not_be_read_is_an_error_not_a_skip() {
        let failed = KafkaError::OffsetFetch(RDKafkaErrorCode::UnstableOffsetCommit);
        let read = BTreeMap::from([(key(0), Ok(Offset::Offset(52))), (key(1), Err(failed))]);
        assert!(committed_targets(read, &firsts()).is_err());
        let missing = BTreeMap::from([(key(0), Ok(Offset::Offset(52)))]);
        assert!(committed_targets(missing, &firsts()).is_err());
        let odd = BTreeMap::from([(key(0), Ok(Offset::End)), (key(1), Ok(Offset::Offset(70)))]);
        assert!(committed_targets(odd, &firsts()).is_err());
    }
}
