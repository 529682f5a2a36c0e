//! The SQL of a rebuild: creating the shadow tables, and swapping them in atomically.
//!
//! The swap runs in one transaction: lock the live and shadow offsets rows (the live projector
//! locks its rows first in every batch, so none of its batches is open past this point), lock
//! the live tables (waits for running queries), check that the shadow has got at least as far
//! as the live projection in every partition, then replace each live table by its shadow
//! (keeping the canonical index names), move the shadow's offsets under the live key and
//! NOTIFY. The live projector finds its offsets moved on its next batch and resumes from them.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};

use crate::offsets::{self, ProgressNotice};
use crate::projection::{Projection, Sink};

/// Drops what an earlier rebuild left and creates empty shadow tables shaped like the live ones.
pub async fn prepare(pool: &PgPool, projection: Projection) -> Result<(), sqlx::Error> {
    let shadow = Sink::shadow(projection);
    let mut tx = pool.begin().await?;
    quiet(&mut tx).await?;
    for table in projection.tables() {
        let name = shadow.table(table);
        sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("CREATE TABLE {name} (LIKE {table} INCLUDING ALL)"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM projection_offsets WHERE projection = $1")
        .bind(shadow.offsets_key().as_ref())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Drops the shadow tables and offsets (after a failed or cancelled rebuild).
pub async fn discard(pool: &PgPool, projection: Projection) -> Result<(), sqlx::Error> {
    let shadow = Sink::shadow(projection);
    let mut tx = pool.begin().await?;
    quiet(&mut tx).await?;
    for table in projection.tables() {
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", shadow.table(table)))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM projection_offsets WHERE projection = $1")
        .bind(shadow.offsets_key().as_ref())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Swaps the shadow tables in if they have caught up with the live ones; false (nothing
/// changed) if the live projection is still ahead somewhere.
pub async fn swap(pool: &PgPool, projection: Projection) -> Result<bool, sqlx::Error> {
    let live = Sink::live(projection);
    let shadow = Sink::shadow(projection);
    let mut tx = pool.begin().await?;
    let live_offsets = lock_offsets(&mut tx, &live.offsets_key()).await?;
    let shadow_offsets = lock_offsets(&mut tx, &shadow.offsets_key()).await?;
    // Checked before taking the table locks, so an early attempt never blocks queries.
    if behind(&live_offsets, &shadow_offsets) {
        tx.rollback().await?;
        return Ok(false);
    }
    let tables: Vec<&str> = projection.tables().to_vec();
    sqlx::query(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        tables.join(", ")
    ))
    .execute(&mut *tx)
    .await?;
    // A partition the live projector saw for the first time meanwhile has a new row.
    let live_offsets = read_offsets(&mut tx, &live.offsets_key()).await?;
    if behind(&live_offsets, &shadow_offsets) {
        tx.rollback().await?;
        return Ok(false);
    }
    for table in projection.tables() {
        replace_table(&mut tx, table, &shadow.table(table)).await?;
    }
    move_offsets(&mut tx, &live.offsets_key(), &shadow.offsets_key()).await?;
    let mut moved: Vec<(i32, i64)> = shadow_offsets.into_iter().collect();
    moved.sort_unstable();
    let notice = ProgressNotice {
        projection: live.offsets_key().into_owned(),
        offsets: moved,
    };
    offsets::notify(&mut tx, &notice).await?;
    tx.commit().await?;
    Ok(true)
}

/// Whether the live projection has got further than the shadow in some partition.
fn behind(live: &HashMap<i32, i64>, shadow: &HashMap<i32, i64>) -> bool {
    live.iter()
        .any(|(p, next)| shadow.get(p).copied().unwrap_or(0) < *next)
}

async fn lock_offsets(
    conn: &mut PgConnection,
    key: &str,
) -> Result<HashMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projection_offsets WHERE projection = $1 \
         ORDER BY partition FOR UPDATE",
    )
    .bind(key)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn read_offsets(
    conn: &mut PgConnection,
    key: &str,
) -> Result<HashMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projection_offsets WHERE projection = $1",
    )
    .bind(key)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Drops `live` and renames `shadow` (and its indexes) to take its place.
async fn replace_table(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    let renames: Vec<(String, String)> = sqlx::query_as(
        "SELECT nc.relname::text, oc.relname::text \
         FROM pg_index o JOIN pg_class oc ON oc.oid = o.indexrelid, \
              pg_index n JOIN pg_class nc ON nc.oid = n.indexrelid \
         WHERE o.indrelid = $1::text::regclass AND n.indrelid = $2::text::regclass \
           AND o.indkey = n.indkey AND o.indisunique = n.indisunique \
           AND o.indisprimary = n.indisprimary \
           AND pg_get_expr(o.indpred, o.indrelid) IS NOT DISTINCT FROM \
               pg_get_expr(n.indpred, n.indrelid)",
    )
    .bind(live)
    .bind(shadow)
    .fetch_all(&mut *conn)
    .await?;
    copy_grants(conn, live, shadow).await?;
    sqlx::query(&format!("DROP TABLE {live}"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {live}"))
        .execute(&mut *conn)
        .await?;
    for (from, to) in renames {
        let sql = format!("ALTER INDEX {} RENAME TO {}", quote(&from), quote(&to));
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Gives the shadow the rights other roles hold on the live table (the API reads it, the
/// projector writes it: see the migration `role_grants`); `LIKE … INCLUDING ALL` copies none.
async fn copy_grants(conn: &mut PgConnection, live: &str, shadow: &str) -> Result<(), sqlx::Error> {
    let grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, \
                string_agg(a.privilege_type, ', ') \
         FROM pg_class c, aclexplode(c.relacl) a \
         WHERE c.oid = $1::text::regclass AND a.grantee <> c.relowner \
         GROUP BY a.grantee",
    )
    .bind(live)
    .fetch_all(&mut *conn)
    .await?;
    for (grantee, privileges) in grants {
        sqlx::query(&format!("GRANT {privileges} ON {shadow} TO {grantee}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The shadow's offsets become the live ones.
async fn move_offsets(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_offsets (projection, partition, next_offset, error) \
         SELECT $1, partition, next_offset, error FROM projection_offsets WHERE projection = $2 \
         ON CONFLICT (projection, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, \
         error = EXCLUDED.error, updated_at = now()",
    )
    .bind(live)
    .bind(shadow)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM projection_offsets WHERE projection = $1")
        .bind(shadow)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Keeps "table does not exist, skipping" notices out of the logs.
async fn quiet(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL client_min_messages = warning")
        .execute(conn)
        .await?;
    Ok(())
}

/// A catalog identifier (index names come from `pg_class`, never from input) as SQL.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn the_shadow_must_have_got_as_far_as_the_live_projection() {
        let live = HashMap::from([(0, 10), (1, 5)]);
        assert!(super::behind(&live, &HashMap::from([(0, 10)])));
        assert!(super::behind(&live, &HashMap::from([(0, 9), (1, 5)])));
        assert!(!super::behind(&live, &HashMap::from([(0, 10), (1, 7)])));
        assert!(!super::behind(&HashMap::new(), &HashMap::new()));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::quote("accounts_pkey"), "\"accounts_pkey\"");
        assert_eq!(super::quote("a\"b"), "\"a\"\"b\"");
    }
}
