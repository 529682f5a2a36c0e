//! Replaying the log into a separate PostgreSQL schema (`logbook replay --into <schema>`), for
//! analysts to query with plain SQL without touching the live read models.
//!
//! [`prepare`] creates the schema with empty copies of the read-model tables (`LIKE … INCLUDING
//! ALL`, so columns, keys and indexes match). A [`Replayer`] then folds batches of records with
//! the very same projection code as the live projectors (`ledger` and `archive`), through a
//! pool whose `search_path` is the schema, so every unqualified table name resolves there.
//! Its offsets go to the schema's own `projection_offsets` under [`REPLAY_KEY`], and no
//! progress notice is sent: the live read-your-writes waiters never hear of a replay.

use std::collections::HashMap;

use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgPool};

use crate::batch::{Record, Slice, slice};
use crate::projection::{Projection, Sink};
use crate::{archive, ledger};

/// The `projection` key of a replay's rows in the schema's `projection_offsets`.
pub const REPLAY_KEY: &str = "replay";

/// The tables a replay schema holds (copied from the live schema's shapes).
pub const TABLES: [&str; 5] = [
    "accounts",
    "account_transactions",
    "transfers",
    "event_archive",
    "projection_offsets",
];

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("invalid schema name {0:?}: lowercase letters, digits and _ (not pg_*, public)")]
    InvalidSchema(String),
    #[error("schema {0} exists already (pass --replace to drop and refill it)")]
    SchemaExists(String),
    #[error(
        "schema {0} holds a live installation (the connection's schema, or a migrated one): never replayed into"
    )]
    LiveSchema(String),
    #[error("partition {partition} stopped at offset {offset}: {reason}")]
    Poisoned {
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Whether `name` may be used as a replay schema: a plain lowercase identifier that is not
/// a system schema or the live one.
pub fn valid_schema(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    first_ok
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("pg_")
        && !matches!(name, "public" | "information_schema")
}

/// Creates `schema` with empty read-model tables shaped like those of the pool's current
/// schema. An existing schema is refused unless `replace`, which drops it first.
pub async fn prepare(pool: &PgPool, schema: &str, replace: bool) -> Result<(), ReplayError> {
    if !valid_schema(schema) {
        return Err(ReplayError::InvalidSchema(schema.to_owned()));
    }
    let mut tx = pool.begin().await?;
    let source: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *tx)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    // never the live models: the connection's own schema, or any schema migrations ran in
    let migrated: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 \
         AND tablename IN ('_sqlx_migrations', 'security_audit', 'idempotency_keys'))",
    )
    .bind(schema)
    .fetch_one(&mut *tx)
    .await?;
    if schema == source || migrated {
        return Err(ReplayError::LiveSchema(schema.to_owned()));
    }
    if exists && !replace {
        return Err(ReplayError::SchemaExists(schema.to_owned()));
    }
    // `schema` is a checked identifier and `source` comes from the server: safe to format.
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *tx)
        .await?;
    for table in TABLES {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE \"{source}\".{table} INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Connection options whose sessions see only `schema` (unqualified names resolve there).
pub fn options_in(options: PgConnectOptions, schema: &str) -> PgConnectOptions {
    options.options([("search_path", schema)])
}

/// Folds batches of records into a prepared schema.
#[derive(Debug)]
pub struct Replayer {
    /// A pool whose sessions have `search_path` = the schema (see [`options_in`]).
    pool: PgPool,
    next: HashMap<i32, i64>,
    applied: u64,
}

impl Replayer {
    /// A replayer writing through `pool`, which must be scoped to the schema.
    pub fn new(pool: PgPool) -> Replayer {
        Replayer {
            pool,
            next: HashMap::new(),
            applied: 0,
        }
    }

    /// Events applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Applies one batch (records in log order per partition) in one transaction: ledger,
    /// archive and offsets. An event that breaks the ledger model stops the replay.
    pub async fn apply(&mut self, records: Vec<Record>) -> Result<(), ReplayError> {
        for record in &records {
            self.next.entry(record.partition).or_insert(0);
        }
        let mut slices = slice(records, &self.next, &HashMap::new());
        if slices.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        ledger::project(&mut tx, &Sink::live(Projection::Ledger), &mut slices).await?;
        let poisoned = slices
            .iter()
            .find_map(|s| s.poison.clone().map(|p| (s.partition, p)));
        if let Some((partition, poison)) = poisoned {
            return Err(ReplayError::Poisoned {
                partition,
                offset: poison.offset,
                reason: poison.reason,
            });
        }
        archive::project(&mut tx, &Sink::live(Projection::Archive), &mut slices).await?;
        store_offsets(&mut tx, &slices).await?;
        tx.commit().await?;
        for slice in &slices {
            self.next.insert(slice.partition, slice.to);
            self.applied += slice.events.len() as u64;
        }
        Ok(())
    }
}

/// Stores the replay's next offsets (no NOTIFY: see the module docs).
async fn store_offsets(conn: &mut PgConnection, slices: &[Slice]) -> Result<(), sqlx::Error> {
    let partitions: Vec<i32> = slices.iter().map(|s| s.partition).collect();
    let next: Vec<i64> = slices.iter().map(|s| s.to).collect();
    sqlx::query(
        "INSERT INTO projection_offsets (projection, partition, next_offset) \
         SELECT $1, p, n FROM UNNEST($2::int4[], $3::int8[]) AS u(p, n) \
         ON CONFLICT (projection, partition) DO UPDATE \
         SET next_offset = EXCLUDED.next_offset, updated_at = now()",
    )
    .bind(REPLAY_KEY)
    .bind(&partitions)
    .bind(&next)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["analysis", "replay_2026_11", "_x"] {
            assert!(valid_schema(good), "{good}");
        }
        for bad in [
            "",
            "Public",
            "public",
            "pg_temp",
            "information_schema",
            "a-b",
            "a;drop",
            "1abc",
            "x\"y",
            &"a".repeat(64),
        ] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }
}
