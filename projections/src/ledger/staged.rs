//! A rebuild's ledger rows kept in memory across batches ([`Staged`]), written once.
//!
//! During a rebuild the shadow tables have a single writer, the rebuild's worker, and start
//! empty. So the rows of `accounts` and `transfers` need not be read back and upserted in every
//! batch: the worker keeps the current row of every account it has seen and the merged row of
//! every transfer, and writes them when the rebuild has caught up (before its swap) or when
//! more than `cap` rows are held (then it forgets the accounts and reads misses back from the
//! shadow table again). Ledger lines are still written in each batch's transaction, with its
//! offsets.
//!
//! Only committed batches reach the staged rows ([`Staged::absorb`] after the commit), so a
//! batch that rolls back and is read again folds onto the same state. The rows written by
//! [`Staged::flush`] are the ones a per-batch upsert would have left, since accounts only move
//! forward by version and transfer legs merge column by column.

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;
use uuid::Uuid;

use super::rows::{AccountRow, LedgerRows, TransferRow};
use super::write;
use crate::projection::Sink;

/// Rows per statement when the staged rows are written.
const FLUSH_CHUNK: usize = 10_000;

/// Account and transfer rows of a rebuild not yet written to the shadow tables.
#[derive(Debug)]
pub struct Staged {
    accounts: HashMap<Uuid, AccountRow>,
    /// Accounts changed since the last flush.
    dirty: HashSet<Uuid>,
    transfers: HashMap<Uuid, TransferRow>,
    /// Whether `accounts` holds every row of the shadow table (true until the first eviction):
    /// an id it lacks then has no row, with no need to ask the database.
    complete: bool,
    cap: usize,
}

impl Staged {
    /// Staging for shadow tables that are empty, holding at most about `cap` rows.
    pub fn new(cap: usize) -> Self {
        Self {
            accounts: HashMap::new(),
            dirty: HashSet::new(),
            transfers: HashMap::new(),
            complete: true,
            cap: cap.max(1),
        }
    }

    /// The current rows of `ids` known here, and the ids to read from the shadow table.
    pub fn prior(&self, ids: &[Uuid]) -> (HashMap<Uuid, AccountRow>, Vec<Uuid>) {
        let mut known = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.accounts.get(id) {
                Some(row) => {
                    known.insert(*id, row.clone());
                }
                None if !self.complete => missing.push(*id),
                None => {}
            }
        }
        (known, missing)
    }

    /// Takes in the account and transfer rows of a committed batch (its lines are written).
    pub fn absorb(&mut self, rows: LedgerRows) {
        for account in rows.accounts {
            self.dirty.insert(account.account_id);
            self.accounts.insert(account.account_id, account);
        }
        for leg in rows.transfers {
            TransferRow::merge_into(leg, &mut self.transfers);
        }
    }

    /// Whether more rows are held than the cap allows (time to flush and evict).
    pub fn over_cap(&self) -> bool {
        self.accounts.len() + self.transfers.len() > self.cap
    }

    /// Whether anything waits to be written.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || !self.transfers.is_empty()
    }

    /// Writes the changed accounts and the staged transfers (upserts, in the caller's
    /// transaction). Call [`Staged::flushed`] once that transaction has committed.
    pub async fn flush(&self, conn: &mut PgConnection, sink: &Sink) -> Result<(), sqlx::Error> {
        let mut dirty: Vec<&Uuid> = self.dirty.iter().collect();
        dirty.sort_unstable();
        let accounts: Vec<AccountRow> = dirty
            .iter()
            .filter_map(|id| self.accounts.get(id).cloned())
            .collect();
        for chunk in accounts.chunks(FLUSH_CHUNK) {
            write::write_accounts(conn, sink, chunk).await?;
        }
        let mut transfers: Vec<TransferRow> = self.transfers.values().cloned().collect();
        transfers.sort_by_key(|t| t.transfer_id);
        for chunk in transfers.chunks(FLUSH_CHUNK) {
            write::write_transfers(conn, sink, chunk).await?;
        }
        Ok(())
    }

    /// The flush committed: nothing is dirty any more. With `evict`, the account rows are
    /// forgotten too (misses are read from the shadow table from now on).
    pub fn flushed(&mut self, evict: bool) {
        self.dirty.clear();
        self.transfers.clear();
        if evict {
            self.accounts.clear();
            self.accounts.shrink_to_fit();
            self.transfers.shrink_to_fit();
            self.complete = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::ledger::tests::account_row_of as account;

    fn batch(accounts: Vec<AccountRow>, transfers: Vec<TransferRow>) -> LedgerRows {
        LedgerRows {
            accounts,
            transfers,
            ..LedgerRows::default()
        }
    }

    #[test]
    fn absorbed_rows_are_the_prior_of_the_next_batch() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut staged = Staged::new(100);
        staged.absorb(batch(vec![account(a, 1, 0)], vec![]));
        staged.absorb(batch(vec![account(a, 2, 500)], vec![]));
        let (known, missing) = staged.prior(&[a, b]);
        assert_eq!(known[&a].version, 2);
        assert_eq!(known[&a].balance, 500);
        // the shadow table started empty and nothing was evicted: b has no row anywhere
        assert!(!known.contains_key(&b));
        assert!(missing.is_empty());
    }

    #[test]
    fn after_an_eviction_unknown_accounts_are_read_from_the_table() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut staged = Staged::new(1);
        staged.absorb(batch(vec![account(a, 1, 0), account(b, 1, 0)], vec![]));
        assert!(staged.over_cap());
        assert!(staged.is_dirty());
        staged.flushed(true);
        assert!(!staged.is_dirty());
        assert!(!staged.over_cap());
        let (known, missing) = staged.prior(&[a]);
        assert!(known.is_empty());
        assert_eq!(missing, vec![a]);
    }

    #[test]
    fn a_flush_without_eviction_keeps_the_rows_but_nothing_is_dirty() {
        let a = Uuid::now_v7();
        let mut staged = Staged::new(10);
        staged.absorb(batch(vec![account(a, 1, 0)], vec![]));
        staged.flushed(false);
        assert!(!staged.is_dirty());
        assert_eq!(staged.prior(&[a]).0[&a].version, 1);
    }

    #[test]
    fn transfer_legs_of_different_batches_merge() {
        let id = Uuid::now_v7();
        let from = Uuid::now_v7();
        let at = Utc::now();
        let mut debit = TransferRow::new(id, at);
        debit.from_account_id = Some(from);
        debit.debited_at = Some(at);
        let mut credit = TransferRow::new(id, at);
        credit.credited_at = Some(at);
        let mut staged = Staged::new(10);
        staged.absorb(batch(vec![], vec![debit]));
        staged.absorb(batch(vec![], vec![credit]));
        let row = &staged.transfers[&id];
        assert_eq!(row.from_account_id, Some(from));
        assert_eq!(row.status(), "completed");
    }
}
