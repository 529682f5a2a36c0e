//! Log positions and their opaque tokens (read-your-writes, export cursors).
//!
//! A [`Position`] is a Kafka partition and offset of `logbook.events`. Clients see it
//! only as a token, `v1.<partition>.<offset>` in canonical decimal: the `v1.` prefix
//! lets the format change later without breaking tokens already handed out, and
//! parsing is strict (one token per position) so tokens can be compared as strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const PREFIX: &str = "v1.";
/// Longer inputs are rejected before looking at them ("v1." + i32 + "." + i64).
const MAX_TOKEN_LEN: usize = 3 + 10 + 1 + 19;

/// A partition and offset in the events topic. Ordered by partition, then offset
/// (offsets of different partitions are not comparable in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Kafka partition (≥ 0 in a valid token).
    pub partition: i32,
    /// Kafka offset within the partition (≥ 0 in a valid token).
    pub offset: i64,
}

/// A token that is not a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    /// Not of the form `v1.<partition>.<offset>` with canonical decimal numbers.
    #[error("malformed position token")]
    Malformed,
    /// A number does not fit its type.
    #[error("position token out of range")]
    OutOfRange,
}

impl Position {
    /// A position; both numbers should be non-negative.
    pub fn new(partition: i32, offset: i64) -> Position {
        Position { partition, offset }
    }

    /// The opaque, stable token for this position, e.g. `v1.3.1042`.
    pub fn to_token(&self) -> String {
        format!("{PREFIX}{}.{}", self.partition, self.offset)
    }

    /// Parses a token made by [`Position::to_token`]. Rejects other prefixes,
    /// signs, leading zeros, whitespace, extra parts and numbers that overflow.
    pub fn parse_token(token: &str) -> Result<Position, PositionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(PositionError::Malformed);
        }
        let rest = token.strip_prefix(PREFIX).ok_or(PositionError::Malformed)?;
        let (partition, offset) = rest.split_once('.').ok_or(PositionError::Malformed)?;
        Ok(Position {
            partition: parse_number(partition)?,
            offset: parse_number(offset)?,
        })
    }
}

/// Canonical non-negative decimal: digits only, no leading zero unless it is `0`.
fn parse_number<T: FromStr>(digits: &str) -> Result<T, PositionError> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return Err(PositionError::Malformed);
    }
    // Only digits remain, so the one way to fail is overflow.
    digits.parse().map_err(|_| PositionError::OutOfRange)
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_token())
    }
}

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        Position::parse_token(token)
    }
}

/// Serialized as its token string.
impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = String::deserialize(deserializer)?;
        Position::parse_token(&token).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        for (partition, offset) in [(0, 0), (3, 1042), (i32::MAX, i64::MAX)] {
            let position = Position::new(partition, offset);
            let token = position.to_token();
            assert_eq!(Position::parse_token(&token), Ok(position), "{token}");
            assert_eq!(token.parse::<Position>(), Ok(position));
        }
        assert_eq!(Position::new(3, 1042).to_token(), "v1.3.1042");
        assert_eq!(Position::new(3, 1042).to_string(), "v1.3.1042");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "v1", "v1.", "v1.1", "v1.1.", "v1..1", "v2.1.1", "V1.1.1", "1.1", "v1.1.1.1",
            "v1.-1.5", "v1.1.-5", "v1.+1.5", "v1.01.5", "v1.1.05", "v1. 1.5", "v1.1.5 ",
            "v1.1.5\n", "v1.a.5", "v1.1.0x5", "v1.١.5",
        ] {
            assert_eq!(
                Position::parse_token(bad),
                Err(PositionError::Malformed),
                "{bad:?}"
            );
        }
        let long = format!("v1.1.{}", "1".repeat(100));
        assert_eq!(Position::parse_token(&long), Err(PositionError::Malformed));
    }

    #[test]
    fn rejects_overflow() {
        for bad in [
            "v1.2147483648.0",
            "v1.0.9223372036854775808",
            "v1.9999999999.0",
        ] {
            assert_eq!(
                Position::parse_token(bad),
                Err(PositionError::OutOfRange),
                "{bad}"
            );
        }
    }

    #[test]
    fn orders_by_partition_then_offset() {
        let mut positions = vec![
            Position::new(1, 5),
            Position::new(0, 9),
            Position::new(1, 2),
        ];
        positions.sort();
        assert_eq!(
            positions,
            vec![
                Position::new(0, 9),
                Position::new(1, 2),
                Position::new(1, 5)
            ]
        );
    }

    #[test]
    fn serde_uses_the_token() {
        let json = serde_json::to_string(&Position::new(2, 7)).expect("ser");
        assert_eq!(json, "\"v1.2.7\"");
        let back: Position = serde_json::from_str(&json).expect("de");
        assert_eq!(back, Position::new(2, 7));
        assert!(serde_json::from_str::<Position>("\"v1.2\"").is_err());
    }
}
