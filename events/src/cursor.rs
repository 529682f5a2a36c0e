//! Resumable read cursors over the whole events topic: [`LogCursor`].
//!
//! A [`crate::Position`] names one record; a reader of many partitions needs one offset per
//! partition. A [`LogCursor`] holds, for each partition, the next offset to read: everything
//! below it has been delivered. Its token is `c1` followed by `.<partition>-<offset>` for each
//! partition past offset 0, partitions ascending, canonical decimal, e.g. `c1.0-12.3-7`
//! (URL-safe: digits, letters, `.` and `-` only). `c1` alone is the start of the log. Streams
//! and exports put the cursor after each line on that line, so the last one received resumes
//! exactly where it stopped, even while the log grows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const PREFIX: &str = "c1";
/// Longer inputs are refused before parsing (about 200 partitions).
pub const MAX_CURSOR_LEN: usize = 6_000;

/// A token that is not a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed log cursor (expected c1 or c1.<partition>-<offset>…)")]
pub struct CursorError;

/// The next offset to read in each partition (0 where absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LogCursor {
    next: BTreeMap<i32, i64>,
}

impl LogCursor {
    /// The start of the log.
    pub fn start() -> LogCursor {
        LogCursor::default()
    }

    /// A cursor from (partition, next offset) pairs; non-positive offsets are left out.
    pub fn from_offsets(offsets: impl IntoIterator<Item = (i32, i64)>) -> LogCursor {
        let mut cursor = LogCursor::start();
        for (partition, next) in offsets {
            cursor.set(partition, next);
        }
        cursor
    }

    /// The next offset to read in `partition`.
    pub fn next_offset(&self, partition: i32) -> i64 {
        self.next.get(&partition).copied().unwrap_or(0)
    }

    /// Sets the next offset of `partition` (0 or less removes it).
    pub fn set(&mut self, partition: i32, next: i64) {
        if next > 0 && partition >= 0 {
            self.next.insert(partition, next);
        } else {
            self.next.remove(&partition);
        }
    }

    /// Marks the record at (`partition`, `offset`) as delivered.
    pub fn advance(&mut self, partition: i32, offset: i64) {
        if offset >= self.next_offset(partition) {
            self.set(partition, offset.saturating_add(1));
        }
    }

    /// The partitions with a non-zero next offset, with it, ascending.
    pub fn offsets(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.next.iter().map(|(p, o)| (*p, *o))
    }

    /// The token, e.g. `c1.0-12.3-7`.
    pub fn to_token(&self) -> String {
        let mut token = String::from(PREFIX);
        for (partition, next) in &self.next {
            token.push_str(&format!(".{partition}-{next}"));
        }
        token
    }

    /// Parses a token made by [`LogCursor::to_token`] (strictly: one token per cursor).
    pub fn parse_token(token: &str) -> Result<LogCursor, CursorError> {
        if token.len() > MAX_CURSOR_LEN {
            return Err(CursorError);
        }
        let mut parts = token.split('.');
        if parts.next() != Some(PREFIX) {
            return Err(CursorError);
        }
        let mut cursor = LogCursor::start();
        let mut last: Option<i32> = None;
        for part in parts {
            let (partition, next) = part.split_once('-').ok_or(CursorError)?;
            let partition: i32 = canonical(partition)?;
            let next: i64 = canonical(next)?;
            if next == 0 || last.is_some_and(|l| l >= partition) {
                return Err(CursorError);
            }
            last = Some(partition);
            cursor.next.insert(partition, next);
        }
        Ok(cursor)
    }
}

fn canonical<T: FromStr>(digits: &str) -> Result<T, CursorError> {
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !ok {
        return Err(CursorError);
    }
    digits.parse().map_err(|_| CursorError)
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_token())
    }
}

impl FromStr for LogCursor {
    type Err = CursorError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        LogCursor::parse_token(token)
    }
}

impl Serialize for LogCursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogCursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = String::deserialize(deserializer)?;
        LogCursor::parse_token(&token).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let mut cursor = LogCursor::start();
        assert_eq!(cursor.to_token(), "c1");
        cursor.advance(3, 6);
        cursor.advance(0, 11);
        cursor.advance(0, 4);
        assert_eq!(cursor.to_token(), "c1.0-12.3-7");
        assert_eq!(LogCursor::parse_token("c1.0-12.3-7"), Ok(cursor.clone()));
        assert_eq!(cursor.next_offset(3), 7);
        assert_eq!(cursor.next_offset(1), 0);
        let json = serde_json::to_string(&cursor).expect("ser");
        assert_eq!(json, "\"c1.0-12.3-7\"");
        assert_eq!(serde_json::from_str::<LogCursor>(&json).ok(), Some(cursor));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "c2",
            "C1",
            "c1.",
            "c1.0",
            "c1.0-",
            "c1.-1",
            "c1.0-0",
            "c1.1-1.1-2",
            "c1.2-1.1-1",
            "c1.01-1",
            "c1.1-01",
            "c1.1--1",
            "c1.a-1",
            "c1.1-1 ",
            "v1.1.1",
            "c1.0-99999999999999999999",
        ] {
            assert_eq!(LogCursor::parse_token(bad), Err(CursorError), "{bad:?}");
        }
        let long = format!("c1{}", ".1-1".repeat(2_000));
        assert_eq!(LogCursor::parse_token(&long), Err(CursorError));
    }

    #[test]
    fn from_offsets_drops_zeros() {
        let cursor = LogCursor::from_offsets([(0, 0), (2, 5)]);
        assert_eq!(cursor.to_token(), "c1.2-5");
        assert_eq!(cursor.offsets().collect::<Vec<_>>(), vec![(2, 5)]);
    }
}
