//! The transactional producer of a loop: one `transactional.id` for the life of the process
//! instance, sending without busy waiting, and the [`TxnClient`] calls on it.
//!
//! The id is stable for the instance (`<group>-<instance id>`), so a replacement created after an
//! unclear commit fences the producer it replaces: its `init_transactions` waits until the old
//! open transaction is committed or aborted. Zombie processes (a process that lost its
//! partitions) are fenced by the consumer group generation that every offset commit carries.
//!
//! A `ThreadedProducer` serves the delivery reports on its own polling thread, which sleeps in
//! librdkafka until one arrives. (rdkafka's `BaseProducer::poll(t)` always runs until `t` has
//! passed and turns a sub-millisecond remainder into a zero timeout, so polling in short slices
//! spins a core.) Before `commit_transaction`, [`settle`] waits for the last reports: rdkafka's
//! commit first flushes, and its flush waits in 100 ms slices when anything is in flight.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::transactor::{TxnClient, TxnError};

/// How long `send` sleeps while librdkafka's queue is full (the polling thread empties it).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);
/// How often [`settle`] looks at librdkafka's out queue.
const SETTLE_PAUSE: Duration = Duration::from_micros(200);

/// The `transactional.id` of a loop of `group` in process instance `instance`.
pub fn transactional_id(group: &str, instance: &str) -> String {
    format!("{group}-{instance}")
}

/// A transactional `ThreadedProducer` and the configuration to make it again.
pub struct KafkaTxnClient<C: ProducerContext + 'static> {
    producer: ThreadedProducer<C>,
    config: ClientConfig,
    make_context: fn() -> C,
    timeout: Duration,
}

impl<C: ProducerContext + 'static> std::fmt::Debug for KafkaTxnClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTxnClient")
            .field("transactional_id", &self.config.get("transactional.id"))
            .finish_non_exhaustive()
    }
}

impl<C: ProducerContext + 'static> KafkaTxnClient<C> {
    /// Creates the producer (the config must set `transactional.id`) and initialises
    /// transactions.
    pub fn connect(
        config: ClientConfig,
        make_context: fn() -> C,
        timeout: Duration,
    ) -> Result<Self, TxnError> {
        let producer = Self::make(&config, make_context, timeout)?;
        Ok(Self {
            producer,
            config,
            make_context,
            timeout,
        })
    }

    fn make(
        config: &ClientConfig,
        make_context: fn() -> C,
        timeout: Duration,
    ) -> Result<ThreadedProducer<C>, TxnError> {
        let producer: ThreadedProducer<C> = config.create_with_context(make_context())?;
        producer.init_transactions(timeout)?;
        tracing::info!(
            transactional_id = config.get("transactional.id").unwrap_or_default(),
            "transactional producer ready"
        );
        Ok(producer)
    }

    pub fn producer(&self) -> &ThreadedProducer<C> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> TxnClient for KafkaTxnClient<C> {
    type Offsets = (TopicPartitionList, ConsumerGroupMetadata);

    fn begin(&self) -> Result<(), TxnError> {
        Ok(self.producer.begin_transaction()?)
    }

    fn send_offsets(&self, offsets: &Self::Offsets, timeout: Duration) -> Result<(), TxnError> {
        let (list, group) = offsets;
        Ok(self
            .producer
            .send_offsets_to_transaction(list, group, timeout)?)
    }

    fn commit(&self, timeout: Duration) -> Result<(), TxnError> {
        settle(&self.producer, timeout)?;
        Ok(self.producer.commit_transaction(timeout)?)
    }

    fn abort(&self, timeout: Duration) -> Result<(), TxnError> {
        Ok(self.producer.abort_transaction(timeout)?)
    }

    fn reinit(&mut self) -> Result<(), TxnError> {
        self.producer = Self::make(&self.config, self.make_context, self.timeout)?;
        Ok(())
    }
}

/// Waits until nothing is in flight (every delivery report served by the polling thread).
pub fn settle<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        std::thread::sleep(SETTLE_PAUSE);
    }
    Ok(())
}

/// Sends one record; while librdkafka's queue is full, waits for it to drain, up to `timeout`.
pub fn send<C, D>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'_, String, Vec<u8>, D>,
    timeout: Duration,
) -> Result<(), KafkaError>
where
    C: ProducerContext<DeliveryOpaque = D> + 'static,
    D: rdkafka::util::IntoOpaque,
{
    let deadline = Instant::now() + timeout;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                record = back;
                std::thread::sleep(QUEUE_FULL_PAUSE);
            }
            Err((error, _)) => return Err(error),
        }
    }
}
