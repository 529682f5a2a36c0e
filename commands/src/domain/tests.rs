//! Rule-by-rule tests of the aggregate in given-events / when-command / then style.

use logbook_events::{AccountEvent, Currency};
use uuid::Uuid;

use super::*;

const ME: Uuid = Uuid::from_u128(0xA);
const OTHER: Uuid = Uuid::from_u128(0xB);
const TRANSFER: Uuid = Uuid::from_u128(0x7);

fn eur() -> Currency {
    Currency::parse("EUR").expect("valid")
}

/// Folds `history` into a fresh account `ME` and decides `command` against it.
fn given(history: &[AccountEvent]) -> Given {
    let mut state = Account::new(ME);
    for event in history {
        apply(&mut state, event);
    }
    Given(state)
}

struct Given(Account);

impl Given {
    fn when(self, command: AccountCommand) -> Then {
        let result = decide(&self.0, &command);
        Then(self.0, result)
    }
}

struct Then(Account, Result<Vec<AccountEvent>, DomainError>);

impl Then {
    fn then(self, expected: &[AccountEvent]) -> Account {
        let events = self.1.expect("command accepted");
        assert_eq!(events, expected);
        let mut state = self.0;
        for event in &events {
            apply(&mut state, event);
        }
        state
    }

    fn then_error(self, expected: DomainError) {
        assert_eq!(self.1, Err(expected));
    }
}

fn opened(overdraft_limit: i64) -> AccountEvent {
    AccountEvent::AccountOpened {
        owner_id: "owner-1".into(),
        currency: eur(),
        overdraft_limit,
    }
}

fn deposited(amount: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::FundsDeposited {
        amount,
        balance_after,
        reference: None,
    }
}

fn frozen() -> AccountEvent {
    AccountEvent::AccountFrozen { reason: None }
}

fn closed() -> AccountEvent {
    AccountEvent::AccountClosed { reason: None }
}

fn deposit(amount: i64) -> AccountCommand {
    AccountCommand::Deposit {
        amount,
        reference: None,
    }
}

fn withdraw(amount: i64) -> AccountCommand {
    AccountCommand::Withdraw {
        amount,
        reference: None,
    }
}

fn debit_for_transfer(amount: i64) -> AccountCommand {
    AccountCommand::DebitForTransfer {
        transfer_id: TRANSFER,
        to_account_id: OTHER,
        amount,
        reference: None,
    }
}

fn credit_for_transfer(amount: i64, currency: Currency) -> AccountCommand {
    AccountCommand::CreditForTransfer {
        transfer_id: TRANSFER,
        from_account_id: OTHER,
        amount,
        currency,
        reference: None,
    }
}

fn refund(amount: i64) -> AccountCommand {
    AccountCommand::RefundTransfer {
        transfer_id: TRANSFER,
        amount,
        reason: "target closed".into(),
    }
}

fn every_command() -> Vec<AccountCommand> {
    vec![
        AccountCommand::Open {
            owner_id: "o".into(),
            currency: eur(),
            overdraft_limit: 0,
        },
        deposit(1),
        withdraw(1),
        debit_for_transfer(1),
        credit_for_transfer(1, eur()),
        refund(1),
        AccountCommand::Freeze { reason: None },
        AccountCommand::Unfreeze { reason: None },
        AccountCommand::Close { reason: None },
    ]
}

#[test]
fn open_creates_an_active_account() {
    let state = given(&[])
        .when(AccountCommand::Open {
            owner_id: "owner-1".into(),
            currency: eur(),
            overdraft_limit: 50,
        })
        .then(&[opened(50)]);
    assert!(state.is_open());
    assert_eq!(state.status(), Some(AccountStatus::Active));
    assert_eq!(state.owner_id(), Some("owner-1"));
    assert_eq!(state.currency(), Some(eur()));
    assert_eq!(
        (state.balance(), state.overdraft_limit(), state.version()),
        (0, 50, 1)
    );
}

