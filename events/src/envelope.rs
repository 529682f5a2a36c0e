//! The event envelope (docs/architecture.md §4): metadata, hash-chain links and the payload.
//!
//! An [`EventEnvelope`] is what the log stores for every event. It is built sealed
//! with [`EventEnvelope::new_sealed`] from caller-supplied ids and clock ([`EventMeta`]);
//! nothing in this crate reads a clock or draws random numbers. `occurred_at` is kept
//! at microsecond precision and always written as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so it
//! survives PostgreSQL `timestamptz` and JSON unchanged and the hash stays stable.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::account::{AccountEvent, EventData};
use crate::wire::CodecError;

/// The `aggregate_type` of account events.
pub const ACCOUNT_AGGREGATE: &str = "account";

/// Who issued the command that caused an event (from the verified JWT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Subject: the principal's id.
    pub sub: String,
    /// The principal's role, e.g. `customer` or `service`.
    pub role: String,
}

/// Caller-supplied metadata for a new envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// A fresh UUID v7 (time ordered).
    pub event_id: Uuid,
    /// When the event happened; truncated to whole microseconds by the builder.
    pub occurred_at: DateTime<Utc>,
    /// The command that produced the event.
    pub command_id: Uuid,
    /// The id shared by everything one user request set off.
    pub correlation_id: Uuid,
    /// The message (command or event) that directly caused this event.
    pub causation_id: Uuid,
    /// Who issued the command.
    pub actor: Actor,
}

/// One event as stored in the log, with the fields and order of docs/architecture.md §4.
///
/// `data` is a tree of JSON values by default (what sealing, hashing and writing need). A
/// reader that only folds events may decode a [`RawEnvelope`] instead, whose `data` stays the
/// JSON text it was written as ([`crate::decode_raw`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope<D = serde_json::Value> {
    /// Unique id of this event (UUID v7).
    pub event_id: Uuid,
    /// Kind of aggregate, e.g. [`ACCOUNT_AGGREGATE`].
    pub aggregate_type: String,
    /// The aggregate (account) the event belongs to; also the Kafka key.
    pub aggregate_id: Uuid,
    /// Position in the aggregate's history: 1, 2, 3, … without gaps.
    pub sequence: u64,
    /// Name of the event type, e.g. `FundsDeposited`.
    pub event_type: String,
    /// Version of the `data` schema of this event type.
    pub schema_version: u32,
    /// When the event happened (UTC, microsecond precision).
    #[serde(with = "crate::wire::micros_rfc3339")]
    pub occurred_at: DateTime<Utc>,
    /// The command that produced the event.
    pub command_id: Uuid,
    /// The id shared by everything one user request set off.
    pub correlation_id: Uuid,
    /// The message that directly caused this event.
    pub causation_id: Uuid,
    /// Who issued the command.
    pub actor: Actor,
    /// Hash of the previous event of this aggregate; [`crate::ZERO_HASH`] for the first.
    pub prev_hash: String,
    /// Lowercase hex SHA-256 over `prev_hash` and the canonical envelope without `hash`.
    pub hash: String,
    /// The event payload; its shape is given by `event_type` and `schema_version`.
    pub data: D,
}

/// An envelope whose `data` is kept as written: decoding it checks that `data` is JSON but
/// builds no tree of values, and [`EventEnvelope::decode_account`] reads the typed event
/// straight from the text. For readers that fold events (the projections); anything that
/// seals or hashes an envelope uses [`EventEnvelope`].
pub type RawEnvelope = EventEnvelope<Box<serde_json::value::RawValue>>;

impl<D: EventData> EventEnvelope<D> {
    /// Decodes `data` as an account event, upcasting older schema versions.
    pub fn decode_account(&self) -> Result<AccountEvent, CodecError> {
        if self.aggregate_type != ACCOUNT_AGGREGATE {
            return Err(CodecError::WrongAggregateType {
                expected: ACCOUNT_AGGREGATE,
                found: self.aggregate_type.clone(),
            });
        }
        AccountEvent::decode(&self.event_type, self.schema_version, &self.data)
    }
}

