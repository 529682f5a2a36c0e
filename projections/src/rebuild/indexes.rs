//! The shadow tables' secondary indexes are built once, after the bulk of the replay: one
//! `CREATE INDEX` over a filled table costs a fraction of maintaining the index row by row.
//! Indexes behind constraints (primary keys, unique) stay, since the projector's upserts and
//! lookups need them. The live tables are never touched here.

use sqlx::PgPool;

use crate::projection::{Projection, Sink};

/// Drops the secondary indexes of `projection`'s shadow tables and returns their definitions,
/// to be built again by [`build`] before the swap.
pub async fn defer(pool: &PgPool, projection: Projection) -> Result<Vec<String>, sqlx::Error> {
    let shadow = Sink::shadow(projection);
    let mut deferred = Vec::new();
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

/// Builds the deferred indexes (each `CREATE INDEX` as [`defer`] read it from the catalog).
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
