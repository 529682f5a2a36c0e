//! Query functions over the read models (bound parameters only), as the HTTP API serves them.
//!
//! Listings use keyset pagination: a page holds up to `limit` items after the cursor, ordered
//! by a unique key (account_id for accounts, sequence for an account's lines), so every item
//! present for the whole walk is visited exactly once even while rows are inserted.
//! The `ledger` projection ([`SERVED_BY`]) serves every query here.

pub mod audit;
pub mod cursor;
pub mod stream;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::projection::Projection;
use cursor::{AccountCursor, LineCursor};

/// The projection these queries read (what `min_position` waits for).
pub const SERVED_BY: Projection = Projection::Ledger;
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// The page size for a requested limit: default when absent, within 1..=[`MAX_LIMIT`].
pub fn page_limit(requested: Option<u32>) -> u32 {
    requested.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    pub account_id: Uuid,
    pub owner_id: String,
    pub currency: String,
    /// Minor units.
    pub balance: i64,
    pub overdraft_limit: i64,
    /// `active`, `frozen` or `closed`.
    pub status: String,
    /// Sequence of the last event applied.
    pub version: i64,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The holder's sealed personal fields (JSON), never shown as such: the API opens them for
    /// the callers allowed to see them.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub holder: Option<String>,
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineView {
    pub sequence: i64,
    /// `deposit`, `withdrawal`, `transfer_debit`, `transfer_credit` or `transfer_refund`.
    pub kind: String,
    /// Signed minor units: negative when money left the account.
    pub amount: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub transfer_id: Option<Uuid>,
    /// The other account of a transfer leg.
    pub counterparty_id: Option<Uuid>,
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
}

/// A transfer, merged from its legs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferView {
    pub transfer_id: Uuid,
    pub from_account_id: Option<Uuid>,
    pub to_account_id: Option<Uuid>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub debited_at: Option<DateTime<Utc>>,
    pub credited_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A page of a listing; `next_cursor` is absent on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Account statuses a listing can filter on.
pub const STATUSES: [&str; 3] = ["active", "frozen", "closed"];

/// Filters and position of an accounts listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    pub owner_id: Option<String>,
    /// One of [`STATUSES`].
    pub status: Option<String>,
    pub after: Option<AccountCursor>,
    pub limit: u32,
}

const ACCOUNT_COLUMNS: &str = "account_id, owner_id, currency, balance, overdraft_limit, \
     status, version, opened_at, updated_at, holder";

/// One account, if the projection has it.
pub async fn account(pool: &PgPool, account_id: Uuid) -> Result<Option<AccountView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = $1"
    ))
    .bind(account_id)
    .fetch_optional(pool)
    .await
}

/// A page of accounts in account_id order.
pub async fn accounts(
    pool: &PgPool,
    filter: &AccountFilter,
) -> Result<Page<AccountView>, sqlx::Error> {
    let limit = page_limit(Some(filter.limit));
    let mut query: QueryBuilder<'_, Postgres> =
        QueryBuilder::new(format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE true"));
    if let Some(owner) = &filter.owner_id {
        query.push(" AND owner_id = ").push_bind(owner);
    }
    if let Some(status) = &filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(AccountCursor(after)) = filter.after {
        query.push(" AND account_id > ").push_bind(after);
    }
    query
        .push(" ORDER BY account_id LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows: Vec<AccountView> = query.build_query_as().fetch_all(pool).await?;
    Ok(page(rows, limit, |a| AccountCursor(a.account_id).encode()))
}

/// A page of an account's ledger lines in sequence order.
pub async fn transactions(
    pool: &PgPool,
    account_id: Uuid,
    after: Option<LineCursor>,
    limit: u32,
) -> Result<Page<LineView>, sqlx::Error> {
    let limit = page_limit(Some(limit));
    let rows: Vec<LineView> = sqlx::query_as(
        "SELECT sequence, kind, amount, balance_after, reference, transfer_id, counterparty_id, \
         event_id, occurred_at FROM account_transactions \
         WHERE account_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(account_id)
    .bind(after.map_or(0, |c| c.0))
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(rows, limit, |l| LineCursor(l.sequence).encode()))
}

/// One transfer, if the projection has it.
pub async fn transfer(
    pool: &PgPool,
    transfer_id: Uuid,
) -> Result<Option<TransferView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT transfer_id, from_account_id, to_account_id, amount, currency, status, reason, \
         reference, debited_at, credited_at, refunded_at, updated_at \
         FROM transfers WHERE transfer_id = $1",
    )
    .bind(transfer_id)
    .fetch_optional(pool)
    .await
}

/// A page of the transfers an account sent or received, by transfer id (keyset on the
/// `transfers_from_idx` and `transfers_to_idx` indexes).
pub async fn account_transfers(
    pool: &PgPool,
    account_id: Uuid,
    after: Option<cursor::TransferCursor>,
    limit: u32,
) -> Result<Page<TransferView>, sqlx::Error> {
    let limit = page_limit(Some(limit));
    let rows: Vec<TransferView> = sqlx::query_as(
        "SELECT transfer_id, from_account_id, to_account_id, amount, currency, status, reason, \
         reference, debited_at, credited_at, refunded_at, updated_at FROM transfers \
         WHERE (from_account_id = $1 OR to_account_id = $1) AND transfer_id > $2 \
         ORDER BY transfer_id LIMIT $3",
    )
    .bind(account_id)
    .bind(after.map_or(Uuid::nil(), |c| c.0))
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(rows, limit, |t| {
        cursor::TransferCursor(t.transfer_id).encode()
    }))
}

/// Cuts `limit + 1` fetched rows to a page; the extra row only says that more exist.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(cursor) } else { None };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(page_limit(None), 50);
        assert_eq!(page_limit(Some(0)), 1);
        assert_eq!(page_limit(Some(7)), 7);
        assert_eq!(page_limit(Some(10_000)), 500);
    }

    #[test]
    fn pages_carry_a_cursor_only_when_more_exist() {
        let full = page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(full.items, vec![1, 2]);
        assert_eq!(full.next_cursor.as_deref(), Some("2"));
        let last = page(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
        let empty = page(Vec::<i32>::new(), 2, |n| n.to_string());
        assert!(empty.items.is_empty() && empty.next_cursor.is_none());
    }
}
