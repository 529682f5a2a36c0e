//! The command processor (`logbook process`): one writer per partition, exactly once.
//!
//! Processors form one consumer group on the commands topic. The owner of commands partition
//! *p* is the only writer of events partition *p*: it restores *p*'s accounts from the log, then
//! decides batches of commands in memory and writes events, one result per command and the
//! consumed offsets in ONE Kafka transaction (docs/architecture.md). The loop's Kafka side
//! (group, epochs, the transaction and its failure handling) is [`crate::txn`].
//!
//! - [`state`]: the in-memory accounts and dedupe memory of a partition;
//! - [`restore`]: rebuilding that state from a snapshot and the events partition;
//! - [`snapshot`]: snapshots of that state on the compacted snapshots topic;
//! - [`batch`]: deciding a batch (pure, no Kafka);
//! - `delivery`: the delivery reports of the open transaction (its events' offsets);
//! - `worker`: the loop on its own OS thread;
//! - `records`: the Kafka records of a transaction (events, results) and their delivery reports;
//! - `positions`: where a transaction's events will land (so results need no extra round trip);
//! - `clients`: the Kafka clients, and waiting for Kafka while they connect.

pub mod accounts;
pub mod batch;
mod clients;
mod delivery;
pub mod memory;
mod positions;
mod records;
pub mod restore;
pub mod snapshot;
pub mod state;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use logbook_events::KafkaSettings;
use logbook_events::layout::LayoutError;
use rdkafka::error::KafkaError;

use crate::txn::{GroupError, GroupSettings, MissingOffsets, TxnError};

/// How a processor runs. [`ProcessorSettings::new`] gives the tuned values.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    pub kafka: KafkaSettings,
    /// Consumer group of all processors of one installation.
    pub group_id: String,
    /// This process instance: its transactional id is `<group_id>-<instance_id>`, stable for
    /// the life of the process, so a replaced producer fences the one it replaces.
    pub instance_id: String,
    /// Most commands decided in one transaction.
    pub batch_max: usize,
    /// How long a batch waits for more commands after its first one; commands the consumer
    /// has already fetched join it after that without waiting.
    pub batch_linger: Duration,
    /// How long applied command ids are remembered (commands first sent longer ago that are
    /// not remembered are refused as expired).
    pub dedupe_horizon: Duration,
    /// Most command ids remembered per partition (the horizon shrinks when it is reached).
    pub dedupe_capacity: usize,
    /// Timeout of each transaction call (and `transaction.timeout.ms` is a multiple of it).
    pub txn_timeout: Duration,
    pub restore_timeout: Duration,
    /// `session.timeout.ms`: how soon a dead processor's partitions move.
    pub session_timeout: Duration,
    /// What to do with a partition whose committed offset is missing.
    pub missing_offsets: MissingOffsets,
    /// How often partitions are snapshotted (and whether restores start from snapshots).
    pub snapshots: snapshot::SnapshotPolicy,
}

impl ProcessorSettings {
    pub fn new(kafka: KafkaSettings, group_id: impl Into<String>) -> Self {
        Self {
            kafka,
            group_id: group_id.into(),
            instance_id: uuid::Uuid::now_v7().simple().to_string(),
            batch_max: 1000,
            batch_linger: Duration::from_millis(2),
            dedupe_horizon: Duration::from_secs(15 * 60),
            dedupe_capacity: 1_000_000,
            txn_timeout: Duration::from_secs(5),
            restore_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(6),
            missing_offsets: MissingOffsets::Refuse,
            snapshots: snapshot::SnapshotPolicy {
                every_events: 10_000,
                interval: Duration::from_secs(300),
            },
        }
    }

    /// The group membership part.
    pub fn group(&self) -> GroupSettings {
        GroupSettings {
            kafka: self.kafka.clone(),
            group_id: self.group_id.clone(),
            session_timeout: self.session_timeout,
            missing_offsets: self.missing_offsets,
        }
    }
}

/// Why a processor stopped: only what a restart cannot fix (Kafka being away is waited out).
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("transactional producer: {0}")]
    Producer(#[from] TxnError),
    #[error("restore failed: {0}")]
    Restore(#[from] restore::RestoreError),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
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
    /// Starts the loop on a dedicated OS thread; it connects there (waiting for Kafka).
    pub fn spawn(settings: ProcessorSettings) -> Result<Self, ProcessorError> {
        let stop = Arc::new(AtomicBool::new(false));
        let worker_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("logbook-processor".into())
            .spawn(move || worker::Worker::new(settings, worker_stop)?.run())
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
        let processor = Processor::spawn(settings)?;
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
