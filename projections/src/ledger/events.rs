//! What each account event means for the ledger rows: its status change, its ledger line,
//! its transfer leg, and the arithmetic check of a balance change (pure).

use logbook_events::{AccountEvent, RawEnvelope};

use super::rows::{AccountRow, LineKind, LineRow, TransferRow};

pub(super) fn new_status(event: &AccountEvent) -> Option<&'static str> {
    match event {
        AccountEvent::AccountFrozen { .. } => Some("frozen"),
        AccountEvent::AccountUnfrozen { .. } => Some("active"),
        AccountEvent::AccountClosed { .. } => Some("closed"),
        _ => None,
    }
}

/// Checks that a balance change adds up: previous balance ± amount = balance after.
pub(super) fn check_balance(
    account: &AccountRow,
    line: &LineRow,
    event: &AccountEvent,
) -> Result<(), String> {
    let magnitude = line.amount.unsigned_abs();
    if magnitude == 0 || (line.amount < 0) != line.kind.is_debit() {
        return Err(format!("{} with a non-positive amount", event.event_type()));
    }
    if let AccountEvent::TransferDebited { currency, .. } = event
        && currency.as_str() != account.currency
    {
        return Err(format!(
            "TransferDebited in {currency} on an account in {}",
            account.currency
        ));
    }
    match account.balance.checked_add(line.amount) {
        Some(expected) if expected == line.balance_after => Ok(()),
        _ => Err(format!(
            "{} on account {}: balance {} {:+} does not give balance_after {}",
            event.event_type(),
            account.account_id,
            account.balance,
            line.amount,
            line.balance_after
        )),
    }
}

/// The ledger line of a money event (None for the others).
pub(super) fn line_of(
    envelope: &RawEnvelope,
    event: &AccountEvent,
    sequence: i64,
) -> Option<LineRow> {
    let (kind, amount, balance_after, reference, transfer_id, counterparty_id) = match event {
        AccountEvent::FundsDeposited {
            amount,
            balance_after,
            reference,
        } => (
            LineKind::Deposit,
            *amount,
            *balance_after,
            reference.clone(),
            None,
            None,
        ),
        AccountEvent::FundsWithdrawn {
            amount,
            balance_after,
            reference,
        } => (
            LineKind::Withdrawal,
            *amount,
            *balance_after,
            reference.clone(),
            None,
            None,
        ),
        AccountEvent::TransferDebited {
            transfer_id,
            to_account_id,
            amount,
            balance_after,
            reference,
            ..
        } => (
            LineKind::TransferDebit,
            *amount,
            *balance_after,
            reference.clone(),
            Some(*transfer_id),
            Some(*to_account_id),
        ),
        AccountEvent::TransferCredited {
            transfer_id,
            from_account_id,
            amount,
            balance_after,
            reference,
            ..
        } => (
            LineKind::TransferCredit,
            *amount,
            *balance_after,
            reference.clone(),
            Some(*transfer_id),
            Some(*from_account_id),
        ),
        AccountEvent::TransferRefunded {
            transfer_id,
            amount,
            balance_after,
            ..
        } => (
            LineKind::TransferRefund,
            *amount,
            *balance_after,
            None,
            Some(*transfer_id),
            None,
        ),
        _ => return None,
    };
    let signed = if kind.is_debit() {
        amount.checked_neg().unwrap_or(0)
    } else {
        amount.max(0)
    };
    Some(LineRow {
        account_id: envelope.aggregate_id,
        sequence,
        kind,
        amount: signed,
        balance_after,
        reference,
        transfer_id,
        counterparty_id,
        event_id: envelope.event_id,
        occurred_at: envelope.occurred_at,
    })
}

/// What a transfer event tells about its transfer.
pub(super) fn transfer_leg(envelope: &RawEnvelope, event: &AccountEvent) -> Option<TransferRow> {
    let at = envelope.occurred_at;
    let account = envelope.aggregate_id;
    let row = match event {
        AccountEvent::TransferDebited {
            transfer_id,
            to_account_id,
            amount,
            currency,
            reference,
            ..
        } => TransferRow {
            from_account_id: Some(account),
            to_account_id: Some(*to_account_id),
            amount: Some(*amount),
            currency: Some(currency.to_string()),
            reference: reference.clone(),
            debited_at: Some(at),
            ..TransferRow::new(*transfer_id, at)
        },
        AccountEvent::TransferCredited {
            transfer_id,
            from_account_id,
            amount,
            ..
        } => TransferRow {
            from_account_id: Some(*from_account_id),
            to_account_id: Some(account),
            amount: Some(*amount),
            credited_at: Some(at),
            ..TransferRow::new(*transfer_id, at)
        },
        AccountEvent::TransferRefunded {
            transfer_id,
            amount,
            reason,
            ..
        } => TransferRow {
            from_account_id: Some(account),
            amount: Some(*amount),
            reason: Some(reason.clone()),
            refunded_at: Some(at),
            ..TransferRow::new(*transfer_id, at)
        },
        _ => return None,
    };
    Some(row)
}
