//! The Logbook event log: what an event is and how it is written, read and verified.
//!
//! - [`envelope`]: [`EventEnvelope`] (docs/architecture.md §4), [`Actor`], [`EventMeta`], the
//!   sealed builder [`EventEnvelope::new_sealed`], and [`RawEnvelope`] for readers that fold.
//! - [`account`]: the account event payloads [`AccountEvent`], their versioned JSON
//!   `data` and [`ALL_EVENT_TYPES`] (one JSON Schema each in `schemas/events/`).
//! - [`currency`]: ISO 4217 codes, [`Currency`].
//! - [`holder`]: [`SealedHolder`], the account holder's personal fields as the log carries them
//!   (sealed by the gateway; never plain text).
//! - [`hash`]: canonical bytes, the per-aggregate hash chain and [`ChainVerifier`].
//! - [`codec`]: record value [`encode`]/[`decode`]/[`decode_raw`], [`CodecError`] and Kafka
//!   header names.
//! - [`wire`]: instants with microseconds and [`CodecError`], below the envelope and the events.
//! - [`position`]: partition/offset [`Position`]s and their opaque tokens.
//! - [`cursor`]: [`LogCursor`], a resumable next offset per partition (streams, exports).
//! - [`verification`]: [`Verification`] and its [`VerifyReport`] (tamper checks).
//! - [`kafka`]: connection settings ([`KafkaSettings`]) and topic names ([`Topics`]).
//! - [`layout`]: the recorded partition count and the groups' first offsets.
//! - [`linger`]: when a batch read from a consumer closes (processor, saga, projectors).
//! - [`partitioner`]: Kafka's murmur2 partitioner (which partition a key belongs to).
//! - [`topics`]: idempotent creation and checking of the topics, the recorded partition
//!   count, and the first offsets of the processors' and sagas' groups.
//! - [`durability`]: the topics' replication and configuration, and warnings when they are
//!   weaker than production needs.
//! - [`secret`]: [`Secret`], a string that never prints.
//! - [`retry`]: backoff and outage reporting, shared by every role that waits for Kafka or
//!   PostgreSQL.
//! - [`refusal`]: Kafka refusing this process (authentication, ACLs): the one Kafka error no
//!   role waits out.
//!
//! Apart from [`topics`], [`layout`], [`durability`], [`retry`], [`linger`] and [`refusal`],
//! the crate does no I/O and reads no clock or randomness: callers supply ids and timestamps,
//! so everything here is deterministic and testable.

pub mod account;
pub mod codec;
pub mod currency;
pub mod cursor;
#[cfg(feature = "kafka")]
pub mod durability;
pub mod envelope;
pub mod hash;
pub mod holder;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod layout;
#[cfg(feature = "kafka")]
pub mod linger;
pub mod partitioner;
pub mod position;
#[cfg(feature = "kafka")]
pub mod refusal;
pub mod retry;
pub mod secret;
#[cfg(feature = "kafka")]
pub mod topics;
pub mod verification;
pub mod wire;

pub use account::{
    ALL_EVENT_TYPES, AccountEvent, Data, DebitOrigin, EventData, current_schema_version,
    schema_name,
};
pub use codec::{
    CONTENT_TYPE_JSON, CodecError, HEADER_CONTENT_TYPE, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION,
    HEADER_TRACEPARENT, decode, decode_raw, encode, event_headers,
};
pub use currency::{Currency, CurrencyError};
pub use cursor::{CursorError, LogCursor};
pub use envelope::{ACCOUNT_AGGREGATE, Actor, EventEnvelope, EventMeta, RawEnvelope};
pub use hash::{BreakKind, ChainBreak, ChainVerifier, ZERO_HASH, canonical_bytes, compute_hash};
pub use holder::{HOLDER_FIELDS, SealedHolder, looks_sealed};
#[cfg(feature = "kafka")]
pub use kafka::{Groups, KafkaSettings, Topics};
pub use position::{Position, PositionError};
pub use secret::Secret;
pub use verification::{BrokenEvent, Problem, Verification, VerifyReport};
