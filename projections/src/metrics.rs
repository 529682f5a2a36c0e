//! The read side's Prometheus metrics (recorded through the `metrics` facade; the binary
//! installs the exporter that serves them on `/metrics`).
//!
//! - `logbook_projection_events_total{projection}`: events applied;
//! - `logbook_projection_duplicates_total{projection}`: replayed events left alone;
//! - `logbook_projection_batches_total{projection,outcome}` and
//!   `logbook_projection_batch_seconds{projection}`;
//! - `logbook_projection_lag{projection,partition}`: committed log end − stored next offset;
//! - `logbook_projection_poison_total{projection,partition}` and
//!   `logbook_projection_stopped{projection,partition}` (1 while stopped on a poison event);
//! - `logbook_rebalances_total{role="projector",kind}`.

use metrics::{counter, gauge, histogram};

/// A batch committed.
pub fn batch_committed(projection: &str, applied: usize, duplicates: usize, seconds: f64) {
    let name = projection.to_owned();
    counter!("logbook_projection_batches_total", "projection" => name.clone(), "outcome" => "committed")
        .increment(1);
    counter!("logbook_projection_events_total", "projection" => name.clone())
        .increment(applied as u64);
    if duplicates > 0 {
        counter!("logbook_projection_duplicates_total", "projection" => name.clone())
            .increment(duplicates as u64);
    }
    histogram!("logbook_projection_batch_seconds", "projection" => name).record(seconds);
}

/// A batch rolled back (`outcome` = `moved` or `failed`).
pub fn batch_rolled_back(projection: &str, outcome: &'static str) {
    counter!("logbook_projection_batches_total", "projection" => projection.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Lag of one partition, in offsets.
pub fn lag(projection: &str, partition: i32, lag: i64) {
    gauge!("logbook_projection_lag", "projection" => projection.to_owned(), "partition" => partition.to_string())
        .set(lag.max(0) as f64);
}

/// A partition stopped (or restarted) on a poison event.
pub fn poisoned(projection: &str, partition: i32) {
    let labels = [
        ("projection", projection.to_owned()),
        ("partition", partition.to_string()),
    ];
    counter!("logbook_projection_poison_total", &labels).increment(1);
    gauge!("logbook_projection_stopped", &labels).set(1.0);
}

/// A partition is (again) being applied.
pub fn running(projection: &str, partition: i32) {
    gauge!("logbook_projection_stopped", "projection" => projection.to_owned(), "partition" => partition.to_string())
        .set(0.0);
}

/// The consumer group moved partitions.
pub fn rebalanced(kind: &'static str) {
    counter!("logbook_rebalances_total", "role" => "projector", "kind" => kind).increment(1);
}
