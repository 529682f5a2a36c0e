//! The write side's Prometheus metrics (recorded through the `metrics` facade; the binary
//! installs the exporter that serves them on `/metrics`).

use metrics::{counter, gauge, histogram};

/// A transaction committed with `commands` results and `events` events.
pub fn batch_committed(commands: usize, events: usize) {
    counter!("logbook_processor_transactions_total", "outcome" => "committed").increment(1);
    counter!("logbook_events_appended_total").increment(events as u64);
    counter!("logbook_processor_commands_total").increment(commands as u64);
    histogram!("logbook_processor_batch_size").record(commands as f64);
}

/// A transaction was aborted (or lost with its producer).
pub fn transaction_aborted() {
    counter!("logbook_processor_transactions_total", "outcome" => "aborted").increment(1);
}

/// A partition was restored, folding `events` events of the log after a snapshot (`source`
/// "snapshot") or from the start ("log").
pub fn partition_restored(events: u64, seconds: f64, source: &'static str) {
    counter!("logbook_processor_restores_total", "source" => source).increment(1);
    counter!("logbook_processor_restored_events_total").increment(events);
    histogram!("logbook_processor_restore_seconds", "source" => source).record(seconds);
}

/// A snapshot was passed over (incomplete, corrupt, another format or another log).
pub fn snapshot_unusable() {
    counter!("logbook_processor_snapshots_unusable_total").increment(1);
}

/// A snapshot of `bytes` bytes, encoded in `seconds`, went out with a committed transaction.
pub fn snapshot_written(bytes: usize, seconds: f64) {
    counter!("logbook_processor_snapshots_total").increment(1);
    histogram!("logbook_processor_snapshot_bytes").record(bytes as f64);
    histogram!("logbook_processor_snapshot_encode_seconds").record(seconds);
}

/// Wall time of one transaction, begin to commit.
pub fn transaction_seconds(seconds: f64) {
    histogram!("logbook_processor_transaction_seconds").record(seconds);
}

/// The dedupe horizon in effect for a partition (less than configured when the cap is reached).
pub fn dedupe_horizon(partition: i32, horizon: std::time::Duration) {
    gauge!("logbook_processor_dedupe_horizon_seconds", "partition" => partition.to_string())
        .set(horizon.as_secs_f64());
}
