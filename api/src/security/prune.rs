//! `logbook prune-security-audit`: removes security audit rows past the retention age, the one
//! deletion the table's append-only trigger allows (it checks the cut-off this tool announces in
//! its transaction, and never lets rows younger than 30 days go). The prune is itself recorded
//! in the trail as an admin action.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

/// Rows younger than this are never removed (the trigger enforces it too).
pub const MIN_RETENTION_DAYS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("the retention is at least {MIN_RETENTION_DAYS} days, not {0}")]
    TooShort(u32),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Removes the rows older than `retention_days` before `now`; how many.
pub async fn prune(
    pool: &PgPool,
    retention_days: u32,
    now: DateTime<Utc>,
) -> Result<u64, PruneError> {
    if retention_days < MIN_RETENTION_DAYS {
        return Err(PruneError::TooShort(retention_days));
    }
    let cutoff = now - Duration::days(i64::from(retention_days));
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('logbook.prune_before', $1, true)")
        .bind(cutoff.to_rfc3339())
        .execute(&mut *tx)
        .await?;
    let removed = sqlx::query("DELETE FROM security_audit WHERE occurred_at < $1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query(
        "INSERT INTO security_audit (occurred_at, kind, sub, role, method, path, status, detail) \
         VALUES (clock_timestamp(), 'admin_action', 'logbook prune-security-audit', 'admin', \
         'CLI', 'prune-security-audit', 200, $1)",
    )
    .bind(format!(
        "removed {removed} rows older than {} ({retention_days} days)",
        cutoff.to_rfc3339()
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(removed)
}