#[test]
fn open_on_an_existing_account_conflicts() {
    given(&[opened(0)])
        .when(AccountCommand::Open {
            owner_id: "x".into(),
            currency: eur(),
            overdraft_limit: 0,
        })
        .then_error(DomainError::AccountExists);
}

#[test]
fn open_checks_owner_id_and_overdraft_limit() {
    let open = |owner_id: String, overdraft_limit| AccountCommand::Open {
        owner_id,
        currency: eur(),
        overdraft_limit,
    };
    for bad in [String::new(), "é".repeat(129)] {
        given(&[])
            .when(open(bad, 0))
            .then_error(DomainError::InvalidField {
                field: "owner_id",
                problem: "must be 1 to 128 characters long",
            });
    }
    given(&[])
        .when(open("é".repeat(128), MAX_AMOUNT))
        .then(&[AccountEvent::AccountOpened {
            owner_id: "é".repeat(128),
            currency: eur(),
            overdraft_limit: MAX_AMOUNT,
        }]);
    for bad in [-1, MAX_AMOUNT + 1, i64::MIN] {
        given(&[])
            .when(open("o".into(), bad))
            .then_error(DomainError::InvalidOverdraftLimit);
    }
}

#[test]
fn every_command_but_open_needs_an_opened_account() {
    for command in every_command().into_iter().skip(1) {
        given(&[])
            .when(command)
            .then_error(DomainError::AccountNotFound);
    }
}

#[test]
fn closed_accounts_take_nothing() {
    for command in every_command().into_iter().skip(1) {
        let expected = DomainError::AccountClosed;
        given(&[opened(0), closed()])
            .when(command)
            .then_error(expected);
    }
    given(&[opened(0), closed()])
        .when(every_command().remove(0))
        .then_error(DomainError::AccountExists);
}

#[test]
fn amounts_must_be_positive_and_bounded() {
    for amount in [0, -1, MAX_AMOUNT + 1, i64::MIN, i64::MAX] {
        for command in [
            deposit(amount),
            withdraw(amount),
            debit_for_transfer(amount),
            refund(amount),
        ] {
            given(&[opened(0)])
                .when(command)
                .then_error(DomainError::InvalidAmount);
        }
        given(&[opened(0)])
            .when(credit_for_transfer(amount, eur()))
            .then_error(DomainError::InvalidAmount);
    }
    given(&[opened(0)])
        .when(deposit(MAX_AMOUNT))
        .then(&[deposited(MAX_AMOUNT, MAX_AMOUNT)]);
}

#[test]
fn deposit_and_withdraw_carry_balance_after() {
    let state = given(&[opened(0), deposited(100, 100)])
        .when(AccountCommand::Withdraw {
            amount: 30,
            reference: Some("atm".into()),
        })
        .then(&[AccountEvent::FundsWithdrawn {
            amount: 30,
            balance_after: 70,
            reference: Some("atm".into()),
        }]);
    assert_eq!((state.balance(), state.version()), (70, 3));
}

#[test]
fn debits_stop_at_the_overdraft_limit() {
    given(&[opened(0), deposited(100, 100)])
        .when(withdraw(101))
        .then_error(DomainError::InsufficientFunds);
    given(&[opened(0), deposited(100, 100)])
        .when(withdraw(100))
        .then(&[AccountEvent::FundsWithdrawn {
            amount: 100,
            balance_after: 0,
            reference: None,
        }]);
    given(&[opened(50), deposited(100, 100)])
        .when(debit_for_transfer(151))
        .then_error(DomainError::InsufficientFunds);
    given(&[opened(50), deposited(100, 100)])
        .when(debit_for_transfer(150))
        .then(&[AccountEvent::TransferDebited {
            transfer_id: TRANSFER,
            to_account_id: OTHER,
            amount: 150,
            currency: eur(),
            balance_after: -50,
            reference: None,
        }]);
}

