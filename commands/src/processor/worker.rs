//! The processor loop, on its own OS thread (librdkafka's transaction calls block).
//!
//! collect a batch → drop what an older ownership epoch fetched → restore partitions first seen
//! in this epoch → plan (pure) → ONE transaction: events, results, consumed offsets → on commit,
//! merge the planned state. A transaction is always finished (committed or aborted) before the
//! consumer is polled again, so no transaction spans a rebalance.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use logbook_events::{HEADER_TRACEPARENT, Position, encode, event_headers};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use super::batch::{Incoming, Plan, PlannedOutcome, PositionRef, plan_batch};
use super::contexts::{DeliveryContext, RebalanceContext};
use super::restore::restore_partition;
use super::state::{Applied, PartitionState};
use super::{ProcessorError, ProcessorSettings, clients};
use crate::envelope::{CommandResult, Outcome};

/// A partition's state and the ownership epoch it was restored in.
struct Owned {
    epoch: u64,
    state: PartitionState,
}

pub(super) struct Worker {
    settings: ProcessorSettings,
    consumer: BaseConsumer<RebalanceContext>,
    producer: BaseProducer<DeliveryContext>,
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
        let timeout = self.settings.txn_timeout;
        self.producer.context().reset();
        let started = Instant::now();
        self.producer.begin_transaction()?;
        let topics = self.settings.kafka.topics();
        for (index, event) in plan.events.iter().enumerate() {
            let payload = encode(&event.envelope);
            let key = event.envelope.aggregate_id.to_string();
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
            let record = BaseRecord::with_opaque_to(&topics.events, index)
                .partition(event.partition)
                .key(&key)
                .payload(&payload)
                .headers(headers);
            send(&self.producer, record)?;
        }
        drain(&self.producer, timeout)?;
        let flushed = started.elapsed();
        let offsets = self.producer.context().take().map_err(|failure| {
            tracing::warn!(%failure, "an event was not delivered");
            TxnFailure::Abortable(KafkaError::MessageProduction(RDKafkaErrorCode::Fail))
        })?;
        let position_of = |reference: PositionRef, partition: i32| match reference {
            PositionRef::Known(position) => Some(position),
            PositionRef::Pending(index) => {
                offsets.get(&index).map(|o| Position::new(partition, *o))
            }
        };
        let mut applied = Vec::new();
        for (index, result) in plan.results.iter().enumerate() {
            let outcome = match &result.outcome {
                PlannedOutcome::Accepted {
                    version,
                    position,
                    duplicate,
                } => {
                    let position = position_of(*position, result.partition).ok_or_else(|| {
                        TxnFailure::Abortable(KafkaError::MessageProduction(RDKafkaErrorCode::Fail))
                    })?;
                    if !duplicate {
                        applied.push((
                            result.partition,
                            result.command_id,
                            result.aggregate_id,
                            *version,
                            position,
                        ));
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
            let payload = record.encode();
            let key = result.command_id.to_string();
            let record = BaseRecord::with_opaque_to(&topics.results, plan.events.len() + index)
                .key(&key)
                .payload(&payload);
            send(&self.producer, record)?;
        }
        let mut consumed = TopicPartitionList::new();
        for (partition, next) in &plan.next_offsets {
            consumed.add_partition_offset(&topics.commands, *partition, Offset::Offset(*next))?;
        }
        let group = self
            .consumer
            .group_metadata()
            .ok_or(TxnFailure::Abortable(KafkaError::NoMessageReceived))?;
        self.producer
            .send_offsets_to_transaction(&consumed, &group, timeout)?;
        drain(&self.producer, timeout)?;
        let offsets_sent = started.elapsed();
        self.producer.commit_transaction(timeout)?;
        tracing::debug!(
            results = plan.results.len(),
            events = plan.events.len(),
            flush_ms = flushed.as_secs_f64() * 1e3,
            offsets_ms = (offsets_sent - flushed).as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - offsets_sent).as_secs_f64() * 1e3,
            "batch committed"
        );
        crate::metrics::transaction_seconds(started.elapsed().as_secs_f64());
        self.merge(plan, applied);
        Ok(())
    }

    /// The transaction committed: its state becomes the partitions' state.
    fn merge(&mut self, plan: Plan, applied: Vec<(i32, Uuid, Uuid, u64, Position)>) {
        crate::metrics::batch_committed(plan.results.len(), plan.events.len());
        for ((partition, aggregate_id), slot) in plan.overlay {
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.state.accounts.insert(aggregate_id, slot);
            }
        }
        for (partition, command_id, aggregate_id, version, position) in applied {
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.state.dedupe.record(
                    command_id,
                    Applied {
                        aggregate_id,
                        version,
                        position,
                    },
                );
                owned.state.next_event_offset =
                    owned.state.next_event_offset.max(position.offset + 1);
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

/// Waits until every record sent so far is acknowledged, serving delivery reports as they come.
///
/// rdkafka's own `flush` polls in 100 ms slices and waits each slice out even when the reports
/// are already there, which would add 100 ms to every transaction; this polls in 1 ms slices.
/// `commit_transaction` flushes too, but finds nothing left to wait for after this.
pub(crate) fn drain<C: rdkafka::producer::ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

/// Sends one record, serving delivery reports while librdkafka's queue is full.
pub(crate) fn send<C, D>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'_, String, Vec<u8>, D>,
) -> Result<(), KafkaError>
where
    C: rdkafka::producer::ProducerContext<DeliveryOpaque = D>,
    D: rdkafka::util::IntoOpaque,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((error, _)) => return Err(error),
        }
    }
}
