//! Kafka client configurations of the processor.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};
use uuid::Uuid;

use super::ProcessorSettings;
use super::contexts::{DeliveryContext, RebalanceContext};

/// The group member on the commands topic: manual offsets (they go into the transactions),
/// read_committed (which also makes the committed-offset fetch wait for a previous owner's
/// pending transaction), incremental rebalances.
pub fn consumer(
    settings: &ProcessorSettings,
) -> Result<BaseConsumer<RebalanceContext>, KafkaError> {
    let consumer: BaseConsumer<RebalanceContext> = settings
        .kafka
        .client_config()
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", millis(settings.session_timeout))
        .set(
            "heartbeat.interval.ms",
            millis(settings.session_timeout / 6),
        )
        .set("fetch.wait.max.ms", "20")
        .set("fetch.min.bytes", "1")
        .create_with_context(RebalanceContext::default())?;
    consumer.subscribe(&[&settings.kafka.topics().commands])?;
    Ok(consumer)
}

/// A transactional producer with an id unique to this process instance (fencing of zombies is
/// done by the consumer group generation in `send_offsets_to_transaction`, KIP-447).
pub fn transactional_producer(
    settings: &ProcessorSettings,
) -> Result<ThreadedProducer<DeliveryContext>, KafkaError> {
    let transactional_id = format!("{}-{}", settings.group_id, Uuid::now_v7());
    let producer: ThreadedProducer<DeliveryContext> = settings
        .kafka
        .client_config()
        .set("transactional.id", &transactional_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("retry.backoff.ms", "5")
        .set("retry.backoff.max.ms", "50")
        .set("transaction.timeout.ms", millis(settings.txn_timeout * 2))
        .set("queue.buffering.max.messages", "200000")
        .create_with_context(DeliveryContext::default())?;
    producer.init_transactions(settings.txn_timeout)?;
    tracing::info!(%transactional_id, "transactional producer ready");
    Ok(producer)
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}
