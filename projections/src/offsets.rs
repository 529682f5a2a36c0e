//! `projection_offsets`: where each projection resumes, and the progress notices sent when
//! it moves (PostgreSQL NOTIFY on [`PROGRESS_CHANNEL`], delivered at commit).
//!
//! A projector batch locks the rows of its partitions (`FOR UPDATE`, in partition order) and
//! checks that they still hold the offsets the batch starts from. A writer that lost its
//! partitions without noticing (a zombie) or an offset moved by a rebuild swap therefore makes
//! the batch fail instead of applying anything twice.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::batch::Slice;

/// The NOTIFY channel of projection progress.
pub const PROGRESS_CHANNEL: &str = "logbook_projection_progress";

/// The payload of a progress notice: the new next offsets of one projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressNotice {
    pub projection: String,
    /// (partition, next offset) pairs.
    pub offsets: Vec<(i32, i64)>,
}

/// A row of `projection_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OffsetRow {
    pub projection: String,
    pub partition: i32,
    pub next_offset: i64,
    /// Why the partition stopped (a poison event at `next_offset`), if it did.
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Stored next offsets of `partitions` (0 where nothing is stored yet).
pub async fn load(
    pool: &PgPool,
    key: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projection_offsets \
         WHERE projection = $1 AND partition = ANY($2)",
    )
    .bind(key)
    .bind(partitions)
    .fetch_all(pool)
    .await?;
    let stored: HashMap<i32, i64> = rows.into_iter().collect();
    Ok(partitions
        .iter()
        .map(|p| (*p, stored.get(p).copied().unwrap_or(0)))
        .collect())
}

/// Every row, ordered by projection and partition (admin and tests).
pub async fn all(pool: &PgPool) -> Result<Vec<OffsetRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT projection, partition, next_offset, error, updated_at FROM projection_offsets \
         ORDER BY projection, partition",
    )
    .fetch_all(pool)
    .await
}

/// Locks the rows of the slices' partitions (creating missing ones at 0) and returns the
/// stored offsets that differ from the slices' `from`: empty when the batch may be applied.
pub async fn lock_and_check(
    conn: &mut PgConnection,
    key: &str,
    slices: &[Slice],
) -> Result<Vec<(i32, i64)>, sqlx::Error> {
    let partitions: Vec<i32> = slices.iter().map(|s| s.partition).collect();
    sqlx::query(
        "INSERT INTO projection_offsets (projection, partition, next_offset) \
         SELECT $1, p, 0 FROM UNNEST($2::int4[]) AS p ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(&partitions)
    .execute(&mut *conn)
    .await?;
    let stored: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projection_offsets \
         WHERE projection = $1 AND partition = ANY($2) ORDER BY partition FOR UPDATE",
    )
    .bind(key)
    .bind(&partitions)
    .fetch_all(&mut *conn)
    .await?;
    let expected: HashMap<i32, i64> = slices.iter().map(|s| (s.partition, s.from)).collect();
    Ok(stored
        .into_iter()
        .filter(|(p, offset)| expected.get(p) != Some(offset))
        .collect())
}

/// Stores the slices' `to` offsets (with the poison reason, if any) and queues the notice.
pub async fn store(
    conn: &mut PgConnection,
    key: &str,
    slices: &[Slice],
) -> Result<(), sqlx::Error> {
    let partitions: Vec<i32> = slices.iter().map(|s| s.partition).collect();
    let next: Vec<i64> = slices.iter().map(|s| s.to).collect();
    let errors: Vec<Option<String>> = slices
        .iter()
        .map(|s| s.poison.as_ref().map(|p| p.reason.clone()))
        .collect();
    sqlx::query(
        "UPDATE projection_offsets AS o SET next_offset = u.next, error = u.error, \
         updated_at = now() FROM UNNEST($2::int4[], $3::int8[], $4::text[]) AS u(p, next, error) \
         WHERE o.projection = $1 AND o.partition = u.p",
    )
    .bind(key)
    .bind(&partitions)
    .bind(&next)
    .bind(&errors)
    .execute(&mut *conn)
    .await?;
    let offsets: Vec<(i32, i64)> = partitions.into_iter().zip(next).collect();
    // NOTIFY payloads are limited to 8000 bytes: a notice holds at most 128 partitions.
    for chunk in offsets.chunks(128) {
        let notice = ProgressNotice {
            projection: key.to_owned(),
            offsets: chunk.to_vec(),
        };
        notify(&mut *conn, &notice).await?;
    }
    Ok(())
}

/// Queues a progress notice (sent when the transaction commits).
pub async fn notify(conn: &mut PgConnection, notice: &ProgressNotice) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_string(notice).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(PROGRESS_CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_small_json() {
        let notice = ProgressNotice {
            projection: "ledger".into(),
            offsets: vec![(0, 12), (3, 7)],
        };
        let text = serde_json::to_string(&notice).expect("json");
        assert_eq!(text, r#"{"projection":"ledger","offsets":[[0,12],[3,7]]}"#);
        let back: ProgressNotice = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, notice);
    }
}
