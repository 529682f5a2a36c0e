//! The NDJSON line of streams, exports and replays:
//! `{"cursor":"c1.…","position":"v1.<p>.<o>","event":<envelope>}`.
//!
//! `logbook export` writes the Kafka record value verbatim as `event`, so the envelope bytes in
//! the file are exactly those of the log (and re-hash identically). `cursor` is the log cursor
//! just past the event: it resumes a stream or starts a later export.

use logbook_events::{EventEnvelope, LogCursor, Position, decode};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Appends one line with `event` given as its JSON bytes.
pub fn write_line(out: &mut Vec<u8>, cursor: &LogCursor, position: Position, event: &[u8]) {
    out.extend_from_slice(b"{\"cursor\":\"");
    out.extend_from_slice(cursor.to_token().as_bytes());
    out.extend_from_slice(b"\",\"position\":\"");
    out.extend_from_slice(position.to_token().as_bytes());
    out.extend_from_slice(b"\",\"event\":");
    out.extend_from_slice(event);
    out.extend_from_slice(b"}\n");
}

/// A parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub cursor: LogCursor,
    pub position: Position,
    /// The event's JSON exactly as in the line.
    pub raw: Vec<u8>,
    pub envelope: EventEnvelope,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    cursor: LogCursor,
    position: Position,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// Parses one line (without its newline).
pub fn parse_line(text: &str) -> Result<Line, String> {
    let wire: Wire<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let raw = wire.event.get().as_bytes().to_vec();
    let envelope = decode(&raw).map_err(|e| e.to_string())?;
    Ok(Line {
        cursor: wire.cursor,
        position: wire.position,
        raw,
        envelope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_events::{AccountEvent, Actor, EventMeta, ZERO_HASH, encode};
    use uuid::Uuid;

    #[test]
    fn lines_round_trip_with_the_event_bytes_verbatim() {
        let meta = EventMeta {
            event_id: Uuid::now_v7(),
            occurred_at: chrono::Utc::now(),
            command_id: Uuid::nil(),
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
            actor: Actor {
                sub: "s".into(),
                role: "service".into(),
            },
        };
        let event = AccountEvent::FundsDeposited {
            amount: 5,
            balance_after: 5,
            reference: Some("a \"quoted\" ref\n".into()),
        };
        let envelope = EventEnvelope::new_sealed(meta, Uuid::from_u128(1), 1, ZERO_HASH, &event);
        let bytes = encode(&envelope);
        let cursor = LogCursor::from_offsets([(2, 8)]);
        let mut out = Vec::new();
        write_line(&mut out, &cursor, Position::new(2, 7), &bytes);
        assert_eq!(out.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&out[..out.len() - 1]).expect("utf8");
        let line = parse_line(text).expect("parses");
        assert_eq!(line.raw, bytes);
        assert_eq!(line.envelope, envelope);
        assert_eq!(line.cursor, cursor);
        assert_eq!(line.position, Position::new(2, 7));
        assert!(parse_line("{\"cursor\":\"c1\"}").is_err());
    }
}
