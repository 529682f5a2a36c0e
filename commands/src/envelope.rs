//! What travels on the commands and results topics.
//!
//! The gateway and the sagas produce a [`CommandEnvelope`] to `<prefix>.commands`, keyed by the
//! aggregate id; the processor answers each with exactly one [`CommandResult`] on
//! `<prefix>.command-results`, keyed by the command id, in the same Kafka transaction as the
//! events the command caused: in the partition the envelope's `reply_partition` names (the one
//! its gateway reads), or else the partition of the key.

use chrono::{DateTime, Utc};
use logbook_events::{Actor, DebitOrigin};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{AccountCommand, RejectionKind};

/// A command addressed to one account, with who sent it and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandEnvelope {
    /// Unique per intent: a retry of the same intent reuses it, and it is applied at most once.
    pub command_id: Uuid,
    pub aggregate_id: Uuid,
    pub correlation_id: Uuid,
    /// The message that caused this command (the event, for saga steps); the command itself
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    pub actor: Actor,
    /// When the intent was first attempted: a retry carries the first attempt's instant (for a
    /// request with an `Idempotency-Key`, the instant stored with the key). A command older
    /// than the processor's dedupe horizon that it does not remember is refused as expired.
    pub issued_at: DateTime<Utc>,
    /// W3C trace context of the request, carried on into the events' headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub command: AccountCommand,
    /// Set by the transfer saga on its steps; copied into the result so the saga can react to
    /// a rejected step without keeping state of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferContext>,
    /// The results partition the sending gateway reads: the processor writes the result there
    /// (instead of the partition of its key), so that each gateway reads only its own share of
    /// the results. Absent for commands nobody waits for over HTTP (the saga's steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_partition: Option<i32>,
}

/// What the transfer saga needs to know when a step's result comes back: the transfer and the
/// debit event every step's identity is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferContext {
    pub transfer_id: Uuid,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: i64,
    pub step: TransferStep,
    /// `event_id` of the `TransferDebited` event that started the transfer.
    pub debit_event_id: Uuid,
    /// Where and when the debit happened.
    pub debit: DebitOrigin,
    /// The debit's correlation id: every step of the transfer carries it.
    pub correlation_id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStep {
    Credit,
    Refund,
    Complete,
}

impl CommandEnvelope {
    pub fn encode(&self) -> Vec<u8> {
        // Strings, numbers, UUIDs and timestamps only: serializing cannot fail.
        serde_json::to_vec(self).expect("a command envelope always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The outcome of one command, as the processor committed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub command_id: Uuid,
    pub aggregate_id: Uuid,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The command's transfer context, when it was a saga step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferContext>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The command's events are in the log.
    Accepted {
        /// The aggregate's version after the command (its last event's sequence).
        version: u64,
        /// Token of the position of the command's last event (read-your-writes).
        position: String,
        /// True when the command id had been applied before and this is its earlier outcome.
        duplicate: bool,
    },
    /// The command broke a rule: no event was written.
    Rejected {
        kind: RejectionKind,
        code: String,
        message: String,
    },
}

impl CommandResult {
    pub fn encode(&self) -> Vec<u8> {
        // Strings, numbers and UUIDs only: serializing cannot fail.
        serde_json::to_vec(self).expect("a command result always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_result_round_trip() {
        let envelope = CommandEnvelope {
            command_id: Uuid::now_v7(),
            aggregate_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor: Actor {
                sub: "svc".into(),
                role: "service".into(),
            },
            issued_at: Utc::now(),
            traceparent: None,
            command: AccountCommand::Deposit {
                amount: 5,
                reference: None,
            },
            transfer: None,
            reply_partition: None,
        };
        let decoded = CommandEnvelope::decode(&envelope.encode()).expect("decodes");
        assert_eq!(decoded, envelope);
        let result = CommandResult {
            command_id: envelope.command_id,
            aggregate_id: envelope.aggregate_id,
            outcome: Outcome::Rejected {
                kind: RejectionKind::Conflict,
                code: "insufficient_funds".into(),
                message: "insufficient funds".into(),
            },
            transfer: None,
        };
        let json = String::from_utf8(result.encode()).expect("utf8");
        assert!(json.contains("\"outcome\":\"rejected\""), "{json}");
        assert_eq!(
            CommandResult::decode(json.as_bytes()).expect("decodes"),
            result
        );
    }
}
