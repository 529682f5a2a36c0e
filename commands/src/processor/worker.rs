//! The processor loop, on its own OS thread (librdkafka's transaction calls block).
//!
//! collect a batch → drop what an older ownership epoch fetched → restore partitions first seen
//! in this epoch → plan (pure) → ONE transaction: events, results, consumed offsets → on commit,
//! merge the planned state; on abort, consume the batch again; on an unclear outcome, drop the
//! batch's partitions (they are restored from the log) and rewind to the committed offsets. A
//! transaction is always finished before the consumer is polled again, so no transaction spans
//! a rebalance. Kafka being away is waited out (backoff, one log line per outage); only what a
//! restart cannot fix ends the loop.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use logbook_events::encode;
use logbook_events::linger::Linger;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use super::batch::{Incoming, Plan, PlanInputs, plan_batch};
use super::delivery::DeliveryContext;
use super::records::{acknowledged, event_record, send_results};
use super::restore::{RestoreError, RestoreLimits, restore_partition};
use super::snapshot::{self, SnapshotPolicy};
use super::state::{Applied, PartitionState};
use super::{ProcessorError, ProcessorSettings, clients, positions};
use crate::txn::{
    Backoff, KafkaTxnClient, Outage, RebalanceContext, Transactor, TxnError, group, send,
};

type Client = KafkaTxnClient<DeliveryContext>;

/// A partition's state, the ownership epoch it was restored in and its snapshot clock.
struct Owned {
    epoch: u64,
    state: PartitionState,
    clock: snapshot::Clock,
}

pub(super) struct Worker {
    settings: ProcessorSettings,
    consumer: BaseConsumer<RebalanceContext>,
    txn: Transactor<Client>,
    owned: HashMap<i32, Owned>,
    /// The partition count the topics were created with.
    partitions: i32,
    /// The snapshot policy in effect (off when the installation has no snapshots topic).
    snapshots: SnapshotPolicy,
    stop: Arc<AtomicBool>,
    kafka: Outage,
}

/// Why a step of the loop did not complete.
enum Failure {
    /// Kafka is away or slow: wait and try again.
    Transient(String),
    Fatal(ProcessorError),
}

