//! Unit tests of the ledger fold: rows, replays, model violations, transfer legs.

use std::collections::HashMap;

use logbook_events::AccountEvent;
use uuid::Uuid;

use super::fold::{fold, touched_accounts};
use super::rows::{AccountRow, LineKind};
use crate::test_support::*;

/// An open EUR account's row of owner "owner" at `version` with `balance`.
pub(super) fn account_row_of(id: Uuid, version: i64, balance: i64) -> AccountRow {
    AccountRow {
        account_id: id,
        owner_id: "owner".into(),
        currency: "EUR".into(),
        balance,
        overdraft_limit: 0,
        status: "active".into(),
        version,
        opened_at: at(1),
        updated_at: at(version),
        holder: None,
    }
}

fn account_row(version: i64, balance: i64) -> AccountRow {
    account_row_of(ACCOUNT, version, balance)
}

fn prior(version: i64, balance: i64) -> HashMap<Uuid, AccountRow> {
    HashMap::from([(ACCOUNT, account_row(version, balance))])
}

#[test]
fn folds_an_account_and_its_lines() {
    let mut slices = vec![slice_of(
        0,
        vec![
            envelope(ACCOUNT, 1, opened("owner")),
            envelope(ACCOUNT, 2, deposited(500, 500)),
            envelope(ACCOUNT, 3, withdrawn(200, 300)),
            envelope(
                ACCOUNT,
                4,
                AccountEvent::AccountFrozen {
                    reason: Some("kyc".into()),
                },
            ),
        ],
    )];
    let rows = fold(HashMap::new(), &mut slices);
    assert_eq!((rows.applied, rows.duplicates), (4, 0));
    assert_eq!(rows.accounts.len(), 1);
    let account = &rows.accounts[0];
    assert_eq!((account.balance, account.version), (300, 4));
    assert_eq!(account.status, "frozen");
    assert_eq!(account.opened_at, at(1));
    assert_eq!(account.updated_at, at(4));
    let lines: Vec<(LineKind, i64, i64)> = rows
        .lines
        .iter()
        .map(|l| (l.kind, l.amount, l.balance_after))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LineKind::Deposit, 500, 500),
            (LineKind::Withdrawal, -200, 300)
        ]
    );
    assert_eq!(rows.lines[1].reference.as_deref(), Some("atm"));
    assert!(slices[0].poison.is_none());
}

#[test]
fn a_replay_changes_nothing() {
    let events = vec![
        envelope(ACCOUNT, 1, opened("owner")),
        envelope(ACCOUNT, 2, deposited(500, 500)),
        envelope(ACCOUNT, 3, deposited(1, 501)),
    ];
    let mut slices = vec![slice_of(0, events)];
    let rows = fold(prior(2, 500), &mut slices);
    assert_eq!((rows.applied, rows.duplicates), (1, 2));
    assert_eq!(rows.lines.len(), 1);
    assert_eq!(rows.accounts[0].balance, 501);

    let mut again = vec![slice_of(0, vec![envelope(ACCOUNT, 2, deposited(500, 500))])];
    let rows = fold(prior(3, 501), &mut again);
    assert!(rows.accounts.is_empty() && rows.lines.is_empty());
    assert_eq!(rows.duplicates, 1);
}

#[test]
fn a_sequence_gap_poisons_the_partition_at_that_event() {
    let events = vec![
        envelope(ACCOUNT, 3, deposited(1, 501)),
        envelope(ACCOUNT, 5, deposited(1, 502)),
        envelope(ACCOUNT, 6, deposited(1, 503)),
    ];
    let mut slices = vec![slice_of(0, events)];
    let rows = fold(prior(2, 500), &mut slices);
    assert_eq!(rows.applied, 1);
    assert_eq!(rows.accounts[0].version, 3);
    let poison = slices[0].poison.as_ref().expect("poisoned");
    assert_eq!(poison.offset, 1);
    assert!(poison.reason.contains("sequence gap"), "{}", poison.reason);
    assert_eq!(slices[0].to, 1);
    assert_eq!(slices[0].events.len(), 1);
}

#[test]
fn other_partitions_go_on_when_one_is_poisoned() {
    let other = Uuid::from_u128(0xB);
    let mut slices = vec![
        slice_of(0, vec![envelope(ACCOUNT, 1, deposited(1, 1))]),
        slice_of(1, vec![envelope(other, 1, opened("x"))]),
    ];
    let rows = fold(HashMap::new(), &mut slices);
    let reason = &slices[0].poison.as_ref().expect("poisoned").reason;
    assert!(reason.contains("before AccountOpened"), "{reason}");
    assert!(slices[1].poison.is_none());
    assert_eq!(rows.accounts.len(), 1);
    assert_eq!(rows.accounts[0].account_id, other);
}

