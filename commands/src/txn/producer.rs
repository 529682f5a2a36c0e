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
//! spins a core.) Before `commit_transaction`, [`settle`] sleeps until the last report is in
//! (the context counts them: [`super::deliveries`]): rdkafka's commit first flushes, and its
//! flush waits in 100 ms slices when anything is in flight.
//!
//! `send_offsets_to_transaction` runs on a thread of its own and is waited for with a deadline:
//! librdkafka 2.12 can block in it for ever when the group coordinator goes away during the
//! call (it never checks the coordinator request's timeout: librdkafka issues 5456 and 5511).
//! Past the deadline the producer counts as unusable ([`TxnErrorKind::Fatal`]), so the
//! transactor replaces it by one with the same `transactional.id`, which fences the stuck one
//! (whose thread is left to end with it) and aborts its open transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::deliveries::CountsDeliveries;
use super::transactor::{TxnClient, TxnError, TxnErrorKind};

/// How long `send` sleeps while librdkafka's queue is full (the polling thread empties it).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);
/// How often [`settle`] looks at librdkafka's out queue once every report is in.
const SETTLE_PAUSE: Duration = Duration::from_micros(200);
/// How much longer than its own timeout `send_offsets_to_transaction` may take before its
/// producer counts as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// The consumed offsets of a transaction and the consumer group's metadata (shared with the
/// thread that sends them).
pub type TxnOffsets = Arc<(TopicPartitionList, ConsumerGroupMetadata)>;

/// The `transactional.id` of a loop of `group` in process instance `instance`.
pub fn transactional_id(group: &str, instance: &str) -> String {
    format!("{group}-{instance}")
}

/// A transactional `ThreadedProducer` and the configuration to make it again.
pub struct KafkaTxnClient<C: CountsDeliveries> {
    producer: Arc<ThreadedProducer<C>>,
    config: ClientConfig,
    make_context: fn() -> C,
    timeout: Duration,
}

impl<C: CountsDeliveries> std::fmt::Debug for KafkaTxnClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTxnClient")
            .field("transactional_id", &self.config.get("transactional.id"))
            .finish_non_exhaustive()
    }
}

impl<C: CountsDeliveries> KafkaTxnClient<C> {
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
    ) -> Result<Arc<ThreadedProducer<C>>, TxnError> {
        let producer: ThreadedProducer<C> = config.create_with_context(make_context())?;
        producer.init_transactions(timeout)?;
        tracing::info!(
            transactional_id = config.get("transactional.id").unwrap_or_default(),
            "transactional producer ready"
        );
        Ok(Arc::new(producer))
    }

    pub fn producer(&self) -> &ThreadedProducer<C> {
        &self.producer
    }
}

impl<C: CountsDeliveries> TxnClient for KafkaTxnClient<C> {
    type Offsets = TxnOffsets;

    fn begin(&self) -> Result<(), TxnError> {
        Ok(self.producer.begin_transaction()?)
    }

    fn send_offsets(&self, offsets: &Self::Offsets, timeout: Duration) -> Result<(), TxnError> {
        let (producer, offsets) = (Arc::clone(&self.producer), Arc::clone(offsets));
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("logbook-txn-offsets".into())
            .spawn(move || {
                let (list, group) = &*offsets;
                let _ = done.send(producer.send_offsets_to_transaction(list, group, timeout));
            })
            .map_err(|error| TxnError::new(TxnErrorKind::Other, error.to_string()))?;
        match answer.recv_timeout(timeout + STUCK_AFTER) {
            Ok(result) => Ok(result?),
            Err(_) => Err(TxnError::new(
                TxnErrorKind::Fatal,
                format!(
                    "send_offsets_to_transaction has not returned {:?} after its timeout: the \
                     producer is stuck (librdkafka issue 5456) and is replaced",
                    STUCK_AFTER
                ),
            )),
        }
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

    fn in_doubt(&self) -> bool {
        !self.producer.context().deliveries().all_delivered()
    }
}

/// Waits until nothing is in flight: it sleeps until every record sent has its delivery report
/// (served by the polling thread), then until librdkafka has let go of them.
pub fn settle<C: CountsDeliveries>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    if !producer.context().deliveries().wait_all_reported(deadline) {
        return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
    }
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
    C: CountsDeliveries + ProducerContext<DeliveryOpaque = D>,
    D: rdkafka::util::IntoOpaque,
{
    let deadline = Instant::now() + timeout;
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.context().deliveries().sent();
                return Ok(());
            }
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

#[cfg(test)]
mod tests {
    use rdkafka::Offset;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::{MockCluster, MockCoordinator};

    use super::*;
    use crate::txn::deliveries::Counting;

    /// librdkafka's mock cluster (error handling only): the group coordinator goes down while
    /// a transaction is open, and `send_offsets_to_transaction` never returns by itself; the
    /// client gives it up as stuck (fatal: the transactor replaces the producer).
    #[test]
    fn a_send_offsets_stuck_on_a_lost_group_coordinator_is_given_up() {
        let cluster = MockCluster::new(3).expect("mock cluster");
        cluster.create_topic("t", 1, 3).expect("topic");
        cluster
            .coordinator(MockCoordinator::Transaction("txn".into()), 1)
            .expect("transaction coordinator");
        cluster
            .coordinator(MockCoordinator::Group("group".into()), 2)
            .expect("group coordinator");
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("transactional.id", "txn");
        let timeout = Duration::from_secs(2);
        let client = KafkaTxnClient::connect(config, Counting::default, timeout).expect("client");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "group")
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("t", 0, Offset::Offset(1))
            .expect("offset");
        let offsets = Arc::new((list, consumer.group_metadata().expect("metadata")));
        client.begin().expect("begin");
        let payload = b"x".to_vec();
        let record = BaseRecord::<String, Vec<u8>>::to("t")
            .payload(&payload)
            .partition(0);
        send(client.producer(), record, timeout).expect("send");
        settle(client.producer(), timeout).expect("delivered");
        cluster.broker_down(2).expect("group coordinator down");

        let started = Instant::now();
        let (done, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(client.send_offsets(&offsets, timeout).map_err(|e| e.kind));
        });
        // without the deadline the call was still blocked after 60 s
        let answered = answer.recv_timeout(Duration::from_secs(60));
        assert_eq!(
            answered,
            Ok(Err(TxnErrorKind::Fatal)),
            "{:?}",
            started.elapsed()
        );
        assert!(started.elapsed() >= timeout + STUCK_AFTER);
    }
}
