//! `logbook verify [--source kafka|archive] [--account-id ID]`: recomputes every hash chain
//! and prints the report as JSON on stdout: `intact` with counts, or the first broken event
//! (account, sequence, expected vs found, log position). Exits non-zero when broken.
//!
//! Over Kafka it reads the events topic read_committed from the start to the end seen at the
//! start, in log order (each account's events in sequence order within its partition), with a
//! progress bar. Over the archive it checks `event_archive` in log order.

use std::time::Instant;

use clap::{Args, ValueEnum};
use logbook_events::{KafkaSettings, Position, Verification, VerifyReport, decode};
use uuid::Uuid;

use super::log::LogReader;
use super::{ToolError, progress_bar};

/// Where `verify` reads the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// The events topic (the system of record), read_committed.
    Kafka,
    /// The `event_archive` read model in PostgreSQL.
    Archive,
}

/// Arguments of `logbook verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// What to check.
    #[arg(long, value_enum, default_value_t = Source::Kafka)]
    pub source: Source,
    /// Only this account's chain.
    #[arg(long)]
    pub account_id: Option<Uuid>,
}

/// Checks the chains of the events topic (one account's when `account` is given). Blocking.
pub fn verify_kafka(
    kafka: &KafkaSettings,
    account: Option<Uuid>,
    show_progress: bool,
) -> Result<VerifyReport, ToolError> {
    let started = Instant::now();
    let mut reader = LogReader::open(kafka, None, None)?;
    let bar = show_progress.then(|| progress_bar(reader.span(), "verify"));
    let mut check = Verification::new();
    while let Some(record) = reader.next_record()? {
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let position = Some(Position::new(record.partition, record.offset));
        match decode(&record.payload) {
            Ok(envelope) if account.is_none_or(|id| id == envelope.aggregate_id) => {
                check.feed(&envelope, position);
            }
            Ok(_) => {}
            Err(error) => check.feed_undecodable(position, error.to_string()),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(check.finish(started.elapsed()))
}
