//! The rows of the ledger read models, as folded in memory before one set-based write.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A row of `accounts`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    pub account_id: Uuid,
    pub owner_id: String,
    pub currency: String,
    pub balance: i64,
    pub overdraft_limit: i64,
    pub status: String,
    pub version: i64,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The holder's sealed personal fields as a JSON object ([`logbook_events::SealedHolder`]).
    pub holder: Option<String>,
}

/// What a ledger line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Deposit,
    Withdrawal,
    TransferDebit,
    TransferCredit,
    TransferRefund,
}

impl LineKind {
    /// The `kind` column value.
    pub fn as_str(&self) -> &'static str {
        match self {
            LineKind::Deposit => "deposit",
            LineKind::Withdrawal => "withdrawal",
            LineKind::TransferDebit => "transfer_debit",
            LineKind::TransferCredit => "transfer_credit",
            LineKind::TransferRefund => "transfer_refund",
        }
    }

    /// Whether money leaves the account (the line's amount is negative).
    pub fn is_debit(&self) -> bool {
        matches!(self, LineKind::Withdrawal | LineKind::TransferDebit)
    }
}

/// A row of `account_transactions`: one balance change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    pub account_id: Uuid,
    pub sequence: i64,
    pub kind: LineKind,
    /// Signed: negative when money left the account.
    pub amount: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub transfer_id: Option<Uuid>,
    pub counterparty_id: Option<Uuid>,
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
}

/// What one leg tells about a transfer; legs merge column by column (first known value wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub transfer_id: Uuid,
    pub from_account_id: Option<Uuid>,
    pub to_account_id: Option<Uuid>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub debited_at: Option<DateTime<Utc>>,
    pub credited_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl TransferRow {
    /// A row with only the id and time known.
    pub fn new(transfer_id: Uuid, at: DateTime<Utc>) -> TransferRow {
        TransferRow {
            transfer_id,
            from_account_id: None,
            to_account_id: None,
            amount: None,
            currency: None,
            reason: None,
            reference: None,
            debited_at: None,
            credited_at: None,
            refunded_at: None,
            updated_at: at,
        }
    }

    /// Merges another leg of the same transfer into this row (the SQL upsert does the same
    /// with COALESCE, so the order in which legs arrive does not matter).
    pub fn merge(&mut self, other: TransferRow) {
        self.from_account_id = self.from_account_id.or(other.from_account_id);
        self.to_account_id = self.to_account_id.or(other.to_account_id);
        self.amount = self.amount.or(other.amount);
        self.currency = self.currency.take().or(other.currency);
        self.reason = self.reason.take().or(other.reason);
        self.reference = self.reference.take().or(other.reference);
        self.debited_at = self.debited_at.or(other.debited_at);
        self.credited_at = self.credited_at.or(other.credited_at);
        self.refunded_at = self.refunded_at.or(other.refunded_at);
        self.updated_at = self.updated_at.max(other.updated_at);
    }

    /// Adds `leg` to `transfers`: merged into its transfer's row, or as that row.
    pub fn merge_into(leg: TransferRow, transfers: &mut HashMap<Uuid, TransferRow>) {
        match transfers.get_mut(&leg.transfer_id) {
            Some(row) => row.merge(leg),
            None => {
                transfers.insert(leg.transfer_id, leg);
            }
        }
    }

    /// `pending`, `completed` or `failed`, as the table's generated column computes it.
    pub fn status(&self) -> &'static str {
        if self.refunded_at.is_some() {
            "failed"
        } else if self.credited_at.is_some() {
            "completed"
        } else {
            "pending"
        }
    }
}

/// Everything one batch writes to the ledger tables.
#[derive(Debug, Default)]
pub struct LedgerRows {
    /// Final state of every account the batch changed.
    pub accounts: Vec<AccountRow>,
    pub lines: Vec<LineRow>,
    /// One merged row per transfer.
    pub transfers: Vec<TransferRow>,
    /// Events applied.
    pub applied: usize,
    /// Events already reflected in the read model (a replay), left alone.
    pub duplicates: usize,
}
