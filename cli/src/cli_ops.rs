//! The CLI side of the operations subcommands (`verify`, `export`, `replay`, `backup`,
//! `restore`): settings in, the work of [`logbook_ops`] (blocking parts on a blocking thread),
//! a summary line out.

use std::io::Write;
use std::path::PathBuf;

use logbook_events::topics::TopicLayout;
use logbook_ops::backup::{BackupOptions, RestoreOptions, run_backup, run_restore};
use logbook_ops::tools::ToolError;
use logbook_ops::tools::export::{ExportArgs, export};
use logbook_ops::tools::replay::{ReplayArgs, replay};
use logbook_ops::tools::verify::{Source, VerifyArgs, verify_kafka};

use logbook_events::KafkaSettings;
use logbook_projections::db::DatabaseSettings;

use crate::settings::connections::{DatabaseArgs, KafkaArgs};

/// `logbook verify`: prints the report; fails when a chain is broken.
pub async fn verify(
    kafka: &KafkaArgs,
    database: &DatabaseArgs,
    args: VerifyArgs,
) -> anyhow::Result<()> {
    let report = match args.source {
        Source::Kafka => {
            let kafka = kafka.resolve()?;
            let account = args.account_id;
            tokio::task::spawn_blocking(move || verify_kafka(&kafka, account, true)).await??
        }
        Source::Archive => {
            let pool = database.resolve()?.pool_of(2)?;
            logbook_projections::queries::audit::verify(&pool, args.account_id).await?
        }
    };
    let mut out = std::io::stdout();
    writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    if report.is_intact() {
        Ok(())
    } else {
        Err(ToolError::Broken(report.breaks).into())
    }
}

/// `logbook export`.
pub async fn export_log(kafka: KafkaSettings, args: ExportArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let summary = tokio::task::spawn_blocking(move || export(&kafka, &args, true)).await??;
    tracing::info!(
        read = summary.read,
        written = summary.written,
        ms = started.elapsed().as_millis() as u64,
        "export written"
    );
    Ok(())
}

/// `logbook replay`.
pub async fn replay_log(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    let summary = replay(database.options()?, &kafka, &args, true).await?;
    tracing::info!(
        schema = args.into,
        events = summary.events,
        ms = summary.millis,
        "replay done"
    );
    Ok(())
}

/// Records per segment file: a few tens of MB uncompressed, a few MB on disk.
const SEGMENT_RECORDS: u64 = 100_000;

/// `logbook backup --out DIR [--all-topics]`.
pub async fn backup(kafka: KafkaSettings, out: PathBuf, all_topics: bool) -> anyhow::Result<()> {
    let options = BackupOptions {
        out,
        include_commands_and_results: all_topics,
        segment_records: SEGMENT_RECORDS,
        progress: true,
    };
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || run_backup(&kafka, &options)).await??;
    tracing::info!(
        records_added = report.records_added,
        segments_added = report.segments_added,
        bytes_added = report.bytes_added,
        records_total = report.records_total,
        took_ms = started.elapsed().as_millis() as u64,
        "backup done"
    );
    Ok(())
}

/// `logbook restore --from DIR [--force]`.
pub async fn restore(
    kafka: KafkaSettings,
    layout: TopicLayout,
    from: PathBuf,
    force: bool,
) -> anyhow::Result<()> {
    let options = RestoreOptions {
        from,
        force,
        progress: true,
    };
    let started = std::time::Instant::now();
    let report =
        tokio::task::spawn_blocking(move || run_restore(&kafka, &layout, &options)).await??;
    tracing::info!(
        records_written = report.records_written,
        records_skipped = report.records_skipped,
        events_verified = report.events_verified,
        aggregates_verified = report.aggregates_verified,
        undecodable_events = report.undecodable_events,
        open_transfers = report.open_transfers,
        took_ms = started.elapsed().as_millis() as u64,
        "restore done; run `logbook migrate` on an empty database and start the projectors to rebuild the read models"
    );
    Ok(())
}
