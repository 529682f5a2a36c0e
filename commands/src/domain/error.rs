//! Why the aggregate refused a command: [`DomainError`], its [`RejectionKind`] and
//! stable machine-readable codes.
//!
//! Codes are part of the API (`command-results` records, problem bodies): never
//! rename one. Display texts are for humans and carry no internals (no balances,
//! no limits of the account, no ids).

use logbook_events::Currency;
use serde::{Deserialize, Serialize};

use super::MAX_AMOUNT;

/// The class of a rejection; the HTTP layer maps it to 404, 409 and 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// The account does not exist.
    NotFound,
    /// The command is well formed but breaks a rule in the account's current state.
    Conflict,
    /// The command itself is malformed, whatever the state.
    Invalid,
}

impl RejectionKind {
    /// `not_found`, `conflict` or `invalid`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectionKind::NotFound => "not_found",
            RejectionKind::Conflict => "conflict",
            RejectionKind::Invalid => "invalid",
        }
    }
}

/// A command refused by [`decide`](super::decide). A refusal writes no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("account not found")]
    AccountNotFound,
    #[error("an account with this id already exists")]
    AccountExists,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("the account is frozen and takes no debits")]
    AccountFrozen,
    #[error("the account is closed")]
    AccountClosed,
    #[error("currency {found} does not match the account currency {expected}")]
    CurrencyMismatch {
        /// The account's currency.
        expected: Currency,
        /// The currency of the command.
        found: Currency,
    },
    #[error("the account can only be closed at a zero balance")]
    BalanceNotZero,
    #[error("the account is already frozen")]
    AlreadyFrozen,
    #[error("the account is not frozen")]
    NotFrozen,
    #[error("the resulting balance would be out of range")]
    BalanceOverflow,
    #[error("this transfer id is already in flight on the account")]
    TransferIdReused,
    #[error("the account has outgoing transfers in flight; retry once they are settled")]
    TransferPending,
    #[error("the account has too many outgoing transfers in flight")]
    TooManyTransfersInFlight,
    #[error("the step does not match the transfer in flight")]
    TransferMismatch,
    #[error("the account is overdrawn by more than the new limit")]
    LimitBelowOverdraft,
    #[error(
        "amount must be a whole number of minor units from 1 to {}",
        MAX_AMOUNT
    )]
    InvalidAmount,
    #[error(
        "overdraft_limit must be a whole number of minor units from 0 to {}",
        MAX_AMOUNT
    )]
    InvalidOverdraftLimit,
    #[error("{field} {problem}")]
    InvalidField {
        /// The offending field of the command, e.g. `reference`.
        field: &'static str,
        /// What is wrong, phrased to follow the field name.
        problem: &'static str,
    },
    #[error("a transfer needs two different accounts")]
    SameAccount {
        /// The field naming the other account (`to_account_id` or `from_account_id`).
        field: &'static str,
    },
}

impl DomainError {
    /// The class of the rejection.
    pub fn kind(&self) -> RejectionKind {
        match self {
            DomainError::AccountNotFound => RejectionKind::NotFound,
            DomainError::AccountExists
            | DomainError::InsufficientFunds
            | DomainError::AccountFrozen
            | DomainError::AccountClosed
            | DomainError::CurrencyMismatch { .. }
            | DomainError::BalanceNotZero
            | DomainError::AlreadyFrozen
            | DomainError::NotFrozen
            | DomainError::BalanceOverflow
            | DomainError::TransferIdReused
            | DomainError::TransferPending
            | DomainError::TooManyTransfersInFlight
            | DomainError::TransferMismatch
            | DomainError::LimitBelowOverdraft => RejectionKind::Conflict,
            DomainError::InvalidAmount
            | DomainError::InvalidOverdraftLimit
            | DomainError::InvalidField { .. }
            | DomainError::SameAccount { .. } => RejectionKind::Invalid,
        }
    }

    /// Stable snake_case code, e.g. `insufficient_funds`.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::AccountNotFound => "account_not_found",
            DomainError::AccountExists => "account_exists",
            DomainError::InsufficientFunds => "insufficient_funds",
            DomainError::AccountFrozen => "account_frozen",
            DomainError::AccountClosed => "account_closed",
            DomainError::CurrencyMismatch { .. } => "currency_mismatch",
            DomainError::BalanceNotZero => "balance_not_zero",
            DomainError::AlreadyFrozen => "already_frozen",
            DomainError::NotFrozen => "not_frozen",
            DomainError::BalanceOverflow => "balance_overflow",
            DomainError::TransferIdReused => "transfer_id_reused",
            DomainError::TransferPending => "transfer_pending",
            DomainError::TooManyTransfersInFlight => "too_many_transfers_in_flight",
            DomainError::TransferMismatch => "transfer_mismatch",
            DomainError::LimitBelowOverdraft => "limit_below_overdraft",
            DomainError::InvalidAmount => "invalid_amount",
            DomainError::InvalidOverdraftLimit => "invalid_overdraft_limit",
            DomainError::InvalidField { .. } => "invalid_field",
            DomainError::SameAccount { .. } => "same_account",
        }
    }

    /// For [`RejectionKind::Invalid`]: the command field at fault (for a JSON
    /// pointer in a problem body). `None` for other kinds.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DomainError::InvalidAmount => Some("amount"),
            DomainError::InvalidOverdraftLimit => Some("overdraft_limit"),
            DomainError::InvalidField { field, .. } | DomainError::SameAccount { field } => {
                Some(field)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_snake_case() {
        for kind in [
            RejectionKind::NotFound,
            RejectionKind::Conflict,
            RejectionKind::Invalid,
        ] {
            let json = serde_json::to_value(kind).expect("ser");
            assert_eq!(json, kind.as_str());
        }
    }

    #[test]
    fn invalid_errors_name_their_field_and_others_do_not() {
        let errors = [
            DomainError::AccountNotFound,
            DomainError::InsufficientFunds,
            DomainError::InvalidAmount,
            DomainError::InvalidOverdraftLimit,
            DomainError::SameAccount {
                field: "to_account_id",
            },
            DomainError::InvalidField {
                field: "reference",
                problem: "must be at most 140 characters long",
            },
        ];
        for error in errors {
            assert_eq!(
                error.field().is_some(),
                error.kind() == RejectionKind::Invalid,
                "{error:?}"
            );
            assert!(!error.to_string().is_empty());
        }
        assert_eq!(
            DomainError::InvalidAmount.to_string(),
            "amount must be a whole number of minor units from 1 to 1000000000000000"
        );
    }
}
