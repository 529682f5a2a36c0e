//! The gateway's results listener: one consumer of this gateway's reply partition of the
//! results topic (read_committed), on its own thread, that completes the waiting requests by
//! command id. The reply partition is drawn at random when the listener connects; commands name
//! it (`reply_partition`) and the processor writes their results there, so each gateway reads
//! its share of the results, not all of them (two gateways may draw the same partition: each
//! then skips the other's results). It starts at the partition's current end, once Kafka
//! answers: until then the gateway refuses commands (503), so no result of a command it sent can
//! be missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbook_commands::envelope::CommandResult;
use logbook_events::KafkaSettings;
use logbook_events::kafka::Reporting;
use logbook_events::retry::{Backoff, Outage};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The requests waiting for a result, by command id; each waiter has its own ticket.
pub(super) type Waiters = Arc<Mutex<HashMap<Uuid, Vec<(u64, oneshot::Sender<CommandResult>)>>>>;

/// What the listener shares with the gateway.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The listener is positioned and reading: results of commands sent now will be seen.
    pub(super) listening: AtomicBool,
    /// Partitions of the commands topic (the results topic has as many), 0 until known.
    pub(super) partitions: AtomicI32,
    /// The results partition this gateway reads (its commands name it); set before `listening`.
    pub(super) reply_partition: AtomicI32,
    pub(super) stop: AtomicBool,
}

/// Connects (waiting for Kafka), then hands each result to the requests waiting for it.
pub(super) fn run(kafka: KafkaSettings, waiters: Waiters, shared: Arc<Shared>) {
    let mut outage = Outage::new("gateway", "kafka");
    let mut backoff = Backoff::default();
    let consumer = loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        match positioned_consumer(&kafka) {
            Ok((consumer, partitions, reply)) => {
                shared.partitions.store(partitions, Ordering::Relaxed);
                shared.reply_partition.store(reply, Ordering::Relaxed);
                break consumer;
            }
            Err(error) => {
                outage.failed(&error);
                backoff.sleep();
            }
        }
    };
    outage.recovered();
    shared.listening.store(true, Ordering::Relaxed);
    while !shared.stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(error)) => {
                outage.failed(&error);
                continue;
            }
            Some(Ok(message)) => message,
        };
        outage.recovered();
        metrics::counter!("logbook_gateway_results_read_total").increment(1);
        let Some(result) = message
            .payload()
            .and_then(|p| CommandResult::decode(p).ok())
        else {
            tracing::error!(
                offset = message.offset(),
                "undecodable command result skipped"
            );
            continue;
        };
        let senders = waiters.lock().ok().and_then(|mut w| {
            let senders = w.remove(&result.command_id);
            super::waiting_gauge(&w);
            senders
        });
        for (_, sender) in senders.into_iter().flatten() {
            let _ = sender.send(result.clone());
        }
    }
    shared.listening.store(false, Ordering::Relaxed);
}

/// A consumer of one results partition drawn at random, positioned at its current end; the
/// partition count and the partition drawn.
fn positioned_consumer(
    kafka: &KafkaSettings,
) -> Result<(BaseConsumer<Reporting>, i32, i32), KafkaError> {
    let topic = kafka.topics().results;
    let consumer: BaseConsumer<Reporting> = kafka
        .client_config()
        .set("group.id", format!("{}-gateway-unused", kafka.topic_prefix))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "20")
        .set("fetch.min.bytes", "1")
        .create_with_context(Reporting)?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    let reply = partitions[(Uuid::new_v4().as_u128() % partitions.len() as u128) as usize];
    let mut assignment = TopicPartitionList::new();
    let high = consumer.fetch_watermarks(&topic, reply, timeout)?.1;
    assignment.add_partition_offset(&topic, reply, Offset::Offset(high))?;
    consumer.assign(&assignment)?;
    Ok((consumer, partitions.len() as i32, reply))
}