#[test]
fn frozen_accounts_take_credits_but_no_debits() {
    let history = [opened(10), deposited(100, 100), frozen()];
    given(&history)
        .when(withdraw(1))
        .then_error(DomainError::AccountFrozen);
    given(&history)
        .when(debit_for_transfer(1))
        .then_error(DomainError::AccountFrozen);
    given(&history).when(deposit(5)).then(&[deposited(5, 105)]);
    given(&history)
        .when(credit_for_transfer(5, eur()))
        .then(&[AccountEvent::TransferCredited {
            transfer_id: TRANSFER,
            from_account_id: OTHER,
            amount: 5,
            balance_after: 105,
            reference: None,
        }]);
    given(&history)
        .when(refund(5))
        .then(&[AccountEvent::TransferRefunded {
            transfer_id: TRANSFER,
            amount: 5,
            balance_after: 105,
            reason: "target closed".into(),
        }]);
}

#[test]
fn freeze_and_unfreeze_need_the_right_status() {
    let state = given(&[opened(0)])
        .when(AccountCommand::Freeze {
            reason: Some("fraud check".into()),
        })
        .then(&[AccountEvent::AccountFrozen {
            reason: Some("fraud check".into()),
        }]);
    assert_eq!(state.status(), Some(AccountStatus::Frozen));
    given(&[opened(0), frozen()])
        .when(AccountCommand::Freeze { reason: None })
        .then_error(DomainError::AlreadyFrozen);
    given(&[opened(0)])
        .when(AccountCommand::Unfreeze { reason: None })
        .then_error(DomainError::NotFrozen);
    let state = given(&[opened(0), frozen()])
        .when(AccountCommand::Unfreeze { reason: None })
        .then(&[AccountEvent::AccountUnfrozen { reason: None }]);
    assert_eq!(state.status(), Some(AccountStatus::Active));
}

#[test]
fn close_only_at_zero_balance() {
    given(&[opened(0), deposited(1, 1)])
        .when(AccountCommand::Close { reason: None })
        .then_error(DomainError::BalanceNotZero);
    let overdrawn = AccountEvent::FundsWithdrawn {
        amount: 5,
        balance_after: -5,
        reference: None,
    };
    given(&[opened(10), overdrawn])
        .when(AccountCommand::Close { reason: None })
        .then_error(DomainError::BalanceNotZero);
    let state = given(&[opened(0)])
        .when(AccountCommand::Close { reason: None })
        .then(&[closed()]);
    assert_eq!(state.status(), Some(AccountStatus::Closed));
    given(&[opened(0), frozen()])
        .when(AccountCommand::Close { reason: None })
        .then(&[closed()]);
}

#[test]
fn transfers_need_two_different_accounts() {
    let to_self = AccountCommand::DebitForTransfer {
        transfer_id: TRANSFER,
        to_account_id: ME,
        amount: 1,
        reference: None,
    };
    given(&[opened(0), deposited(5, 5)])
        .when(to_self)
        .then_error(DomainError::SameAccount {
            field: "to_account_id",
        });
    let from_self = AccountCommand::CreditForTransfer {
        transfer_id: TRANSFER,
        from_account_id: ME,
        amount: 1,
        currency: eur(),
        reference: None,
    };
    given(&[opened(0)])
        .when(from_self)
        .then_error(DomainError::SameAccount {
            field: "from_account_id",
        });
    let nil_target = AccountCommand::DebitForTransfer {
        transfer_id: TRANSFER,
        to_account_id: Uuid::nil(),
        amount: 1,
        reference: None,
    };
    given(&[opened(0), deposited(5, 5)])
        .when(nil_target)
        .then_error(DomainError::InvalidField {
            field: "to_account_id",
            problem: "must not be the nil UUID",
        });
}

#[test]
fn credit_in_another_currency_conflicts() {
    let usd = Currency::parse("USD").expect("valid");
    given(&[opened(0)])
        .when(credit_for_transfer(5, usd))
        .then_error(DomainError::CurrencyMismatch {
            expected: eur(),
            found: usd,
        });
    assert_eq!(
        DomainError::CurrencyMismatch {
            expected: eur(),
            found: usd
        }
        .code(),
        "currency_mismatch"
    );
}

