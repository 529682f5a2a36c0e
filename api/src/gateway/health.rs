//! What the gateway knows about Kafka before it produces: librdkafka's statistics (every
//! second) tell which brokers it is connected to and which broker leads each commands
//! partition. A command whose partition's leader is not connected is answered 503 at once
//! (nothing was produced, the client may retry), instead of waiting out the command timeout.
//!
//! librdkafka connects to a broker only when it has work for it (sparse connections), and a
//! gateway that refuses every command gives it none: it would stay disconnected for ever from a
//! leader it was not connected to when the leader came up (seen on a three-broker cluster: every
//! command answered 503 after the brokers started together). So the gateway's producer keeps a
//! connection to every broker (`enable.sparse.connections=false`), and while any leader is
//! unreachable, [`probe_while_unreachable`] asks for the commands topic's metadata once a
//! second, which makes librdkafka connect again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::statistics::Statistics;

/// How often the prober asks for metadata while a leader is unreachable.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The producer's view of the cluster, refreshed by its statistics callback (the context and
/// the gateway each hold a clone).
#[derive(Debug, Default, Clone)]
pub struct KafkaHealth {
    topic: String,
    state: Arc<Mutex<View>>,
}

#[derive(Debug, Default, PartialEq)]
struct View {
    /// Whether each commands partition's leader is connected; empty until the first
    /// statistics that know the topic.
    partitions: HashMap<i32, bool>,
    /// Whether any broker is connected (false only when statistics say so).
    any_up: Option<bool>,
}

impl View {
    fn all_reachable(&self) -> bool {
        self.any_up != Some(false) && self.partitions.values().all(|up| *up)
    }
}

impl KafkaHealth {
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            state: Arc::default(),
        }
    }

    /// Whether a command for `partition` can be produced now, as far as is known.
    pub fn reachable(&self, partition: i32) -> bool {
        let Ok(view) = self.state.lock() else {
            return true;
        };
        if view.any_up == Some(false) {
            return false;
        }
        view.partitions.get(&partition).copied().unwrap_or(true)
    }

    /// Whether every commands partition's leader is connected, as far as is known.
    pub fn all_reachable(&self) -> bool {
        self.state.lock().map(|v| v.all_reachable()).unwrap_or(true)
    }

    fn update(&self, statistics: &Statistics) {
        let up: HashMap<i32, bool> = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0)
            .map(|b| (b.nodeid, b.state == "UP"))
            .collect();
        let partitions = statistics
            .topics
            .get(&self.topic)
            .map(|topic| {
                topic
                    .partitions
                    .iter()
                    .filter(|(id, _)| **id >= 0)
                    .map(|(id, p)| (*id, up.get(&p.leader).copied().unwrap_or(false)))
                    .collect()
            })
            .unwrap_or_default();
        let fresh = View {
            partitions,
            any_up: (!up.is_empty()).then(|| up.values().any(|u| *u)),
        };
        if let Ok(mut view) = self.state.lock() {
            report_change(&view, &fresh);
            *view = fresh;
        }
    }
}

/// Logs when commands start or stop being refused for an unreachable leader.
fn report_change(before: &View, after: &View) {
    match (before.all_reachable(), after.all_reachable()) {
        (true, false) => {
            let mut down: Vec<i32> = after
                .partitions
                .iter()
                .filter(|(_, up)| !**up)
                .map(|(id, _)| *id)
                .collect();
            down.sort_unstable();
            tracing::warn!(
                partitions = ?down,
                "kafka leaders unreachable: their commands are answered 503"
            );
        }
        (false, true) => tracing::info!("kafka leaders reachable again"),
        _ => {}
    }
}

impl ClientContext for KafkaHealth {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        logbook_events::kafka::client_error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.update(&statistics);
    }
}

/// Until `stop`: while some leader is unreachable, asks for the commands topic's metadata
/// (which makes librdkafka reconnect). Runs on its own thread (the call blocks).
pub fn probe_while_unreachable(
    producer: FutureProducer<KafkaHealth>,
    health: KafkaHealth,
    stopped: impl Fn() -> bool,
) {
    while !stopped() {
        std::thread::sleep(PROBE_EVERY);
        if !health.all_reachable() {
            let _ = producer
                .client()
                .fetch_metadata(Some(&health.topic), PROBE_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(any_up: Option<bool>, partitions: &[(i32, bool)]) -> View {
        View {
            partitions: partitions.iter().copied().collect(),
            any_up,
        }
    }

    #[test]
    fn a_partition_is_reachable_when_its_leader_is_up_or_unknown() {
        let health = KafkaHealth::new("commands");
        assert!(health.reachable(0), "nothing known yet");
        *health.state.lock().expect("view") = view(Some(true), &[(0, true), (1, false)]);
        assert!(health.reachable(0));
        assert!(!health.reachable(1));
        assert!(health.reachable(7), "unknown partition");
        assert!(!health.all_reachable());
        *health.state.lock().expect("view") = view(Some(false), &[]);
        assert!(!health.reachable(0), "no broker connected");
        assert!(!health.all_reachable());
    }
}
