//! The processor loop, on its own OS thread (librdkafka's transaction calls block).
//!
//! collect a batch → drop what an older ownership epoch fetched → restore partitions first seen
//! in this epoch → plan (pure) → ONE transaction: events, results, consumed offsets → on commit,
//! merge the planned state. A transaction is always finished (committed or aborted) before the
//! consumer is polled again, so no transaction spans a rebalance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use logbook_events::{HEADER_TRACEPARENT, Position, encode, event_headers};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use super::batch::{Incoming, Plan, PlannedEvent, PlannedOutcome, PositionRef, plan_batch};
use super::contexts::{DeliveryContext, RebalanceContext, UNTRACKED};
use super::producing::{send, settle};
use super::restore::restore_partition;
use super::state::{Applied, PartitionState};
use super::{ProcessorError, ProcessorSettings, clients, positions};
use crate::envelope::{CommandResult, Outcome};

/// An accepted, non-duplicate command of a committed transaction (goes into the dedupe set).
struct AppliedCommand {
    partition: i32,
    command_id: Uuid,
    version: u64,
    position: Position,
}

/// A partition's state and the ownership epoch it was restored in.
struct Owned {
    epoch: u64,
    state: PartitionState,
}

pub(super) struct Worker {
    settings: ProcessorSettings,
    consumer: BaseConsumer<RebalanceContext>,
    producer: ThreadedProducer<DeliveryContext>,
    owned: HashMap<i32, Owned>,
    stop: Arc<AtomicBool>,
}

/// How a failed transaction is recovered.
enum TxnFailure {
    /// Abort, rewind the batch and try again.
    Abortable(KafkaError),
    /// The producer is unusable: recreate it (which also aborts what it had open).
    Fatal(KafkaError),
}

impl From<KafkaError> for TxnFailure {
    fn from(error: KafkaError) -> Self {
        match &error {
            KafkaError::Transaction(rd) if rd.is_fatal() => TxnFailure::Fatal(error),
            _ => TxnFailure::Abortable(error),
        }
    }
}

