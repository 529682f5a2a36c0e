//! The command gateway: produces command envelopes and waits for their results.
//!
//! Commands go to the commands topic keyed by aggregate id (the murmur2 partitioner, the same as
//! Java clients use, so every producer of commands agrees on the partition). One results
//! consumer per gateway process reads the results topic (read_committed) on its own thread and
//! completes the waiting requests by command id. A request that waits longer than the timeout
//! answers 504 with the command id; retried with the same command id, it is applied at most once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbook_commands::envelope::{CommandEnvelope, CommandResult};
use logbook_events::{HEADER_TRACEPARENT, KafkaSettings};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The requests waiting for a result, by command id; each waiter has its own ticket.
type Waiters = Arc<Mutex<HashMap<Uuid, Vec<(u64, oneshot::Sender<CommandResult>)>>>>;

/// Removes its own waiter when dropped (answered, timed out, failed, or the request was
/// cancelled because the client went away), so no entry is ever left behind.
struct Waiting<'a> {
    waiters: &'a Waiters,
    command_id: Uuid,
    ticket: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiters) = self.waiters.lock() {
            if let Some(list) = waiters.get_mut(&self.command_id) {
                list.retain(|(ticket, _)| *ticket != self.ticket);
                if list.is_empty() {
                    waiters.remove(&self.command_id);
                }
            }
            waiting_gauge(&waiters);
        }
    }
}

fn waiting_gauge(waiters: &HashMap<Uuid, Vec<(u64, oneshot::Sender<CommandResult>)>>) {
    let waiting: usize = waiters.values().map(Vec::len).sum();
    metrics::gauge!("logbook_gateway_waiting_requests").set(waiting as f64);
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("no result for command {0} in time")]
    Timeout(Uuid),
    #[error("results listener is not running")]
    Closed,
}

/// Sends commands and awaits their results.
pub struct Gateway {
    producer: FutureProducer,
    commands_topic: String,
    waiters: Waiters,
    tickets: std::sync::atomic::AtomicU64,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("commands_topic", &self.commands_topic)
            .finish()
    }
}

impl Gateway {
    /// Connects the producer and starts the results listener at the current end of the results
    /// topic (so no result of a command sent after this returns can be missed).
    pub async fn start(
        kafka: &KafkaSettings,
        timeout: Duration,
    ) -> Result<Arc<Self>, GatewayError> {
        let producer: FutureProducer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .create()?;
        let waiters: Waiters = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let commands_topic = kafka.topics().commands;
        let kafka = kafka.clone();
        let (listener_waiters, listener_stop) = (waiters.clone(), stop.clone());
        let consumer = tokio::task::spawn_blocking(move || results_consumer(&kafka))
            .await
            .map_err(|_| GatewayError::Closed)??;
        let listener = std::thread::Builder::new()
            .name("logbook-results".into())
            .spawn(move || listen(consumer, listener_waiters, listener_stop))
            .map_err(|_| GatewayError::Closed)?;
        Ok(Arc::new(Self {
            producer,
            commands_topic,
            waiters,
            tickets: std::sync::atomic::AtomicU64::new(0),
            timeout,
            stop,
            listener: Mutex::new(Some(listener)),
        }))
    }

    /// Produces the command and waits for its result.
    pub async fn send(&self, command: &CommandEnvelope) -> Result<CommandResult, GatewayError> {
        let (sender, receiver) = oneshot::channel();
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters
                .entry(command.command_id)
                .or_default()
                .push((ticket, sender));
            waiting_gauge(&waiters);
        }
        let _waiting = Waiting {
            waiters: &self.waiters,
            command_id: command.command_id,
            ticket,
        };
        self.produce_and_wait(command, receiver).await
    }

    /// How many requests wait for a result now.
    pub fn waiting(&self) -> usize {
        self.waiters
            .lock()
            .map(|w| w.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    async fn produce_and_wait(
        &self,
        command: &CommandEnvelope,
        receiver: oneshot::Receiver<CommandResult>,
    ) -> Result<CommandResult, GatewayError> {
        let key = command.aggregate_id.to_string();
        let payload = command.encode();
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "command_type",
            value: Some(command.command.name()),
        });
        if let Some(traceparent) = &command.traceparent {
            headers = headers.insert(Header {
                key: HEADER_TRACEPARENT,
                value: Some(traceparent),
            });
        }
        let record = FutureRecord::to(&self.commands_topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        let delivery = self
            .producer
            .send(record, self.timeout)
            .await
            .map_err(|(error, _)| GatewayError::Kafka(error))?;
        tracing::debug!(
            command_id = %command.command_id,
            partition = delivery.partition,
            offset = delivery.offset,
            "command produced"
        );
        match tokio::time::timeout(self.timeout, receiver).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(GatewayError::Closed),
            Err(_) => Err(GatewayError::Timeout(command.command_id)),
        }
    }

    /// Whether the results listener still runs.
    pub fn is_listening(&self) -> bool {
        self.listener
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|h| !h.is_finished()))
            .unwrap_or(false)
    }

    /// Stops the results listener (pending requests then fail).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.listener.lock().ok().and_then(|mut l| l.take()) {
            let _ = handle.join();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A consumer of every results partition, positioned at its current end.
fn results_consumer(kafka: &KafkaSettings) -> Result<BaseConsumer, KafkaError> {
    let topic = kafka.topics().results;
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", format!("{}-gateway-unused", kafka.topic_prefix))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "20")
        .set("fetch.min.bytes", "1")
        .create()?;
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
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let high = retry_transient(|| consumer.fetch_watermarks(&topic, partition, timeout))?.1;
        assignment.add_partition_offset(&topic, partition, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// The listener loop: hands each result to the requests waiting for its command id.
fn listen(consumer: BaseConsumer, waiters: Waiters, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(error)) => {
                tracing::warn!(%error, "results consumer error");
                continue;
            }
            Some(Ok(message)) => message,
        };
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
            waiting_gauge(&w);
            senders
        });
        for (_, sender) in senders.into_iter().flatten() {
            let _ = sender.send(result.clone());
        }
    }
}

/// Retries a metadata call for a while: right after topics are created, or while a leader
/// moves, brokers answer "not leader" or "unknown partition" for a moment.
fn retry_transient<T>(mut call: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(error) if std::time::Instant::now() < deadline => {
                tracing::debug!(%error, "transient metadata error: retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => return Err(error),
        }
    }
}
