//! Transfer steps: transfers in flight on the source, each step applied at most once, refunds
//! that cannot be refused.

use logbook_events::AccountEvent;

use super::*;

fn refunded(amount: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::TransferRefunded {
        transfer_id: TRANSFER,
        amount,
        balance_after,
        reason: "target closed".into(),
    }
}

fn completed(amount: i64) -> AccountEvent {
    AccountEvent::TransferCompleted {
        transfer_id: TRANSFER,
        to_account_id: OTHER,
        amount,
    }
}

#[test]
fn an_account_with_a_transfer_in_flight_cannot_be_closed() {
    let whole_balance_out = [opened(0), deposited(40, 40), debited(40, 0)];
    let close = AccountCommand::Close { reason: None };
    given(&whole_balance_out)
        .when(close.clone())
        .then_error(DomainError::TransferPending);
    assert_eq!(DomainError::TransferPending.code(), "transfer_pending");
    let mut settled = whole_balance_out.to_vec();
    settled.push(completed(40));
    given(&settled)
        .when(close)
        .then(&[AccountEvent::AccountClosed { reason: None }]);
}

#[test]
fn a_refund_in_flight_always_applies_once() {
    let frozen_after_debit = [opened(0), deposited(40, 40), debited(40, 0), frozen()];
    let state = given(&frozen_after_debit)
        .when(refund(40))
        .then(&[refunded(40, 40)]);
    assert_eq!(state.in_flight_count(), 0);
    let mut after = frozen_after_debit.to_vec();
    after.push(refunded(40, 40));
    given(&after).when(refund(40)).then_nothing();
    given(&after).when(complete(40)).then_nothing();
}

#[test]
fn a_completed_transfer_cannot_be_refunded() {
    let history = [opened(0), deposited(40, 40), debited(10, 30), completed(10)];
    given(&history).when(refund(10)).then_nothing();
    given(&history).when(complete(10)).then_nothing();
}

#[test]
fn a_step_that_does_not_match_the_transfer_is_refused() {
    let history = [opened(0), deposited(40, 40), debited(10, 30)];
    given(&history)
        .when(refund(11))
        .then_error(DomainError::TransferMismatch);
}

#[test]
fn a_transfer_id_in_flight_cannot_be_debited_again() {
    let history = [opened(0), deposited(40, 40), debited(10, 30)];
    given(&history)
        .when(debit_for_transfer(5))
        .then_error(DomainError::TransferIdReused);
}

#[test]
fn each_debit_is_credited_at_most_once_in_the_order_of_its_partition() {
    let credited = |at: i64, partition: i32, balance_after: i64| AccountEvent::TransferCredited {
        transfer_id: TRANSFER,
        from_account_id: OTHER,
        amount: 5,
        balance_after,
        reference: None,
        debit: Some(origin(partition, at)),
    };
    let history = [opened(0), credited(10, 1, 5)];
    // the same debit again, or an earlier one of the same partition: already handled
    given(&history)
        .when(credit_from(5, eur(), origin(1, 10)))
        .then_nothing();
    given(&history)
        .when(credit_from(5, eur(), origin(1, 9)))
        .then_nothing();
    // a later debit of that partition, or one of another partition: applied
    given(&history)
        .when(credit_from(5, eur(), origin(1, 11)))
        .then(&[credited(11, 1, 10)]);
    given(&history)
        .when(credit_from(5, eur(), origin(2, 1)))
        .then(&[credited(1, 2, 10)]);
}
