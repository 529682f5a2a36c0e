//! The auditors' and analysts' command-line tools: `logbook verify`, `logbook export` and
//! `logbook replay`.
//!
//! - [`log`]: reading the events topic straight from Kafka (read_committed) between bounds;
//! - [`verify`]: recomputing every hash chain over the Kafka log or the archive;
//! - [`export`]: writing a range of the log to an NDJSON or CSV file, with a progress bar;
//! - [`replay`]: folding the log (or an NDJSON export) into a separate PostgreSQL schema;
//! - [`lines`]: the NDJSON line format shared by `GET /v1/events`, exports and replays.
//!
//! Progress bars (indicatif) go to stderr; results go to stdout or the output file.

pub mod export;
pub mod lines;
pub mod log;
pub mod replay;
pub mod verify;

use chrono::{DateTime, Utc};
use logbook_events::{CodecError, CursorError, LogCursor, Position};

/// Why a tool failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("reading the log stalled: no record or end of partition for {0} s")]
    Stalled(u64),
    #[error("record at {position} is not an envelope: {source}")]
    Undecodable {
        position: Position,
        #[source]
        source: CodecError,
    },
    #[error("line {line} of the input is not an export line: {reason}")]
    BadLine { line: u64, reason: String },
    #[error("{0:?} is neither an RFC 3339 time nor a log cursor (c1…)")]
    BadBound(String),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the hash chains are broken: {0} broken event(s)")]
    Broken(u64),
    #[error("database: {0}")]
    Database(#[from] logbook_projections::db::DbError),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("replay: {0}")]
    Replay(#[from] logbook_projections::replay::ReplayError),
}

/// A `--from` or `--to` bound: an instant (compared with `occurred_at`) or a log cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Time(DateTime<Utc>),
    Cursor(LogCursor),
}

impl std::str::FromStr for Bound {
    type Err = ToolError;

    fn from_str(text: &str) -> Result<Bound, ToolError> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Bound::Time(at.with_timezone(&Utc)));
        }
        LogCursor::parse_token(text)
            .map(Bound::Cursor)
            .map_err(|CursorError| ToolError::BadBound(text.to_owned()))
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_times_or_cursors() {
        assert!(matches!(
            "2026-11-25T10:00:00Z".parse::<Bound>(),
            Ok(Bound::Time(_))
        ));
        assert!(matches!("c1.0-5".parse::<Bound>(), Ok(Bound::Cursor(_))));
        assert!(matches!(
            "yesterday".parse::<Bound>(),
            Err(ToolError::BadBound(_))
        ));
    }
}
