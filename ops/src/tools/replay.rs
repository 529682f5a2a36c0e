//! `logbook replay --into <schema> [--until <time>] [--from-file FILE] [--replace]`: folds the
//! log (read_committed from Kafka, or an NDJSON export) up to an instant into a separate
//! PostgreSQL schema with the live projectors' own code (see
//! [`logbook_projections::replay`]); analysts then query `<schema>.accounts` and friends with
//! plain SQL, and the live read models are never touched.
//!
//! `--until` keeps, per partition, the events up to the first one that occurred after the
//! instant (a prefix of the log, so every account's history stays gap-free). A replay must
//! start at the beginning of the log: an export that starts later leaves gaps the ledger
//! refuses.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::Args;
use logbook_events::{KafkaSettings, decode};
use logbook_projections::batch::Record;
use logbook_projections::replay::{Replayer, options_in, prepare};
use tokio::sync::mpsc;

use super::lines::parse_line;
use super::log::LogReader;
use super::{ToolError, progress_bar};

/// Records per replay transaction.
const BATCH: usize = 2_000;

/// Arguments of `logbook replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The schema to create and fill (lowercase identifier; not `public`).
    #[arg(long)]
    pub into: String,
    /// Fold only what occurred up to this RFC 3339 instant.
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// Read an NDJSON export instead of Kafka.
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    /// Drop the schema first if it exists.
    #[arg(long)]
    pub replace: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    pub events: u64,
    pub millis: u64,
}

/// Prepares the schema and folds the source into it.
pub async fn replay(
    options: sqlx::postgres::PgConnectOptions,
    kafka: &KafkaSettings,
    args: &ReplayArgs,
    show_progress: bool,
) -> Result<ReplaySummary, ToolError> {
    let started = Instant::now();
    let admin = logbook_projections::db::pool(options.clone(), 1);
    prepare(&admin, &args.into, args.replace).await?;
    admin.close().await;
    let pool = logbook_projections::db::pool(options_in(options, &args.into), 2);
    let mut replayer = Replayer::new(pool.clone());
    let (batches, mut receiver) = mpsc::channel::<Result<Vec<Record>, ToolError>>(4);
    let source = Source {
        kafka: kafka.clone(),
        file: args.from_file.clone(),
        until: args.until,
        show_progress,
    };
    let reading = tokio::task::spawn_blocking(move || source.read(&batches));
    while let Some(batch) = receiver.recv().await {
        replayer.apply(batch?).await?;
    }
    reading
        .await
        .map_err(|e| ToolError::Io(std::io::Error::other(e)))?;
    pool.close().await;
    Ok(ReplaySummary {
        events: replayer.applied(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Where the records come from, read on a blocking thread.
struct Source {
    kafka: KafkaSettings,
    file: Option<PathBuf>,
    until: Option<DateTime<Utc>>,
    show_progress: bool,
}

type Sender = mpsc::Sender<Result<Vec<Record>, ToolError>>;

impl Source {
    fn read(self, batches: &Sender) {
        let result = match &self.file {
            Some(path) => self.read_file(path, batches),
            None => self.read_kafka(batches),
        };
        if let Err(error) = result {
            let _ = batches.blocking_send(Err(error));
        }
    }

    fn read_kafka(&self, batches: &Sender) -> Result<(), ToolError> {
        let mut reader = LogReader::open(&self.kafka, None, None)?;
        let bar = self
            .show_progress
            .then(|| progress_bar(reader.span(), "replay"));
        let mut cutoff = Cutoff::new(self.until);
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(record) = reader.next_record()? {
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            let at = decode(&record.payload).ok().map(|e| e.occurred_at);
            if cutoff.keeps(record.partition, at) {
                batch.push(Record {
                    partition: record.partition,
                    offset: record.offset,
                    payload: Some(record.payload),
                });
            }
            if batch.len() >= BATCH && !send(batches, &mut batch) {
                return Ok(());
            }
        }
        send(batches, &mut batch);
        Ok(())
    }

    fn read_file(&self, path: &PathBuf, batches: &Sender) -> Result<(), ToolError> {
        let file = std::fs::File::open(path)?;
        let bar = self
            .show_progress
            .then(|| progress_bar(file.metadata().map_or(0, |m| m.len()), "replay (bytes)"));
        let mut cutoff = Cutoff::new(self.until);
        let mut batch = Vec::with_capacity(BATCH);
        for (number, text) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
            let text = text?;
            if let Some(bar) = &bar {
                bar.inc(text.len() as u64 + 1);
            }
            if text.is_empty() {
                continue;
            }
            let line = parse_line(&text).map_err(|reason| ToolError::BadLine {
                line: number as u64 + 1,
                reason,
            })?;
            let partition = line.position.partition;
            if cutoff.keeps(partition, Some(line.envelope.occurred_at)) {
                batch.push(Record {
                    partition,
                    offset: line.position.offset,
                    payload: Some(line.raw),
                });
            }
            if batch.len() >= BATCH && !send(batches, &mut batch) {
                return Ok(());
            }
        }
        send(batches, &mut batch);
        Ok(())
    }
}

/// Sends and empties a non-empty batch; false when the receiver is gone.
fn send(batches: &Sender, batch: &mut Vec<Record>) -> bool {
    if batch.is_empty() {
        return true;
    }
    batches.blocking_send(Ok(std::mem::take(batch))).is_ok()
}

/// `--until`: per partition, everything up to the first event that occurred after the instant.
#[derive(Debug)]
struct Cutoff {
    until: Option<DateTime<Utc>>,
    stopped: std::collections::HashSet<i32>,
}

impl Cutoff {
    fn new(until: Option<DateTime<Utc>>) -> Cutoff {
        Cutoff {
            until,
            stopped: Default::default(),
        }
    }

    /// Whether a record of `partition` that occurred at `at` (None: undecodable, left to the
    /// projection to refuse) is replayed.
    fn keeps(&mut self, partition: i32, at: Option<DateTime<Utc>>) -> bool {
        if self.stopped.contains(&partition) {
            return false;
        }
        let late = matches!((self.until, at), (Some(until), Some(at)) if at > until);
        if late {
            self.stopped.insert(partition);
        }
        !late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_keeps_a_prefix_per_partition() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).expect("time");
        let mut cutoff = Cutoff::new(Some(t(10)));
        assert!(cutoff.keeps(0, Some(t(5))));
        assert!(cutoff.keeps(0, Some(t(10))));
        assert!(!cutoff.keeps(0, Some(t(11))));
        assert!(
            !cutoff.keeps(0, Some(t(9))),
            "after the cut the partition stays cut"
        );
        assert!(cutoff.keeps(1, Some(t(9))));
        assert!(Cutoff::new(None).keeps(0, Some(t(99))));
    }
}
