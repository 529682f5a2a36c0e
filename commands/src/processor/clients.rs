//! The Kafka clients of the processor, and waiting for Kafka while they connect.

use std::sync::atomic::{AtomicBool, Ordering};

use logbook_events::layout::LayoutError;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;

use super::delivery::DeliveryContext;
use super::{ProcessorError, ProcessorSettings};
use crate::txn::{
    Backoff, KafkaTxnClient, Outage, RebalanceContext, TxnError, TxnErrorKind, group,
    transactional_id,
};

/// The group member on the commands topic (see [`group::consumer`]).
pub fn consumer(
    settings: &ProcessorSettings,
) -> Result<BaseConsumer<RebalanceContext>, KafkaError> {
    let topic = settings.kafka.topics().commands;
    group::consumer(&settings.group(), &[&topic], "processor")
}

/// The transactional producer, with an id stable for this process instance.
pub fn producer(settings: &ProcessorSettings) -> Result<KafkaTxnClient<DeliveryContext>, TxnError> {
    let mut config = settings.kafka.client_config();
    config
        .set(
            "transactional.id",
            transactional_id(&settings.group_id, &settings.instance_id),
        )
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("retry.backoff.ms", "5")
        .set("retry.backoff.max.ms", "50")
        .set(
            "transaction.timeout.ms",
            (settings.txn_timeout * 2).as_millis().to_string(),
        )
        .set("queue.buffering.max.messages", "200000");
    KafkaTxnClient::connect(config, DeliveryContext::default, settings.txn_timeout)
}

/// An error that waiting may cure (Kafka unreachable), or not (bad configuration, a changed
/// layout).
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for LayoutError {
    fn is_transient(&self) -> bool {
        matches!(self, LayoutError::Kafka(error) if !is_configuration(error))
    }
}

impl Transient for TxnError {
    fn is_transient(&self) -> bool {
        self.kind != TxnErrorKind::Fatal && !self.message.contains("configuration")
    }
}

impl Transient for KafkaError {
    fn is_transient(&self) -> bool {
        !is_configuration(self)
    }
}

fn is_configuration(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
    )
}

/// Calls `connect` until it succeeds, waiting out transient errors with backoff.
pub fn wait_for<T, E>(
    stop: &AtomicBool,
    outage: &mut Outage,
    mut connect: impl FnMut() -> Result<T, E>,
) -> Result<T, ProcessorError>
where
    E: Transient + std::fmt::Display + Into<ProcessorError>,
{
    let mut backoff = Backoff::default();
    loop {
        match connect() {
            Ok(value) => {
                outage.recovered();
                return Ok(value);
            }
            Err(error) if error.is_transient() && !stop.load(Ordering::Relaxed) => {
                outage.failed(&error);
                backoff.sleep();
            }
            Err(error) => return Err(error.into()),
        }
    }
}
