//! The `archive` projection: every envelope as written, with its log position, in
//! `event_archive` (one set-based insert per batch, keyed by partition and offset).
//!
//! The archive keeps envelopes of every aggregate and event type: it does not interpret
//! `data`, so only a record that is not an envelope at all (caught when slicing) poisons it.
//! Rows go in by `COPY` ([`crate::copy`]); into the live table in a savepoint, with the
//! conflict-checked insert as the fallback when a row is already there.

use sqlx::PgConnection;

use crate::batch::{Decoded, Slice};
use crate::copy::CopyRows;
use crate::projection::{Sink, Target};

/// One row of `event_archive`.
#[derive(Debug, Clone)]
struct ArchiveRow<'a> {
    partition: i32,
    decoded: &'a Decoded,
    sequence: i64,
    envelope: &'a str,
}

/// Writes every event of the slices; returns how many rows were new.
pub async fn project(
    conn: &mut PgConnection,
    sink: &Sink,
    slices: &mut [Slice],
) -> Result<usize, sqlx::Error> {
    stop_at_unstorable(slices);
    let rows = rows(slices);
    if rows.is_empty() {
        return Ok(0);
    }
    let copy = copy_rows(&rows);
    let statement = format!(
        "COPY {} (partition, \"offset\", event_id, aggregate_type, aggregate_id, sequence, \
         event_type, occurred_at, envelope) FROM STDIN (FORMAT binary)",
        sink.table("event_archive")
    );
    if sink.target == Target::Shadow {
        return Ok(copy.send(conn, &statement).await? as usize);
    }
    if let Some(copied) = copy.send_new(conn, &statement).await? {
        return Ok(copied as usize);
    }
    let sql = format!(
        "INSERT INTO {} (partition, \"offset\", event_id, aggregate_type, aggregate_id, \
         sequence, event_type, occurred_at, envelope) \
         SELECT p, o, e, at, ai, s, et, oc, env FROM UNNEST($1::int4[], $2::int8[], \
         $3::uuid[], $4::text[], $5::uuid[], $6::int8[], $7::text[], $8::timestamptz[], \
         $9::text[]) AS u(p, o, e, at, ai, s, et, oc, env) \
         ON CONFLICT (partition, \"offset\") DO NOTHING",
        sink.table("event_archive")
    );
    let column =
        |get: &dyn Fn(&ArchiveRow<'_>) -> String| -> Vec<String> { rows.iter().map(get).collect() };
    let done = sqlx::query(&sql)
        .bind(rows.iter().map(|r| r.partition).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.decoded.offset).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.decoded.envelope.event_id)
                .collect::<Vec<_>>(),
        )
        .bind(column(&|r| r.decoded.envelope.aggregate_type.clone()))
        .bind(
            rows.iter()
                .map(|r| r.decoded.envelope.aggregate_id)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
        .bind(column(&|r| r.decoded.envelope.event_type.clone()))
        .bind(
            rows.iter()
                .map(|r| r.decoded.envelope.occurred_at)
                .collect::<Vec<_>>(),
        )
        .bind(column(&|r| r.envelope.to_owned()))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() as usize)
}

/// The rows for `COPY`.
fn copy_rows(rows: &[ArchiveRow<'_>]) -> CopyRows {
    let mut copy = CopyRows::new();
    for r in rows {
        let envelope = &r.decoded.envelope;
        copy.int4(r.partition)
            .int(r.decoded.offset)
            .uuid(envelope.event_id)
            .text(&envelope.aggregate_type)
            .uuid(envelope.aggregate_id)
            .int(r.sequence)
            .text(&envelope.event_type)
            .time(envelope.occurred_at)
            .text(r.envelope)
            .end_row();
    }
    copy
}

/// A sequence beyond `bigint` cannot be stored: the slice stops there.
fn stop_at_unstorable(slices: &mut [Slice]) {
    for slice in slices.iter_mut() {
        let bad = slice.events.iter().position(|d| {
            i64::try_from(d.envelope.sequence).is_err() || std::str::from_utf8(&d.raw).is_err()
        });
        if let Some(index) = bad {
            slice.poison_at(
                index,
                "envelope cannot be stored (sequence or encoding)".into(),
            );
        }
    }
}

/// The rows of a batch.
fn rows(slices: &[Slice]) -> Vec<ArchiveRow<'_>> {
    slices
        .iter()
        .flat_map(|slice| {
            slice.events.iter().map(|decoded| ArchiveRow {
                partition: slice.partition,
                decoded,
                sequence: i64::try_from(decoded.envelope.sequence).unwrap_or(i64::MAX),
                envelope: std::str::from_utf8(&decoded.raw).unwrap_or("null"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{deposit_envelope, slice_of};

    #[test]
    fn one_row_per_event_with_its_position() {
        let mut slices = vec![
            slice_of(0, vec![deposit_envelope(1), deposit_envelope(2)]),
            slice_of(3, vec![deposit_envelope(3)]),
        ];
        stop_at_unstorable(&mut slices);
        let rows = rows(&slices);
        let positions: Vec<(i32, i64)> = rows
            .iter()
            .map(|r| (r.partition, r.decoded.offset))
            .collect();
        assert_eq!(positions, vec![(0, 0), (0, 1), (3, 0)]);
        assert!(
            rows[0]
                .envelope
                .contains("\"event_type\":\"FundsDeposited\"")
        );
    }

    #[test]
    fn an_unstorable_sequence_stops_the_partition() {
        let mut slices = vec![slice_of(0, vec![deposit_envelope(1), deposit_envelope(2)])];
        slices[0].events[1].envelope.sequence = u64::MAX;
        stop_at_unstorable(&mut slices);
        assert_eq!(rows(&slices).len(), 1);
        assert_eq!(slices[0].poison.as_ref().map(|p| p.offset), Some(1));
    }
}
