//! Wire format of the event log: envelope bytes, decoding errors and Kafka header names.
//!
//! A Kafka record on `logbook.events` has the aggregate id as key, the JSON
//! envelope ([`encode`]) as value, and the headers named by the `HEADER_*`
//! constants ([`event_headers`] builds them). Headers duplicate envelope fields so
//! that consumers can route or filter without parsing the value; the envelope stays
//! the source of truth.

use crate::envelope::{EventEnvelope, RawEnvelope};

/// Header carrying the envelope's `event_type`, e.g. `FundsDeposited`.
pub const HEADER_EVENT_TYPE: &str = "event_type";
/// Header carrying the envelope's `schema_version` in decimal, e.g. `1`.
pub const HEADER_SCHEMA_VERSION: &str = "schema_version";
/// Header carrying the media type of the record value.
pub const HEADER_CONTENT_TYPE: &str = "content-type";
/// Header carrying the W3C trace context of the request that caused the record.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Media type of an encoded envelope.
pub const CONTENT_TYPE_JSON: &str = "application/json";

pub use crate::wire::CodecError;

/// Encodes an envelope as the JSON record value (fields in envelope order, no whitespace).
pub fn encode(envelope: &EventEnvelope) -> Vec<u8> {
    // Serializing an envelope cannot fail: every field is a string, an integer or a
    // JSON value with string keys, and no custom serializer reports an error.
    serde_json::to_vec(envelope).expect("an event envelope always serializes")
}

/// Decodes a JSON record value into an envelope. Unknown fields are rejected.
///
/// This checks the shape only; use [`EventEnvelope::hash_is_valid`] for integrity and
/// [`EventEnvelope::decode_account`] for the payload.
pub fn decode(bytes: &[u8]) -> Result<EventEnvelope, CodecError> {
    serde_json::from_slice(bytes).map_err(CodecError::Envelope)
}

/// Decodes a JSON record value into a [`RawEnvelope`]: the same checks of the envelope's shape
/// as [`decode`], with `data` checked to be JSON and kept as its text (no tree of values is
/// built, for readers that fold many events).
pub fn decode_raw(bytes: &[u8]) -> Result<RawEnvelope, CodecError> {
    serde_json::from_slice(bytes).map_err(CodecError::Envelope)
}

/// The headers that go with an envelope on Kafka, except `traceparent` (which comes
/// from the caller's trace context, not from the envelope).
pub fn event_headers(envelope: &EventEnvelope) -> [(&'static str, String); 3] {
    [
        (HEADER_EVENT_TYPE, envelope.event_type.clone()),
        (HEADER_SCHEMA_VERSION, envelope.schema_version.to_string()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::test_support::sample_envelope;

    #[test]
    fn encode_decode_round_trip() {
        let envelope = sample_envelope();
        let bytes = encode(&envelope);
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back, envelope);
        assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn rejects_garbage_and_unknown_fields() {
        assert!(matches!(decode(b"not json"), Err(CodecError::Envelope(_))));
        assert!(matches!(decode(b"{}"), Err(CodecError::Envelope(_))));
        let mut value = serde_json::to_value(sample_envelope()).expect("to value");
        value["surprise"] = serde_json::json!(1);
        let bytes = serde_json::to_vec(&value).expect("to vec");
        assert!(matches!(decode(&bytes), Err(CodecError::Envelope(_))));
    }

    #[test]
    fn the_raw_form_reads_the_same_envelope_and_event() {
        let envelope = sample_envelope();
        let bytes = encode(&envelope);
        let raw = decode_raw(&bytes).expect("decodes");
        assert_eq!(
            raw.data.get(),
            serde_json::to_string(&envelope.data).expect("data")
        );
        assert_eq!(
            (
                raw.event_id,
                raw.aggregate_id,
                raw.sequence,
                raw.occurred_at,
                &raw.hash
            ),
            (
                envelope.event_id,
                envelope.aggregate_id,
                envelope.sequence,
                envelope.occurred_at,
                &envelope.hash
            )
        );
        assert_eq!(
            raw.decode_account().expect("event"),
            envelope.decode_account().expect("event")
        );
        assert!(matches!(
            decode_raw(b"not json"),
            Err(CodecError::Envelope(_))
        ));
        let mut value = serde_json::to_value(&envelope).expect("to value");
        value["surprise"] = serde_json::json!(1);
        let unknown = serde_json::to_vec(&value).expect("to vec");
        assert!(matches!(decode_raw(&unknown), Err(CodecError::Envelope(_))));
        let truncated = String::from_utf8(bytes)
            .expect("utf-8")
            .replace("\"data\":{", "\"data\":{,");
        assert!(matches!(
            decode_raw(truncated.as_bytes()),
            Err(CodecError::Envelope(_))
        ));
    }

    #[test]
    fn headers_mirror_the_envelope() {
        let envelope = sample_envelope();
        let headers = event_headers(&envelope);
        assert_eq!(headers[0], ("event_type", "FundsDeposited".to_owned()));
        assert_eq!(headers[1], ("schema_version", "1".to_owned()));
        assert_eq!(headers[2], ("content-type", "application/json".to_owned()));
    }
}
