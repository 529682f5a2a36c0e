//! The shadow tables' indexes are built once, after the bulk of the replay: one `CREATE INDEX`
//! over a filled table costs a fraction of maintaining the index row by row.
//!
//! - Secondary indexes are dropped for the replay and created again from their definitions.
//! - Primary keys of the tables a rebuild only appends to by `COPY`
//!   ([`Projection::appended_tables`]: lines and archive rows) are dropped too and added back.
//!   Nothing reads those tables or upserts into them during the replay, and adding the key
//!   checks every row: a row written twice fails the rebuild (its shadow tables are dropped)
//!   instead of reaching the swap.
//! - The other keys (accounts, transfers) stay: the staged rows are written by upserts, and
//!   accounts a rebuild has forgotten are read back by key.
//!
//! The live tables are never touched here.

use sqlx::PgPool;

use crate::projection::{Projection, Sink};

/// Drops the deferred indexes and keys of `projection`'s shadow tables and returns the
/// statements that make them again, for [`build`] before the swap.
pub async fn defer(pool: &PgPool, projection: Projection) -> Result<Vec<String>, sqlx::Error> {
    let shadow = Sink::shadow(projection);
    let mut deferred = Vec::new();
    for table in projection.appended_tables() {
        let table = shadow.table(table);
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = $1::text::regclass AND contype = 'p'",
        )
        .bind(table.as_ref())
        .fetch_all(pool)
        .await?;
        for (name, definition) in keys {
            sqlx::query(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))
                .execute(pool)
                .await?;
            deferred.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
            ));
        }
    }
    for table in projection.tables() {
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT pg_get_indexdef(i.indexrelid), \
                    quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                  JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = $1::text::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) \
             ORDER BY c.relname",
        )
        .bind(shadow.table(table))
        .fetch_all(pool)
        .await?;
        for (definition, name) in indexes {
            sqlx::query(&format!("DROP INDEX {name}"))
                .execute(pool)
                .await?;
            deferred.push(definition);
        }
    }
    Ok(deferred)
}

/// Runs the statements [`defer`] returned: keys first, then the secondary indexes.
pub async fn build(pool: &PgPool, definitions: &[String]) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // a bulk build may use more sort memory than the server's default for ordinary queries
    sqlx::query("SET maintenance_work_mem = '256MB'")
        .execute(&mut *conn)
        .await?;
    for definition in definitions {
        sqlx::query(definition).execute(&mut *conn).await?;
    }
    sqlx::query("RESET maintenance_work_mem")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
