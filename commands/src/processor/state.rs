//! In-memory state of the partitions a processor owns: every account of the partition with the
//! hash of its last event, and the command ids applied within the dedupe horizon.
//!
//! The state of a partition is rebuilt from the events partition when the partition is assigned
//! and dropped when it is revoked; it is changed only after a transaction commits.
//!
//! At most once, without a window to fall out of: a command carries the instant of its first
//! attempt (`issued_at`). The processor remembers every applied command id whose first attempt
//! is within the last `horizon`, and refuses a command first issued longer ago that it does not
//! remember ([`Dedupe::expired`]), so a late retry is never applied a second time. Memory is
//! bounded by a cap: when it is reached the oldest ids are forgotten and every command first
//! issued no later than a forgotten one is refused too: the horizon shrinks (logged, and shown by
//! `logbook_processor_dedupe_horizon_seconds`).
//!
//! Each remembered id keeps the instant of its first attempt, or, for ids restored from the
//! log (events do not carry it), a bound on it: the event's `occurred_at` plus an allowance for
//! clock skew between gateways and processors.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use logbook_events::{EventEnvelope, Position};
use uuid::Uuid;

use super::accounts::Accounts;
use crate::domain::intent::{command_of, fingerprint};
use crate::domain::{Account, apply};

/// Clocks of gateways and processors may differ by this much: a command restored from the log
/// was first issued at most this long after its event's `occurred_at`.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// One account as the processor holds it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub account: Account,
    /// SHA-256 of the account's last event (all zeros before the first).
    pub last_hash: [u8; 32],
}

impl Slot {
    /// An account not opened yet.
    pub fn new(aggregate_id: Uuid) -> Self {
        Self {
            account: Account::new(aggregate_id),
            last_hash: [0; 32],
        }
    }

    pub fn last_hash_hex(&self) -> String {
        hex::encode(self.last_hash)
    }
}

/// What a duplicate of an applied command answers with: the version its last event gave the
/// account and that event's offset, plus the fingerprint of what the command asked for (a
/// known id with another payload is refused, not answered as a duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub version: u64,
    pub offset: i64,
    pub fingerprint: u64,
}

/// Applied command ids of one partition, kept for the horizon and within a cap.
#[derive(Debug)]
pub struct Dedupe {
    applied: HashMap<Uuid, Applied>,
    /// The ids by (a bound on) their first attempt, in µs since the epoch, earliest first: the
    /// first to be forgotten are those whose retries expire first.
    order: BinaryHeap<Reverse<(i64, Uuid)>>,
    horizon: Duration,
    capacity: usize,
    /// Commands first issued at or before this instant (µs) are expired: the cap forgot ids
    /// first issued up to then.
    floor: i64,
}

impl Dedupe {
    pub fn new(horizon: Duration, capacity: usize) -> Self {
        Self {
            applied: HashMap::new(),
            order: BinaryHeap::new(),
            horizon,
            capacity: capacity.max(1),
            floor: i64::MIN,
        }
    }

    pub fn get(&self, command_id: &Uuid) -> Option<Applied> {
        self.applied.get(command_id).copied()
    }

    /// Records the outcome of a command id first issued at (or no later than) `issued`.
    pub fn record(&mut self, command_id: Uuid, applied: Applied, issued: DateTime<Utc>) {
        if self.applied.insert(command_id, applied).is_some() {
            return;
        }
        self.order
            .push(Reverse((issued.timestamp_micros(), command_id)));
        if self.order.len() > self.capacity
            && let Some(Reverse((old_issued, old))) = self.order.pop()
        {
            self.applied.remove(&old);
            if old_issued > self.floor {
                if self.floor == i64::MIN {
                    tracing::warn!(
                        capacity = self.capacity,
                        "dedupe capacity reached: the horizon shrinks (commands first sent before \
                         the oldest remembered one are refused as expired)"
                    );
                }
                self.floor = old_issued;
            }
        }
    }

    /// Forgets the ids first issued before the horizon: their retries are expired anyway.
    pub fn forget_older(&mut self, now: DateTime<Utc>) {
        let keep_from = now.timestamp_micros() - micros(self.horizon);
        while let Some(Reverse((issued, id))) = self.order.peek().copied() {
            if issued >= keep_from {
                break;
            }
            self.order.pop();
            self.applied.remove(&id);
        }
    }

    /// Whether a command first issued at `issued_at` that is not remembered must be refused:
    /// it is older than the horizon, or older than what the cap still remembers.
    pub fn expired(&self, issued_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let issued = issued_at.timestamp_micros();
        issued < now.timestamp_micros() - micros(self.horizon) || issued <= self.floor
    }

