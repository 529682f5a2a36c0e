//! The analysts' event stream over `event_archive`: pages of envelopes after a [`LogCursor`].
//!
//! The stream walks the archive partition by partition, each in offset order (the order of the
//! log, so every account's events come in sequence order). A [`LogCursor`] holds the next
//! offset per partition, so a cursor taken after any delivered event resumes exactly after it,
//! also when events were appended meanwhile. Across partitions no order is promised (as in
//! Kafka). Each page is one indexed range scan of the primary key; memory is one page.

use logbook_events::{EventEnvelope, LogCursor, Position, decode};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::audit::AuditError;

/// Which events a stream carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFilter {
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this aggregate (account).
    pub aggregate_id: Option<Uuid>,
}

/// One streamed event and its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub position: Position,
    pub envelope: EventEnvelope,
}

/// The partitions the archive holds events of, ascending (a loose index scan of the key).
pub async fn partitions(pool: &PgPool) -> Result<Vec<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE parts(p) AS ( \
           SELECT min(partition) FROM event_archive \
           UNION ALL \
           SELECT (SELECT min(partition) FROM event_archive WHERE partition > parts.p) \
           FROM parts WHERE parts.p IS NOT NULL) \
         SELECT p FROM parts WHERE p IS NOT NULL ORDER BY p",
    )
    .fetch_all(pool)
    .await
}

/// Up to `limit` events of `partition` at or after `cursor`'s next offset there, in offset
/// order, matching `filter`.
pub async fn page(
    pool: &PgPool,
    partition: i32,
    cursor: &LogCursor,
    filter: &StreamFilter,
    limit: u32,
) -> Result<Vec<StreamEvent>, AuditError> {
    let mut query: QueryBuilder<'_, Postgres> =
        QueryBuilder::new("SELECT \"offset\", envelope FROM event_archive WHERE partition = ");
    query
        .push_bind(partition)
        .push(" AND \"offset\" >= ")
        .push_bind(cursor.next_offset(partition));
    if let Some(event_type) = &filter.event_type {
        query.push(" AND event_type = ").push_bind(event_type);
    }
    if let Some(aggregate_id) = filter.aggregate_id {
        query.push(" AND aggregate_id = ").push_bind(aggregate_id);
    }
    query
        .push(" ORDER BY \"offset\" LIMIT ")
        .push_bind(i64::from(limit));
    let rows: Vec<(i64, String)> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter()
        .map(|(offset, text)| {
            let position = Position::new(partition, offset);
            let envelope = decode(text.as_bytes()).map_err(|e| AuditError::Undecodable {
                position,
                reason: e.to_string(),
            })?;
            Ok(StreamEvent { position, envelope })
        })
        .collect()
}
