//! The transfer process manager (`logbook saga`): moves money between accounts that usually
//! live on different partitions, so no single writer owns both.
//!
//! One consumer group reads the events topic and the results topic (read_committed). For each
//! batch it produces the next steps' commands ([`steps`]) and commits its consumed offsets of both
//! topics in ONE Kafka transaction: a crash can neither lose a step (the offsets are not
//! committed without the commands) nor double one (deterministic command ids, deduped by the
//! processors).

pub mod steps;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use logbook_events::{KafkaSettings, decode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use crate::envelope::{CommandEnvelope, CommandResult};
use crate::processor::contexts::RebalanceContext;

#[derive(Debug, Clone)]
pub struct SagaSettings {
    pub kafka: KafkaSettings,
    pub group_id: String,
    pub batch_max: usize,
    pub batch_linger: Duration,
    pub txn_timeout: Duration,
}

impl SagaSettings {
    pub fn new(kafka: KafkaSettings) -> Self {
        let group_id = format!("{}.sagas", kafka.topic_prefix);
        Self {
            kafka,
            group_id,
            batch_max: 500,
            batch_linger: Duration::from_millis(5),
            txn_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("saga thread panicked")]
    Panicked,
}

/// Runs the saga on its own OS thread until `shutdown` completes or it fails.
pub async fn run_until(
    settings: SagaSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), SagaError> {
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let _stop_on_drop = crate::processor::StopOnDrop(stop.clone());
    let joined = tokio::task::spawn_blocking(move || Saga::new(settings)?.run(&thread_stop));
    tokio::pin!(joined);
    tokio::select! {
        result = &mut joined => return result.map_err(|_| SagaError::Panicked)?,
        () = shutdown => stop.store(true, Ordering::Relaxed),
    }
    joined.await.map_err(|_| SagaError::Panicked)?
}

struct Saga {
    settings: SagaSettings,
    consumer: BaseConsumer<RebalanceContext>,
    producer: ThreadedProducer<DefaultProducerContext>,
}

/// A consumed record, with the ownership epoch of its partition.
struct Consumed {
    topic: String,
    partition: i32,
    offset: i64,
    epoch: u64,
    command: Option<CommandEnvelope>,
}

impl Saga {
    fn new(settings: SagaSettings) -> Result<Self, SagaError> {
        let topics = settings.kafka.topics();
        let consumer: BaseConsumer<RebalanceContext> = settings
            .kafka
            .client_config()
            .set("group.id", &settings.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "20")
            .create_with_context(RebalanceContext::default())?;
        consumer.subscribe(&[&topics.events, &topics.results])?;
        let producer = Self::producer(&settings)?;
        Ok(Self {
            settings,
            consumer,
            producer,
        })
    }

    fn producer(
        settings: &SagaSettings,
    ) -> Result<ThreadedProducer<DefaultProducerContext>, KafkaError> {
        let producer: ThreadedProducer<DefaultProducerContext> = settings
            .kafka
            .client_config()
            .set(
                "transactional.id",
                format!("{}-{}", settings.group_id, Uuid::now_v7()),
            )
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "1")
            .set("retry.backoff.ms", "5")
            .set(
                "transaction.timeout.ms",
                (settings.txn_timeout * 2).as_millis().to_string(),
            )
            .create()?;
        producer.init_transactions(settings.txn_timeout)?;
        Ok(producer)
    }

    fn run(mut self, stop: &AtomicBool) -> Result<(), SagaError> {
        while !stop.load(Ordering::Relaxed) {
            let batch = self.collect(stop);
            if batch.is_empty() {
                continue;
            }
            if let Err(error) = self.transact(&batch) {
                tracing::warn!(%error, "saga transaction failed: aborting and rewinding");
                let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal());
                if fatal
                    || self
                        .producer
                        .abort_transaction(self.settings.txn_timeout)
                        .is_err()
                {
                    self.producer = Self::producer(&self.settings)?;
                }
                self.rewind(&batch)?;
            }
        }
        self.consumer.unsubscribe();
        Ok(())
    }

    fn collect(&self, stop: &AtomicBool) -> Vec<Consumed> {
        let (events_topic, now) = (self.settings.kafka.topics().events, chrono::Utc::now());
        let mut batch = Vec::new();
        let idle_until = Instant::now() + Duration::from_millis(100);
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.settings.batch_max && !stop.load(Ordering::Relaxed) {
            let until = deadline.unwrap_or(idle_until);
            let Some(wait) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            let message = match self.consumer.poll(wait) {
                None => continue,
                Some(Err(error)) => {
                    tracing::warn!(%error, "saga consumer error");
                    continue;
                }
                Some(Ok(message)) => message,
            };
            let context = self.consumer.context();
            let Some(epoch) = context.epoch(message.topic(), message.partition()) else {
                continue;
            };
            let payload = message.payload().unwrap_or_default();
            let command = if message.topic() == events_topic {
                decode(payload)
                    .ok()
                    .and_then(|envelope| steps::on_event(&envelope, now))
            } else {
                CommandResult::decode(payload)
                    .ok()
                    .and_then(|result| steps::on_result(&result, now))
            };
            batch.push(Consumed {
                topic: message.topic().to_string(),
                partition: message.partition(),
                offset: message.offset(),
                epoch,
                command,
            });
            deadline.get_or_insert_with(|| Instant::now() + self.settings.batch_linger);
        }
        // what an earlier ownership of a partition fetched is dropped: the new owner reads it
        let context = self.consumer.context();
        batch.retain(|c| context.epoch(&c.topic, c.partition) == Some(c.epoch));
        batch
    }

    fn transact(&self, batch: &[Consumed]) -> Result<(), KafkaError> {
        let timeout = self.settings.txn_timeout;
        let commands_topic = self.settings.kafka.topics().commands;
        self.producer.begin_transaction()?;
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for consumed in batch {
            let offset = next
                .entry((&consumed.topic, consumed.partition))
                .or_insert(0);
            *offset = (*offset).max(consumed.offset + 1);
            let Some(command) = &consumed.command else {
                continue;
            };
            let (key, payload) = (command.aggregate_id.to_string(), command.encode());
            let record = BaseRecord::to(&commands_topic).key(&key).payload(&payload);
            crate::processor::send(&self.producer, record, timeout)?;
            metrics::counter!("logbook_saga_steps_total").increment(1);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        let group = self
            .consumer
            .group_metadata()
            .ok_or(KafkaError::NoMessageReceived)?;
        self.producer
            .send_offsets_to_transaction(&offsets, &group, timeout)?;
        crate::processor::settle(&self.producer, timeout)?;
        self.producer.commit_transaction(timeout)
    }

    /// Consume the batch again after an abort; a partition still ours that cannot be rewound
    /// stops the saga rather than skip its records.
    fn rewind(&self, batch: &[Consumed]) -> Result<(), SagaError> {
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for consumed in batch {
            let offset = first
                .entry((&consumed.topic, consumed.partition))
                .or_insert(consumed.offset);
            *offset = (*offset).min(consumed.offset);
        }
        for ((topic, partition), offset) in first {
            let seek = self.consumer.seek(
                topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            );
            if let Err(error) = seek
                && self.consumer.context().epoch(topic, partition).is_some()
            {
                return Err(SagaError::Kafka(error));
            }
        }
        Ok(())
    }
}
