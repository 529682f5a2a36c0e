//! The transfer process manager (`logbook saga`): moves money between accounts that usually
//! live on different partitions, so no single writer owns both.
//!
//! One consumer group reads the events topic and the results topic (read_committed). For each
//! batch it produces the next steps' commands ([`steps`]) and commits its consumed offsets of both
//! topics in ONE Kafka transaction ([`crate::txn`]): a crash can neither lose a step (the offsets
//! are not committed without the commands) nor double one (the accounts apply each step once by
//! their state). An unclear commit is settled by replacing the producer, then the saga goes back
//! to the committed offsets. A record it cannot decode stops its partition (error log and
//! `logbook_saga_poison_total`) instead of being skipped.

pub mod steps;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logbook_events::linger::Linger;
use logbook_events::{KafkaSettings, decode};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::envelope::{CommandEnvelope, CommandResult};
use crate::txn::{
    Backoff, Counting, GroupError, GroupSettings, KafkaTxnClient, MissingOffsets, Outage, Outcome,
    RebalanceContext, Transactor, TxnError, group, send, transactional_id,
};

#[derive(Debug, Clone)]
pub struct SagaSettings {
    pub kafka: KafkaSettings,
    pub group_id: String,
    /// This process instance (its transactional id is `<group_id>-<instance_id>`).
    pub instance_id: String,
    pub batch_max: usize,
    pub batch_linger: Duration,
    pub txn_timeout: Duration,
    pub session_timeout: Duration,
    pub missing_offsets: MissingOffsets,
}

impl SagaSettings {
    pub fn new(kafka: KafkaSettings) -> Self {
        let group_id = kafka.groups().sagas;
        Self {
            kafka,
            group_id,
            instance_id: uuid::Uuid::now_v7().simple().to_string(),
            batch_max: 500,
            batch_linger: Duration::from_millis(20),
            txn_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(6),
            missing_offsets: MissingOffsets::Refuse,
        }
    }

    fn group(&self) -> GroupSettings {
        GroupSettings {
            kafka: self.kafka.clone(),
            group_id: self.group_id.clone(),
            session_timeout: self.session_timeout,
            missing_offsets: self.missing_offsets,
        }
    }
}

