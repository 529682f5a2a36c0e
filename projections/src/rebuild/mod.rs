//! Rebuilding a projection from offset 0 without downtime (`logbook rebuild <projection>`,
//! `POST /v1/admin/projections/{name}/rebuild`).
//!
//! The rebuild replays the whole log into shadow tables (`<table>__rebuild`, offsets key
//! `<name>__rebuild`) with the ordinary projector worker in a consumer group of its own, while
//! the live tables keep serving and the live projector keeps running. Once every partition has
//! reached the end of the log, [`swap`] replaces the live tables in one transaction (retrying
//! later if the live projection is still ahead somewhere). A session advisory lock allows one
//! rebuild of a projection at a time; a failed or cancelled rebuild drops its shadow tables.
//! The shadow tables' secondary indexes, and the primary keys of the tables it only appends
//! to, are dropped for the replay and built once it has caught up ([`indexes`]), before the
//! first swap attempt. A ledger rebuild keeps its account
//! and transfer rows in memory and writes them before each swap attempt
//! ([`crate::ledger::staged`]): with no other writer to the shadow tables, nothing needs to be
//! read back.

pub mod indexes;
pub mod swap;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::projection::{Projection, Sink};
use crate::projector::worker::Worker;
use crate::projector::{Owned, ProjectorError, ProjectorSettings, StopOnDrop};

/// Where a rebuild has got, per partition: (partition, next offset, log end if known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildProgress {
    pub partitions: Vec<(i32, i64, Option<i64>)>,
    pub swapped: bool,
}

impl RebuildProgress {
    /// Offsets still to apply, over the partitions whose end is known.
    pub fn remaining(&self) -> i64 {
        self.partitions
            .iter()
            .filter_map(|(_, next, end)| end.map(|e| (e - next).max(0)))
            .sum()
    }

    /// Whether the log end of every assigned partition is known (the client statistics bring
    /// them a few seconds after the assignment).
    pub fn ends_known(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|(_, _, end)| end.is_some())
    }
}

/// How far rebuilds running side by side are, in words: the offsets still to apply, or that
/// they are not known yet (until then the sum only covers the partitions whose end is known).
pub fn describe(progress: &[RebuildProgress]) -> String {
    let remaining: i64 = progress.iter().map(RebuildProgress::remaining).sum();
    if progress.iter().all(RebuildProgress::ends_known) {
        format!("{remaining} offsets to go")
    } else if remaining == 0 {
        "reading the log ends".to_owned()
    } else {
        format!("at least {remaining} offsets to go (some log ends not known yet)")
    }
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub projection: Projection,
    /// Stored next offsets when the shadow tables were swapped in.
    pub offsets: Vec<(i32, i64)>,
    pub took: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(Projection),
    #[error(
        "this database role may not replace the tables of {0}: rebuilds run with the settings of \
         the role that owns them (the one that runs the migrations)"
    )]
    NotPermitted(Projection),
    #[error("partition {0} stopped on a poison event during the rebuild")]
    Poisoned(i32),
    #[error("the rebuild was cancelled")]
    Cancelled,
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Whether this pool's role may rebuild `projection`: create tables in the schema and drop and
/// rename the live ones (own them, or belong to their owner). A least-privilege API or projector
/// role may not (see the migration `role_grants`).
pub async fn permitted(pool: &PgPool, projection: Projection) -> Result<bool, sqlx::Error> {
    let tables: Vec<&str> = projection.tables().to_vec();
    sqlx::query_scalar(
        "SELECT has_schema_privilege(current_schema(), 'CREATE') \
            AND coalesce(bool_and(pg_has_role(current_user, c.relowner, 'USAGE')), false) \
         FROM pg_class c \
         WHERE c.oid IN (SELECT to_regclass(t) FROM unnest($1::text[]) t)",
    )
    .bind(&tables)
    .fetch_one(pool)
    .await
}

