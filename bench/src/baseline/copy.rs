//! Baseline (c): raw `COPY` of the rows the projectors write for each event (one ledger line
//! in `account_transactions`, one envelope in `event_archive`) into a migrated database, one
//! transaction per batch: the ceiling of the projector's database side.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::summary::{self, Percentiles};
use crate::synth::{Synth, SynthError, SynthEvent};

#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    /// Events per COPY transaction (the projector's batch size).
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    #[arg(long)]
    pub out: PathBuf,
}

/// How to reach a PostgreSQL database: URL without password, password from a file.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    #[arg(long, env = "LOGBOOK_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[arg(long, env = "LOGBOOK_DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot read the password file: {0}")]
    Password(std::io::Error),
}

impl DbArgs {
    pub fn options(&self) -> Result<PgConnectOptions, DbError> {
        let mut options: PgConnectOptions = self.database_url.parse()?;
        if let Some(path) = &self.database_password_file {
            let password = std::fs::read_to_string(path).map_err(DbError::Password)?;
            options = options.password(password.trim());
        }
        Ok(options.disable_statement_logging())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("events: {0}")]
    Synth(#[from] SynthError),
    #[error("cannot write the result: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot encode the result: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Debug, Serialize)]
struct CopyResult {
    events: u64,
    batch: usize,
    rows: u64,
    copy_seconds: f64,
    events_per_s: f64,
    rows_per_s: f64,
    batch_latency: Percentiles,
}

pub async fn run(args: CopyArgs) -> Result<(), CopyError> {
    let mut conn = PgConnection::connect_with(&args.db.options()?).await?;
    let mut synth = Synth::new(args.accounts)?;
    let mut latency = summary::histogram();
    let (mut copying, mut rows, mut left, mut index) = (Duration::ZERO, 0u64, args.events, 0u64);
    while left > 0 {
        let size = left.min(args.batch.max(1) as u64);
        left -= size;
        let batch: Vec<SynthEvent> = (0..size).map(|_| synth.next_event()).collect();
        let (ledger, archive, lines) = csv(&batch, &mut index);
        let started = Instant::now();
        let mut tx = conn.begin().await?;
        copy(&mut tx, LEDGER_COPY, ledger).await?;
        copy(&mut tx, ARCHIVE_COPY, archive).await?;
        tx.commit().await?;
        let took = started.elapsed();
        copying += took;
        rows += lines + size;
        summary::record(&mut latency, took.as_micros() as u64);
    }
    let seconds = copying.as_secs_f64().max(1e-9);
    let result = CopyResult {
        events: args.events,
        batch: args.batch,
        rows,
        copy_seconds: copying.as_secs_f64(),
        events_per_s: args.events as f64 / seconds,
        rows_per_s: rows as f64 / seconds,
        batch_latency: Percentiles::of(&latency),
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&result)?)?;
    tracing::info!(events_per_s = result.events_per_s, "copy baseline written");
    Ok(())
}

const LEDGER_COPY: &str = "COPY account_transactions (account_id, sequence, kind, amount, \
    balance_after, reference, event_id, occurred_at) FROM STDIN (FORMAT csv)";
const ARCHIVE_COPY: &str = "COPY event_archive (partition, \"offset\", event_id, aggregate_type, \
    aggregate_id, sequence, event_type, occurred_at, envelope) FROM STDIN (FORMAT csv)";

async fn copy(conn: &mut PgConnection, statement: &str, data: String) -> Result<(), sqlx::Error> {
    let mut sink = conn.copy_in_raw(statement).await?;
    sink.send(data.into_bytes()).await?;
    sink.finish().await?;
    Ok(())
}

/// The CSV of both tables for a batch, and the number of ledger lines in it.
fn csv(batch: &[SynthEvent], index: &mut u64) -> (String, String, u64) {
    let (mut ledger, mut archive, mut lines) = (String::new(), String::new(), 0);
    for event in batch {
        let e = &event.envelope;
        let at = e.occurred_at.format("%Y-%m-%dT%H:%M:%S%.6fZ");
        if let Some((kind, amount, after)) = event.line {
            let reference = format!("bench-{index}");
            let _ = writeln!(
                ledger,
                "{},{},{kind},{amount},{after},{reference},{},{at}",
                e.aggregate_id, e.sequence, e.event_id
            );
            lines += 1;
        }
        let json = String::from_utf8_lossy(&event.bytes).replace('"', "\"\"");
        let _ = writeln!(
            archive,
            "{},{},{},{},{},{},{},{at},\"{json}\"",
            *index % 12,
            *index / 12,
            e.event_id,
            e.aggregate_type,
            e.aggregate_id,
            e.sequence,
            e.event_type
        );
        *index += 1;
    }
    (ledger, archive, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_quote_the_envelope() {
        let mut synth = Synth::new(2).expect("synth");
        let batch: Vec<SynthEvent> = (0..4).map(|_| synth.next_event()).collect();
        let mut index = 0;
        let (ledger, archive, lines) = csv(&batch, &mut index);
        assert_eq!(lines, 2);
        assert_eq!(ledger.lines().count(), 2);
        assert_eq!(archive.lines().count(), 4);
        assert!(archive.contains("\"{\"\"event_id\"\""));
        assert_eq!(index, 4);
    }
}