/// Why the saga stopped: only what a restart cannot fix.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("transactional producer: {0}")]
    Producer(#[from] TxnError),
    #[error(transparent)]
    Group(#[from] GroupError),
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
    let joined =
        tokio::task::spawn_blocking(move || Saga::new(settings, &thread_stop)?.run(&thread_stop));
    tokio::pin!(joined);
    tokio::select! {
        result = &mut joined => return result.map_err(|_| SagaError::Panicked)?,
        () = shutdown => stop.store(true, Ordering::Relaxed),
    }
    joined.await.map_err(|_| SagaError::Panicked)?
}

type Client = KafkaTxnClient<Counting>;

struct Saga {
    settings: SagaSettings,
    consumer: BaseConsumer<RebalanceContext>,
    txn: Transactor<Client>,
    /// Partitions stopped on a record that cannot be decoded (until the saga restarts).
    poisoned: HashSet<(String, i32)>,
    kafka: Outage,
}

/// A consumed record, with the ownership epoch of its partition and the step it causes.
struct Consumed {
    topic: String,
    partition: i32,
    offset: i64,
    epoch: u64,
    command: Option<CommandEnvelope>,
}

impl Saga {
    fn new(settings: SagaSettings, stop: &Arc<AtomicBool>) -> Result<Self, SagaError> {
        let topics = settings.kafka.topics();
        let consumer = group::consumer(
            &settings.group(),
            &[&topics.events, &topics.results],
            "saga",
        )?;
        let mut kafka = Outage::new("saga", "kafka");
        let mut backoff = Backoff::default();
        let client = loop {
            match Self::producer(&settings) {
                Ok(client) => break client,
                Err(error) if !stop.load(Ordering::Relaxed) => {
                    kafka.failed(&error);
                    backoff.sleep();
                }
                Err(error) => return Err(error.into()),
            }
        };
        kafka.recovered();
        let txn = Transactor::new(
            client,
            "saga",
            settings.txn_timeout,
            settings.txn_timeout * 3,
            stop.clone(),
        );
        Ok(Self {
            settings,
            consumer,
            txn,
            poisoned: HashSet::new(),
            kafka,
        })
    }

    fn producer(settings: &SagaSettings) -> Result<Client, TxnError> {
        let mut config = settings.kafka.client_config();
        config
            .set(
                "transactional.id",
                transactional_id(&settings.group_id, &settings.instance_id),
            )
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "1")
            .set("retry.backoff.ms", "5")
            .set(
                "transaction.timeout.ms",
                (settings.txn_timeout * 2).as_millis().to_string(),
            );
        KafkaTxnClient::connect(config, Counting::default, settings.txn_timeout)
    }

    fn run(mut self, stop: &AtomicBool) -> Result<(), SagaError> {
        let mut backoff = Backoff::default();
        while !stop.load(Ordering::Relaxed) {
            let batch = self.collect(stop)?;
            if batch.is_empty() {
                continue;
            }
            let Some(group) = self.consumer.group_metadata() else {
                self.rewind(&batch)?;
                continue;
            };
            match self.transact(&batch, group) {
                Outcome::Committed(()) => backoff.reset(),
                Outcome::Aborted(_) => {
                    self.rewind(&batch)?;
                    backoff.sleep();
                }
                Outcome::Unclear(_) => {
                    self.rewind_to_committed(&batch, stop);
                    backoff.sleep();
                }
                Outcome::Stopped => break,
            }
        }
        self.consumer.unsubscribe();
        Ok(())
    }

    fn collect(&mut self, stop: &AtomicBool) -> Result<Vec<Consumed>, SagaError> {
        let mut batch = Vec::new();
        let mut clock = Linger::start(self.settings.batch_linger);
        while batch.len() < self.settings.batch_max && !stop.load(Ordering::Relaxed) {
            let Some(next) = clock.next_poll() else {
                break;
            };
            let polled = self.consumer.poll(next.timeout);
            if !self.consumer.context().refused().is_empty() {
                return Err(self.refusal().into());
            }
            let message = match polled {
                // past the linger, nothing more already fetched: the batch is complete
                None if next.draining => break,
                None => continue,
                Some(Err(error)) if group::is_missing_offset(&error) => {
                    return Err(self.refusal().into());
                }
                Some(Err(error)) => {
                    self.kafka.failed(&error);
                    if next.draining {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Some(Ok(message)) => message,
            };
            self.kafka.recovered();
            let Some(epoch) = self
                .consumer
                .context()
                .epoch(message.topic(), message.partition())
            else {
                continue;
            };
            let key = (message.topic().to_string(), message.partition());
            if self.poisoned.contains(&key) {
                continue;
            }
            match self.step_of(&message) {
                Ok(command) => batch.push(Consumed {
                    topic: key.0.clone(),
                    partition: key.1,
                    offset: message.offset(),
                    epoch,
                    command,
                }),
                Err(error) => {
                    let offset = message.offset();
                    drop(message);
                    self.poison(key, offset, &error);
                }
            }
            clock.received();
        }
        // what an earlier ownership of a partition fetched is dropped: the new owner reads it
        let context = self.consumer.context();
        batch.retain(|c| context.epoch(&c.topic, c.partition) == Some(c.epoch));
        batch.retain(|c| !self.poisoned.contains(&(c.topic.clone(), c.partition)));
        Ok(batch)
    }

    /// The error for partitions handed to the saga without committed offsets.
    fn refusal(&self) -> GroupError {
        let context = self.consumer.context();
        let mut partitions = context.refused();
        if partitions.is_empty() {
            partitions = context.assigned();
        }
        group::refused(&self.settings.group(), partitions)
    }

    /// The step a record causes, or why it cannot be read.
    fn step_of(&self, message: &BorrowedMessage<'_>) -> Result<Option<CommandEnvelope>, String> {
        let now = chrono::Utc::now();
        let payload = message.payload().unwrap_or_default();
        if message.topic() == self.settings.kafka.topics().events {
            let envelope = decode(payload).map_err(|e| e.to_string())?;
            steps::on_event(&envelope, message.partition(), now).map_err(|e| e.to_string())
        } else {
            let result = CommandResult::decode(payload).map_err(|e| e.to_string())?;
            Ok(steps::on_result(&result, now))
        }
    }

    /// Stops a partition at a record that cannot be decoded: nothing after it is read or
    /// committed until an operator looks (and the saga restarts).
    fn poison(&mut self, (topic, partition): (String, i32), offset: i64, error: &str) {
        tracing::error!(
            topic,
            partition,
            offset,
            error,
            "saga: undecodable record; the partition is stopped at it"
        );
        metrics::counter!("logbook_saga_poison_total", "topic" => topic.clone()).increment(1);
        let mut list = TopicPartitionList::new();
        list.add_partition(&topic, partition);
        if let Err(error) = self.consumer.pause(&list) {
            tracing::warn!(%error, "could not pause the poisoned partition");
        }
        self.poisoned.insert((topic, partition));
    }

    fn transact(&mut self, batch: &[Consumed], group: ConsumerGroupMetadata) -> Outcome<()> {
        let timeout = self.settings.txn_timeout;
        let commands_topic = self.settings.kafka.topics().commands;
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for consumed in batch {
            let offset = next
                .entry((&consumed.topic, consumed.partition))
                .or_insert(0);
            *offset = (*offset).max(consumed.offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if offsets
                .add_partition_offset(topic, partition, Offset::Offset(offset))
                .is_err()
            {
                return Outcome::Aborted(TxnError::abort("invalid offset"));
            }
        }
        self.txn.run(
            |client| {
                for command in batch.iter().filter_map(|c| c.command.as_ref()) {
                    let (key, payload) = (command.aggregate_id.to_string(), command.encode());
                    let record = BaseRecord::to(&commands_topic).key(&key).payload(&payload);
                    send(client.producer(), record, timeout)?;
                    metrics::counter!("logbook_saga_steps_total").increment(1);
                }
                Ok(())
            },
            &std::sync::Arc::new((offsets, group)),
            |_, ()| Ok(()),
        )
    }

    /// Consume the batch again after an abort; a partition still ours that cannot be rewound
    /// stops the saga rather than skip its records.
    fn rewind(&self, batch: &[Consumed]) -> Result<(), SagaError> {
        let context = self.consumer.context();
        group::rewind_to(&self.consumer, &firsts(batch), |t, p| {
            context.epoch(t, p).is_some()
        })?;
        Ok(())
    }

    /// After an unclear commit (settled by the producer's replacement): back to the committed
    /// offsets, which tell whether the transaction landed.
    fn rewind_to_committed(&mut self, batch: &[Consumed], stop: &AtomicBool) {
        let firsts = firsts(batch);
        let mut backoff = Backoff::default();
        while !stop.load(Ordering::Relaxed) {
            let context = self.consumer.context();
            match group::rewind_to_committed(&self.consumer, &firsts, |t, p| {
                context.epoch(t, p).is_some()
            }) {
                Ok(()) => return,
                Err(error) => self.kafka.failed(&error),
            }
            backoff.sleep();
        }
    }
}

/// The first offset of each partition in `batch`.
fn firsts(batch: &[Consumed]) -> BTreeMap<(String, i32), i64> {
    group::first_offsets(
        batch
            .iter()
            .map(|c| ((c.topic.clone(), c.partition), c.offset)),
    )
}