/// Rebuilds `projection` into shadow tables and swaps them in. `progress` (if any) is updated
/// after every batch; `cancel` completing stops the rebuild and drops the shadow tables.
pub async fn rebuild(
    settings: ProjectorSettings,
    pool: PgPool,
    projection: Projection,
    progress: Option<watch::Sender<RebuildProgress>>,
    cancel: impl Future<Output = ()>,
) -> Result<RebuildReport, RebuildError> {
    if !permitted(&pool, projection).await? {
        return Err(RebuildError::NotPermitted(projection));
    }
    let lock_key = format!("logbook-rebuild-{}", projection.name());
    // A connection of its own: if this future is dropped, closing it releases the lock.
    let mut lock = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(&lock_key)
        .fetch_one(&mut lock)
        .await?;
    if !locked {
        return Err(RebuildError::AlreadyRunning(projection));
    }
    let result = run(settings, pool.clone(), projection, progress, cancel).await;
    if result.is_err()
        && let Err(error) = swap::discard(&pool, projection).await
    {
        tracing::warn!(%error, "could not drop the shadow tables of a failed rebuild");
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(&lock_key)
        .execute(&mut lock)
        .await;
    let _ = sqlx::Connection::close(lock).await;
    result
}

async fn run(
    settings: ProjectorSettings,
    pool: PgPool,
    projection: Projection,
    progress: Option<watch::Sender<RebuildProgress>>,
    cancel: impl Future<Output = ()>,
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    swap::prepare(&pool, projection).await?;
    let deferred = indexes::defer(&pool, projection).await?;
    tracing::info!(
        projection = projection.name(),
        "rebuild started into shadow tables"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let (done_tx, done_rx) = oneshot::channel();
    let group_id = format!(
        "{}.{}.rebuild.{}",
        settings.group_prefix,
        projection.name(),
        Uuid::now_v7()
    );
    let job = Job {
        pool,
        projection,
        progress,
        runtime: Handle::current(),
        deferred: std::sync::Mutex::new(deferred),
    };
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name(format!("logbook-rebuild-{}", projection.name()))
        .spawn(move || {
            let run = || job.run(settings, &group_id, thread_stop);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or(Err(RebuildError::Projector(ProjectorError::Panicked)));
            let _ = done_tx.send(result);
        })
        .map_err(|_| ProjectorError::Panicked)?;
    tokio::pin!(done_rx);
    let offsets = tokio::select! {
        done = &mut done_rx => done.unwrap_or(Err(RebuildError::Projector(ProjectorError::Panicked)))?,
        () = cancel => {
            stop.store(true, Ordering::Relaxed);
            let _ = done_rx.await;
            return Err(RebuildError::Cancelled);
        }
    };
    let took = started.elapsed();
    tracing::info!(
        projection = projection.name(),
        ?offsets,
        ms = took.as_millis() as u64,
        "rebuild swapped in"
    );
    Ok(RebuildReport {
        projection,
        offsets,
        took,
    })
}

/// Whether a partition has (nearly) reached the end of the log: time to try the swap, which
/// itself checks that the shadow is at least as far as the live projection.
fn caught_up(partition: &Owned) -> bool {
    partition.at_end || partition.log_end.is_some_and(|end| partition.next >= end)
}

/// The rebuild's worker thread.
struct Job {
    pool: PgPool,
    projection: Projection,
    progress: Option<watch::Sender<RebuildProgress>>,
    runtime: Handle,
    /// Indexes and keys still to build (emptied once built).
    deferred: std::sync::Mutex<Vec<String>>,
}

impl Job {
    fn run(
        &self,
        settings: ProjectorSettings,
        group_id: &str,
        stop: Arc<AtomicBool>,
    ) -> Result<Vec<(i32, i64)>, RebuildError> {
        let sink = Sink::shadow(self.projection);
        let topic = settings.kafka.topics().events;
        let staged_rows = settings.rebuild_staged_rows;
        let mut worker = Worker::new(
            settings,
            sink,
            group_id,
            self.pool.clone(),
            self.runtime.clone(),
            stop.clone(),
        )?;
        if self.projection == Projection::Ledger {
            worker.stage_ledger(staged_rows);
        }
        let partitions = worker.partition_count(&topic)?;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(RebuildError::Cancelled);
            }
            worker.step()?;
            let state = worker.context().snapshot();
            self.report(&state, false);
            if let Some((p, _)) = state.iter().find(|(_, o)| o.stopped) {
                return Err(RebuildError::Poisoned(*p));
            }
            let caught_up = state.len() == partitions && state.values().all(caught_up);
            if !caught_up {
                continue;
            }
            if let Err(error) = worker.flush_staged(false) {
                tracing::warn!(projection = self.projection.name(), %error, "writing the staged rows failed; retrying");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            self.build_indexes()?;
            if self.try_swap()? {
                self.report(&state, true);
                let mut offsets: Vec<(i32, i64)> =
                    state.iter().map(|(p, o)| (*p, o.next)).collect();
                offsets.sort_unstable();
                return Ok(offsets);
            }
        }
    }

    /// Builds the deferred indexes, the first time it is called (a failure fails the rebuild,
    /// which drops the shadow tables).
    fn build_indexes(&self) -> Result<(), RebuildError> {
        let Ok(mut deferred) = self.deferred.lock() else {
            return Err(RebuildError::Projector(ProjectorError::Panicked));
        };
        if deferred.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        match self.runtime.block_on(indexes::build(&self.pool, &deferred)) {
            Ok(()) => {
                tracing::info!(
                    projection = self.projection.name(),
                    indexes = deferred.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "shadow indexes built"
                );
                deferred.clear();
                Ok(())
            }
            Err(error) => Err(RebuildError::Database(error)),
        }
    }

    fn try_swap(&self) -> Result<bool, RebuildError> {
        let swapped = self
            .runtime
            .block_on(swap::swap(&self.pool, self.projection));
        match swapped {
            Ok(true) => Ok(true),
            Ok(false) => {
                tracing::info!(
                    projection = self.projection.name(),
                    "live projection still ahead: rebuild goes on"
                );
                Ok(false)
            }
            Err(error) => {
                tracing::warn!(projection = self.projection.name(), %error, "swap failed; retrying");
                std::thread::sleep(Duration::from_millis(200));
                Ok(false)
            }
        }
    }

    fn report(&self, state: &HashMap<i32, Owned>, swapped: bool) {
        let Some(progress) = &self.progress else {
            return;
        };
        let mut partitions: Vec<(i32, i64, Option<i64>)> =
            state.iter().map(|(p, o)| (*p, o.next, o.log_end)).collect();
        partitions.sort_unstable();
        progress.send_replace(RebuildProgress {
            partitions,
            swapped,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(partitions: &[(i32, i64, Option<i64>)]) -> RebuildProgress {
        RebuildProgress {
            partitions: partitions.to_vec(),
            swapped: false,
        }
    }

    #[test]
    fn progress_says_when_log_ends_are_not_known_yet() {
        assert_eq!(describe(&[progress(&[])]), "reading the log ends");
        assert_eq!(
            describe(&[progress(&[(0, 5, None), (1, 0, None)])]),
            "reading the log ends"
        );
        assert_eq!(
            describe(&[progress(&[(0, 5, Some(9)), (1, 0, None)])]),
            "at least 4 offsets to go (some log ends not known yet)"
        );
        let known = progress(&[(0, 5, Some(9)), (1, 3, Some(3))]);
        assert_eq!(describe(std::slice::from_ref(&known)), "4 offsets to go");
        assert_eq!(
            describe(&[known, progress(&[(0, 0, None)])]),
            "at least 4 offsets to go (some log ends not known yet)"
        );
        assert_eq!(describe(&[progress(&[(0, 9, Some(9))])]), "0 offsets to go");
    }
}
