//! Snapshots of a partition's state, so a new owner restores from the newest snapshot plus the
//! tail of the events partition instead of the whole log.
//!
//! The processor writes a partition's snapshot (its accounts with their hash heads, the
//! remembered command ids and the dedupe floor) to the compacted topic `<prefix>.snapshots`,
//! partition for partition, inside the same Kafka transaction as a batch's events, every N
//! events or T seconds ([`SnapshotPolicy`]). A snapshot says which events offset it covers; a
//! restore reads the newest usable one and folds the events from there, after checking that the
//! event just before that offset is the one the snapshot names. Anything wrong with a snapshot
//! (missing chunks, checksum, format, another log) means an older one or the full log.
//!
//! - `codec`: the bytes of a snapshot (pure);
//! - `chunks`: snapshots as records under the message size limit, and putting them back (pure);
//! - `read`: finding the newest usable snapshot on the topic;
//! - `write`: when a partition is due, and a snapshot's records in a transaction.

pub mod chunks;
pub mod codec;
pub mod read;
pub mod write;

pub use read::{DedupeLimits, load_latest};
pub use write::{Clock, Pending, SnapshotPolicy};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use logbook_events::Currency;
    use uuid::Uuid;

    use super::codec::{CodecError, FORMAT, decode, encode};
    use crate::domain::{Account, AccountParts, AccountStatus};
    use crate::processor::state::{Applied, PartitionState, Slot};

    const HORIZON: Duration = Duration::from_secs(900);

    fn state() -> PartitionState {
        let mut state = PartitionState::new(HORIZON, 1000);
        let t0: DateTime<Utc> = "2026-11-30T10:00:00Z".parse().expect("time");
        for i in 0..50u8 {
            let parts = AccountParts {
                id: Uuid::new_v4(),
                status: match i % 4 {
                    0 => None,
                    1 => Some(AccountStatus::Active),
                    2 => Some(AccountStatus::Frozen),
                    _ => Some(AccountStatus::Closed),
                },
                currency: (i % 4 != 0).then(|| Currency::parse("EUR").expect("code")),
                owner_id: format!("owner-{i}-é"),
                balance: i64::from(i) * 1000 - 7,
                overdraft_limit: i64::from(i % 3) * 50,
                version: u64::from(i) + 1,
                in_flight: (0..i % 3)
                    .map(|n| (Uuid::new_v4(), i64::from(n) + 5))
                    .collect(),
                credited: (0..i % 2).map(|n| (i32::from(n), 1_700_000_000)).collect(),
            };
            state.accounts.insert(Slot {
                account: Account::from_parts(parts),
                last_hash: [i; 32],
            });
        }
        for n in 0..20i64 {
            let applied = Applied {
                version: n as u64,
                offset: n * 3,
                fingerprint: n as u64 * 7,
            };
            let issued = t0 + chrono::Duration::seconds(n);
            state.dedupe.record(Uuid::new_v4(), applied, issued);
        }
        state.last_offset = Some(4242);
        state.last_event_id = Some(Uuid::new_v4());
        state.last_event_at = Some(t0 + chrono::Duration::seconds(30));
        state
    }

    fn parts_of(state: &PartitionState) -> Vec<(AccountParts, [u8; 32])> {
        let mut parts: Vec<_> = state
            .accounts
            .iter()
            .map(|slot| (slot.account.to_parts(), slot.last_hash))
            .collect();
        parts.sort_by_key(|(p, _)| p.id);
        parts
    }

    #[test]
    fn a_snapshot_reads_back_as_the_state_it_was_taken_of() {
        let state = state();
        let bytes = encode(3, &state).expect("has events");
        let decoded = decode(&bytes, HORIZON, 1000).expect("decodes");
        assert_eq!((decoded.partition, decoded.covers), (3, 4243));
        let restored = decoded.state;
        assert_eq!(parts_of(&restored), parts_of(&state));
        assert_eq!(restored.dedupe.entries(), state.dedupe.entries());
        assert_eq!(restored.last_offset, state.last_offset);
        assert_eq!(restored.last_event_id, state.last_event_id);
        assert_eq!(restored.last_event_at, state.last_event_at);
        assert_eq!(
            restored.next_write, None,
            "the restore finds the end itself"
        );
        // about 100 bytes per account and 48 per remembered id
        assert!(
            bytes.len() < 50 * 140 + 20 * 48 + 100,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn the_smallest_accounts_read_back() {
        // never opened: no owner id, no transfers (the smallest an account is encoded)
        let mut state = PartitionState::new(HORIZON, 10);
        for _ in 0..1000 {
            state.accounts.get_or_insert(Uuid::new_v4());
        }
        state.last_offset = Some(0);
        state.last_event_id = Some(Uuid::new_v4());
        let bytes = encode(0, &state).expect("has events");
        let restored = decode(&bytes, HORIZON, 10).expect("decodes").state;
        assert_eq!(parts_of(&restored), parts_of(&state));
    }

    #[test]
    fn a_partition_without_events_has_no_snapshot() {
        assert!(encode(0, &PartitionState::new(HORIZON, 10)).is_none());
    }

    #[test]
    fn damaged_snapshots_are_refused_never_misread() {
        let bytes = encode(1, &state()).expect("has events");
        for cut in (0..bytes.len()).step_by(7) {
            assert!(
                decode(&bytes[..cut], HORIZON, 1000).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer, HORIZON, 1000).err(),
            Some(CodecError::Trailing(1))
        );
        let mut newer = bytes.clone();
        newer[6..8].copy_from_slice(&(FORMAT + 1).to_le_bytes());
        assert_eq!(
            decode(&newer, HORIZON, 1000).err(),
            Some(CodecError::Format(FORMAT + 1))
        );
        let mut magic = bytes;
        magic[0] = b'X';
        assert_eq!(decode(&magic, HORIZON, 1000).err(), Some(CodecError::Magic));
    }
}
