//! The rebuilds this gateway started, so that whoever started one can watch it end.
//!
//! `POST /v1/admin/projections/{name}/rebuild` runs the rebuild in a task of this process; the
//! projection status shows its progress as `<name>__rebuild` rows only while it runs, and a small
//! rebuild may finish between two polls. [`Rebuilds`] keeps the last [`KEPT`] runs of this process
//! with their outcome (`running`, `swapped` or `failed`) for `GET /v1/admin/rebuilds`
//! ([`crate::routes::admin::rebuilds`]). It is in
//! memory: a restarted gateway forgets them, and each gateway knows only its own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// How many runs are remembered (the oldest finished ones are forgotten first).
pub const KEPT: usize = 20;

/// One rebuild started through this gateway.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RebuildRun {
    pub rebuild_id: Uuid,
    pub projection: String,
    /// Subject of the admin who started it.
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    /// `running`, `swapped` (the rebuilt tables serve) or `failed` (see `error`).
    pub state: &'static str,
    pub finished_at: Option<DateTime<Utc>>,
    pub took_ms: Option<u64>,
    pub error: Option<String>,
}

/// The runs of this process, newest first.
#[derive(Debug, Default)]
pub struct Rebuilds {
    runs: Mutex<VecDeque<RebuildRun>>,
}

impl Rebuilds {
    pub fn new() -> Arc<Rebuilds> {
        Arc::new(Rebuilds::default())
    }

    /// Records a run that starts now; returns its id.
    pub fn start(&self, projection: &str, started_by: &str) -> Uuid {
        let run = RebuildRun {
            rebuild_id: Uuid::now_v7(),
            projection: projection.to_string(),
            started_by: started_by.to_string(),
            started_at: Utc::now(),
            state: "running",
            finished_at: None,
            took_ms: None,
            error: None,
        };
        let id = run.rebuild_id;
        let mut runs = self.lock();
        runs.push_front(run);
        while runs.len() > KEPT {
            // forget the oldest finished run; never one still running
            match runs.iter().rposition(|r| r.state != "running") {
                Some(i) => drop(runs.remove(i)),
                None => break,
            }
        }
        id
    }

    /// Records the end of run `id`: swapped in, or failed with `error`.
    pub fn finish(&self, id: Uuid, outcome: Result<std::time::Duration, String>) {
        let mut runs = self.lock();
        if let Some(run) = runs.iter_mut().find(|r| r.rebuild_id == id) {
            run.finished_at = Some(Utc::now());
            match outcome {
                Ok(took) => {
                    run.state = "swapped";
                    run.took_ms = Some(took.as_millis() as u64);
                }
                Err(error) => {
                    run.state = "failed";
                    run.error = Some(error);
                }
            }
        }
    }

    /// The runs, newest first.
    pub fn list(&self) -> Vec<RebuildRun> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RebuildRun>> {
        // a panic while holding the lock leaves plain data behind: keep serving it
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_swapped_or_failed_and_only_finished_ones_are_forgotten() {
        let rebuilds = Rebuilds::default();
        let first = rebuilds.start("ledger", "root");
        let second = rebuilds.start("archive", "root");
        rebuilds.finish(first, Ok(std::time::Duration::from_millis(12)));
        rebuilds.finish(second, Err("boom".into()));
        let runs = rebuilds.list();
        assert_eq!(runs[0].rebuild_id, second);
        assert_eq!(
            (runs[0].state, runs[0].error.as_deref()),
            ("failed", Some("boom"))
        );
        assert_eq!((runs[1].state, runs[1].took_ms), ("swapped", Some(12)));
        for _ in 0..KEPT + 5 {
            rebuilds.start("ledger", "root");
        }
        let runs = rebuilds.list();
        assert_eq!(runs.len(), KEPT + 5, "running ones are kept");
        assert!(runs.iter().all(|r| r.state == "running"));
    }
}