impl EventEnvelope {
    /// Builds the envelope of an account event and seals it (sets `hash`).
    ///
    /// `prev_hash` is the `hash` of the aggregate's previous event, or
    /// [`crate::ZERO_HASH`] when `sequence` is 1.
    pub fn new_sealed(
        meta: EventMeta,
        aggregate_id: Uuid,
        sequence: u64,
        prev_hash: &str,
        event: &AccountEvent,
    ) -> EventEnvelope {
        let mut envelope = EventEnvelope {
            event_id: meta.event_id,
            aggregate_type: ACCOUNT_AGGREGATE.to_owned(),
            aggregate_id,
            sequence,
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            occurred_at: meta.occurred_at.trunc_subsecs(6),
            command_id: meta.command_id,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            actor: meta.actor,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
            data: event.to_data(),
        };
        envelope.seal();
        envelope
    }
}

/// Fixtures shared by the unit tests of this crate.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::ZERO_HASH;

    pub(crate) fn sample_meta() -> EventMeta {
        EventMeta {
            event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            occurred_at: DateTime::parse_from_rfc3339("2026-11-23T10:15:30.123456789Z")
                .expect("valid time")
                .with_timezone(&Utc),
            command_id: Uuid::from_u128(2),
            correlation_id: Uuid::from_u128(3),
            causation_id: Uuid::from_u128(4),
            actor: Actor {
                sub: "user-1".to_owned(),
                role: "customer".to_owned(),
            },
        }
    }

    pub(crate) fn sample_envelope() -> EventEnvelope {
        let event = AccountEvent::FundsDeposited {
            amount: 500,
            balance_after: 1_500,
            reference: Some("salary".to_owned()),
        };
        EventEnvelope::new_sealed(sample_meta(), Uuid::from_u128(9), 1, ZERO_HASH, &event)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use chrono::Timelike;

    #[test]
    fn new_sealed_fills_every_field_and_truncates_time() {
        let envelope = sample_envelope();
        assert_eq!(envelope.aggregate_type, "account");
        assert_eq!(envelope.event_type, "FundsDeposited");
        assert_eq!(envelope.schema_version, 1);
        assert_eq!(envelope.sequence, 1);
        assert_eq!(envelope.occurred_at.nanosecond(), 123_456_000);
        assert_eq!(envelope.hash.len(), 64);
        assert!(envelope.hash_is_valid());
    }

    #[test]
    fn occurred_at_is_written_with_six_digits_and_z() {
        let mut envelope = sample_envelope();
        let json = serde_json::to_value(&envelope).expect("to value");
        assert_eq!(json["occurred_at"], "2026-11-23T10:15:30.123456Z");
        envelope.occurred_at = envelope.occurred_at.trunc_subsecs(0);
        let json = serde_json::to_value(&envelope).expect("to value");
        assert_eq!(json["occurred_at"], "2026-11-23T10:15:30.000000Z");
    }

    #[test]
    fn occurred_at_reads_any_rfc3339() {
        let mut json = serde_json::to_value(sample_envelope()).expect("to value");
        for (input, expected) in [
            ("2026-11-23T12:15:30+02:00", "2026-11-23T10:15:30.000000Z"),
            ("2026-11-23t10:15:30.5z", "2026-11-23T10:15:30.500000Z"),
            (
                "2026-11-23T10:15:30.123456789Z",
                "2026-11-23T10:15:30.123456Z",
            ),
        ] {
            json["occurred_at"] = input.into();
            let envelope: EventEnvelope = serde_json::from_value(json.clone()).expect(input);
            let out = serde_json::to_value(&envelope).expect("to value");
            assert_eq!(out["occurred_at"], expected, "{input}");
        }
        json["occurred_at"] = "2026-11-23 10:15:30".into();
        assert!(serde_json::from_value::<EventEnvelope>(json).is_err());
    }

    #[test]
    fn field_order_follows_the_design() {
        let text = String::from_utf8(crate::encode(&sample_envelope())).expect("utf8");
        let keys = [
            "event_id",
            "aggregate_type",
            "aggregate_id",
            "sequence",
            "event_type",
            "schema_version",
            "occurred_at",
            "command_id",
            "correlation_id",
            "causation_id",
            "actor",
            "prev_hash",
            "\"hash",
            "data",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| text.find(k).expect("field present"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn decode_account_round_trips_and_checks_aggregate_type() {
        let mut envelope = sample_envelope();
        let event = envelope.decode_account().expect("decodes");
        assert_eq!(event.event_type(), "FundsDeposited");
        envelope.aggregate_type = "transfer".to_owned();
        assert!(matches!(
            envelope.decode_account(),
            Err(CodecError::WrongAggregateType { .. })
        ));
    }
}
