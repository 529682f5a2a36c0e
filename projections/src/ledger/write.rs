//! The ledger's SQL: loading the rows a batch starts from, and writing its rows set-based
//! (one `INSERT … SELECT FROM UNNEST … ON CONFLICT` per table, parameters bound as arrays).
//!
//! Every write is idempotent on its own: accounts only move forward by version, lines are
//! keyed by (account_id, sequence), transfer legs merge with COALESCE. Lines go in with `COPY`
//! ([`copy_lines`]), falling back to the conflict-checked insert when one is already there.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::rows::{AccountRow, LedgerRows, LineRow, TransferRow};
use crate::copy::CopyRows;
use crate::projection::{Sink, Target};

/// Current rows of the given accounts.
pub async fn load_accounts(
    conn: &mut PgConnection,
    sink: &Sink,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, AccountRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT account_id, owner_id, currency, balance, overdraft_limit, status, version, \
         opened_at, updated_at, holder FROM {} WHERE account_id = ANY($1)",
        sink.table("accounts")
    );
    let rows: Vec<AccountRow> = sqlx::query_as(&sql).bind(ids).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|r| (r.account_id, r)).collect())
}

/// Writes the rows of one batch.
pub async fn write(
    conn: &mut PgConnection,
    sink: &Sink,
    rows: &LedgerRows,
) -> Result<(), sqlx::Error> {
    write_accounts(conn, sink, &rows.accounts).await?;
    append_lines(conn, sink, &rows.lines).await?;
    write_transfers(conn, sink, &rows.transfers).await
}

pub(crate) async fn write_accounts(
    conn: &mut PgConnection,
    sink: &Sink,
    rows: &[AccountRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let table = sink.table("accounts");
    let sql = format!(
        "INSERT INTO {table} (account_id, owner_id, currency, balance, overdraft_limit, status, \
         version, opened_at, updated_at, holder) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
         $6::text[], $7::int8[], $8::timestamptz[], $9::timestamptz[], $10::text[]) \
         ON CONFLICT (account_id) DO UPDATE SET balance = EXCLUDED.balance, \
         overdraft_limit = EXCLUDED.overdraft_limit, status = EXCLUDED.status, \
         version = EXCLUDED.version, updated_at = EXCLUDED.updated_at, \
         holder = EXCLUDED.holder \
         WHERE {table}.version < EXCLUDED.version"
    );
    sqlx::query(&sql)
        .bind(column(rows, |r| r.account_id))
        .bind(column(rows, |r| r.owner_id.clone()))
        .bind(column(rows, |r| r.currency.clone()))
        .bind(column(rows, |r| r.balance))
        .bind(column(rows, |r| r.overdraft_limit))
        .bind(column(rows, |r| r.status.clone()))
        .bind(column(rows, |r| r.version))
        .bind(column(rows, |r| r.opened_at))
        .bind(column(rows, |r| r.updated_at))
        .bind(column(rows, |r| r.holder.clone()))
        .execute(conn)
        .await?;
    Ok(())
}

async fn write_lines(
    conn: &mut PgConnection,
    sink: &Sink,
    rows: &[LineRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {} (account_id, sequence, kind, amount, balance_after, reference, \
         transfer_id, counterparty_id, event_id, occurred_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::int8[], $5::int8[], \
         $6::text[], $7::uuid[], $8::uuid[], $9::uuid[], $10::timestamptz[]) \
         ON CONFLICT (account_id, sequence) DO NOTHING",
        sink.table("account_transactions")
    );
    sqlx::query(&sql)
        .bind(column(rows, |r| r.account_id))
        .bind(column(rows, |r| r.sequence))
        .bind(column(rows, |r| r.kind.as_str().to_owned()))
        .bind(column(rows, |r| r.amount))
        .bind(column(rows, |r| r.balance_after))
        .bind(column(rows, |r| r.reference.clone()))
        .bind(column(rows, |r| r.transfer_id))
        .bind(column(rows, |r| r.counterparty_id))
        .bind(column(rows, |r| r.event_id))
        .bind(column(rows, |r| r.occurred_at))
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends lines: by [`copy_lines`], or by [`write_lines`] when one was already there.
pub(crate) async fn append_lines(
    conn: &mut PgConnection,
    sink: &Sink,
    rows: &[LineRow],
) -> Result<(), sqlx::Error> {
    if !copy_lines(conn, sink, rows).await? {
        write_lines(conn, sink, rows).await?;
    }
    Ok(())
}

/// Appends lines with `COPY`: into a rebuild's shadow table (one writer, whose batches never
/// repeat a line) plainly; into the live table in a savepoint, and false when a line was
/// already there: nothing was written, and the caller writes them with [`write_lines`].
async fn copy_lines(
    conn: &mut PgConnection,
    sink: &Sink,
    rows: &[LineRow],
) -> Result<bool, sqlx::Error> {
    let mut copy = CopyRows::new();
    for r in rows {
        copy.uuid(r.account_id)
            .int(r.sequence)
            .text(r.kind.as_str())
            .int(r.amount)
            .int(r.balance_after)
            .opt_text(r.reference.as_deref())
            .opt_uuid(r.transfer_id)
            .opt_uuid(r.counterparty_id)
            .uuid(r.event_id)
            .time(r.occurred_at)
            .end_row();
    }
    let statement = format!(
        "COPY {} (account_id, sequence, kind, amount, balance_after, reference, transfer_id, \
         counterparty_id, event_id, occurred_at) FROM STDIN (FORMAT binary)",
        sink.table("account_transactions")
    );
    if sink.target == Target::Shadow {
        copy.send(conn, &statement).await?;
        return Ok(true);
    }
    Ok(copy.send_new(conn, &statement).await?.is_some())
}

pub(crate) async fn write_transfers(
    conn: &mut PgConnection,
    sink: &Sink,
    rows: &[TransferRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let table = sink.table("transfers");
    let keep = |c: &str| format!("{c} = COALESCE({table}.{c}, EXCLUDED.{c})");
    let merged: Vec<String> = [
        "from_account_id",
        "to_account_id",
        "amount",
        "currency",
        "reason",
        "reference",
        "debited_at",
        "credited_at",
        "refunded_at",
    ]
    .iter()
    .map(|c| keep(c))
    .collect();
    let sql = format!(
        "INSERT INTO {table} (transfer_id, from_account_id, to_account_id, amount, currency, \
         reason, reference, debited_at, credited_at, refunded_at, updated_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], \
         $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], \
         $11::timestamptz[]) \
         ON CONFLICT (transfer_id) DO UPDATE SET {}, \
         updated_at = GREATEST({table}.updated_at, EXCLUDED.updated_at)",
        merged.join(", ")
    );
    let times = |f: fn(&TransferRow) -> Option<DateTime<Utc>>| column(rows, f);
    sqlx::query(&sql)
        .bind(column(rows, |r| r.transfer_id))
        .bind(column(rows, |r| r.from_account_id))
        .bind(column(rows, |r| r.to_account_id))
        .bind(column(rows, |r| r.amount))
        .bind(column(rows, |r| r.currency.clone()))
        .bind(column(rows, |r| r.reason.clone()))
        .bind(column(rows, |r| r.reference.clone()))
        .bind(times(|r| r.debited_at))
        .bind(times(|r| r.credited_at))
        .bind(times(|r| r.refunded_at))
        .bind(column(rows, |r| r.updated_at))
        .execute(conn)
        .await?;
    Ok(())
}

/// One column of a row set, as the array bound to an UNNEST parameter.
fn column<R, T>(rows: &[R], get: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(get).collect()
}
