//! The write side's settings (`logbook process`, `logbook saga`, `logbook all`): batching, the
//! dedupe horizon, what to do with lost group offsets, and the instance id.

use std::time::Duration;

use clap::{Args as ClapArgs, ValueEnum};
use logbook_commands::processor::ProcessorSettings;
use logbook_commands::processor::snapshot::SnapshotPolicy;
use logbook_commands::saga::SagaSettings;
use logbook_commands::txn::MissingOffsets;
use logbook_events::KafkaSettings;

/// Flags and variables of the processors and sagas.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Processing")]
pub struct ProcessingArgs {
    /// Most commands per processor transaction.
    #[arg(long, env = "LOGBOOK_PROCESSOR_BATCH_MAX", default_value_t = 1000)]
    pub processor_batch_max: usize,
    /// How long a processor batch waits for more commands after its first one (commands
    /// already fetched join it after that without waiting; 0 takes only those).
    #[arg(long, env = "LOGBOOK_PROCESSOR_LINGER_MS", default_value_t = 2)]
    pub processor_linger_ms: u64,
    /// Most records (events and results) per saga transaction.
    #[arg(long, env = "LOGBOOK_SAGA_BATCH_MAX", default_value_t = 500)]
    pub saga_batch_max: usize,
    /// How long a saga batch waits for more records after its first one. The saga's step
    /// commands go to the commands partitions in its transaction, and until it commits they
    /// hold back what the processors may read of those partitions.
    #[arg(long, env = "LOGBOOK_SAGA_LINGER_MS", default_value_t = 20)]
    pub saga_linger_ms: u64,
    /// How long a processor remembers applied command ids: a command first sent longer ago
    /// that it does not remember is refused as expired (409 command_expired), never applied.
    #[arg(
        long,
        env = "LOGBOOK_PROCESSOR_DEDUPE_HORIZON_SECS",
        default_value_t = 900
    )]
    pub processor_dedupe_horizon_secs: u64,
    /// Most command ids a processor remembers per partition (about 60 bytes each); when it is
    /// reached the horizon shrinks (logged, and shown by
    /// logbook_processor_dedupe_horizon_seconds).
    #[arg(
        long,
        env = "LOGBOOK_PROCESSOR_DEDUPE_CAPACITY",
        default_value_t = 1_000_000
    )]
    pub processor_dedupe_capacity: usize,
    /// Events committed to a partition that make the processor write a snapshot of its state
    /// (to `<prefix>.snapshots`, in the same transaction); a new owner restores from the newest
    /// snapshot plus the events after it. 0 turns snapshots off (restores read the whole log).
    #[arg(long, env = "LOGBOOK_SNAPSHOT_EVERY_EVENTS", default_value_t = 10_000)]
    pub snapshot_every_events: u64,
    /// Seconds after which a partition with new events is snapshotted even with fewer events.
    #[arg(long, env = "LOGBOOK_SNAPSHOT_INTERVAL_SECS", default_value_t = 300)]
    pub snapshot_interval_secs: u64,
    /// What processors and sagas do with a partition that holds data but whose committed
    /// offset is missing: refuse to start (default), or replay it from the start, or skip to
    /// its end (see docs/operations.md before using either).
    #[arg(long, env = "LOGBOOK_MISSING_OFFSETS", value_enum, default_value_t = OnMissingOffsets::Refuse)]
    pub missing_offsets: OnMissingOffsets,
    /// This process's instance id (its transactional ids are `<group>-<instance id>`); random
    /// per start when unset. Give a restarted process its old id to fence its predecessor at once.
    #[arg(long, env = "LOGBOOK_INSTANCE_ID")]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnMissingOffsets {
    Refuse,
    Earliest,
    Latest,
}

/// Resolved write-side settings.
#[derive(Debug, Clone)]
pub struct Processing {
    pub batch_max: usize,
    pub linger: Duration,
    pub saga_batch_max: usize,
    pub saga_linger: Duration,
    pub dedupe_horizon: Duration,
    pub dedupe_capacity: usize,
    pub missing_offsets: MissingOffsets,
    pub instance_id: Option<String>,
    pub snapshots: SnapshotPolicy,
}

impl Default for Processing {
    fn default() -> Self {
        let kafka = KafkaSettings::plaintext("", "logbook");
        let saga = SagaSettings::new(kafka.clone());
        let defaults = ProcessorSettings::new(kafka, "");
        Self {
            batch_max: defaults.batch_max,
            linger: defaults.batch_linger,
            saga_batch_max: saga.batch_max,
            saga_linger: saga.batch_linger,
            dedupe_horizon: defaults.dedupe_horizon,
            dedupe_capacity: defaults.dedupe_capacity,
            missing_offsets: MissingOffsets::Refuse,
            instance_id: None,
            snapshots: defaults.snapshots,
        }
    }
}

impl ProcessingArgs {
    pub fn resolve(&self) -> Processing {
        Processing {
            batch_max: self.processor_batch_max,
            linger: Duration::from_millis(self.processor_linger_ms),
            saga_batch_max: self.saga_batch_max,
            saga_linger: Duration::from_millis(self.saga_linger_ms),
            dedupe_horizon: Duration::from_secs(self.processor_dedupe_horizon_secs),
            dedupe_capacity: self.processor_dedupe_capacity,
            missing_offsets: match self.missing_offsets {
                OnMissingOffsets::Refuse => MissingOffsets::Refuse,
                OnMissingOffsets::Earliest => MissingOffsets::Earliest,
                OnMissingOffsets::Latest => MissingOffsets::Latest,
            },
            instance_id: self.instance_id.clone(),
            snapshots: SnapshotPolicy {
                every_events: self.snapshot_every_events,
                interval: Duration::from_secs(self.snapshot_interval_secs),
            },
        }
    }
}

impl Processing {
    /// The processor settings for `kafka`.
    pub fn processor(&self, kafka: &KafkaSettings) -> ProcessorSettings {
        let mut processor = ProcessorSettings::new(kafka.clone(), kafka.groups().processors);
        processor.batch_max = self.batch_max;
        processor.batch_linger = self.linger;
        processor.dedupe_horizon = self.dedupe_horizon;
        processor.dedupe_capacity = self.dedupe_capacity;
        processor.missing_offsets = self.missing_offsets;
        processor.snapshots = self.snapshots;
        if let Some(instance) = &self.instance_id {
            processor.instance_id = instance.clone();
        }
        processor
    }

    /// The saga settings for `kafka`.
    pub fn saga(&self, kafka: &KafkaSettings) -> SagaSettings {
        let mut saga = SagaSettings::new(kafka.clone());
        saga.batch_max = self.saga_batch_max;
        saga.batch_linger = self.saga_linger;
        saga.missing_offsets = self.missing_offsets;
        if let Some(instance) = &self.instance_id {
            saga.instance_id = instance.clone();
        }
        saga
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Only {
        #[command(flatten)]
        processing: ProcessingArgs,
    }

    #[test]
    fn the_flags_default_to_the_libraries_defaults() {
        let parsed = Only::try_parse_from(["logbook"]).expect("no flag is required");
        let (flags, library) = (parsed.processing.resolve(), Processing::default());
        assert_eq!(
            (flags.batch_max, flags.linger),
            (library.batch_max, library.linger)
        );
        assert_eq!(
            (flags.saga_batch_max, flags.saga_linger),
            (library.saga_batch_max, library.saga_linger)
        );
        assert_eq!(
            (flags.dedupe_horizon, flags.dedupe_capacity),
            (library.dedupe_horizon, library.dedupe_capacity)
        );
    }
}