impl Worker {
    pub(super) fn new(
        settings: ProcessorSettings,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, ProcessorError> {
        let consumer = clients::consumer(&settings)?;
        let producer = clients::transactional_producer(&settings)?;
        Ok(Self {
            settings,
            consumer,
            producer,
            owned: HashMap::new(),
            stop,
        })
    }

    pub(super) fn run(mut self) -> Result<(), ProcessorError> {
        while !self.stop.load(Ordering::Relaxed) {
            let batch = self.collect()?;
            if batch.is_empty() {
                continue;
            }
            self.restore_missing(&batch)?;
            tracing::debug!(commands = batch.len(), "deciding a batch");
            match self.transact(&batch) {
                Ok(()) => {}
                Err(TxnFailure::Abortable(error)) => {
                    tracing::warn!(%error, "transaction failed: aborting and retrying the batch");
                    crate::metrics::transaction_aborted();
                    if let Err(abort_error) =
                        self.producer.abort_transaction(self.settings.txn_timeout)
                    {
                        tracing::error!(%abort_error, "abort failed: recreating the producer");
                        self.recreate_producer()?;
                    }
                    self.rewind(&batch)?;
                }
                Err(TxnFailure::Fatal(error)) => {
                    tracing::error!(%error, "fatal producer error: recreating the producer");
                    crate::metrics::transaction_aborted();
                    self.recreate_producer()?;
                    self.rewind(&batch)?;
                }
            }
        }
        tracing::info!("processor stopping: no transaction open");
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Polls until the batch is full, the linger time after its first command has passed, or
    /// (with nothing received) a short idle wait ends. Keeps only messages of the current epoch.
    fn collect(&mut self) -> Result<Vec<Incoming>, ProcessorError> {
        let mut batch: Vec<(u64, Incoming)> = Vec::new();
        let idle_until = Instant::now() + Duration::from_millis(100);
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.settings.batch_max {
            let until = deadline.unwrap_or(idle_until);
            let now = Instant::now();
            if now >= until || self.stop.load(Ordering::Relaxed) {
                break;
            }
            match self.consumer.poll(until - now) {
                None => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "commands consumer error");
                    if batch.is_empty() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Some(Ok(message)) => {
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
                    deadline.get_or_insert_with(|| Instant::now() + self.settings.batch_linger);
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

    /// Restores every partition of the batch that has no state for the current epoch.
    fn restore_missing(&mut self, batch: &[Incoming]) -> Result<(), ProcessorError> {
        for message in batch {
            if self.owned.contains_key(&message.partition) {
                continue;
            }
            let topic = self.settings.kafka.topics().commands;
            let Some(epoch) = self.consumer.context().epoch(&topic, message.partition) else {
                continue;
            };
            let state = restore_partition(
                &self.settings.kafka,
                message.partition,
                self.settings.dedupe_capacity,
                self.settings.restore_timeout,
            )?;
            self.owned.insert(message.partition, Owned { epoch, state });
        }
        Ok(())
    }

    /// Decides the batch and writes all of it in one transaction.
    fn transact(&mut self, batch: &[Incoming]) -> Result<(), TxnFailure> {
        let views: HashMap<i32, &PartitionState> = self
            .owned
            .iter()
            .map(|(p, owned)| (*p, &owned.state))
            .collect();
        let plan = plan_batch(&views, batch, Utc::now(), &mut Uuid::now_v7);
        let predicted = positions::predict(&plan.events, |partition| {
            self.owned.get(&partition)?.state.next_write
        });
        let timeout = self.settings.txn_timeout;
        self.producer.context().reset();
        let started = Instant::now();
        self.producer.begin_transaction()?;
        let topics = self.settings.kafka.topics();
        for (index, event) in plan.events.iter().enumerate() {
            let (key, payload) = (
                event.envelope.aggregate_id.to_string(),
                encode(&event.envelope),
            );
            let record = event_record(&topics.events, index, event, &key, &payload);
            send(&self.producer, record, timeout)?;
        }
        let mut applied = match &predicted {
            Some(offsets) => Some(self.send_results(&plan, |i| offsets.get(i).copied())?),
            None => None,
        };
        // the offsets travel to the coordinators while the records are acknowledged
        self.send_offsets(&plan, timeout)?;
        let offsets_sent = started.elapsed();
        let acked = self.acknowledged(plan.events.len())?;
        if let Some(offsets) = &predicted
            && !positions::confirmed(offsets, &acked)
        {
            tracing::warn!("events did not land where predicted: aborting, then waiting for acks");
            return Err(TxnFailure::Abortable(KafkaError::MessageProduction(
                RDKafkaErrorCode::Fail,
            )));
        }
        if applied.is_none() {
            applied = Some(self.send_results(&plan, |i| acked.get(&i).copied())?);
        }
        let acks = started.elapsed();
        settle(&self.producer, timeout)?;
        let settled = started.elapsed();
        // fails if a result was not delivered
        self.producer.commit_transaction(timeout)?;
        tracing::debug!(
            results = plan.results.len(),
            events = plan.events.len(),
            predicted = predicted.is_some(),
            offsets_ms = offsets_sent.as_secs_f64() * 1e3,
            acks_ms = (acks - offsets_sent).as_secs_f64() * 1e3,
            results_ms = (settled - acks).as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - settled).as_secs_f64() * 1e3,
            "batch committed"
        );
        crate::metrics::transaction_seconds(started.elapsed().as_secs_f64());
        let ends = positions::after_commit(&plan.events, &acked);
        self.merge(plan, applied.unwrap_or_default(), ends);
        Ok(())
    }

    /// Waits for the delivery reports of the `count` events: their offsets by index.
    fn acknowledged(&self, count: usize) -> Result<HashMap<usize, i64>, TxnFailure> {
        let context = self.producer.context();
        if !context.wait_settled(count, self.settings.txn_timeout) {
            return Err(TxnFailure::Abortable(KafkaError::Flush(
                RDKafkaErrorCode::OperationTimedOut,
            )));
        }
        context.take().map_err(|failure| {
            tracing::warn!(%failure, "an event was not delivered");
            TxnFailure::Abortable(KafkaError::MessageProduction(RDKafkaErrorCode::Fail))
        })
    }

    /// Sends one result per command, with the position of its last event (`offset_of` an event
    /// index); returns what the accepted commands applied.
    fn send_results(
        &self,
        plan: &Plan,
        offset_of: impl Fn(usize) -> Option<i64>,
    ) -> Result<Vec<AppliedCommand>, TxnFailure> {
        let topic = self.settings.kafka.topics().results;
        let mut applied = Vec::new();
        for result in &plan.results {
            let outcome = match &result.outcome {
                PlannedOutcome::Accepted {
                    version,
                    position,
                    duplicate,
                } => {
                    let position = match *position {
                        PositionRef::Known(position) => Some(position),
                        PositionRef::Pending(index) => {
                            offset_of(index).map(|o| Position::new(result.partition, o))
                        }
                    }
                    .ok_or_else(|| {
                        TxnFailure::Abortable(KafkaError::MessageProduction(RDKafkaErrorCode::Fail))
                    })?;
                    if !duplicate {
                        applied.push(AppliedCommand {
                            partition: result.partition,
                            command_id: result.command_id,
                            version: *version,
                            position,
                        });
                    }
                    Outcome::Accepted {
                        version: *version,
                        position: position.to_token(),
                        duplicate: *duplicate,
                    }
                }
                PlannedOutcome::Rejected {
                    kind,
                    code,
                    message,
                } => Outcome::Rejected {
                    kind: *kind,
                    code: (*code).to_string(),
                    message: message.clone(),
                },
            };
            let record = CommandResult {
                command_id: result.command_id,
                aggregate_id: result.aggregate_id,
                outcome,
                transfer: result.transfer,
            };
            let (key, payload) = (result.command_id.to_string(), record.encode());
            let record = BaseRecord::with_opaque_to(&topic, UNTRACKED)
                .key(&key)
                .payload(&payload);
            send(&self.producer, record, self.settings.txn_timeout)?;
        }
        Ok(applied)
    }

    /// Adds the consumed command offsets to the open transaction (fenced by the group generation).
    fn send_offsets(&self, plan: &Plan, timeout: Duration) -> Result<(), TxnFailure> {
        let topic = self.settings.kafka.topics().commands;
        let mut consumed = TopicPartitionList::new();
        for (partition, next) in &plan.next_offsets {
            consumed.add_partition_offset(&topic, *partition, Offset::Offset(*next))?;
        }
        let group = self
            .consumer
            .group_metadata()
            .ok_or(TxnFailure::Abortable(KafkaError::NoMessageReceived))?;
        self.producer
            .send_offsets_to_transaction(&consumed, &group, timeout)?;
        Ok(())
    }

    /// The transaction committed: its state becomes the partitions' state.
    fn merge(&mut self, plan: Plan, applied: Vec<AppliedCommand>, ends: BTreeMap<i32, i64>) {
        crate::metrics::batch_committed(plan.results.len(), plan.events.len());
        for ((partition, aggregate_id), slot) in plan.overlay {
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.state.accounts.insert(aggregate_id, slot);
            }
        }
        for command in applied {
            if let Some(owned) = self.owned.get_mut(&command.partition) {
                owned.state.dedupe.record(
                    command.command_id,
                    Applied {
                        version: command.version,
                        offset: command.position.offset,
                    },
                );
            }
        }
        for (partition, end) in ends {
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.state.next_write = Some(end);
            }
        }
    }

    /// After an abort, consume the batch again from its first command (partitions still ours).
    /// A partition that is still ours but cannot be rewound stops the processor: going on would
    /// commit offsets past commands that were never applied.
    fn rewind(&mut self, batch: &[Incoming]) -> Result<(), ProcessorError> {
        let topic = self.settings.kafka.topics().commands;
        let mut first: HashMap<i32, i64> = HashMap::new();
        for message in batch {
            let offset = first.entry(message.partition).or_insert(message.offset);
            *offset = (*offset).min(message.offset);
        }
        // the aborted records and the abort marker took offsets: the next commit tells the end
        for partition in first.keys() {
            if let Some(owned) = self.owned.get_mut(partition) {
                owned.state.next_write = None;
            }
        }
        for (partition, offset) in first {
            if let Err(error) = self.consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            ) {
                if self.consumer.context().epoch(&topic, partition).is_some() {
                    return Err(ProcessorError::Kafka(error));
                }
                self.owned.remove(&partition);
            }
        }
        Ok(())
    }

    fn recreate_producer(&mut self) -> Result<(), ProcessorError> {
        self.producer = clients::transactional_producer(&self.settings)?;
        Ok(())
    }
}

/// The Kafka record of a planned event; `index` comes back with its delivery report.
fn event_record<'a>(
    topic: &'a str,
    index: usize,
    event: &PlannedEvent,
    key: &'a String,
    payload: &'a Vec<u8>,
) -> BaseRecord<'a, String, Vec<u8>, usize> {
    let mut headers = OwnedHeaders::new();
    for (name, value) in event_headers(&event.envelope) {
        headers = headers.insert(Header {
            key: name,
            value: Some(&value),
        });
    }
    if let Some(traceparent) = &event.traceparent {
        headers = headers.insert(Header {
            key: HEADER_TRACEPARENT,
            value: Some(traceparent),
        });
    }
    BaseRecord::with_opaque_to(topic, index)
        .partition(event.partition)
        .key(key)
        .payload(payload)
        .headers(headers)
}
