//! Rule-by-rule tests of the aggregate in given-events / when-command / then style:
//! the shared helpers and fixtures; the rules are in `lifecycle` and `money`.

use chrono::{DateTime, Utc};
use logbook_events::{AccountEvent, Currency, DebitOrigin};
use uuid::Uuid;

use super::*;

mod lifecycle;
mod money;
mod transfers;

pub(super) const ME: Uuid = Uuid::from_u128(0xA);
pub(super) const OTHER: Uuid = Uuid::from_u128(0xB);
pub(super) const TRANSFER: Uuid = Uuid::from_u128(0x7);

pub(super) fn eur() -> Currency {
    Currency::parse("EUR").expect("valid")
}

/// Folds `history` into a fresh account `ME` and decides `command` against it.
pub(super) fn given(history: &[AccountEvent]) -> Given {
    let mut state = Account::new(ME);
    for event in history {
        apply(&mut state, event);
    }
    Given(state)
}

pub(super) struct Given(Account);

impl Given {
    pub(super) fn when(self, command: AccountCommand) -> Then {
        let result = decide(&self.0, &command);
        Then(self.0, result)
    }
}

pub(super) struct Then(Account, Result<Vec<AccountEvent>, DomainError>);

impl Then {
    pub(super) fn then(self, expected: &[AccountEvent]) -> Account {
        let events = self.1.expect("command accepted");
        assert_eq!(events, expected);
        let mut state = self.0;
        for event in &events {
            apply(&mut state, event);
        }
        state
    }

    pub(super) fn then_error(self, expected: DomainError) {
        assert_eq!(self.1, Err(expected));
    }

    /// Accepted with nothing to write: the step was applied already.
    pub(super) fn then_nothing(self) {
        assert_eq!(self.1, Ok(Vec::new()));
    }
}

pub(super) fn opened(overdraft_limit: i64) -> AccountEvent {
    AccountEvent::AccountOpened {
        owner_id: "owner-1".into(),
        currency: eur(),
        overdraft_limit,
        holder: None,
    }
}

pub(super) fn deposited(amount: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::FundsDeposited {
        amount,
        balance_after,
        reference: None,
    }
}

pub(super) fn frozen() -> AccountEvent {
    AccountEvent::AccountFrozen { reason: None }
}

pub(super) fn closed() -> AccountEvent {
    AccountEvent::AccountClosed { reason: None }
}

pub(super) fn deposit(amount: i64) -> AccountCommand {
    AccountCommand::Deposit {
        amount,
        reference: None,
    }
}

pub(super) fn withdraw(amount: i64) -> AccountCommand {
    AccountCommand::Withdraw {
        amount,
        reference: None,
    }
}

pub(super) fn debit_for_transfer(amount: i64) -> AccountCommand {
    AccountCommand::DebitForTransfer {
        transfer_id: TRANSFER,
        to_account_id: OTHER,
        amount,
        reference: None,
    }
}

/// The origin of a debit on source partition `partition`, `seconds` after a fixed instant.
pub(super) fn origin(partition: i32, seconds: i64) -> DebitOrigin {
    let base: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000, 0).expect("instant");
    DebitOrigin {
        partition,
        at: base + chrono::Duration::seconds(seconds),
    }
}

pub(super) fn credit_for_transfer(amount: i64, currency: Currency) -> AccountCommand {
    credit_from(amount, currency, origin(0, 0))
}

pub(super) fn credit_from(amount: i64, currency: Currency, debit: DebitOrigin) -> AccountCommand {
    AccountCommand::CreditForTransfer {
        transfer_id: TRANSFER,
        from_account_id: OTHER,
        amount,
        currency,
        reference: None,
        debit,
    }
}

pub(super) fn debited(amount: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::TransferDebited {
        transfer_id: TRANSFER,
        to_account_id: OTHER,
        amount,
        currency: eur(),
        balance_after,
        reference: None,
    }
}

pub(super) fn complete(amount: i64) -> AccountCommand {
    AccountCommand::CompleteTransfer {
        transfer_id: TRANSFER,
        to_account_id: OTHER,
        amount,
    }
}

pub(super) fn refund(amount: i64) -> AccountCommand {
    AccountCommand::RefundTransfer {
        transfer_id: TRANSFER,
        amount,
        reason: "target closed".into(),
    }
}

pub(super) fn every_command() -> Vec<AccountCommand> {
    vec![
        AccountCommand::Open {
            owner_id: "o".into(),
            currency: eur(),
            overdraft_limit: 0,
            holder: None,
        },
        deposit(1),
        withdraw(1),
        debit_for_transfer(1),
        credit_for_transfer(1, eur()),
        refund(1),
        complete(1),
        AccountCommand::Freeze { reason: None },
        AccountCommand::Unfreeze { reason: None },
        AccountCommand::Close { reason: None },
        AccountCommand::SetOverdraftLimit { overdraft_limit: 0 },
        AccountCommand::ChangeHolder {
            holder: logbook_events::SealedHolder {
                name: Some(format!("enc1.{}.{}", Uuid::from_u128(1), "A".repeat(40))),
                ..Default::default()
            },
        },
    ]
}
