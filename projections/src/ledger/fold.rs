//! Folding a batch of account events into ledger rows (pure: no I/O).
//!
//! [`fold`] starts from the current rows of the accounts the batch touches and applies each
//! partition's events in log order. Events are facts, so the balance is the event's
//! `balance_after`; the fold only checks that the log is consistent with the model:
//! sequences follow each other without a gap, an account starts with `AccountOpened`, and
//! every balance change adds up. An event already reflected in the rows (sequence at or below
//! the account's version) is a replay and changes nothing. The first event that breaks the
//! model poisons its partition: it and the rest of that partition's slice stay unapplied.

use std::collections::{BTreeSet, HashMap};

use logbook_events::{ACCOUNT_AGGREGATE, AccountEvent, RawEnvelope, SealedHolder};
use uuid::Uuid;

use super::events::{check_balance, line_of, new_status, transfer_leg};
use super::rows::{AccountRow, LedgerRows, TransferRow};
use crate::batch::{Decoded, Slice};

/// What applying one event did.
enum Step {
    Applied,
    Duplicate,
    /// Not an account event: not part of this model.
    Ignored,
}

/// The working state of a fold.
struct Folder {
    accounts: HashMap<Uuid, AccountRow>,
    touched: BTreeSet<Uuid>,
    transfers: HashMap<Uuid, TransferRow>,
    rows: LedgerRows,
}

/// Folds `slices` onto `prior` (current rows of the touched accounts), truncating a slice at
/// its first event that breaks the model.
pub fn fold(prior: HashMap<Uuid, AccountRow>, slices: &mut [Slice]) -> LedgerRows {
    let mut folder = Folder {
        accounts: prior,
        touched: BTreeSet::new(),
        transfers: HashMap::new(),
        rows: LedgerRows::default(),
    };
    for slice in slices.iter_mut() {
        let violation = slice
            .events
            .iter()
            .enumerate()
            .find_map(|(index, event)| folder.step(event).err().map(|e| (index, e)));
        if let Some((index, reason)) = violation {
            slice.poison_at(index, reason);
        }
    }
    folder.finish()
}

/// The `holder` column's JSON text of a sealed holder.
fn holder_json(holder: &SealedHolder) -> String {
    // a struct of optional strings always serializes
    serde_json::to_string(holder).unwrap_or_default()
}

/// The account ids a batch touches (to load their current rows first).
pub fn touched_accounts(slices: &[Slice]) -> Vec<Uuid> {
    let ids: BTreeSet<Uuid> = slices
        .iter()
        .flat_map(|s| s.events.iter())
        .filter(|e| e.envelope.aggregate_type == ACCOUNT_AGGREGATE)
        .map(|e| e.envelope.aggregate_id)
        .collect();
    ids.into_iter().collect()
}

impl Folder {
    fn step(&mut self, decoded: &Decoded) -> Result<(), String> {
        match self.apply(&decoded.envelope)? {
            Step::Applied => self.rows.applied += 1,
            Step::Duplicate => self.rows.duplicates += 1,
            Step::Ignored => {}
        }
        Ok(())
    }

    fn apply(&mut self, envelope: &RawEnvelope) -> Result<Step, String> {
        if envelope.aggregate_type != ACCOUNT_AGGREGATE {
            return Ok(Step::Ignored);
        }
        let event = envelope.decode_account().map_err(|e| e.to_string())?;
        let id = envelope.aggregate_id;
        let sequence = i64::try_from(envelope.sequence)
            .map_err(|_| format!("sequence {} out of range", envelope.sequence))?;
        let version = self.accounts.get(&id).map_or(0, |a| a.version);
        if sequence <= version {
            return Ok(Step::Duplicate);
        }
        if sequence != version + 1 {
            return Err(format!(
                "sequence gap on account {id}: at version {version}, event has sequence {sequence}"
            ));
        }
        if let AccountEvent::AccountOpened {
            owner_id,
            currency,
            overdraft_limit,
            holder,
        } = &event
        {
            if *overdraft_limit < 0 {
                return Err(format!(
                    "AccountOpened with overdraft_limit {overdraft_limit}"
                ));
            }
            self.accounts.insert(
                id,
                AccountRow {
                    account_id: id,
                    owner_id: owner_id.clone(),
                    currency: currency.to_string(),
                    balance: 0,
                    overdraft_limit: *overdraft_limit,
                    status: "active".to_owned(),
                    version: sequence,
                    opened_at: envelope.occurred_at,
                    updated_at: envelope.occurred_at,
                    holder: holder.as_ref().map(holder_json),
                },
            );
        } else {
            self.change(envelope, &event, sequence)?;
        }
        self.touched.insert(id);
        Ok(Step::Applied)
    }

    /// Applies an event other than `AccountOpened` to an open account.
    fn change(
        &mut self,
        envelope: &RawEnvelope,
        event: &AccountEvent,
        sequence: i64,
    ) -> Result<(), String> {
        let id = envelope.aggregate_id;
        let account = self.accounts.get_mut(&id).ok_or_else(|| {
            format!(
                "{} before AccountOpened on account {id}",
                event.event_type()
            )
        })?;
        if let Some(status) = new_status(event) {
            account.status = status.to_owned();
        }
        if let AccountEvent::OverdraftLimitChanged { overdraft_limit } = event {
            if *overdraft_limit < 0 {
                return Err(format!("OverdraftLimitChanged to {overdraft_limit}"));
            }
            account.overdraft_limit = *overdraft_limit;
        }
        if let AccountEvent::HolderChanged { holder } = event {
            let before: SealedHolder = match &account.holder {
                Some(json) => serde_json::from_str(json)
                    .map_err(|e| format!("unreadable holder on account {id}: {e}"))?,
                None => SealedHolder::default(),
            };
            account.holder = Some(holder_json(&before.merged(holder)));
        }
        if let Some(line) = line_of(envelope, event, sequence) {
            check_balance(account, &line, event)?;
            account.balance = line.balance_after;
            self.rows.lines.push(line);
        }
        account.version = sequence;
        account.updated_at = envelope.occurred_at;
        if let Some(leg) = transfer_leg(envelope, event) {
            TransferRow::merge_into(leg, &mut self.transfers);
        }
        Ok(())
    }

    fn finish(mut self) -> LedgerRows {
        let accounts = &self.accounts;
        self.rows.accounts = self
            .touched
            .iter()
            .filter_map(|id| accounts.get(id).cloned())
            .collect();
        let mut transfers: Vec<TransferRow> = self.transfers.into_values().collect();
        transfers.sort_by_key(|t| t.transfer_id);
        self.rows.transfers = transfers;
        self.rows
    }
}
