//! Audit queries over `event_archive`: an account's full history (paginated, filtered),
//! its events up to an instant (for the as-of fold), and the tamper check of the archive.
//!
//! The archive keeps each envelope with its log position. An account lives on one partition,
//! so (sequence, offset) orders its events uniquely, even should the log hold a duplicate.
//! Envelopes are kept as written and decoded when read back; the hash is recomputed from the
//! decoded envelope's canonical bytes, so formatting never matters, while any edit of the
//! stored content does.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use logbook_events::{EventEnvelope, Position, Verification, VerifyReport, decode};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::cursor::{self, CursorError};
use super::{Page, page, page_limit};

/// An archived event as auditors see it: the envelope with its log position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchivedEvent {
    /// Token of the record's partition and offset (`v1.<p>.<o>`).
    pub position: Position,
    #[serde(flatten)]
    pub envelope: EventEnvelope,
}

/// Why an audit query failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored envelope no longer decodes (the archive was edited by hand).
    #[error("archived record at {position} is not an envelope: {reason}")]
    Undecodable { position: Position, reason: String },
}

/// After this (sequence, offset) in one account's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub sequence: i64,
    pub offset: i64,
}

impl HistoryCursor {
    pub fn encode(&self) -> String {
        cursor::encode('h', &format!("{}.{}", self.sequence, self.offset))
    }

    pub fn decode(text: &str) -> Result<HistoryCursor, CursorError> {
        let key = cursor::decode(text, 'h')?;
        let (sequence, offset) = key.split_once('.').ok_or(CursorError)?;
        let number = |digits: &str| -> Result<i64, CursorError> {
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if !canonical {
                return Err(CursorError);
            }
            digits.parse().map_err(|_| CursorError)
        };
        Ok(HistoryCursor {
            sequence: number(sequence)?,
            offset: number(offset)?,
        })
    }
}

/// Filters and position of a history page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Events that occurred at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Events that occurred before this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Only this event type.
    pub event_type: Option<String>,
    pub after: Option<HistoryCursor>,
    pub limit: u32,
}

type Row = (i32, i64, i64, String);

/// A page of one account's archived events in sequence order.
pub async fn history(
    pool: &PgPool,
    account_id: Uuid,
    filter: &HistoryFilter,
) -> Result<Page<ArchivedEvent>, AuditError> {
    let limit = page_limit(Some(filter.limit));
    let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(
        "SELECT partition, \"offset\", sequence, envelope FROM event_archive \
         WHERE aggregate_id = ",
    );
    query.push_bind(account_id);
    if let Some(from) = filter.from {
        query.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND occurred_at < ").push_bind(to);
    }
    if let Some(event_type) = &filter.event_type {
        query.push(" AND event_type = ").push_bind(event_type);
    }
    if let Some(after) = filter.after {
        query
            .push(" AND (sequence, \"offset\") > (")
            .push_bind(after.sequence)
            .push(", ")
            .push_bind(after.offset)
            .push(")");
    }
    query
        .push(" ORDER BY sequence, \"offset\" LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    let keys: Vec<HistoryCursor> = rows
        .iter()
        .map(|(_, offset, sequence, _)| HistoryCursor {
            sequence: *sequence,
            offset: *offset,
        })
        .collect();
    let events = rows
        .into_iter()
        .map(archived)
        .collect::<Result<Vec<_>, _>>()?;
    let with_keys: Vec<(HistoryCursor, ArchivedEvent)> = keys.into_iter().zip(events).collect();
    let cut = page(with_keys, limit, |(key, _)| key.encode());
    Ok(Page {
        items: cut.items.into_iter().map(|(_, event)| event).collect(),
        next_cursor: cut.next_cursor,
    })
}

/// Folds one account's archived events in sequence order, up to and including the last one
/// that occurred at or before `as_of` (stops at the first later one). Streams the rows: memory
/// stays bounded however long the history.
pub async fn fold_until<S>(
    pool: &PgPool,
    account_id: Uuid,
    as_of: DateTime<Utc>,
    mut state: S,
    mut step: impl FnMut(&mut S, ArchivedEvent),
) -> Result<S, AuditError> {
    let mut rows = sqlx::query_as::<_, Row>(
        "SELECT partition, \"offset\", sequence, envelope FROM event_archive \
         WHERE aggregate_id = $1 ORDER BY sequence, \"offset\"",
    )
    .bind(account_id)
    .fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let event = archived(row)?;
        if event.envelope.occurred_at > as_of {
            break;
        }
        step(&mut state, event);
    }
    Ok(state)
}

/// Recomputes the hash chains of the archive (one account, or all of it in log order).
pub async fn verify(pool: &PgPool, account_id: Option<Uuid>) -> Result<VerifyReport, sqlx::Error> {
    let started = Instant::now();
    let mut check = Verification::new();
    match account_id {
        Some(id) => {
            let mut rows = sqlx::query_as::<_, Row>(
                "SELECT partition, \"offset\", sequence, envelope FROM event_archive \
                 WHERE aggregate_id = $1 ORDER BY sequence, \"offset\"",
            )
            .bind(id)
            .fetch(pool);
            while let Some(row) = rows.try_next().await? {
                feed(&mut check, row);
            }
        }
        None => verify_all(pool, &mut check).await?,
    }
    Ok(check.finish(started.elapsed()))
}

/// Rows read per page when checking the whole archive.
const VERIFY_PAGE: i64 = 5_000;

async fn verify_all(pool: &PgPool, check: &mut Verification) -> Result<(), sqlx::Error> {
    let mut after = (-1_i32, -1_i64);
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT partition, \"offset\", sequence, envelope FROM event_archive \
             WHERE (partition, \"offset\") > ($1, $2) ORDER BY partition, \"offset\" LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(VERIFY_PAGE)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = (last.0, last.1);
        for row in rows {
            feed(check, row);
        }
    }
}

fn feed(check: &mut Verification, row: Row) {
    match archived(row) {
        Ok(event) => check.feed(&event.envelope, Some(event.position)),
        Err(AuditError::Undecodable { position, reason }) => {
            check.feed_undecodable(Some(position), reason);
        }
        Err(AuditError::Database(_)) => {}
    }
}

fn archived((partition, offset, _, text): Row) -> Result<ArchivedEvent, AuditError> {
    let position = Position::new(partition, offset);
    let envelope = decode(text.as_bytes()).map_err(|e| AuditError::Undecodable {
        position,
        reason: e.to_string(),
    })?;
    Ok(ArchivedEvent { position, envelope })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_cursors_round_trip_and_refuse_others() {
        let key = HistoryCursor {
            sequence: 7,
            offset: 1042,
        };
        assert_eq!(HistoryCursor::decode(&key.encode()), Ok(key));
        let line = super::super::cursor::LineCursor(7).encode();
        assert_eq!(HistoryCursor::decode(&line), Err(CursorError));
        for bad in ["v1:h:7", "v1:h:07.1", "v1:h:7.", "v1:h:.1", "v1:h:7.1.1"] {
            assert_eq!(HistoryCursor::decode(&hex::encode(bad)), Err(CursorError));
        }
    }
}
