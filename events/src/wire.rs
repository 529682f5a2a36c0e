//! What the log's JSON is made of below the envelope, shared by the envelope and the account
//! events: instants written as RFC 3339 with microseconds ([`micros_rfc3339`]), and why bytes
//! or a payload are not an event ([`CodecError`]).

/// Serde for `occurred_at` (and other instants in event data): writes RFC 3339 UTC with
/// exactly six fractional digits and `Z`; reads any RFC 3339 offset, converts to UTC and
/// truncates to microseconds.
pub mod micros_rfc3339 {
    use chrono::{DateTime, SubsecRound, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&at.format(FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc).trunc_subsecs(6))
            .map_err(|e| serde::de::Error::custom(format_args!("invalid RFC 3339 time: {e}")))
    }
}

/// Why bytes or a payload could not be turned into an envelope or an event.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a well-formed envelope (bad JSON, missing or extra field, wrong type).
    #[error("malformed event envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    /// The envelope belongs to another aggregate type than the one asked for.
    #[error("expected aggregate type {expected:?}, found {found:?}")]
    WrongAggregateType {
        /// The aggregate type the caller can decode.
        expected: &'static str,
        /// The aggregate type in the envelope.
        found: String,
    },
    /// No event of this type exists (in this version of the code).
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    /// The event type is known but this schema version is not (yet) supported.
    #[error("unsupported schema version {schema_version} of event type {event_type}")]
    UnsupportedSchemaVersion {
        /// The event type, e.g. `FundsDeposited`.
        event_type: String,
        /// The schema version found in the envelope.
        schema_version: u32,
    },
    /// The `data` object does not match the schema of its event type and version.
    #[error("invalid data for {event_type} v{schema_version}: {source}")]
    InvalidData {
        /// The event type, e.g. `FundsDeposited`.
        event_type: &'static str,
        /// The schema version the data was read as.
        schema_version: u32,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}
