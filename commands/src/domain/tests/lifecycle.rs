//! Lifecycle rules: open, existence, freeze/unfreeze, close, error codes.

use logbook_events::AccountEvent;

use super::*;

#[test]
fn open_creates_an_active_account() {
    let state = given(&[])
        .when(AccountCommand::Open {
            owner_id: "owner-1".into(),
            currency: eur(),
            overdraft_limit: 50,
            holder: None,
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
            holder: None,
        })
        .then_error(DomainError::AccountExists);
}

#[test]
fn open_checks_owner_id_and_overdraft_limit() {
    let open = |owner_id: String, overdraft_limit| AccountCommand::Open {
        owner_id,
        currency: eur(),
        overdraft_limit,
        holder: None,
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
            holder: None,
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
        let then = given(&[opened(0), closed()]).when(command.clone());
        if matches!(
            command,
            AccountCommand::RefundTransfer { .. } | AccountCommand::CompleteTransfer { .. }
        ) {
            // a closed account has no transfer in flight: a late step changes nothing
            then.then_nothing();
        } else {
            then.then_error(DomainError::AccountClosed);
        }
    }
    given(&[opened(0), closed()])
        .when(every_command().remove(0))
        .then_error(DomainError::AccountExists);
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

fn sealed_holder(field: &str) -> logbook_events::SealedHolder {
    let mut holder = logbook_events::SealedHolder::default();
    let value = format!("enc1.{}.{}", Uuid::from_u128(1), "A".repeat(40));
    if let Some(slot) = holder.field_mut(field) {
        *slot = Some(value);
    }
    holder
}

#[test]
fn the_holder_travels_sealed_from_open_and_change_to_events() {
    let holder = sealed_holder("name");
    given(&[])
        .when(AccountCommand::Open {
            owner_id: "c-1".into(),
            currency: eur(),
            overdraft_limit: 0,
            holder: Some(holder.clone()),
        })
        .then(&[AccountEvent::AccountOpened {
            owner_id: "c-1".into(),
            currency: eur(),
            overdraft_limit: 0,
            holder: Some(holder),
        }]);
    let change = sealed_holder("email");
    given(&[opened(0), frozen()])
        .when(AccountCommand::ChangeHolder {
            holder: change.clone(),
        })
        .then(&[AccountEvent::HolderChanged { holder: change }]);
}

#[test]
fn a_holder_in_plain_text_or_on_a_closed_account_is_refused() {
    let plain = logbook_events::SealedHolder {
        name: Some("Ada Lovelace".into()),
        ..Default::default()
    };
    given(&[opened(0)])
        .when(AccountCommand::ChangeHolder { holder: plain })
        .then_error(DomainError::InvalidField {
            field: "holder/name",
            problem: "must be sealed by the gateway, never plain text",
        });
    given(&[opened(0)])
        .when(AccountCommand::ChangeHolder {
            holder: Default::default(),
        })
        .then_error(DomainError::InvalidField {
            field: "holder",
            problem: "must give at least one field",
        });
    given(&[opened(0), closed()])
        .when(AccountCommand::ChangeHolder {
            holder: sealed_holder("address"),
        })
        .then_error(DomainError::AccountClosed);
    given(&[])
        .when(AccountCommand::ChangeHolder {
            holder: sealed_holder("address"),
        })
        .then_error(DomainError::AccountNotFound);
}
