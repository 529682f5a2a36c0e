//! Tamper evidence: canonical envelope bytes, the per-aggregate hash chain and its verifier.
//!
//! `hash = hex(SHA-256(prev_hash ‖ canonical_bytes(envelope)))`, where `prev_hash` is
//! taken as its 64 ASCII hex characters and the canonical bytes are the envelope as
//! JSON without its `hash` field, object keys sorted by byte order at every depth,
//! no whitespace, strings escaped minimally (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//! `\t`, other control characters as `\u00xx`, everything else as UTF-8) and numbers
//! as serde_json prints them. The encoder is written here on purpose: it must not
//! change when serde_json's map ordering (`preserve_order`) or formatting does.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::envelope::EventEnvelope;

/// `prev_hash` of the first event of every aggregate: 64 zeros.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The envelope without `hash`, as canonical JSON bytes (see the module docs).
pub fn canonical_bytes(envelope: &EventEnvelope) -> Vec<u8> {
    // An envelope always serializes (see `codec::encode`).
    let mut value = serde_json::to_value(envelope).expect("an event envelope always serializes");
    if let Value::Object(fields) = &mut value {
        fields.remove("hash");
    }
    let mut out = Vec::with_capacity(640);
    write_canonical(&value, &mut out);
    out
}

/// Lowercase hex SHA-256 over `prev_hash` and [`canonical_bytes`].
pub fn compute_hash(envelope: &EventEnvelope) -> String {
    hex::encode(digest(envelope))
}

fn digest(envelope: &EventEnvelope) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(envelope.prev_hash.as_bytes());
    hasher.update(canonical_bytes(envelope));
    hasher.finalize().into()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            let mut entries: Vec<(&String, &Value)> = fields.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0x0f)]);
            }
            // Multi-byte UTF-8 sequences never contain bytes below 0x80.
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

impl EventEnvelope {
    /// Sets `hash` from `prev_hash` and the rest of the envelope.
    pub fn seal(&mut self) {
        self.hash = compute_hash(self);
    }

    /// Whether `hash` matches the envelope's content and `prev_hash`.
    pub fn hash_is_valid(&self) -> bool {
        self.hash == compute_hash(self)
    }
}

/// What is wrong with an event in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakKind {
    /// The stored `hash` does not match the event's content: the event was altered.
    #[error("hash does not match the content (expected {expected}, found {found})")]
    BadHash {
        /// The hash computed from the content.
        expected: String,
        /// The hash stored in the event.
        found: String,
    },
    /// `prev_hash` is not the hash of the aggregate's previous event.
    #[error("prev_hash is not the previous event's hash (expected {expected}, found {found})")]
    PrevHashMismatch {
        /// The previous event's hash (zeros before the first event).
        expected: String,
        /// The event's `prev_hash`.
        found: String,
    },
    /// The sequence skips numbers: events are missing.
    #[error("sequence gap (expected {expected}, found {found})")]
    SequenceGap {
        /// The next sequence number.
        expected: u64,
        /// The event's sequence number.
        found: u64,
    },
    /// The sequence repeats or goes back: an event is duplicated or out of order.
    #[error("sequence duplicate or regression (expected {expected}, found {found})")]
    SequenceDuplicate {
        /// The next sequence number.
        expected: u64,
        /// The event's sequence number.
        found: u64,
    },
}

/// The first broken event found by a [`ChainVerifier`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("hash chain broken at aggregate {aggregate_id} sequence {sequence}: {kind}")]
pub struct ChainBreak {
    /// The aggregate whose chain is broken.
    pub aggregate_id: Uuid,
    /// The `sequence` of the offending event as stored.
    pub sequence: u64,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: BreakKind,
}

/// What the verifier remembers per aggregate: 40 bytes plus the map entry.
#[derive(Debug, Clone, Copy)]
struct Link {
    sequence: u64,
    hash: [u8; 32],
}

/// Checks the hash chains of many aggregates from envelopes fed in log order.
///
/// Per event it checks, in this order: the sequence follows the previous one (1
/// for a new aggregate), `prev_hash` is the previous event's hash ([`ZERO_HASH`]
/// first), and `hash` matches the content. After a break it re-anchors on the
/// offending event (its sequence and stored hash), so feeding can go on and each
/// tampered spot is reported once.
#[derive(Debug, Default, Clone)]
pub struct ChainVerifier {
    links: HashMap<Uuid, Link>,
    events_checked: u64,
}

impl ChainVerifier {
    /// A verifier that has seen nothing.
    pub fn new() -> ChainVerifier {
        ChainVerifier::default()
    }

    /// Starts an aggregate's chain after a trusted event (e.g. from a verified
    /// snapshot), so checking can begin mid-log. `hash` must be 64 hex digits.
    pub fn anchor(&mut self, aggregate_id: Uuid, sequence: u64, hash: &str) -> bool {
        let Some(hash) = parse_hash(hash) else {
            return false;
        };
        self.links.insert(aggregate_id, Link { sequence, hash });
        true
    }

    /// Checks the next envelope of the log.
    pub fn check(&mut self, envelope: &EventEnvelope) -> Result<(), ChainBreak> {
        self.events_checked += 1;
        let computed = digest(envelope);
        let previous = self.links.insert(
            envelope.aggregate_id,
            Link {
                sequence: envelope.sequence,
                hash: parse_hash(&envelope.hash).unwrap_or(computed),
            },
        );
        let (expected_sequence, expected_prev) = match previous {
            Some(link) => (link.sequence.saturating_add(1), link.hash),
            None => (1, [0; 32]),
        };
        let kind = if envelope.sequence > expected_sequence {
            BreakKind::SequenceGap {
                expected: expected_sequence,
                found: envelope.sequence,
            }
        } else if envelope.sequence < expected_sequence {
            BreakKind::SequenceDuplicate {
                expected: expected_sequence,
                found: envelope.sequence,
            }
        } else if envelope.prev_hash != hex::encode(expected_prev) {
            BreakKind::PrevHashMismatch {
                expected: hex::encode(expected_prev),
                found: envelope.prev_hash.clone(),
            }
        } else if envelope.hash != hex::encode(computed) {
            BreakKind::BadHash {
                expected: hex::encode(computed),
                found: envelope.hash.clone(),
            }
        } else {
            return Ok(());
        };
        Err(ChainBreak {
            aggregate_id: envelope.aggregate_id,
            sequence: envelope.sequence,
            kind,
        })
    }

    /// How many distinct aggregates have been seen.
    pub fn aggregates_checked(&self) -> usize {
        self.links.len()
    }

    /// How many envelopes have been checked (including broken ones).
    pub fn events_checked(&self) -> u64 {
        self.events_checked
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut bytes = [0; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}
