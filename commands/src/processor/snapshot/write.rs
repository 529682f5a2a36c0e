//! When a processor snapshots a partition, and the records of one snapshot.
//!
//! A partition is due after `every_events` events committed since its last snapshot, or after
//! `interval` with at least one, and never before the events since the last snapshot are about
//! as many bytes as it was ([`EVENT_BYTES`] each): a partition that remembers a million command
//! ids has a snapshot of about 48 MB, and writing it every 10,000 events would write eight times
//! more snapshot than events. So a snapshot never costs more bytes than the events it saves a
//! restore from reading, and a restore reads at most about twice a snapshot. The snapshot is of the state before the batch being decided
//! (the committed state, which stands at the offset after the partition's last event) and goes
//! into that batch's transaction: it commits or aborts with the events after it.

use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};

use super::chunks::{self, ChunkHeader};
use super::codec::{self, FORMAT};
use crate::processor::delivery::UNTRACKED;
use crate::processor::state::PartitionState;

/// What an event weighs on the log, about (661 bytes on average in the benchmark's backlog).
pub const EVENT_BYTES: u64 = 512;

/// How often a processor snapshots its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Events committed to a partition since its last snapshot that make it due; 0: never.
    pub every_events: u64,
    /// Time since the last snapshot that makes a partition with new events due.
    pub interval: Duration,
}

impl SnapshotPolicy {
    pub fn enabled(&self) -> bool {
        self.every_events > 0
    }
}

/// The snapshot bookkeeping of one owned partition.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Events committed since the offset the last snapshot covers.
    since: u64,
    last: Instant,
    /// Chunks of the last snapshot this processor wrote (a smaller one tombstones the rest).
    chunks: u32,
    /// Bytes of that snapshot.
    bytes: u64,
}

impl Clock {
    /// After a restore that folded `tail` events past its snapshot (all of them without one).
    pub fn after_restore(tail: u64) -> Self {
        Self {
            since: tail,
            last: Instant::now(),
            chunks: 0,
            bytes: 0,
        }
    }

    pub fn due(&self, policy: &SnapshotPolicy, now: Instant) -> bool {
        policy.enabled()
            && self.since > 0
            && self.since.saturating_mul(EVENT_BYTES) >= self.bytes
            && (self.since >= policy.every_events
                || now.duration_since(self.last) >= policy.interval)
    }

    /// A transaction committed `events` events to the partition, after the snapshot `written`
    /// when it carried one.
    pub fn committed(&mut self, events: u64, written: Option<&Pending>) {
        match written {
            Some(snapshot) => {
                self.since = events;
                self.last = Instant::now();
                self.chunks = snapshot.chunks.len() as u32;
                self.bytes = snapshot.bytes as u64;
            }
            None => self.since += events,
        }
    }

    pub fn chunks(&self) -> u32 {
        self.chunks
    }
}

/// One snapshot, encoded and cut, waiting to be sent in a transaction.
#[derive(Debug)]
pub struct Pending {
    pub partition: i32,
    pub covers: i64,
    pub bytes: usize,
    /// How long encoding and cutting it took.
    pub encode_seconds: f64,
    /// (key, headers, bytes) of each chunk.
    chunks: Vec<(String, ChunkHeader, Vec<u8>)>,
    /// Keys of the chunks of the previous snapshot past this one's last.
    tombstones: Vec<String>,
}

impl Pending {
    /// The snapshot of `state`; `None` when the partition has no event yet.
    pub fn of(partition: i32, state: &PartitionState, previous_chunks: u32) -> Option<Self> {
        let started = Instant::now();
        let body = codec::encode(partition, state)?;
        let covers = state.last_offset? + 1;
        let chunks: Vec<(String, ChunkHeader, Vec<u8>)> = chunks::split(&body, FORMAT, covers)
            .into_iter()
            .map(|(header, piece)| (chunks::key(partition, header.index), header, piece.to_vec()))
            .collect();
        let tombstones = (chunks.len() as u32..previous_chunks)
            .map(|index| chunks::key(partition, index))
            .collect();
        Some(Self {
            partition,
            covers,
            bytes: body.len(),
            encode_seconds: started.elapsed().as_secs_f64(),
            chunks,
            tombstones,
        })
    }

    /// Sends the chunks (and the tombstones of stale chunk keys) to `topic`.
    pub fn send<C>(
        &self,
        producer: &ThreadedProducer<C>,
        topic: &str,
        timeout: Duration,
    ) -> Result<(), rdkafka::error::KafkaError>
    where
        C: crate::txn::CountsDeliveries + ProducerContext<DeliveryOpaque = usize>,
    {
        for (key, header, piece) in &self.chunks {
            let record = BaseRecord::with_opaque_to(topic, UNTRACKED)
                .partition(self.partition)
                .key(key)
                .payload(piece)
                .headers(record_headers(header));
            crate::txn::send(producer, record, timeout)?;
        }
        for key in &self.tombstones {
            let record: BaseRecord<'_, String, Vec<u8>, usize> =
                BaseRecord::with_opaque_to(topic, UNTRACKED)
                    .partition(self.partition)
                    .key(key);
            crate::txn::send(producer, record, timeout)?;
        }
        Ok(())
    }
}

/// A chunk's headers as a Kafka record carries them.
pub fn record_headers(header: &ChunkHeader) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    for (name, value) in header.headers() {
        headers = headers.insert(Header {
            key: name,
            value: Some(&value),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_due_after_enough_events_or_time_with_some() {
        let policy = SnapshotPolicy {
            every_events: 100,
            interval: Duration::from_secs(60),
        };
        let now = Instant::now();
        let mut clock = Clock::after_restore(0);
        assert!(
            !clock.due(&policy, now + Duration::from_secs(120)),
            "nothing new"
        );
        clock.committed(99, None);
        assert!(!clock.due(&policy, now));
        assert!(
            clock.due(&policy, now + Duration::from_secs(61)),
            "time with some"
        );
        clock.committed(1, None);
        assert!(clock.due(&policy, now), "enough events");
        let off = SnapshotPolicy {
            every_events: 0,
            ..policy
        };
        assert!(!clock.due(&off, now + Duration::from_secs(600)));
    }

    #[test]
    fn a_large_snapshot_waits_for_as_many_bytes_of_events() {
        let policy = SnapshotPolicy {
            every_events: 100,
            interval: Duration::from_secs(60),
        };
        let mut state = PartitionState::new(Duration::from_secs(900), 10);
        for _ in 0..2000 {
            state.accounts.get_or_insert(uuid::Uuid::new_v4());
        }
        state.last_offset = Some(7);
        state.last_event_id = Some(uuid::Uuid::new_v4());
        let snapshot = Pending::of(0, &state, 0).expect("has events");
        let (now, mut clock) = (Instant::now(), Clock::after_restore(0));
        clock.committed(100, Some(&snapshot));
        let even = (snapshot.bytes as u64).div_ceil(EVENT_BYTES);
        assert!(even > 101, "{} bytes", snapshot.bytes);
        assert!(!clock.due(&policy, now + Duration::from_secs(120)));
        clock.committed(even - 101, None);
        assert!(!clock.due(&policy, now), "one event short");
        clock.committed(1, None);
        assert!(clock.due(&policy, now));
    }
}
