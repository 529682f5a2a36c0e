//! Rebuilds a partition's state before the processor decides any command of that partition:
//! from the newest usable snapshot plus the events after it, or from the whole events partition
//! (read_committed).
//!
//! It is called after the consumer group has handed the commands partition to this processor,
//! and after an unclear commit. An earlier writer (a previous owner that died or paused, or this
//! processor's own producer before it was replaced) may still have a transaction open on the
//! events partition, which could yet commit. So the restore reads until no open transaction
//! remains: the partition's end as a read_committed reader sees it (the last stable offset) must
//! reach the high watermark. A dead producer's transaction is aborted by the broker after
//! `transaction.timeout.ms`; until then the restore waits.
//!
//! A snapshot covering offset `c` is trusted only if the event at `c - 1` is the one it names
//! (so it was taken of this log) and the events after it fold onto it (sequences and hash chains
//! continue); otherwise the restore starts again from the beginning of the log.

use std::time::{Duration, Instant};

use chrono::Utc;

use logbook_events::kafka::Reporting;
use logbook_events::{KafkaSettings, Position, decode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use super::snapshot::{self, DedupeLimits};
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
    #[error("the event at offset {offset} is not the one the snapshot names ({expected})")]
    NotThisLog { offset: i64, expected: Uuid },
    #[error("restore of partition {0} did not reach the end within {1:?}")]
    Timeout(i32, Duration),
}

/// How long a restore may take, the dedupe window it rebuilds, and whether it may start from a
/// snapshot.
#[derive(Debug, Clone, Copy)]
pub struct RestoreLimits {
    pub timeout: Duration,
    pub dedupe_horizon: Duration,
    pub dedupe_capacity: usize,
    pub snapshots: bool,
}

/// A restored partition.
#[derive(Debug)]
pub struct Restored {
    pub state: PartitionState,
    /// The offset the snapshot it started from covers, if it did.
    pub snapshot: Option<i64>,
    /// Events folded from the log (after the snapshot, or all of them).
    pub folded: u64,
}

/// Restores events partition `partition` once no transaction is open on it.
pub fn restore_partition(
    kafka: &KafkaSettings,
    partition: i32,
    limits: RestoreLimits,
) -> Result<Restored, RestoreError> {
    let timeout = limits.timeout;
    let topic = kafka.topics().events;
    let consumer: BaseConsumer<Reporting> = kafka
        .end_reader_config("logbook-restore-unused")
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
    let reader = Reader {
        consumer: &consumer,
        topic: &topic,
        partition,
        high,
        deadline: (started, timeout),
    };
    let mut restored = match from_snapshot(kafka, &reader, limits)? {
        Some(restored) => restored,
        None => {
            let mut state = PartitionState::new(limits.dedupe_horizon, limits.dedupe_capacity);
            let folded = if high > low {
                reader.fold(Offset::Beginning, &mut state, None)?
            } else {
                0
            };
            Restored {
                state,
                snapshot: None,
                folded,
            }
        }
    };
    restored.state.next_write = Some(high);
    let folded_in = started.elapsed();
    restored.state.accounts.shrink_to_fit();
    // the decoded records are gone: give their pages back
    drop((consumer, probe));
    super::memory::trim();
    let source = if restored.snapshot.is_some() {
        "snapshot"
    } else {
        "log"
    };
    crate::metrics::partition_restored(restored.folded, started.elapsed().as_secs_f64(), source);
    let state = &restored.state;
    tracing::info!(
        partition,
        source,
        snapshot_covers = restored.snapshot,
        folded = restored.folded,
        accounts = state.accounts.len(),
        account_bytes = state.accounts.allocated_bytes(),
        heap_in_use_bytes = super::memory::heap_in_use(),
        remembered_commands = state.dedupe.len(),
        events = high,
        ms = folded_in.as_millis() as u64,
        release_ms = (started.elapsed() - folded_in).as_millis() as u64,
        "partition restored"
    );
    Ok(restored)
}

/// The newest usable snapshot with the events after it folded on, if there is one.
fn from_snapshot(
    kafka: &KafkaSettings,
    reader: &Reader<'_>,
    limits: RestoreLimits,
) -> Result<Option<Restored>, RestoreError> {
    if !limits.snapshots {
        return Ok(None);
    }
    let dedupe = DedupeLimits {
        horizon: limits.dedupe_horizon,
        capacity: limits.dedupe_capacity,
    };
    // the snapshot only saves time: when it cannot be read (not allowed, unavailable), the log
    // can
    let decoded =
        match snapshot::load_latest(kafka, reader.partition, reader.high, dedupe, limits.timeout) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Ok(None),
            Err(error) => {
                tracing::warn!(
                    partition = reader.partition,
                    %error,
                    "snapshots unreadable: restoring from the log"
                );
                return Ok(None);
            }
        };
    let (covers, mut state) = (decoded.covers, decoded.state);
    let named = state.last_event_id.map(|id| (covers - 1, id));
    match reader.fold(Offset::Offset(covers - 1), &mut state, named) {
        Ok(folded) => Ok(Some(Restored {
            state,
            snapshot: Some(covers),
            folded,
        })),
        Err(error @ (RestoreError::Kafka(_) | RestoreError::Timeout(..))) => Err(error),
        Err(error) => {
            snapshot::read::unusable(reader.partition, covers, &error.to_string());
            Ok(None)
        }
    }
}

/// Reads one events partition up to a known end.
struct Reader<'a> {
    consumer: &'a BaseConsumer<Reporting>,
    topic: &'a str,
    partition: i32,
    high: i64,
    deadline: (Instant, Duration),
}

impl Reader<'_> {
    /// Folds the events from `from` to the end into `state`; with `named` (offset, event id),
    /// the first event read must be that one (the snapshot's last), and it is not folded again.
    /// The events folded.
    fn fold(
        &self,
        from: Offset,
        state: &mut PartitionState,
        mut named: Option<(i64, Uuid)>,
    ) -> Result<u64, RestoreError> {
        let (started, timeout) = self.deadline;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(self.topic, self.partition, from)?;
        self.consumer.assign(&assignment)?;
        let now = Utc::now();
        let mut folded = 0;
        loop {
            if started.elapsed() > timeout {
                return Err(RestoreError::Timeout(self.partition, timeout));
            }
            let message = match self.consumer.poll(Duration::from_millis(100)) {
                None => continue,
                // read_committed: the end is the last stable offset, which was `high`
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(message)) => message,
            };
            let offset = message.offset();
            let envelope = decode(message.payload().unwrap_or_default())
                .map_err(|source| RestoreError::Codec { offset, source })?;
            match named.take() {
                Some((at, expected)) if envelope.event_id != expected || offset != at => {
                    return Err(RestoreError::NotThisLog { offset, expected });
                }
                Some(_) => {}
                None => {
                    state.fold(&envelope, Position::new(self.partition, offset), now)?;
                    folded += 1;
                }
            }
            if offset + 1 >= self.high {
                break;
            }
        }
        match named {
            // the log ended before the event the snapshot names
            Some((_, expected)) => Err(RestoreError::NotThisLog {
                offset: self.high,
                expected,
            }),
            None => Ok(folded),
        }
    }
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
