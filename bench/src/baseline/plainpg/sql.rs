//! The plain PostgreSQL ledger: one row per account, balance checks with `SELECT … FOR UPDATE`,
//! a ledger line per change, all in one transaction per request.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Why a command was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("unknown account")]
    NotFound,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS plain_accounts (
        account_id uuid PRIMARY KEY, owner_id text NOT NULL, currency text NOT NULL,
        balance bigint NOT NULL, overdraft_limit bigint NOT NULL, version bigint NOT NULL,
        opened_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS plain_ledger (
        account_id uuid NOT NULL, sequence bigint NOT NULL, kind text NOT NULL,
        amount bigint NOT NULL, balance_after bigint NOT NULL, reference text,
        transfer_id uuid, occurred_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, sequence))",
];

pub async fn create_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    for statement in SCHEMA {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

pub async fn open(
    pool: &PgPool,
    owner: &str,
    currency: &str,
    overdraft: i64,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plain_accounts (account_id, owner_id, currency, balance, overdraft_limit, version)
         VALUES ($1, $2, $3, 0, $4, 1)",
    )
    .bind(id)
    .bind(owner)
    .bind(currency)
    .bind(overdraft)
    .execute(pool)
    .await?;
    Ok(id)
}

/// Applies a signed amount to a locked account; returns the new version.
async fn change(
    tx: &mut Transaction<'_, Postgres>,
    account: Uuid,
    amount: i64,
    kind: &str,
    reference: Option<&str>,
    transfer: Option<Uuid>,
) -> Result<i64, LedgerError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT balance, overdraft_limit, version FROM plain_accounts WHERE account_id = $1 FOR UPDATE",
    )
    .bind(account)
    .fetch_optional(&mut **tx)
    .await?;
    let (balance, overdraft, version) = row.ok_or(LedgerError::NotFound)?;
    let after = balance + amount;
    if after < -overdraft {
        return Err(LedgerError::InsufficientFunds);
    }
    let version = version + 1;
    sqlx::query("UPDATE plain_accounts SET balance = $2, version = $3, updated_at = now() WHERE account_id = $1")
        .bind(account)
        .bind(after)
        .bind(version)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO plain_ledger (account_id, sequence, kind, amount, balance_after, reference, transfer_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(account)
    .bind(version)
    .bind(kind)
    .bind(amount)
    .bind(after)
    .bind(reference)
    .bind(transfer)
    .execute(&mut **tx)
    .await?;
    Ok(version)
}

/// A deposit (positive) or withdrawal (negative); returns the new version.
pub async fn post(
    pool: &PgPool,
    account: Uuid,
    amount: i64,
    reference: Option<&str>,
) -> Result<i64, LedgerError> {
    let kind = if amount >= 0 { "deposit" } else { "withdrawal" };
    let mut tx = pool.begin().await?;
    let version = change(&mut tx, account, amount, kind, reference, None).await?;
    tx.commit().await?;
    Ok(version)
}

/// Both legs in one transaction, locking the accounts in id order (no deadlock).
pub async fn transfer(
    pool: &PgPool,
    from: Uuid,
    to: Uuid,
    amount: i64,
    reference: Option<&str>,
) -> Result<Uuid, LedgerError> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let legs = if from < to {
        [
            (from, -amount, "transfer_debit"),
            (to, amount, "transfer_credit"),
        ]
    } else {
        [
            (to, amount, "transfer_credit"),
            (from, -amount, "transfer_debit"),
        ]
    };
    for (account, signed, kind) in legs {
        change(&mut tx, account, signed, kind, reference, Some(id)).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// (balance, currency, version) of an account.
pub async fn read(pool: &PgPool, account: Uuid) -> Result<Option<(i64, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT balance, currency, version FROM plain_accounts WHERE account_id = $1")
        .bind(account)
        .fetch_optional(pool)
        .await
}
