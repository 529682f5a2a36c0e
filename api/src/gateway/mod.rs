//! The command gateway: produces command envelopes and waits for their results.
//!
//! Commands go to the commands topic keyed by aggregate id (the murmur2 partitioner, the same as
//! Java clients use, so every producer of commands agrees on the partition); the [`listener`]
//! completes the waiting requests. What an answer means for the client:
//!
//! - [`GatewayError::Unavailable`] (503): the command was not produced: Kafka is known to be
//!   unreachable for its partition ([`health`]), the producer's queue is stuck, or the listener
//!   is not reading yet. Retrying is safe;
//! - [`GatewayError::Timeout`] (504, with the command id): the command may have been produced
//!   (delivery unconfirmed, or no result in time); a retry with the same Idempotency-Key sends
//!   the same command, applied at most once.

mod health;
mod listener;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbook_commands::envelope::{CommandEnvelope, CommandResult};
use logbook_events::partitioner::partition_of;
use logbook_events::{HEADER_TRACEPARENT, KafkaSettings};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::oneshot;
use uuid::Uuid;

use health::KafkaHealth;
use listener::{Shared, Waiters};

/// Commands waiting in librdkafka's queue beyond which new ones are refused (503).
const MAX_IN_FLIGHT: i32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("Kafka cannot take commands now; nothing was sent")]
    Unavailable,
    #[error("no result for command {0} in time")]
    Timeout(Uuid),
}

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

/// Sends commands and awaits their results.
pub struct Gateway {
    producer: FutureProducer<KafkaHealth>,
    health: KafkaHealth,
    commands_topic: String,
    waiters: Waiters,
    tickets: AtomicU64,
    timeout: Duration,
    shared: Arc<Shared>,
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
    /// Creates the producer and starts the results listener, which connects on its own. Waits
    /// up to ten seconds for it; if Kafka is away longer, commands answer 503 until it is back.
    pub async fn start(
        kafka: &KafkaSettings,
        timeout: Duration,
    ) -> Result<Arc<Self>, GatewayError> {
        let commands_topic = kafka.topics().commands;
        let health = KafkaHealth::new(&commands_topic);
        let producer: FutureProducer<KafkaHealth> = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("partitioner", "murmur2_random")
            // connected to every broker, not only to those it has work for: the health view
            // refuses commands for a leader it is not connected to, so with sparse connections
            // a gateway that started while a leader was away would never connect to it
            .set("enable.sparse.connections", "false")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .set("statistics.interval.ms", "1000")
            .create_with_context(health.clone())?;
        let waiters: Waiters = Arc::default();
        let shared = Arc::new(Shared::default());
        let (kafka, listener_waiters, listener_shared) =
            (kafka.clone(), waiters.clone(), shared.clone());
        let listener = std::thread::Builder::new()
            .name("logbook-results".into())
            .spawn(move || listener::run(kafka, listener_waiters, listener_shared))
            .map_err(|_| GatewayError::Unavailable)?;
        let (probe_producer, probe_health, probe_shared) =
            (producer.clone(), health.clone(), shared.clone());
        std::thread::Builder::new()
            .name("logbook-kafka-probe".into())
            .spawn(move || {
                health::probe_while_unreachable(probe_producer, probe_health, || {
                    probe_shared.stop.load(Ordering::Relaxed)
                })
            })
            .map_err(|_| GatewayError::Unavailable)?;
        let connected = tokio::time::Instant::now() + Duration::from_secs(10);
        while !shared.listening.load(Ordering::Relaxed) && tokio::time::Instant::now() < connected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Arc::new(Self {
            producer,
            health,
            commands_topic,
            waiters,
            tickets: AtomicU64::new(0),
            timeout,
            shared,
            listener: Mutex::new(Some(listener)),
        }))
    }

    /// Produces the command and waits for its result.
    pub async fn send(&self, command: &CommandEnvelope) -> Result<CommandResult, GatewayError> {
        self.check_reachable(command.aggregate_id)?;
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

    /// 503 before producing when the command cannot get through now.
    fn check_reachable(&self, aggregate_id: Uuid) -> Result<(), GatewayError> {
        let refuse = |why: &str| {
            metrics::counter!("logbook_gateway_refused_total", "why" => why.to_string())
                .increment(1);
            Err(GatewayError::Unavailable)
        };
        if !self.shared.listening.load(Ordering::Relaxed) {
            return refuse("not_listening");
        }
        let partitions = self.shared.partitions.load(Ordering::Relaxed);
        if partitions > 0
            && !self
                .health
                .reachable(partition_of(aggregate_id, partitions))
        {
            return refuse("leader_unreachable");
        }
        if self.producer.in_flight_count() > MAX_IN_FLIGHT {
            return refuse("queue_stuck");
        }
        Ok(())
    }

    async fn produce_and_wait(
        &self,
        command: &CommandEnvelope,
        receiver: oneshot::Receiver<CommandResult>,
    ) -> Result<CommandResult, GatewayError> {
        let key = command.aggregate_id.to_string();
        // the result comes back on the partition this gateway reads (known: it listens)
        let reply = self.shared.reply_partition.load(Ordering::Relaxed);
        // (set here, not when the listener connects: that may precede the metrics recorder)
        metrics::gauge!("logbook_gateway_reply_partition").set(f64::from(reply));
        let payload = if reply >= 0 {
            CommandEnvelope {
                reply_partition: Some(reply),
                ..command.clone()
            }
            .encode()
        } else {
            command.encode()
        };
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
        // not enqueued (queue full): nothing was produced
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|_| GatewayError::Unavailable)?;
        let started = tokio::time::Instant::now();
        match delivery.await {
            Ok(Ok(delivered)) => tracing::debug!(
                command_id = %command.command_id,
                partition = delivered.partition,
                offset = delivered.offset,
                "command produced"
            ),
            // unconfirmed: the command may be in the log
            Ok(Err((error, _))) => {
                tracing::debug!(command_id = %command.command_id, %error, "delivery unconfirmed");
                return Err(GatewayError::Timeout(command.command_id));
            }
            Err(_) => return Err(GatewayError::Timeout(command.command_id)),
        }
        let left = self.timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, receiver).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) | Err(_) => Err(GatewayError::Timeout(command.command_id)),
        }
    }

    /// Whether the results listener reads (it may still be waiting for Kafka).
    pub fn is_listening(&self) -> bool {
        self.shared.listening.load(Ordering::Relaxed)
    }

    /// How many requests wait for a result now.
    pub fn waiting(&self) -> usize {
        self.waiters
            .lock()
            .map(|w| w.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// Stops the results listener (pending requests then fail), and lets queued commands out.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.listener.lock().ok().and_then(|mut l| l.take()) {
            let _ = handle.join();
        }
        let _ = self.producer.flush(Timeout::After(Duration::from_secs(5)));
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
