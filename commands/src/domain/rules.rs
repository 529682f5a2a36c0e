//! The business rules: [`decide`] turns a command and the current state into the
//! events to append, or a [`DomainError`]. Pure: no I/O, no clock, no randomness.
//!
//! Order of checks: the command's own fields (invalid), then existence (not found /
//! exists), then the status (closed, frozen), then money (currency, funds,
//! overflow). Every event that moves money carries `balance_after`.

use logbook_events::AccountEvent;

use super::command::AccountCommand;
use super::error::DomainError;
use super::state::{Account, AccountStatus};

/// Decides a command against the account state. A rejection writes no event; an
/// acceptance returns at least one event, to be applied in order.
pub fn decide(state: &Account, command: &AccountCommand) -> Result<Vec<AccountEvent>, DomainError> {
    command.validate(state.id())?;
    let event = match command {
        AccountCommand::Open {
            owner_id,
            currency,
            overdraft_limit,
        } => {
            if state.is_open() {
                return Err(DomainError::AccountExists);
            }
            AccountEvent::AccountOpened {
                owner_id: owner_id.clone(),
                currency: *currency,
                overdraft_limit: *overdraft_limit,
            }
        }
        AccountCommand::Deposit { amount, reference } => AccountEvent::FundsDeposited {
            amount: *amount,
            balance_after: credit(state, *amount)?,
            reference: reference.clone(),
        },
        AccountCommand::Withdraw { amount, reference } => AccountEvent::FundsWithdrawn {
            amount: *amount,
            balance_after: debit(state, *amount)?,
            reference: reference.clone(),
        },
        AccountCommand::DebitForTransfer {
            transfer_id,
            to_account_id,
            amount,
            reference,
        } => {
            let balance_after = debit(state, *amount)?;
            AccountEvent::TransferDebited {
                transfer_id: *transfer_id,
                to_account_id: *to_account_id,
                amount: *amount,
                currency: state.currency().ok_or(DomainError::AccountNotFound)?,
                balance_after,
                reference: reference.clone(),
            }
        }
        AccountCommand::CreditForTransfer {
            transfer_id,
            from_account_id,
            amount,
            currency,
            reference,
        } => {
            usable(state)?;
            if let Some(expected) = state.currency().filter(|c| c != currency) {
                return Err(DomainError::CurrencyMismatch {
                    expected,
                    found: *currency,
                });
            }
            AccountEvent::TransferCredited {
                transfer_id: *transfer_id,
                from_account_id: *from_account_id,
                amount: *amount,
                balance_after: credit(state, *amount)?,
                reference: reference.clone(),
            }
        }
        AccountCommand::RefundTransfer {
            transfer_id,
            amount,
            reason,
        } => AccountEvent::TransferRefunded {
            transfer_id: *transfer_id,
            amount: *amount,
            balance_after: credit(state, *amount)?,
            reason: reason.clone(),
        },
        AccountCommand::Freeze { reason } => match usable(state)? {
            AccountStatus::Frozen => return Err(DomainError::AlreadyFrozen),
            _ => AccountEvent::AccountFrozen {
                reason: reason.clone(),
            },
        },
        AccountCommand::Unfreeze { reason } => match usable(state)? {
            AccountStatus::Frozen => AccountEvent::AccountUnfrozen {
                reason: reason.clone(),
            },
            _ => return Err(DomainError::NotFrozen),
        },
        AccountCommand::Close { reason } => {
            usable(state)?;
            if state.balance() != 0 {
                return Err(DomainError::BalanceNotZero);
            }
            AccountEvent::AccountClosed {
                reason: reason.clone(),
            }
        }
    };
    Ok(vec![event])
}

/// The status of an opened account that is not closed.
fn usable(state: &Account) -> Result<AccountStatus, DomainError> {
    match state.status() {
        None => Err(DomainError::AccountNotFound),
        Some(AccountStatus::Closed) => Err(DomainError::AccountClosed),
        Some(status) => Ok(status),
    }
}

/// The balance after adding `amount`; frozen accounts take credits.
fn credit(state: &Account, amount: i64) -> Result<i64, DomainError> {
    usable(state)?;
    state
        .balance()
        .checked_add(amount)
        .ok_or(DomainError::BalanceOverflow)
}

/// The balance after taking `amount`; needs an active account and enough funds
/// within the overdraft limit.
fn debit(state: &Account, amount: i64) -> Result<i64, DomainError> {
    if usable(state)? == AccountStatus::Frozen {
        return Err(DomainError::AccountFrozen);
    }
    let after = state
        .balance()
        .checked_sub(amount)
        .ok_or(DomainError::BalanceOverflow)?;
    // overdraft_limit is 0..=MAX_AMOUNT, so negating it cannot overflow.
    if after < -state.overdraft_limit() {
        return Err(DomainError::InsufficientFunds);
    }
    Ok(after)
}
