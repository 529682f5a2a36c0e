//! The `backup` and `restore` subcommands: settings in, blocking work on a blocking thread,
//! a summary line out.

use std::path::PathBuf;

use logbook_events::topics::TopicLayout;

use super::{BackupOptions, RestoreOptions, run_backup, run_restore};
use crate::settings::Settings;

/// Records per segment file: a few tens of MB uncompressed, a few MB on disk.
const SEGMENT_RECORDS: u64 = 100_000;

/// `logbook backup --out DIR [--all-topics]`.
pub async fn backup(settings: &Settings, out: PathBuf, all_topics: bool) -> anyhow::Result<()> {
    let kafka = settings.require_kafka()?.clone();
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
pub async fn restore(settings: &Settings, from: PathBuf, force: bool) -> anyhow::Result<()> {
    let kafka = settings.require_kafka()?.clone();
    let layout = TopicLayout {
        partitions: settings.topic_partitions,
        replication_factor: settings.topic_replication_factor,
        min_insync_replicas: settings.topic_min_insync_replicas,
    };
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
