//! In-memory state of the partitions a processor owns: every account of the partition with the
//! hash of its last event, and the recently applied command ids (dedupe).
//!
//! The state of a partition is rebuilt from the events partition when the partition is assigned
//! and dropped when it is revoked; it is changed only after a transaction commits.

use std::collections::{HashMap, VecDeque};

use logbook_events::{EventEnvelope, Position};
use uuid::Uuid;

use crate::domain::{Account, apply};

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
/// account, and that event's offset in the partition. Kept small (16 bytes): a processor holds
/// one per remembered command id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub version: u64,
    pub offset: i64,
}

/// Applied command ids of one partition, bounded: the oldest are forgotten first.
#[derive(Debug)]
pub struct Dedupe {
    applied: HashMap<Uuid, Applied>,
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl Dedupe {
    pub fn new(capacity: usize) -> Self {
        Self {
            applied: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, command_id: &Uuid) -> Option<Applied> {
        self.applied.get(command_id).copied()
    }

    /// Records (or moves forward) the outcome of a command id.
    pub fn record(&mut self, command_id: Uuid, applied: Applied) {
        if self.applied.insert(command_id, applied).is_none() {
            self.order.push_back(command_id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.applied.remove(&old);
                }
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

/// Everything the processor knows about one partition.
#[derive(Debug)]
pub struct PartitionState {
    pub accounts: HashMap<Uuid, Slot>,
    pub dedupe: Dedupe,
    /// The offset the next event written to this partition gets, when known: the log end after
    /// the restore, then the offset after our last commit marker (see `positions`). `None`
    /// after an aborted transaction, until a commit tells it again.
    pub next_write: Option<i64>,
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
    pub fn new(dedupe_capacity: usize) -> Self {
        Self {
            accounts: HashMap::new(),
            dedupe: Dedupe::new(dedupe_capacity),
            next_write: None,
        }
    }

    /// Folds one committed event of the log into the state (restore path). The log must be
    /// well formed: a gap, a duplicate or a bad hash stops the restore instead of being skipped.
    pub fn fold(&mut self, envelope: &EventEnvelope, position: Position) -> Result<(), FoldError> {
        let event = envelope
            .decode_account()
            .map_err(|source| FoldError::Decode {
                event_id: envelope.event_id,
                offset: position.offset,
                source,
            })?;
        let slot = self
            .accounts
            .entry(envelope.aggregate_id)
            .or_insert_with(|| Slot::new(envelope.aggregate_id));
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
        apply(&mut slot.account, &event);
        slot.last_hash = hash;
        self.dedupe.record(
            envelope.command_id,
            Applied {
                version: envelope.sequence,
                offset: position.offset,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_forgets_the_oldest_beyond_capacity() {
        let mut dedupe = Dedupe::new(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            let applied = Applied {
                version: i as u64,
                offset: i as i64,
            };
            dedupe.record(*id, applied);
        }
        assert_eq!(dedupe.len(), 2);
        assert!(dedupe.get(&ids[0]).is_none());
        assert!(dedupe.get(&ids[2]).is_some());
    }
}
