//! What the gateway knows about Kafka before it produces: librdkafka's statistics (every
//! second) tell which brokers it is connected to and which broker leads each commands
//! partition. A command whose partition's leader is not connected is answered 503 at once
//! (nothing was produced, the client may retry), instead of waiting out the command timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::statistics::Statistics;

/// The producer's view of the cluster, refreshed by its statistics callback (the context and
/// the gateway each hold a clone).
#[derive(Debug, Default, Clone)]
pub struct KafkaHealth {
    topic: String,
    state: Arc<Mutex<View>>,
}

#[derive(Debug, Default)]
struct View {
    /// Whether each commands partition's leader is connected; empty until the first
    /// statistics that know the topic.
    partitions: HashMap<i32, bool>,
    /// Whether any broker is connected (false only when statistics say so).
    any_up: Option<bool>,
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
        if let Ok(mut view) = self.state.lock() {
            view.any_up = (!up.is_empty()).then(|| up.values().any(|u| *u));
            view.partitions = partitions;
        }
    }
}

impl ClientContext for KafkaHealth {
    fn stats(&self, statistics: Statistics) {
        self.update(&statistics);
    }
}