    /// The horizon in effect: the configured one, or less when the cap forgot ids.
    pub fn effective_horizon(&self, now: DateTime<Utc>) -> Duration {
        let since_floor = now.timestamp_micros().saturating_sub(self.floor).max(0);
        self.horizon
            .min(Duration::from_micros(since_floor.unsigned_abs()))
    }

    /// Every remembered id with its outcome and (a bound on) its first attempt in µs, earliest
    /// first, and the floor the cap set (`i64::MIN` when it never forgot an id): what a snapshot
    /// stores.
    pub fn entries(&self) -> (Vec<(Uuid, Applied, i64)>, i64) {
        let mut entries: Vec<(Uuid, Applied, i64)> = self
            .order
            .iter()
            .filter_map(|Reverse((issued, id))| Some((*id, *self.applied.get(id)?, *issued)))
            .collect();
        entries.sort_by_key(|(id, _, issued)| (*issued, *id));
        (entries, self.floor)
    }

    /// Puts back what [`Dedupe::entries`] gave (restoring a snapshot); the cap still applies.
    /// Only the newest `capacity` entries are inserted: inserting them all and forgetting the
    /// oldest afterwards would leave the map and the heap sized for the whole snapshot (a
    /// snapshot of 83k ids restored under a cap of 100 held about 9 MB).
    pub fn restore(&mut self, mut entries: Vec<(Uuid, Applied, i64)>, floor: i64) {
        self.floor = self.floor.max(floor);
        if entries.len() > self.capacity {
            entries.sort_unstable_by_key(|(id, _, issued)| (*issued, *id));
            let forgotten = entries.len() - self.capacity;
            if let Some((_, _, issued)) = entries.get(forgotten - 1) {
                self.floor = self.floor.max(*issued);
            }
            entries.drain(..forgotten);
        }
        self.applied.reserve(entries.len());
        self.order.reserve(entries.len());
        for (id, applied, issued) in entries {
            if self.applied.insert(id, applied).is_none() {
                self.order.push(Reverse((issued, id)));
            }
        }
        while self.order.len() > self.capacity {
            if let Some(Reverse((issued, id))) = self.order.pop() {
                self.applied.remove(&id);
                self.floor = self.floor.max(issued);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.applied.len()
    }

    pub fn is_empty(&self) -> bool {
        self.applied.is_empty()
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::microseconds(micros(duration))
}

/// Everything the processor knows about one partition.
#[derive(Debug)]
pub struct PartitionState {
    pub accounts: Accounts,
    pub dedupe: Dedupe,
    /// The offset the next event written to this partition gets, when known: the log end after
    /// the restore, then the offset after our last commit marker (see `positions`). `None`
    /// after an aborted transaction, until a commit tells it again.
    pub next_write: Option<i64>,
    /// Offset of the partition's last committed event, if any (a saga step found applied
    /// already answers with it: its effect is at or before it).
    pub last_offset: Option<i64>,
    /// `occurred_at` of the partition's last event: new events are stamped strictly later, so
    /// times increase along a partition (transfer credits rely on it, see `DebitOrigin`).
    pub last_event_at: Option<DateTime<Utc>>,
    /// Id of the event at `last_offset` (a snapshot names it, so a restore can check that the
    /// log it continues from is the one the snapshot was taken of).
    pub last_event_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error("event {event_id} at offset {offset}: {source}")]
    Decode {
        event_id: Uuid,
        offset: i64,
        source: logbook_events::CodecError,
    },
    #[error(
        "event at offset {offset} has sequence {found} for account {aggregate_id}, expected {expected}"
    )]
    Sequence {
        aggregate_id: Uuid,
        offset: i64,
        expected: u64,
        found: u64,
    },
    #[error("event {event_id} at offset {offset} has a bad hash")]
    Hash { event_id: Uuid, offset: i64 },
}

impl PartitionState {
    pub fn new(dedupe_horizon: Duration, dedupe_capacity: usize) -> Self {
        Self {
            accounts: Accounts::default(),
            dedupe: Dedupe::new(dedupe_horizon, dedupe_capacity),
            next_write: None,
            last_offset: None,
            last_event_at: None,
            last_event_id: None,
        }
    }

