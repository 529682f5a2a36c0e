//! The account state folded from its events: [`Account`], [`AccountStatus`], [`apply`].
//!
//! The processor keeps one [`Account`] per aggregate in memory, so it is compact
//! (72 bytes plus the owner id on the heap, and a [`Transfers`] book for accounts that took part
//! in a transfer). Events are facts: [`apply`] takes the balance from each event's
//! `balance_after` and never fails.

use logbook_events::{AccountEvent, Currency, DebitOrigin};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Lifecycle of an opened account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Takes every command.
    Active,
    /// Takes credits, no debits.
    Frozen,
    /// Takes nothing.
    Closed,
}

impl AccountStatus {
    /// `active`, `frozen` or `closed` (as in read models and the API).
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closed => "closed",
        }
    }
}

/// State of one account aggregate. `Default` is an account that was never opened
/// and whose id is unknown (nil); prefer [`Account::new`] with the aggregate id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    id: Uuid,
    /// `None` until `AccountOpened`; the other fields are meaningless until then.
    status: Option<AccountStatus>,
    currency: Option<Currency>,
    owner_id: Box<str>,
    balance: i64,
    overdraft_limit: i64,
    version: u64,
    /// `None` until the account first takes part in a transfer.
    transfers: Option<Box<Transfers>>,
}

/// What an account remembers of transfers, so that every saga step applies at most once:
/// its outgoing transfers in flight (debited, neither completed nor refunded) and, per source
/// events partition, the latest debit it was credited for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transfers {
    /// (transfer id, amount) of the outgoing transfers in flight.
    in_flight: Vec<(Uuid, i64)>,
    /// (source partition, `occurred_at` of the latest debit credited, in microseconds).
    credited: Vec<(i32, i64)>,
}

impl Account {
    /// A not-yet-opened account with this aggregate id (needed by the rule that a
    /// transfer names two different accounts).
    pub fn new(id: Uuid) -> Account {
        Account {
            id,
            ..Account::default()
        }
    }

    /// The aggregate id given to [`Account::new`] (nil for `Default`).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Whether the account has been opened (it stays true once frozen or closed;
    /// see [`Account::status`]).
    pub fn is_open(&self) -> bool {
        self.status.is_some()
    }

    /// The owner, once opened.
    pub fn owner_id(&self) -> Option<&str> {
        self.status.map(|_| &*self.owner_id)
    }

    /// The account currency, once opened.
    pub fn currency(&self) -> Option<Currency> {
        self.currency
    }

    /// Balance in minor units (0 before opening); never below `-overdraft_limit`.
    pub fn balance(&self) -> i64 {
        self.balance
    }

    /// How far below zero the balance may go (0 before opening).
    pub fn overdraft_limit(&self) -> i64 {
        self.overdraft_limit
    }

    /// `None` when not opened.
    pub fn status(&self) -> Option<AccountStatus> {
        self.status
    }

    /// Number of events applied, i.e. the `sequence` of the last one.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The amount of an outgoing transfer in flight, if `transfer_id` is one.
    pub fn in_flight(&self, transfer_id: Uuid) -> Option<i64> {
        let transfers = self.transfers.as_deref()?;
        transfers
            .in_flight
            .iter()
            .find(|(id, _)| *id == transfer_id)
            .map(|(_, amount)| *amount)
    }

    /// How many outgoing transfers are in flight.
    pub fn in_flight_count(&self) -> usize {
        self.transfers.as_deref().map_or(0, |t| t.in_flight.len())
    }

    /// The sum of the outgoing transfers in flight (money that may still come back).
    pub fn in_flight_total(&self) -> i64 {
        self.transfers
            .as_deref()
            .map_or(0, |t| t.in_flight.iter().map(|(_, amount)| *amount).sum())
    }

    /// Whether the credit of the debit at `origin` was applied here already.
    pub fn was_credited(&self, origin: &DebitOrigin) -> bool {
        let Some(transfers) = self.transfers.as_deref() else {
            return false;
        };
        let at = origin.at.timestamp_micros();
        transfers
            .credited
            .iter()
            .any(|(partition, latest)| *partition == origin.partition && at <= *latest)
    }

    fn transfers_mut(&mut self) -> &mut Transfers {
        self.transfers.get_or_insert_with(Box::default)
    }
}

/// Every field of an [`Account`], to write it to a snapshot and read it back (the processor's
/// `snapshot` module); nothing else should build an account but [`apply`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountParts {
    pub id: Uuid,
    pub status: Option<AccountStatus>,
    pub currency: Option<Currency>,
    pub owner_id: String,
    pub balance: i64,
    pub overdraft_limit: i64,
    pub version: u64,
    /// (transfer id, amount) of the outgoing transfers in flight.
    pub in_flight: Vec<(Uuid, i64)>,
    /// (source partition, `occurred_at` in µs of the latest debit credited).
    pub credited: Vec<(i32, i64)>,
}