#[test]
fn balances_must_add_up() {
    let mut slices = vec![slice_of(0, vec![envelope(ACCOUNT, 3, deposited(10, 999))])];
    fold(prior(2, 500), &mut slices);
    let reason = &slices[0].poison.as_ref().expect("poisoned").reason;
    assert!(
        reason.contains("does not give balance_after 999"),
        "{reason}"
    );

    let mut negative = vec![slice_of(0, vec![envelope(ACCOUNT, 3, withdrawn(-5, 505))])];
    fold(prior(2, 500), &mut negative);
    assert!(
        negative[0].poison.is_some(),
        "a negative amount is not a withdrawal"
    );
}

#[test]
fn undecodable_data_and_foreign_aggregates() {
    let mut unknown = envelope(ACCOUNT, 3, deposited(1, 501));
    unknown.event_type = "FundsTeleported".into();
    let mut foreign = envelope(Uuid::from_u128(0xC), 1, opened("x"));
    foreign.aggregate_type = "saga".into();
    let mut slices = vec![slice_of(0, vec![foreign, unknown])];
    let rows = fold(prior(2, 500), &mut slices);
    assert_eq!(rows.applied, 0);
    let poison = slices[0].poison.as_ref().expect("poisoned");
    assert_eq!(
        poison.offset, 1,
        "the foreign aggregate is skipped, not poison"
    );
    assert!(
        poison.reason.contains("FundsTeleported"),
        "{}",
        poison.reason
    );
}

fn debited(transfer: Uuid, to: Uuid, currency: &str) -> AccountEvent {
    AccountEvent::TransferDebited {
        transfer_id: transfer,
        to_account_id: to,
        amount: 100,
        currency: logbook_events::Currency::parse(currency).expect("currency"),
        balance_after: 400,
        reference: Some("rent".into()),
    }
}

#[test]
fn transfer_legs_merge_in_any_order() {
    let transfer = Uuid::from_u128(0x7);
    let to = Uuid::from_u128(0xB);
    let credited = AccountEvent::TransferCredited {
        transfer_id: transfer,
        from_account_id: ACCOUNT,
        amount: 100,
        balance_after: 100,
        reference: None,
        debit: None,
    };
    let mut slices = vec![
        slice_of(
            1,
            vec![envelope(to, 1, opened("b")), envelope(to, 2, credited)],
        ),
        slice_of(0, vec![envelope(ACCOUNT, 3, debited(transfer, to, "EUR"))]),
    ];
    let rows = fold(prior(2, 500), &mut slices);
    assert_eq!(rows.transfers.len(), 1);
    let row = &rows.transfers[0];
    assert_eq!(row.status(), "completed");
    assert_eq!(
        (row.from_account_id, row.to_account_id),
        (Some(ACCOUNT), Some(to))
    );
    assert_eq!(row.currency.as_deref(), Some("EUR"));
    assert_eq!(row.reference.as_deref(), Some("rent"));
    assert_eq!(
        (row.debited_at, row.credited_at),
        (Some(at(3)), Some(at(2)))
    );
    let kinds: Vec<LineKind> = rows.lines.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        vec![LineKind::TransferCredit, LineKind::TransferDebit]
    );
    assert_eq!(rows.lines[1].counterparty_id, Some(to));
}

#[test]
fn a_refund_fails_the_transfer() {
    let transfer = Uuid::from_u128(0x8);
    let refunded = AccountEvent::TransferRefunded {
        transfer_id: transfer,
        amount: 100,
        balance_after: 500,
        reason: "account closed".into(),
    };
    let events = vec![
        envelope(ACCOUNT, 3, debited(transfer, Uuid::from_u128(0xB), "EUR")),
        envelope(ACCOUNT, 4, refunded),
    ];
    let mut slices = vec![slice_of(0, events)];
    let rows = fold(prior(2, 500), &mut slices);
    let row = &rows.transfers[0];
    assert_eq!(row.status(), "failed");
    assert_eq!(row.reason.as_deref(), Some("account closed"));
    assert_eq!(rows.accounts[0].balance, 500);
}

#[test]
fn a_debit_in_another_currency_is_poison() {
    let events = vec![envelope(
        ACCOUNT,
        3,
        debited(Uuid::from_u128(0x9), Uuid::from_u128(0xB), "USD"),
    )];
    let mut slices = vec![slice_of(0, events)];
    let rows = fold(prior(2, 500), &mut slices);
    assert!(rows.transfers.is_empty());
    let reason = &slices[0].poison.as_ref().expect("poisoned").reason;
    assert!(reason.contains("USD"), "{reason}");
}

#[test]
fn touched_accounts_are_unique_and_sorted() {
    let slices = vec![
        slice_of(0, vec![deposit_envelope(1), deposit_envelope(2)]),
        slice_of(1, vec![envelope(Uuid::from_u128(1), 1, opened("x"))]),
    ];
    assert_eq!(touched_accounts(&slices), vec![Uuid::from_u128(1), ACCOUNT]);
}
