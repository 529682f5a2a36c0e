//! Turning consumed records into per-partition [`Slice`]s: the pure half of a projector batch.
//!
//! [`slice`] groups the records of one poll cycle by partition, drops what was already applied
//! (offsets below the stored next offset, or repeated), decodes the envelopes, and stops a
//! partition at its first undecodable record (a [`Poison`]). Each slice knows the stored offset
//! it starts from (`from`, checked in the transaction) and the one it leads to (`to`).

use std::collections::{BTreeMap, HashMap};

use logbook_events::{RawEnvelope, decode_raw};

/// A record of the events topic as consumed.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<Vec<u8>>,
}

/// A decoded event and the bytes it was read from (its `data` kept as text: each projection
/// reads only what it needs of it).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub offset: i64,
    pub envelope: RawEnvelope,
    pub raw: Vec<u8>,
}

/// An event a projection cannot apply: the partition stops at `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    pub offset: i64,
    pub reason: String,
}

/// What one partition contributes to a batch.
#[derive(Debug, Clone)]
pub struct Slice {
    pub partition: i32,
    /// The stored next offset the batch starts from.
    pub from: i64,
    /// The next offset once the slice is applied.
    pub to: i64,
    pub events: Vec<Decoded>,
    pub poison: Option<Poison>,
}

impl Slice {
    /// Stops the slice at `events[index]`: it and everything after it stay unapplied.
    pub fn poison_at(&mut self, index: usize, reason: String) {
        if let Some(event) = self.events.get(index) {
            let offset = event.offset;
            self.events.truncate(index);
            self.to = offset;
            self.poison = Some(Poison { offset, reason });
        }
    }
}

/// Builds the slices of a batch.
///
/// `from` holds the stored next offset of every partition that may be applied (assigned and
/// not stopped); records of other partitions are dropped. `ends` holds, for partitions that
/// reached the end of the log, the consumer position there: it moves `to` past transaction
/// markers, so an idle projection's offsets equal the log end. Slices that change nothing are
/// left out.
pub fn slice(
    records: Vec<Record>,
    from: &HashMap<i32, i64>,
    ends: &HashMap<i32, i64>,
) -> Vec<Slice> {
    let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for record in records {
        by_partition
            .entry(record.partition)
            .or_default()
            .push(record);
    }
    for partition in ends.keys() {
        by_partition.entry(*partition).or_default();
    }
    by_partition
        .into_iter()
        .filter_map(|(partition, records)| {
            let start = *from.get(&partition)?;
            let slice = partition_slice(partition, start, records, ends.get(&partition).copied());
            let changed = slice.to != slice.from || slice.poison.is_some();
            changed.then_some(slice)
        })
        .collect()
}

fn partition_slice(partition: i32, from: i64, records: Vec<Record>, end: Option<i64>) -> Slice {
    let mut slice = Slice {
        partition,
        from,
        to: from,
        events: Vec::new(),
        poison: None,
    };
    for record in records {
        if record.offset < slice.to {
            continue;
        }
        let raw = record.payload.unwrap_or_default();
        match decode_raw(&raw) {
            Ok(envelope) => {
                slice.to = record.offset + 1;
                slice.events.push(Decoded {
                    offset: record.offset,
                    envelope,
                    raw,
                });
            }
            Err(error) => {
                slice.to = record.offset;
                slice.poison = Some(Poison {
                    offset: record.offset,
                    reason: format!("undecodable record: {error}"),
                });
                return slice;
            }
        }
    }
    if let Some(end) = end {
        slice.to = slice.to.max(end);
    }
    slice
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{deposit_envelope, record};

    fn from(pairs: &[(i32, i64)]) -> HashMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn groups_by_partition_and_skips_applied_offsets() {
        let records = vec![
            record(0, 4, &deposit_envelope(1)),
            record(1, 0, &deposit_envelope(1)),
            record(0, 5, &deposit_envelope(2)),
            record(0, 5, &deposit_envelope(2)),
            record(0, 7, &deposit_envelope(3)),
        ];
        let slices = slice(records, &from(&[(0, 5), (1, 0)]), &HashMap::new());
        assert_eq!(slices.len(), 2);
        let zero = &slices[0];
        assert_eq!((zero.partition, zero.from, zero.to), (0, 5, 8));
        let offsets: Vec<i64> = zero.events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![5, 7]);
        assert_eq!((slices[1].from, slices[1].to), (0, 1));
    }

    #[test]
    fn drops_partitions_that_are_not_applicable() {
        let records = vec![record(3, 0, &deposit_envelope(1))];
        assert!(slice(records, &from(&[(0, 0)]), &HashMap::new()).is_empty());
    }

    #[test]
    fn stops_at_the_first_undecodable_record() {
        let mut records = vec![record(0, 0, &deposit_envelope(1))];
        records.push(Record {
            partition: 0,
            offset: 1,
            payload: Some(b"{not json".to_vec()),
        });
        records.push(record(0, 2, &deposit_envelope(2)));
        let slices = slice(records, &from(&[(0, 0)]), &from(&[(0, 9)]));
        let only = &slices[0];
        assert_eq!(only.events.len(), 1);
        assert_eq!(only.to, 1);
        let poison = only.poison.as_ref().expect("poison");
        assert_eq!(poison.offset, 1);
        assert!(poison.reason.contains("undecodable"), "{}", poison.reason);
    }

    #[test]
    fn a_missing_payload_is_poison() {
        let records = vec![Record {
            partition: 2,
            offset: 3,
            payload: None,
        }];
        let slices = slice(records, &from(&[(2, 3)]), &HashMap::new());
        assert_eq!(slices[0].poison.as_ref().map(|p| p.offset), Some(3));
        assert_eq!(slices[0].to, 3);
    }

    #[test]
    fn end_positions_move_past_markers_but_never_back() {
        let records = vec![record(0, 10, &deposit_envelope(1))];
        let slices = slice(
            records,
            &from(&[(0, 10), (1, 4)]),
            &from(&[(0, 12), (1, 5)]),
        );
        assert_eq!((slices[0].from, slices[0].to), (10, 12));
        assert_eq!((slices[1].from, slices[1].to), (4, 5));
        assert!(slices[1].events.is_empty());
        let stale = slice(Vec::new(), &from(&[(0, 10)]), &from(&[(0, 3)]));
        assert!(
            stale.is_empty(),
            "an end behind the stored offset changes nothing"
        );
    }

    #[test]
    fn poison_at_truncates_the_slice() {
        let records = vec![
            record(0, 0, &deposit_envelope(1)),
            record(0, 1, &deposit_envelope(2)),
            record(0, 2, &deposit_envelope(3)),
        ];
        let mut slices = slice(records, &from(&[(0, 0)]), &HashMap::new());
        slices[0].poison_at(1, "gap".into());
        assert_eq!(slices[0].events.len(), 1);
        assert_eq!(slices[0].to, 1);
        assert_eq!(slices[0].poison.as_ref().map(|p| p.offset), Some(1));
    }
}
