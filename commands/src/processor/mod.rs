//! The command processor (`logbook process`): one writer per partition, exactly once.
//!
//! Processors form one consumer group on the commands topic. The owner of commands partition
//! *p* is the only writer of events partition *p*: it restores *p*'s accounts from the log, then
//! decides batches of commands in memory and writes events, one result per command and the
//! consumed offsets in ONE Kafka transaction (DESIGN.md §3).
//!
//! - [`state`]: the in-memory accounts and dedupe set of a partition;
//! - [`restore`]: rebuilding that state from the events partition;
//! - [`batch`]: deciding a batch (pure, no Kafka);
//! - `contexts`: rebalance epochs and delivery reports (librdkafka callbacks);
//! - `worker`: the transactional loop on its own OS thread;
//! - `positions`: where a transaction's events will land (so results need no extra round trip);
//! - `producing`: sending without busy waiting (a `ThreadedProducer` serves delivery reports);
//! - `clients`: the Kafka client configurations.

pub mod batch;
mod clients;
pub(crate) mod contexts;
mod positions;
mod producing;
pub mod restore;
pub mod state;
mod worker;

pub(crate) use producing::{send, settle};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use logbook_events::KafkaSettings;
use rdkafka::error::KafkaError;

/// How a processor runs. `Default` gives the tuned values; set `kafka` and `group_id`.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    pub kafka: KafkaSettings,
    /// Consumer group of all processors of one installation.
    pub group_id: String,
    /// Most commands decided in one transaction.
    pub batch_max: usize,
    /// How long a batch waits for more commands after its first one.
    pub batch_linger: Duration,
    /// Applied command ids remembered per partition.
    pub dedupe_capacity: usize,
    /// Timeout of each transaction call (and `transaction.timeout.ms` is a multiple of it).
    pub txn_timeout: Duration,
    pub restore_timeout: Duration,
    /// `session.timeout.ms`: how soon a dead processor's partitions move.
    pub session_timeout: Duration,
}

impl ProcessorSettings {
    pub fn new(kafka: KafkaSettings, group_id: impl Into<String>) -> Self {
        Self {
            kafka,
            group_id: group_id.into(),
            batch_max: 1000,
            batch_linger: Duration::from_millis(2),
            dedupe_capacity: 100_000,
            txn_timeout: Duration::from_secs(5),
            restore_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(6),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("restore failed: {0}")]
    Restore(#[from] restore::RestoreError),
    #[error("processor thread panicked")]
    Panicked,
}

/// A running processor. Dropping it does not stop it: call [`Processor::stop`].
#[derive(Debug)]
pub struct Processor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), ProcessorError>>,
}

impl Processor {
    /// Connects (initialising transactions) and starts the loop on a dedicated OS thread.
    pub fn spawn(settings: ProcessorSettings) -> Result<Self, ProcessorError> {
        let stop = Arc::new(AtomicBool::new(false));
        let worker = worker::Worker::new(settings, stop.clone())?;
        let thread = std::thread::Builder::new()
            .name("logbook-processor".into())
            .spawn(move || worker.run())
            .map_err(|_| ProcessorError::Panicked)?;
        Ok(Self { stop, thread })
    }

    /// Asks the loop to finish its open transaction and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the loop to end (blocking).
    pub fn join(self) -> Result<(), ProcessorError> {
        self.thread.join().map_err(|_| ProcessorError::Panicked)?
    }

    /// Runs until `shutdown` completes or the loop fails, then stops cleanly.
    pub async fn run_until(
        settings: ProcessorSettings,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ProcessorError> {
        let processor = tokio::task::spawn_blocking(move || Processor::spawn(settings))
            .await
            .map_err(|_| ProcessorError::Panicked)??;
        let stop = processor.stop.clone();
        // dropped with this future (a runtime shutting down drops its tasks): the thread stops
        let _stop_on_drop = StopOnDrop(stop.clone());
        let joined = tokio::task::spawn_blocking(move || processor.join());
        tokio::pin!(joined);
        tokio::select! {
            result = &mut joined => return result.map_err(|_| ProcessorError::Panicked)?,
            () = shutdown => stop.store(true, Ordering::Relaxed),
        }
        joined.await.map_err(|_| ProcessorError::Panicked)?
    }
}

/// Sets a stop flag when dropped, so a loop thread ends with the future that owned it.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
