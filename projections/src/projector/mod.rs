//! The projector runtime (`logbook project`): every event applied exactly once to every read
//! model, whatever crashes (docs/architecture.md §5).
//!
//! Each projection is a consumer group on the events topic (read_committed) with its own OS
//! thread. A batch of events and the next offset of each partition are written in ONE
//! PostgreSQL transaction; on assignment a partition starts at the offset stored there. The
//! offsets rows are locked and compared inside the transaction, so a writer that lost its
//! partitions cannot apply anything twice, and the rows themselves are keyed so a replay is
//! harmless. A poison event stops its partition (error log, metrics, `error` column) and is
//! never skipped.
//!
//! - `context`: rebalance (stored offsets), epochs, statistics;
//! - `worker`: the batch loop; `clients`: the consumer configuration.

mod clients;
mod context;
pub(crate) mod worker;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logbook_events::KafkaSettings;
use rdkafka::error::KafkaError;
use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

pub use context::Owned;

use crate::projection::{Projection, Sink};

/// How projectors run. `new` gives the tuned values.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    pub kafka: KafkaSettings,
    /// The projections this process runs (each its own consumer group and thread).
    pub projections: Vec<Projection>,
    /// Consumer groups are `<group_prefix>.<projection>`.
    pub group_prefix: String,
    /// Most records per transaction.
    pub batch_max: usize,
    /// How long a batch waits for more records after its first one.
    pub batch_linger: Duration,
    /// `session.timeout.ms`: how soon a dead projector's partitions move.
    pub session_timeout: Duration,
    /// First and longest wait before retrying a batch the database refused.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Most account and transfer rows a ledger rebuild holds in memory between writes (a few
    /// hundred bytes each; see `ledger::staged`).
    pub rebuild_staged_rows: usize,
}

impl ProjectorSettings {
    /// Every projection, groups `<topic_prefix>.projection.<name>`.
    pub fn new(kafka: KafkaSettings) -> Self {
        let group_prefix = format!("{}.projection", kafka.topic_prefix);
        Self {
            kafka,
            projections: Projection::ALL.to_vec(),
            group_prefix,
            batch_max: 5000,
            batch_linger: Duration::from_millis(2),
            session_timeout: Duration::from_secs(10),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            rebuild_staged_rows: 250_000,
        }
    }

    /// The consumer group of a projection.
    pub fn group_id(&self, projection: Projection) -> String {
        format!("{}.{}", self.group_prefix, projection.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot read the stored offsets: {0}")]
    Offsets(String),
    #[error("seek on partition {partition} failed: {source}")]
    Seek { partition: i32, source: KafkaError },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("projector thread panicked or could not start")]
    Panicked,
}

/// Runs the configured projections until `shutdown` completes or one of them fails, then
/// stops them all between batches. Each runs on its own OS thread; database work is driven
/// on the caller's tokio runtime.
pub async fn run_until(
    settings: ProjectorSettings,
    pool: PgPool,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let count = settings.projections.len();
    for projection in settings.projections.clone() {
        let group_id = settings.group_id(projection);
        let spawned = spawn_worker(
            settings.clone(),
            Sink::live(projection),
            group_id,
            pool.clone(),
            stop.clone(),
            done_tx.clone(),
        );
        if spawned.is_err() {
            stop.store(true, Ordering::Relaxed);
            return Err(ProjectorError::Panicked);
        }
    }
    drop(done_tx);
    let mut first_error = None;
    let mut finished = 0;
    tokio::select! {
        () = shutdown => {}
        done = done_rx.recv() => {
            finished += 1;
            match done {
                Some(Ok(())) => {}
                Some(Err(error)) => first_error = Some(error),
                None => first_error = Some(ProjectorError::Panicked),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    while finished < count {
        let done = done_rx
            .recv()
            .await
            .unwrap_or(Err(ProjectorError::Panicked));
        finished += 1;
        if let Err(error) = done {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Asks worker threads to stop when the future that runs them is dropped.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts one projection's worker on a new OS thread; its result is sent on `done`.
pub(crate) fn spawn_worker(
    settings: ProjectorSettings,
    sink: Sink,
    group_id: String,
    pool: PgPool,
    stop: Arc<AtomicBool>,
    done: mpsc::UnboundedSender<Result<(), ProjectorError>>,
) -> std::io::Result<()> {
    let runtime = Handle::current();
    std::thread::Builder::new()
        .name(format!("logbook-projector-{}", sink.projection.name()))
        .spawn(move || {
            let run = || {
                worker::Worker::new(settings, sink, &group_id, pool, runtime, stop)
                    .and_then(worker::Worker::run)
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or(Err(ProjectorError::Panicked));
            if let Err(error) = &result {
                tracing::error!(projection = sink.projection.name(), %error, "projector failed");
            }
            let _ = done.send(result);
        })
        .map(|_| ())
}
