//! The transfer process as pure reactions: which command follows which record.
//!
//! - `TransferDebited` on the source → credit-for-transfer to the target;
//! - an accepted credit → complete-transfer on the source (it leaves the source's transfers in
//!   flight);
//! - a rejected credit (target closed, unknown, other currency) → refund-transfer to the source.
//!
//! Every step's command id is derived from the debit event the processor wrote (its
//! `event_id`, UUID v5 per step), never from client input, and every step carries the debit's
//! origin: the accounts apply each step at most once by their own state (see
//! `domain::rules`), however often a reaction is repeated.

use chrono::{DateTime, Utc};
use logbook_events::{AccountEvent, Actor, DebitOrigin, EventEnvelope};
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

/// The command id of a step of the transfer started by the debit event `debit_event_id`.
pub fn step_command_id(debit_event_id: Uuid, step: TransferStep) -> Uuid {
    let name = match step {
        TransferStep::Credit => "credit",
        TransferStep::Refund => "refund",
        TransferStep::Complete => "complete",
    };
    Uuid::new_v5(
        &SAGA_NAMESPACE,
        format!("{debit_event_id}/{name}").as_bytes(),
    )
}

/// The credit that follows a debit, if `envelope` (read from events partition `partition`) is
/// a `TransferDebited`.
pub fn on_event(
    envelope: &EventEnvelope,
    partition: i32,
    now: DateTime<Utc>,
) -> Result<Option<CommandEnvelope>, logbook_events::CodecError> {
    if envelope.event_type != "TransferDebited" {
        return Ok(None);
    }
    let AccountEvent::TransferDebited {
        transfer_id,
        to_account_id,
        amount,
        currency,
        reference,
        ..
    } = envelope.decode_account()?
    else {
        return Ok(None);
    };
    let debit = DebitOrigin {
        partition,
        at: envelope.occurred_at,
    };
    let context = TransferContext {
        transfer_id,
        from_account_id: envelope.aggregate_id,
        to_account_id,
        amount,
        step: TransferStep::Credit,
        debit_event_id: envelope.event_id,
        debit,
        correlation_id: envelope.correlation_id,
    };
    Ok(Some(CommandEnvelope {
        command_id: step_command_id(envelope.event_id, TransferStep::Credit),
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
            debit,
        },
        transfer: Some(context),
        reply_partition: None,
    }))
}

/// What follows a credit's result: completion on the source when it was accepted, a refund when
/// it was rejected. Results of the other steps end the transfer.
pub fn on_result(result: &CommandResult, now: DateTime<Utc>) -> Option<CommandEnvelope> {
    let context = result.transfer?;
    let (step, command) = match (&result.outcome, context.step) {
        (Outcome::Accepted { .. }, TransferStep::Credit) => (
            TransferStep::Complete,
            AccountCommand::CompleteTransfer {
                transfer_id: context.transfer_id,
                to_account_id: context.to_account_id,
                amount: context.amount,
            },
        ),
        (Outcome::Rejected { code, .. }, TransferStep::Credit) => (
            TransferStep::Refund,
            AccountCommand::RefundTransfer {
                transfer_id: context.transfer_id,
                amount: context.amount,
                reason: code.clone(),
            },
        ),
        (Outcome::Rejected { code, .. }, step) => {
            tracing::error!(
                transfer_id = %context.transfer_id,
                ?step,
                code = %code,
                "a transfer step was rejected: the transfer needs manual attention"
            );
            metrics::counter!("logbook_saga_stuck_transfers_total").increment(1);
            return None;
        }
        (Outcome::Accepted { .. }, _) => return None,
    };
    Some(envelope_of(context, step, command, result.command_id, now))
}

