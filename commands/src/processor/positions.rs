//! Where a transaction's events will land, known before the broker acknowledges them.
//!
//! The processor is the only writer of its events partitions (docs/architecture.md §3), so the next event
//! of a partition lands at the log end: the end seen by the restore, then, after each committed
//! transaction of ours, the offset after its commit marker (one marker per partition the
//! transaction wrote, placed before the next transaction may add that partition). With the
//! positions known up front, the command results go out together with the events instead of one
//! broker round trip later. A prediction is only a shortcut: the acknowledged offsets are
//! compared with it before the commit, and any difference aborts the transaction (and the next
//! attempt waits for the acknowledgements instead).

use std::collections::{BTreeMap, HashMap};

use super::batch::PlannedEvent;

/// The predicted offset of every event (by index), or `None` when a partition's end is unknown.
pub fn predict(
    events: &[PlannedEvent],
    next_write: impl Fn(i32) -> Option<i64>,
) -> Option<Vec<i64>> {
    let mut next: HashMap<i32, i64> = HashMap::new();
    events
        .iter()
        .map(|event| {
            let offset = match next.get(&event.partition) {
                Some(offset) => *offset,
                None => next_write(event.partition)?,
            };
            next.insert(event.partition, offset + 1);
            Some(offset)
        })
        .collect()
}

/// Where each written partition's next event lands once the transaction commits: after its last
/// event and the commit marker that follows it.
pub fn after_commit(
    events: &[PlannedEvent],
    acknowledged: &HashMap<usize, i64>,
) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        if let Some(offset) = acknowledged.get(&index) {
            let slot = next.entry(event.partition).or_insert(0);
            *slot = (*slot).max(offset + 2);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::batch::PlannedEvent;
    use logbook_events::{AccountEvent, Actor, EventEnvelope, EventMeta};
    use uuid::Uuid;

    fn event(partition: i32) -> PlannedEvent {
        let meta = EventMeta {
            event_id: Uuid::nil(),
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            command_id: Uuid::nil(),
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
            actor: Actor {
                sub: "test".into(),
                role: "service".into(),
            },
        };
        let body = AccountEvent::AccountFrozen { reason: None };
        PlannedEvent {
            partition,
            envelope: EventEnvelope::new_sealed(meta, Uuid::nil(), 1, &"0".repeat(64), &body),
            traceparent: None,
        }
    }

    #[test]
    fn events_of_a_partition_take_consecutive_offsets_from_its_end() {
        let events = [event(0), event(1), event(0), event(0)];
        let ends = |p: i32| Some(if p == 0 { 10 } else { 3 });
        assert_eq!(predict(&events, ends), Some(vec![10, 3, 11, 12]));
    }

    #[test]
    fn an_unknown_end_means_no_prediction() {
        let events = [event(0), event(1)];
        assert_eq!(predict(&events, |p| (p == 0).then_some(5)), None);
        assert_eq!(predict(&[], |_| None), Some(vec![]));
    }

    #[test]
    fn the_commit_marker_takes_the_offset_after_a_partitions_last_event() {
        let events = [event(0), event(1), event(0)];
        let acked: HashMap<usize, i64> = [(0, 10), (1, 3), (2, 11)].into();
        let next = after_commit(&events, &acked);
        assert_eq!(next, BTreeMap::from([(0, 13), (1, 5)]));
    }
}