impl Account {
    /// The account's fields, as a snapshot stores them.
    pub fn to_parts(&self) -> AccountParts {
        let transfers = self.transfers.as_deref();
        AccountParts {
            id: self.id,
            status: self.status,
            currency: self.currency,
            owner_id: self.owner_id.to_string(),
            balance: self.balance,
            overdraft_limit: self.overdraft_limit,
            version: self.version,
            in_flight: transfers.map(|t| t.in_flight.clone()).unwrap_or_default(),
            credited: transfers.map(|t| t.credited.clone()).unwrap_or_default(),
        }
    }

    /// The account a snapshot stored (the inverse of [`Account::to_parts`]).
    pub fn from_parts(parts: AccountParts) -> Account {
        let transfers = (!parts.in_flight.is_empty() || !parts.credited.is_empty()).then(|| {
            Box::new(Transfers {
                in_flight: parts.in_flight,
                credited: parts.credited,
            })
        });
        Account {
            id: parts.id,
            status: parts.status,
            currency: parts.currency,
            owner_id: parts.owner_id.into_boxed_str(),
            balance: parts.balance,
            overdraft_limit: parts.overdraft_limit,
            version: parts.version,
            transfers,
        }
    }
}

/// Folds one event into the state and counts it in `version`.
///
/// Never fails or panics. Events out of place (which `decide` never produces, e.g.
/// a deposit before `AccountOpened`) still only set what they carry.
pub fn apply(state: &mut Account, event: &AccountEvent) {
    match event {
        AccountEvent::AccountOpened {
            owner_id,
            currency,
            overdraft_limit,
            ..
        } => {
            state.status = Some(AccountStatus::Active);
            state.currency = Some(*currency);
            state.owner_id = owner_id.as_str().into();
            state.overdraft_limit = *overdraft_limit;
            state.balance = 0;
        }
        AccountEvent::FundsDeposited { balance_after, .. }
        | AccountEvent::FundsWithdrawn { balance_after, .. } => {
            state.balance = *balance_after;
        }
        AccountEvent::TransferDebited {
            transfer_id,
            amount,
            balance_after,
            ..
        } => {
            state.balance = *balance_after;
            state
                .transfers_mut()
                .in_flight
                .push((*transfer_id, *amount));
        }
        AccountEvent::TransferCredited {
            balance_after,
            debit,
            ..
        } => {
            state.balance = *balance_after;
            if let Some(origin) = debit {
                note_credit(state.transfers_mut(), origin);
            }
        }
        AccountEvent::TransferRefunded {
            transfer_id,
            balance_after,
            ..
        } => {
            state.balance = *balance_after;
            settle(state, *transfer_id);
        }
        AccountEvent::TransferCompleted { transfer_id, .. } => settle(state, *transfer_id),
        AccountEvent::AccountFrozen { .. } => state.status = Some(AccountStatus::Frozen),
        AccountEvent::AccountUnfrozen { .. } => state.status = Some(AccountStatus::Active),
        AccountEvent::AccountClosed { .. } => state.status = Some(AccountStatus::Closed),
        AccountEvent::OverdraftLimitChanged { overdraft_limit } => {
            state.overdraft_limit = *overdraft_limit;
        }
        // personal data is the read side's: the rules never look at it
        AccountEvent::HolderChanged { .. } => {}
    }
    state.version = state.version.saturating_add(1);
}

/// The transfer leaves the account's transfers in flight.
fn settle(state: &mut Account, transfer_id: Uuid) {
    if let Some(transfers) = state.transfers.as_deref_mut() {
        transfers.in_flight.retain(|(id, _)| *id != transfer_id);
    }
}

fn note_credit(transfers: &mut Transfers, origin: &DebitOrigin) {
    let at = origin.at.timestamp_micros();
    match transfers
        .credited
        .iter_mut()
        .find(|(partition, _)| *partition == origin.partition)
    {
        Some((_, latest)) => *latest = (*latest).max(at),
        None => transfers.credited.push((origin.partition, at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_compact() {
        assert!(
            std::mem::size_of::<Account>() <= 80,
            "{}",
            std::mem::size_of::<Account>()
        );
    }

    #[test]
    fn default_is_not_opened() {
        let account = Account::default();
        assert!(!account.is_open());
        assert_eq!(account.status(), None);
        assert_eq!(account.owner_id(), None);
        assert_eq!(account.currency(), None);
        assert_eq!((account.balance(), account.version()), (0, 0));
    }

    #[test]
    fn status_strings_match_serde() {
        for status in [
            AccountStatus::Active,
            AccountStatus::Frozen,
            AccountStatus::Closed,
        ] {
            assert_eq!(serde_json::to_value(status).expect("ser"), status.as_str());
        }
    }
}