/// The completion or refund of a transfer on its source, caused by `causation` (the credit).
/// The credit itself follows from the debit event ([`on_event`]).
pub fn step(
    context: TransferContext,
    step: TransferStep,
    causation: Uuid,
    now: DateTime<Utc>,
) -> CommandEnvelope {
    let command = match step {
        TransferStep::Refund => AccountCommand::RefundTransfer {
            transfer_id: context.transfer_id,
            amount: context.amount,
            reason: "refunded".into(),
        },
        TransferStep::Complete | TransferStep::Credit => AccountCommand::CompleteTransfer {
            transfer_id: context.transfer_id,
            to_account_id: context.to_account_id,
            amount: context.amount,
        },
    };
    envelope_of(context, step, command, causation, now)
}

fn envelope_of(
    context: TransferContext,
    step: TransferStep,
    command: AccountCommand,
    causation: Uuid,
    now: DateTime<Utc>,
) -> CommandEnvelope {
    CommandEnvelope {
        command_id: step_command_id(context.debit_event_id, step),
        aggregate_id: context.from_account_id,
        correlation_id: context.correlation_id,
        causation_id: Some(causation),
        actor: saga_actor(),
        issued_at: now,
        traceparent: None,
        command,
        transfer: Some(TransferContext { step, ..context }),
        reply_partition: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RejectionKind;
    use logbook_events::{Currency, EventMeta, ZERO_HASH};

    fn debit_event() -> EventEnvelope {
        let meta = EventMeta {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
            actor: saga_actor(),
        };
        let debited = AccountEvent::TransferDebited {
            transfer_id: Uuid::now_v7(),
            to_account_id: Uuid::now_v7(),
            amount: 40,
            currency: Currency::parse("EUR").expect("EUR"),
            balance_after: 60,
            reference: None,
        };
        EventEnvelope::new_sealed(meta, Uuid::now_v7(), 2, ZERO_HASH, &debited)
    }

    #[test]
    fn step_ids_come_from_the_debit_event_not_the_transfer_id() {
        let debit = debit_event();
        let credit = on_event(&debit, 3, Utc::now())
            .expect("decodes")
            .expect("a credit");
        assert_eq!(
            credit.command_id,
            step_command_id(debit.event_id, TransferStep::Credit)
        );
        let context = credit.transfer.expect("context");
        assert_eq!(context.debit_event_id, debit.event_id);
        assert_eq!(context.debit.partition, 3);
        assert_eq!(context.debit.at, debit.occurred_at);
        // two debits that name the same transfer id still get distinct step ids
        let other = debit_event();
        assert_ne!(
            step_command_id(debit.event_id, TransferStep::Credit),
            step_command_id(other.event_id, TransferStep::Credit)
        );
        assert_ne!(
            step_command_id(debit.event_id, TransferStep::Credit),
            step_command_id(debit.event_id, TransferStep::Refund)
        );
    }

    #[test]
    fn an_accepted_credit_completes_and_a_rejected_one_refunds() {
        let debit = debit_event();
        let credit = on_event(&debit, 0, Utc::now())
            .expect("ok")
            .expect("credit");
        let rejected = CommandResult {
            command_id: credit.command_id,
            aggregate_id: credit.aggregate_id,
            outcome: Outcome::Rejected {
                kind: RejectionKind::Conflict,
                code: "account_closed".into(),
                message: "closed".into(),
            },
            transfer: credit.transfer,
        };
        let refund = on_result(&rejected, Utc::now()).expect("a refund");
        assert_eq!(refund.aggregate_id, debit.aggregate_id);
        assert_eq!(
            refund.command_id,
            step_command_id(debit.event_id, TransferStep::Refund)
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
        let complete = on_result(&accepted, Utc::now()).expect("a completion");
        assert_eq!(complete.aggregate_id, debit.aggregate_id);
        assert!(matches!(
            complete.command,
            AccountCommand::CompleteTransfer { amount: 40, .. }
        ));
        let completed = CommandResult {
            transfer: complete.transfer,
            ..accepted
        };
        assert!(on_result(&completed, Utc::now()).is_none());
    }

    #[test]
    fn other_events_start_nothing() {
        let mut event = debit_event();
        event.event_type = "FundsDeposited".into();
        assert!(on_event(&event, 0, Utc::now()).expect("ok").is_none());
    }
}
