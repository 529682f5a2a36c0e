//! The answer of a tamper check: [`Verification`] feeds envelopes to a [`ChainVerifier`]
//! and sums them up as a [`VerifyReport`] ("intact" with counts, or the first broken event).
//!
//! The same report comes out of `logbook verify` (over the Kafka log or the archive) and
//! `GET /v1/audit/verify`, whatever the source; sources add the log position of each event so
//! the first break can be found again.

use std::time::Duration;

use serde::Serialize;

use crate::envelope::EventEnvelope;
use uuid::Uuid;

use crate::hash::{BreakKind, ChainVerifier};
use crate::position::Position;

/// The first broken event of a check, where it sits in the log, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenEvent {
    /// Where the offending record sits (partition and offset of the events topic).
    pub position: Option<Position>,
    /// The aggregate whose chain is broken (nil when the record is not even an envelope).
    pub aggregate_id: Uuid,
    /// The offending event's `sequence` as stored (0 when not an envelope).
    pub sequence: u64,
    /// What is wrong: a `kind` and, for chain breaks, `expected` and `found`.
    #[serde(flatten)]
    pub problem: Problem,
}

/// What is wrong with a broken event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Problem {
    /// Hash, previous hash or sequence do not check out.
    Chain(BreakKind),
    /// The record is not a well-formed envelope at all.
    Undecodable {
        /// Always `undecodable`.
        kind: &'static str,
        /// Why it could not be read.
        reason: String,
    },
}

/// What a tamper check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// `intact` or `broken`.
    pub status: &'static str,
    /// Events checked.
    pub events: u64,
    /// Distinct aggregates (accounts) seen.
    pub aggregates: u64,
    /// How many events broke a chain (each tampered spot counts once).
    pub breaks: u64,
    /// The first broken event in reading order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_break: Option<BrokenEvent>,
    /// Wall time of the check in milliseconds.
    pub took_ms: u64,
}

impl VerifyReport {
    /// Whether every chain checked out.
    pub fn is_intact(&self) -> bool {
        self.breaks == 0
    }
}

/// A running tamper check.
#[derive(Debug, Default, Clone)]
pub struct Verification {
    verifier: ChainVerifier,
    breaks: u64,
    undecodable: u64,
    first_break: Option<BrokenEvent>,
}

impl Verification {
    /// A check that has seen nothing.
    pub fn new() -> Verification {
        Verification::default()
    }

    /// Checks the next envelope in log order (per aggregate: sequence order).
    pub fn feed(&mut self, envelope: &EventEnvelope, position: Option<Position>) {
        if let Err(chain) = self.verifier.check(envelope) {
            self.record(BrokenEvent {
                position,
                aggregate_id: chain.aggregate_id,
                sequence: chain.sequence,
                problem: Problem::Chain(chain.kind),
            });
        }
    }

    /// Counts a record that is not an envelope (it cannot belong to any chain).
    pub fn feed_undecodable(&mut self, position: Option<Position>, reason: String) {
        self.undecodable += 1;
        self.record(BrokenEvent {
            position,
            aggregate_id: Uuid::nil(),
            sequence: 0,
            problem: Problem::Undecodable {
                kind: "undecodable",
                reason,
            },
        });
    }

    fn record(&mut self, broken: BrokenEvent) {
        self.breaks += 1;
        if self.first_break.is_none() {
            self.first_break = Some(broken);
        }
    }

    /// Events checked so far.
    pub fn events(&self) -> u64 {
        self.verifier.events_checked() + self.undecodable
    }

    /// The report, with the wall time the caller measured.
    pub fn finish(self, took: Duration) -> VerifyReport {
        VerifyReport {
            status: if self.breaks == 0 { "intact" } else { "broken" },
            events: self.verifier.events_checked() + self.undecodable,
            aggregates: self.verifier.aggregates_checked() as u64,
            breaks: self.breaks,
            first_break: self.first_break,
            took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::test_support::sample_envelope;
    use crate::{AccountEvent, ZERO_HASH};

    fn chain(length: u64) -> Vec<EventEnvelope> {
        let mut previous = ZERO_HASH.to_owned();
        (1..=length)
            .map(|sequence| {
                let mut envelope = sample_envelope();
                envelope.sequence = sequence;
                envelope.prev_hash = previous.clone();
                envelope.data = AccountEvent::FundsDeposited {
                    amount: 1,
                    balance_after: sequence as i64,
                    reference: None,
                }
                .to_data();
                envelope.seal();
                previous = envelope.hash.clone();
                envelope
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_reports_counts() {
        let mut check = Verification::new();
        for envelope in chain(3) {
            check.feed(&envelope, None);
        }
        let report = check.finish(Duration::from_millis(5));
        assert!(report.is_intact());
        assert_eq!((report.events, report.aggregates, report.breaks), (3, 1, 0));
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["status"], "intact");
        assert!(json.get("first_break").is_none());
    }

    #[test]
    fn an_edited_event_is_the_first_break_with_expected_and_found() {
        let mut events = chain(4);
        events[2].data["amount"] = 1_000.into();
        let mut check = Verification::new();
        for (offset, envelope) in events.iter().enumerate() {
            check.feed(envelope, Some(Position::new(1, offset as i64)));
        }
        let report = check.finish(Duration::ZERO);
        assert_eq!(report.breaks, 1);
        let first = report.first_break.expect("a break");
        assert_eq!(first.position, Some(Position::new(1, 2)));
        assert_eq!(first.sequence, 3);
        assert!(matches!(
            first.problem,
            Problem::Chain(BreakKind::BadHash { .. })
        ));
        let json = serde_json::to_value(&first).expect("json");
        assert_eq!(json["kind"], "bad_hash");
        assert_eq!(json["position"], "v1.1.2");
        assert_eq!(json["found"], events[2].hash.as_str());
    }

    #[test]
    fn an_undecodable_record_is_a_break() {
        let mut check = Verification::new();
        check.feed_undecodable(Some(Position::new(0, 4)), "bad json".into());
        let report = check.finish(Duration::ZERO);
        assert_eq!((report.events, report.breaks), (1, 1));
        let json = serde_json::to_value(report.first_break).expect("json");
        assert_eq!(json["kind"], "undecodable");
        assert_eq!(json["position"], "v1.0.4");
    }
}