#[test]
fn balance_arithmetic_is_checked() {
    let near_max = deposited(1, i64::MAX - 1);
    given(&[opened(0), near_max.clone()])
        .when(deposit(2))
        .then_error(DomainError::BalanceOverflow);
    given(&[opened(0), near_max.clone()])
        .when(credit_for_transfer(2, eur()))
        .then_error(DomainError::BalanceOverflow);
    given(&[opened(0), near_max])
        .when(refund(2))
        .then_error(DomainError::BalanceOverflow);
    let near_min = AccountEvent::FundsWithdrawn {
        amount: 1,
        balance_after: i64::MIN + 1,
        reference: None,
    };
    given(&[opened(MAX_AMOUNT), near_min])
        .when(withdraw(2))
        .then_error(DomainError::BalanceOverflow);
}

#[test]
fn string_limits_are_enforced() {
    let long_ref = Some("r".repeat(141));
    given(&[opened(0)])
        .when(AccountCommand::Deposit {
            amount: 1,
            reference: long_ref,
        })
        .then_error(DomainError::InvalidField {
            field: "reference",
            problem: "must be at most 140 characters long",
        });
    let ok_ref = Some("€".repeat(140));
    given(&[opened(0)])
        .when(AccountCommand::Deposit {
            amount: 1,
            reference: ok_ref.clone(),
        })
        .then(&[AccountEvent::FundsDeposited {
            amount: 1,
            balance_after: 1,
            reference: ok_ref,
        }]);
    given(&[opened(0)])
        .when(AccountCommand::Freeze {
            reason: Some("r".repeat(501)),
        })
        .then_error(DomainError::InvalidField {
            field: "reason",
            problem: "must be at most 500 characters long",
        });
    for reason in [String::new(), "r".repeat(501)] {
        given(&[opened(0)])
            .when(AccountCommand::RefundTransfer {
                transfer_id: TRANSFER,
                amount: 1,
                reason,
            })
            .then_error(DomainError::InvalidField {
                field: "reason",
                problem: "must be 1 to 500 characters long",
            });
    }
}

#[test]
fn invalid_input_is_reported_before_state_problems() {
    given(&[])
        .when(deposit(0))
        .then_error(DomainError::InvalidAmount);
    given(&[opened(0), closed()])
        .when(withdraw(-3))
        .then_error(DomainError::InvalidAmount);
}

#[test]
fn every_error_has_a_stable_code_and_kind() {
    let cases = [
        (
            DomainError::AccountNotFound,
            "account_not_found",
            RejectionKind::NotFound,
        ),
        (
            DomainError::AccountExists,
            "account_exists",
            RejectionKind::Conflict,
        ),
        (
            DomainError::InsufficientFunds,
            "insufficient_funds",
            RejectionKind::Conflict,
        ),
        (
            DomainError::AccountFrozen,
            "account_frozen",
            RejectionKind::Conflict,
        ),
        (
            DomainError::AccountClosed,
            "account_closed",
            RejectionKind::Conflict,
        ),
        (
            DomainError::BalanceNotZero,
            "balance_not_zero",
            RejectionKind::Conflict,
        ),
        (
            DomainError::AlreadyFrozen,
            "already_frozen",
            RejectionKind::Conflict,
        ),
        (
            DomainError::NotFrozen,
            "not_frozen",
            RejectionKind::Conflict,
        ),
        (
            DomainError::BalanceOverflow,
            "balance_overflow",
            RejectionKind::Conflict,
        ),
        (
            DomainError::InvalidAmount,
            "invalid_amount",
            RejectionKind::Invalid,
        ),
        (
            DomainError::InvalidOverdraftLimit,
            "invalid_overdraft_limit",
            RejectionKind::Invalid,
        ),
        (
            DomainError::InvalidField {
                field: "f",
                problem: "p",
            },
            "invalid_field",
            RejectionKind::Invalid,
        ),
        (
            DomainError::SameAccount {
                field: "to_account_id",
            },
            "same_account",
            RejectionKind::Invalid,
        ),
    ];
    for (error, code, kind) in cases {
        assert_eq!((error.code(), error.kind()), (code, kind), "{error:?}");
    }
}
