//! Money rules: amounts, balances and overdraft, transfers, currencies, overflow, text limits.

use logbook_events::{AccountEvent, Currency};
use uuid::Uuid;

use super::*;

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
    let in_flight = [opened(10), deposited(105, 105), debited(5, 100), frozen()];
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
            debit: Some(origin(0, 0)),
        }]);
    given(&in_flight)
        .when(refund(5))
        .then(&[AccountEvent::TransferRefunded {
            transfer_id: TRANSFER,
            amount: 5,
            balance_after: 105,
            reason: "target closed".into(),
        }]);
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
        debit: origin(0, 0),
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
    // deposits stop at MAX_BALANCE (balance + transfers in flight), far below i64::MAX
    given(&[opened(0), deposited(MAX_BALANCE, MAX_BALANCE)])
        .when(deposit(1))
        .then_error(DomainError::BalanceOverflow);
    // so money in flight always fits back in
    let in_flight = [
        opened(0),
        deposited(MAX_BALANCE, MAX_BALANCE),
        debited(2, MAX_BALANCE - 2),
    ];
    given(&in_flight)
        .when(deposit(1))
        .then_error(DomainError::BalanceOverflow);
    given(&in_flight)
        .when(refund(2))
        .then(&[AccountEvent::TransferRefunded {
            transfer_id: TRANSFER,
            amount: 2,
            balance_after: MAX_BALANCE,
            reason: "target closed".into(),
        }]);
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
fn the_overdraft_limit_changes_but_never_below_the_overdraft() {
    let overdrawn = [opened(100), withdrawn(60, -60)];
    given(&overdrawn)
        .when(AccountCommand::SetOverdraftLimit {
            overdraft_limit: 59,
        })
        .then_error(DomainError::LimitBelowOverdraft);
    let state = given(&overdrawn)
        .when(AccountCommand::SetOverdraftLimit {
            overdraft_limit: 60,
        })
        .then(&[AccountEvent::OverdraftLimitChanged {
            overdraft_limit: 60,
        }]);
    assert_eq!(state.overdraft_limit(), 60);
    given(&[opened(0)])
        .when(AccountCommand::SetOverdraftLimit {
            overdraft_limit: MAX_AMOUNT + 1,
        })
        .then_error(DomainError::InvalidOverdraftLimit);
    given(&[opened(0), closed()])
        .when(AccountCommand::SetOverdraftLimit { overdraft_limit: 5 })
        .then_error(DomainError::AccountClosed);
}

fn withdrawn(amount: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::FundsWithdrawn {
        amount,
        balance_after,
        reference: None,
    }
}
