//! The business rules: [`decide`] turns a command and the current state into the
//! events to append, or a [`DomainError`]. Pure: no I/O, no clock, no randomness.
//!
//! Order of checks: the command's own fields (invalid), then existence (not found /
//! exists), then the status (closed, frozen), then money (currency, funds,
//! overflow). Every event that moves money carries `balance_after`.
//!
//! Transfers: a debit puts the transfer in the source's transfers in flight; the saga's
//! completion or refund takes it out again. A refund of a transfer in flight always applies
//! (also on a frozen account: an account with transfers in flight cannot be closed, and
//! `balance + transfers in flight` never exceeds [`MAX_BALANCE`], so giving the money back cannot
//! overflow). A saga step whose effect is already in the state (a credit for a debit already
//! credited here, a refund or completion of a transfer no longer in flight) is accepted with no
//! event: the caller answers it as a duplicate.

use logbook_events::AccountEvent;

use super::command::AccountCommand;
use super::error::DomainError;
use super::state::{Account, AccountStatus};

/// Highest `balance + transfers in flight` an account may reach by deposits and credits
/// (10^18 minor units, far below `i64::MAX`, so refunds always fit).
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000_000;
/// Most outgoing transfers one account may have in flight.
pub const MAX_TRANSFERS_IN_FLIGHT: usize = 1000;

/// Decides a command against the account state. A rejection writes no event; an
/// acceptance returns the events to apply in order, none when the command is a saga step that
/// was applied already.
///
/// ```
/// use logbook_commands::domain::{Account, AccountCommand, apply, decide};
/// use logbook_events::{AccountEvent, Currency};
/// use uuid::Uuid;
///
/// let mut account = Account::new(Uuid::from_u128(1));
/// let open = AccountCommand::Open {
///     owner_id: "alice".into(),
///     currency: Currency::parse("EUR").unwrap(),
///     overdraft_limit: 0,
///     holder: None,
/// };
/// for event in decide(&account, &open).unwrap() {
///     apply(&mut account, &event);
/// }
/// let deposit = AccountCommand::Deposit { amount: 500, reference: None };
/// let events = decide(&account, &deposit).unwrap();
/// assert_eq!(
///     events,
///     [AccountEvent::FundsDeposited { amount: 500, balance_after: 500, reference: None }]
/// );
/// let withdraw = AccountCommand::Withdraw { amount: 501, reference: None };
/// apply(&mut account, &events[0]);
/// assert_eq!(decide(&account, &withdraw).unwrap_err().code(), "insufficient_funds");
/// ```
pub fn decide(state: &Account, command: &AccountCommand) -> Result<Vec<AccountEvent>, DomainError> {
    command.validate(state.id())?;
    let event = match command {
        AccountCommand::Open {
            owner_id,
            currency,
            overdraft_limit,
            holder,
        } => {
            if state.is_open() {
                return Err(DomainError::AccountExists);
            }
            AccountEvent::AccountOpened {
                owner_id: owner_id.clone(),
                currency: *currency,
                overdraft_limit: *overdraft_limit,
                holder: holder.clone(),
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
            if state.in_flight(*transfer_id).is_some() {
                return Err(DomainError::TransferIdReused);
            }
            if state.in_flight_count() >= MAX_TRANSFERS_IN_FLIGHT {
                return Err(DomainError::TooManyTransfersInFlight);
            }
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
            debit,
        } => {
            if state.was_credited(debit) {
                return Ok(Vec::new());
            }
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
                debit: Some(*debit),
            }
        }
        AccountCommand::RefundTransfer {
            transfer_id,
            amount,
            reason,
        } => match in_flight(state, *transfer_id, *amount)? {
            // completed or refunded already
            false => return Ok(Vec::new()),
            true => AccountEvent::TransferRefunded {
                transfer_id: *transfer_id,
                amount: *amount,
                // the debit took it out, so it fits (see the module docs)
                balance_after: state
                    .balance()
                    .checked_add(*amount)
                    .ok_or(DomainError::BalanceOverflow)?,
                reason: reason.clone(),
            },
        },
        AccountCommand::CompleteTransfer {
            transfer_id,
            to_account_id,
            amount,
        } => match in_flight(state, *transfer_id, *amount)? {
            false => return Ok(Vec::new()),
            true => AccountEvent::TransferCompleted {
                transfer_id: *transfer_id,
                to_account_id: *to_account_id,
                amount: *amount,
            },
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
        AccountCommand::SetOverdraftLimit { overdraft_limit } => {
            usable(state)?;
            // overdraft_limit is 0..=MAX_AMOUNT (validated), so negating it cannot overflow
            if state.balance() < -overdraft_limit {
                return Err(DomainError::LimitBelowOverdraft);
            }
            AccountEvent::OverdraftLimitChanged {
                overdraft_limit: *overdraft_limit,
            }
        }
        AccountCommand::ChangeHolder { holder } => {
            usable(state)?;
            AccountEvent::HolderChanged {
                holder: holder.clone(),
            }
        }
        AccountCommand::Close { reason } => {
            usable(state)?;
            if state.balance() != 0 {
                return Err(DomainError::BalanceNotZero);
            }
            if state.in_flight_count() > 0 {
                return Err(DomainError::TransferPending);
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

/// Whether `transfer_id` is in flight on the account (with this amount); false when it is not
/// (any more).
fn in_flight(state: &Account, transfer_id: uuid::Uuid, amount: i64) -> Result<bool, DomainError> {
    if !state.is_open() {
        return Err(DomainError::AccountNotFound);
    }
    match state.in_flight(transfer_id) {
        None => Ok(false),
        Some(debited) if debited == amount => Ok(true),
        Some(_) => Err(DomainError::TransferMismatch),
    }
}

/// The balance after adding `amount`; frozen accounts take credits. `balance + transfers in
/// flight` stays within [`MAX_BALANCE`].
fn credit(state: &Account, amount: i64) -> Result<i64, DomainError> {
    usable(state)?;
    let after = state
        .balance()
        .checked_add(amount)
        .ok_or(DomainError::BalanceOverflow)?;
    if after
        .checked_add(state.in_flight_total())
        .is_none_or(|total| total > MAX_BALANCE)
    {
        return Err(DomainError::BalanceOverflow);
    }
    Ok(after)
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