    /// Folds one committed event of the log into the state (restore path). The log must be
    /// well formed: a gap, a duplicate or a bad hash stops the restore instead of being skipped.
    pub fn fold(
        &mut self,
        envelope: &EventEnvelope,
        position: Position,
        now: DateTime<Utc>,
    ) -> Result<(), FoldError> {
        let event = envelope
            .decode_account()
            .map_err(|source| FoldError::Decode {
                event_id: envelope.event_id,
                offset: position.offset,
                source,
            })?;
        let slot = self.accounts.get_or_insert(envelope.aggregate_id);
        let expected = slot.account.version() + 1;
        if envelope.sequence != expected {
            return Err(FoldError::Sequence {
                aggregate_id: envelope.aggregate_id,
                offset: position.offset,
                expected,
                found: envelope.sequence,
            });
        }
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&envelope.hash, &mut hash).is_err()
            || envelope.prev_hash != slot.last_hash_hex()
        {
            return Err(FoldError::Hash {
                event_id: envelope.event_id,
                offset: position.offset,
            });
        }
        let fingerprint = command_of(&slot.account, &event)
            .map_or(0, |command| fingerprint(envelope.aggregate_id, &command));
        apply(&mut slot.account, &event);
        slot.last_hash = hash;
        let at = envelope.occurred_at;
        self.last_event_at = self.last_event_at.max(Some(at));
        self.last_offset = Some(position.offset);
        self.last_event_id = Some(envelope.event_id);
        // the event does not carry its command's first attempt: bound it by `occurred_at`
        let issued = at + chrono_duration(CLOCK_SKEW_ALLOWANCE);
        if issued >= now - chrono_duration(self.dedupe.horizon) {
            let applied = Applied {
                version: envelope.sequence,
                offset: position.offset,
                fingerprint,
            };
            self.dedupe.record(envelope.command_id, applied, issued);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(i: u64) -> Applied {
        Applied {
            version: i,
            offset: i as i64,
            fingerprint: i,
        }
    }

    #[test]
    fn ids_are_kept_for_the_horizon_and_late_commands_expire() {
        let horizon = Duration::from_secs(900);
        let mut dedupe = Dedupe::new(horizon, 100);
        let t0 = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let id = Uuid::new_v4();
        dedupe.record(id, applied(1), t0);
        let later = t0 + chrono::Duration::seconds(900);
        dedupe.forget_older(later);
        assert!(dedupe.get(&id).is_some(), "within the horizon");
        assert!(!dedupe.expired(t0, later));
        let much_later = t0 + chrono::Duration::seconds(901);
        dedupe.forget_older(much_later);
        assert!(dedupe.get(&id).is_none(), "forgotten past the horizon");
        assert!(dedupe.expired(t0, much_later), "and a retry is refused");
        assert!(!dedupe.expired(much_later, much_later));
    }

    #[test]
    fn the_cap_shrinks_the_horizon_instead_of_forgetting_silently() {
        let mut dedupe = Dedupe::new(Duration::from_secs(900), 2);
        let t0 = Utc::now();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            dedupe.record(
                *id,
                applied(i as u64),
                t0 + chrono::Duration::seconds(i as i64),
            );
        }
        assert_eq!(dedupe.len(), 2);
        assert!(dedupe.get(&ids[0]).is_none());
        // a retry of the forgotten command (first issued at t0) is refused
        assert!(dedupe.expired(t0, t0 + chrono::Duration::seconds(3)));
        assert!(dedupe.effective_horizon(t0 + chrono::Duration::seconds(3)) < dedupe.horizon);
        // a command first issued after it is not
        assert!(!dedupe.expired(
            t0 + chrono::Duration::seconds(3),
            t0 + chrono::Duration::seconds(3)
        ));
    }

    #[test]
    fn a_restore_past_the_cap_keeps_the_newest_ids_and_only_their_memory() {
        let t0 = Utc::now().timestamp_micros();
        let entries: Vec<(Uuid, Applied, i64)> = (0..10_000)
            .map(|i| (Uuid::new_v4(), applied(i), t0 + i as i64))
            .rev()
            .collect();
        let mut dedupe = Dedupe::new(Duration::from_secs(900), 10);
        dedupe.restore(entries.clone(), i64::MIN);
        assert_eq!(dedupe.len(), 10);
        for (id, _, issued) in &entries {
            let newest = *issued >= t0 + 9_990;
            assert_eq!(
                dedupe.get(id).is_some(),
                newest,
                "issued at {}",
                issued - t0
            );
        }
        // the cap forgot ids first issued up to the 9,990th: their retries are refused
        assert_eq!(dedupe.floor, t0 + 9_989);
        assert!(
            dedupe.applied.capacity() < 100,
            "{}",
            dedupe.applied.capacity()
        );
        assert!(dedupe.order.capacity() < 100, "{}", dedupe.order.capacity());
    }
}
