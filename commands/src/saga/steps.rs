//! The transfer process as pure reactions: which command follows which record.
//!
//! - `TransferDebited` on the source → credit-for-transfer to the target;
//! - a rejected credit (target closed, unknown, other currency) → refund-transfer to the source.
//!
//! Command ids are derived from the transfer id and the step (UUID v5), so however often a
//! reaction is repeated (a crash before the saga's commit, a rebalance), the processors' dedupe
//! applies each step at most once.

use chrono::{DateTime, Utc};
use logbook_events::{AccountEvent, Actor, EventEnvelope};
use uuid::Uuid;

use crate::domain::AccountCommand;
use crate::envelope::{CommandEnvelope, CommandResult, Outcome, TransferContext, TransferStep};

/// Namespace of the saga's command ids.
const SAGA_NAMESPACE: Uuid = Uuid::from_u128(0x6c6f_6762_6f6f_6b00_8000_0000_0000_0002);

/// The actor of the saga's commands.
pub fn saga_actor() -> Actor {
    Actor {
        sub: "logbook-saga".to_string(),
        role: "service".to_string(),
    }
}

/// The command id of a step of a transfer.
pub fn step_command_id(transfer_id: Uuid, step: TransferStep) -> Uuid {
    let name = match step {
        TransferStep::Credit => "credit",
        TransferStep::Refund => "refund",
    };
    Uuid::new_v5(&SAGA_NAMESPACE, format!("{transfer_id}/{name}").as_bytes())
}

/// The credit that follows a debit, if `envelope` is a `TransferDebited`.
pub fn on_event(envelope: &EventEnvelope, now: DateTime<Utc>) -> Option<CommandEnvelope> {
    if envelope.event_type != "TransferDebited" {
        return None;
    }
    let AccountEvent::TransferDebited {
        transfer_id,
        to_account_id,
        amount,
        currency,
        reference,
        ..
    } = envelope.decode_account().ok()?
    else {
        return None;
    };
    let context = TransferContext {
        transfer_id,
        from_account_id: envelope.aggregate_id,
        to_account_id,
        amount,
        step: TransferStep::Credit,
    };
    Some(CommandEnvelope {
        command_id: step_command_id(transfer_id, TransferStep::Credit),
        aggregate_id: to_account_id,
        correlation_id: envelope.correlation_id,
        causation_id: Some(envelope.event_id),
        actor: saga_actor(),
        issued_at: now,
        traceparent: None,
        command: AccountCommand::CreditForTransfer {
            transfer_id,
            from_account_id: envelope.aggregate_id,
            amount,
            currency,
            reference,
        },
        transfer: Some(context),
    })
}

/// The refund that follows a rejected credit.
pub fn on_result(result: &CommandResult, now: DateTime<Utc>) -> Option<CommandEnvelope> {
    let context = result.transfer?;
    let Outcome::Rejected { code, .. } = &result.outcome else {
        return None;
    };
    match context.step {
        TransferStep::Credit => Some(CommandEnvelope {
            command_id: step_command_id(context.transfer_id, TransferStep::Refund),
            aggregate_id: context.from_account_id,
            correlation_id: context.transfer_id,
            causation_id: Some(result.command_id),
            actor: saga_actor(),
            issued_at: now,
            traceparent: None,
            command: AccountCommand::RefundTransfer {
                transfer_id: context.transfer_id,
                amount: context.amount,
                reason: code.clone(),
            },
            transfer: Some(TransferContext {
                step: TransferStep::Refund,
                ..context
            }),
        }),
        TransferStep::Refund => {
            tracing::error!(
                transfer_id = %context.transfer_id,
                code = %code,
                "refund rejected: the transfer needs manual attention"
            );
            metrics::counter!("logbook_saga_stuck_transfers_total").increment(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RejectionKind;

    #[test]
    fn step_ids_are_deterministic_and_distinct() {
        let transfer = Uuid::new_v4();
        assert_eq!(
            step_command_id(transfer, TransferStep::Credit),
            step_command_id(transfer, TransferStep::Credit)
        );
        assert_ne!(
            step_command_id(transfer, TransferStep::Credit),
            step_command_id(transfer, TransferStep::Refund)
        );
    }

    #[test]
    fn a_rejected_credit_becomes_a_refund_and_an_accepted_one_nothing() {
        let context = TransferContext {
            transfer_id: Uuid::new_v4(),
            from_account_id: Uuid::new_v4(),
            to_account_id: Uuid::new_v4(),
            amount: 40,
            step: TransferStep::Credit,
        };
        let rejected = CommandResult {
            command_id: step_command_id(context.transfer_id, TransferStep::Credit),
            aggregate_id: context.to_account_id,
            outcome: Outcome::Rejected {
                kind: RejectionKind::Conflict,
                code: "account_closed".into(),
                message: "closed".into(),
            },
            transfer: Some(context),
        };
        let refund = on_result(&rejected, Utc::now()).expect("a refund");
        assert_eq!(refund.aggregate_id, context.from_account_id);
        assert_eq!(
            refund.command_id,
            step_command_id(context.transfer_id, TransferStep::Refund)
        );
        assert!(matches!(
            refund.command,
            AccountCommand::RefundTransfer { amount: 40, .. }
        ));

        let accepted = CommandResult {
            outcome: Outcome::Accepted {
                version: 2,
                position: "v1.0.1".into(),
                duplicate: false,
            },
            ..rejected
        };
        assert!(on_result(&accepted, Utc::now()).is_none());
    }
}