impl Worker {
    pub(super) fn new(
        settings: ProcessorSettings,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, ProcessorError> {
        let mut kafka = Outage::new("processor", "kafka");
        let partitions = clients::wait_for(&stop, &mut kafka, || {
            logbook_events::layout::check(&settings.kafka)
        })?;
        let snapshots = clients::wait_for(&stop, &mut kafka, || {
            snapshot::read::policy_in_effect(&settings.kafka, settings.snapshots)
        })?;
        let consumer = clients::consumer(&settings)?;
        let client = clients::wait_for(&stop, &mut kafka, || clients::producer(&settings))?;
        let txn = Transactor::new(
            client,
            "processor",
            settings.txn_timeout,
            settings.txn_timeout * 3,
            stop.clone(),
        );
        Ok(Self {
            settings,
            consumer,
            txn,
            owned: HashMap::new(),
            partitions,
            snapshots,
            stop,
            kafka,
        })
    }

    pub(super) fn run(mut self) -> Result<(), ProcessorError> {
        let mut backoff = Backoff::default();
        while !self.stop.load(Ordering::Relaxed) {
            let batch = self.collect()?;
            if batch.is_empty() {
                continue;
            }
            if let Err(failure) = self.restore_missing(&batch) {
                match failure {
                    Failure::Fatal(error) => return Err(error),
                    Failure::Transient(error) => {
                        self.kafka.failed(&error);
                        self.rewind(&batch)?;
                        backoff.sleep();
                        continue;
                    }
                }
            }
            tracing::debug!(commands = batch.len(), "deciding a batch");
            match self.transact(&batch) {
                None => break,
                Some(true) => backoff.reset(),
                Some(false) => backoff.sleep(),
            }
        }
        tracing::info!("processor stopping: no transaction open");
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Polls until the batch is full or its [`Linger`] closes it (a linger of 0 takes what is
    /// queued rather than one command per transaction). Keeps only messages of the current
    /// epoch.
    fn collect(&mut self) -> Result<Vec<Incoming>, ProcessorError> {
        let mut batch: Vec<(u64, Incoming)> = Vec::new();
        let mut clock = Linger::start(self.settings.batch_linger);
        while batch.len() < self.settings.batch_max && !self.stop.load(Ordering::Relaxed) {
            let Some(next) = clock.next_poll() else {
                break;
            };
            let polled = self.consumer.poll(next.timeout);
            if !self.consumer.context().refused().is_empty() {
                return Err(self.refusal().into());
            }
            match polled {
                // past the linger, nothing more already fetched: the batch is complete
                None if next.draining => break,
                None => {}
                Some(Err(error)) if group::is_missing_offset(&error) => {
                    return Err(self.refusal().into());
                }
                Some(Err(error)) => {
                    self.kafka.failed(&error);
                    if next.draining {
                        break;
                    }
                    if batch.is_empty() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Some(Ok(message)) => {
                    self.kafka.recovered();
                    let partition = message.partition();
                    let Some(epoch) = self.consumer.context().epoch(message.topic(), partition)
                    else {
                        continue;
                    };
                    batch.push((
                        epoch,
                        Incoming {
                            partition,
                            offset: message.offset(),
                            payload: message.payload().unwrap_or_default().to_vec(),
                        },
                    ));
                    clock.received();
                }
            }
        }
        let context = self.consumer.context();
        let topic = self.settings.kafka.topics().commands;
        self.owned
            .retain(|partition, owned| context.epoch(&topic, *partition) == Some(owned.epoch));
        Ok(batch
            .into_iter()
            .filter(|(epoch, m)| context.epoch(&topic, m.partition) == Some(*epoch))
            .map(|(_, m)| m)
            .collect())
    }

    /// The error for partitions handed to this processor without committed offsets.
    fn refusal(&self) -> crate::txn::GroupError {
        let context = self.consumer.context();
        let mut partitions = context.refused();
        if partitions.is_empty() {
            partitions = context.assigned();
        }
        group::refused(&self.settings.group(), partitions)
    }

    /// Restores every partition of the batch that has no state for the current epoch.
    fn restore_missing(&mut self, batch: &[Incoming]) -> Result<(), Failure> {
        let topic = self.settings.kafka.topics().commands;
        for message in batch {
            if self.owned.contains_key(&message.partition) {
                continue;
            }
            let Some(epoch) = self.consumer.context().epoch(&topic, message.partition) else {
                continue;
            };
            let limits = RestoreLimits {
                timeout: self.settings.restore_timeout,
                dedupe_horizon: self.settings.dedupe_horizon,
                dedupe_capacity: self.settings.dedupe_capacity,
                snapshots: self.snapshots.enabled(),
            };
            let restored = match restore_partition(&self.settings.kafka, message.partition, limits)
            {
                Ok(restored) => restored,
                Err(error @ (RestoreError::Kafka(_) | RestoreError::Timeout(..))) => {
                    return Err(Failure::Transient(error.to_string()));
                }
                Err(error) => return Err(Failure::Fatal(error.into())),
            };
            let owned = Owned {
                epoch,
                state: restored.state,
                clock: snapshot::Clock::after_restore(restored.folded),
            };
            self.owned.insert(message.partition, owned);
        }
        Ok(())
    }

    /// Decides the batch and writes all of it in one transaction. `Some(true)` when it
    /// committed, `Some(false)` when the batch will be consumed again, `None` on stop.
    fn transact(&mut self, batch: &[Incoming]) -> Option<bool> {
        let views: HashMap<i32, &PartitionState> = self
            .owned
            .iter()
            .map(|(p, owned)| (*p, &owned.state))
            .collect();
        let inputs = PlanInputs {
            now: Utc::now(),
            partitions: self.partitions,
            new_id: &mut Uuid::now_v7,
        };
        let plan = plan_batch(&views, batch, inputs);
        let predicted = positions::predict(&plan.events, |partition| {
            self.owned.get(&partition)?.state.next_write
        });
        let Some(offsets) = self.consumed_offsets(&plan) else {
            let _ = self.rewind(batch);
            return Some(false);
        };
        let snapshots = self.due_snapshots(&plan);
        let started = Instant::now();
        let (topics, timeout) = (self.settings.kafka.topics(), self.settings.txn_timeout);
        let outcome = self.txn.run(
            |client| {
                client.producer().context().reset();
                for (index, event) in plan.events.iter().enumerate() {
                    let key = event.envelope.aggregate_id.to_string();
                    let payload = encode(&event.envelope);
                    let record = event_record(&topics.events, index, event, &key, &payload);
                    send(client.producer(), record, timeout)?;
                }
                if let Some(offsets) = &predicted {
                    send_results(client, &topics.results, &plan, offsets, timeout)?;
                }
                for pending in &snapshots {
                    pending.send(client.producer(), &topics.snapshots, timeout)?;
                }
                Ok(())
            },
            &offsets,
            |client, ()| {
                let acked = acknowledged(client, plan.events.len(), timeout)?;
                let landed: Vec<i64> = (0..plan.events.len())
                    .map(|index| acked.get(&index).copied().unwrap_or(-1))
                    .collect();
                match &predicted {
                    Some(predicted) if *predicted != landed => Err(TxnError::abort(
                        "events did not land where predicted: aborting, then waiting for acks",
                    )),
                    Some(_) => Ok(landed),
                    None => {
                        send_results(client, &topics.results, &plan, &landed, timeout)?;
                        Ok(landed)
                    }
                }
            },
        );
        match outcome {
            crate::txn::Outcome::Committed(landed) => {
                crate::metrics::transaction_seconds(started.elapsed().as_secs_f64());
                self.merge(plan, &landed, &snapshots);
                Some(true)
            }
            crate::txn::Outcome::Aborted(_) => {
                crate::metrics::transaction_aborted();
                self.rewind(batch).ok()?;
                Some(false)
            }
            crate::txn::Outcome::Unclear(_) => {
                crate::metrics::transaction_aborted();
                self.settle_unclear(batch)?;
                Some(false)
            }
            crate::txn::Outcome::Stopped => None,
        }
    }

    /// The consumed offsets of the batch and the group's metadata (fencing by generation).
    fn consumed_offsets(&self, plan: &Plan) -> Option<crate::txn::TxnOffsets> {
        let topic = self.settings.kafka.topics().commands;
        let mut consumed = TopicPartitionList::new();
        for (partition, next) in &plan.next_offsets {
            consumed
                .add_partition_offset(&topic, *partition, Offset::Offset(*next))
                .ok()?;
        }
        Some(std::sync::Arc::new((
            consumed,
            self.consumer.group_metadata()?,
        )))
    }

    /// The snapshots due among the partitions the plan writes to: of their committed state,
    /// before the plan (it goes into the plan's transaction).
    fn due_snapshots(&self, plan: &Plan) -> Vec<snapshot::Pending> {
        let now = Instant::now();
        let mut partitions: Vec<i32> = plan.events.iter().map(|e| e.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        partitions
            .into_iter()
            .filter_map(|partition| {
                let owned = self.owned.get(&partition)?;
                if !owned.clock.due(&self.snapshots, now) {
                    return None;
                }
                snapshot::Pending::of(partition, &owned.state, owned.clock.chunks())
            })
            .collect()
    }

    /// The transaction committed: its state becomes the partitions' state.
    fn merge(&mut self, plan: Plan, landed: &[i64], snapshots: &[snapshot::Pending]) {
        crate::metrics::batch_committed(plan.results.len(), plan.events.len());
        let mut written: HashMap<i32, u64> = HashMap::new();
        for event in &plan.events {
            *written.entry(event.partition).or_default() += 1;
        }
        for (partition, events) in written {
            if let Some(owned) = self.owned.get_mut(&partition) {
                let snapshot = snapshots.iter().find(|s| s.partition == partition);
                owned.clock.committed(events, snapshot);
            }
        }
        for pending in snapshots {
            crate::metrics::snapshot_written(pending.bytes, pending.encode_seconds);
            tracing::debug!(
                partition = pending.partition,
                covers = pending.covers,
                bytes = pending.bytes,
                "snapshot written"
            );
        }
        let now = Utc::now();
        for ((partition, _), slot) in plan.overlay {
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.state.accounts.insert(slot);
            }
        }
        for command in plan.applied {
            let (Some(owned), Some(event)) = (
                self.owned.get_mut(&command.partition),
                plan.events.get(command.index),
            ) else {
                continue;
            };
            let applied = Applied {
                version: event.envelope.sequence,
                offset: landed[command.index],
                fingerprint: command.fingerprint,
            };
            owned
                .state
                .dedupe
                .record(command.command_id, applied, command.issued_at);
        }
        for (index, event) in plan.events.iter().enumerate() {
            if let Some(owned) = self.owned.get_mut(&event.partition)
                && owned
                    .state
                    .last_offset
                    .is_none_or(|last| landed[index] > last)
            {
                owned.state.last_offset = Some(landed[index]);
                owned.state.last_event_id = Some(event.envelope.event_id);
            }
        }
        let acked: HashMap<usize, i64> = landed.iter().copied().enumerate().collect();
        for (partition, end) in positions::after_commit(&plan.events, &acked) {
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.state.next_write = Some(end);
            }
        }
        for (partition, at) in plan.last_event_at {
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.state.last_event_at = owned.state.last_event_at.max(Some(at));
            }
        }
        for (partition, owned) in &mut self.owned {
            owned.state.dedupe.forget_older(now);
            crate::metrics::dedupe_horizon(*partition, owned.state.dedupe.effective_horizon(now));
        }
    }

    /// After an abort, consume the batch again from its first command (partitions still ours).
    /// A partition that is still ours but cannot be rewound stops the processor: going on would
    /// commit offsets past commands that were never applied.
    fn rewind(&mut self, batch: &[Incoming]) -> Result<(), ProcessorError> {
        let first = self.firsts(batch);
        // the aborted records and the abort marker took offsets: the next commit tells the end
        for (_, partition) in first.keys() {
            if let Some(owned) = self.owned.get_mut(partition) {
                owned.state.next_write = None;
            }
        }
        let context = self.consumer.context();
        group::rewind_to(&self.consumer, &first, |t, p| context.epoch(t, p).is_some())?;
        Ok(())
    }

    /// The first offset of each commands partition in `batch`.
    fn firsts(&self, batch: &[Incoming]) -> BTreeMap<(String, i32), i64> {
        let topic = self.settings.kafka.topics().commands;
        group::first_offsets(
            batch
                .iter()
                .map(|m| ((topic.clone(), m.partition), m.offset)),
        )
    }

    /// After an unclear commit (the producer was replaced, so the old transaction is settled):
    /// forget the batch's partitions, to be restored from the log, and go back to the committed
    /// offsets, which tell whether the transaction landed. `None` on stop.
    fn settle_unclear(&mut self, batch: &[Incoming]) -> Option<()> {
        let firsts = self.firsts(batch);
        for (_, partition) in firsts.keys() {
            self.owned.remove(partition);
        }
        let mut backoff = Backoff::default();
        loop {
            let context = self.consumer.context();
            match group::rewind_to_committed(&self.consumer, &firsts, |t, p| {
                context.epoch(t, p).is_some()
            }) {
                Ok(()) => return Some(()),
                Err(error) => self.kafka.failed(&error),
            }
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            backoff.sleep();
        }
    }
}
