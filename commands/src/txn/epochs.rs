//! Ownership epochs of the partitions a transactional loop consumes.
//!
//! [`RebalanceContext`] counts an *epoch* per assigned topic partition: every assignment or
//! revocation moves it on. A record is used only if it was received in its partition's current
//! epoch (and, in the processor, only if the partition's state was restored in that same epoch),
//! so nothing fetched or restored under an earlier ownership is ever used.

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

/// Per-partition ownership epochs of a consumer's topics.
#[derive(Debug)]
pub struct RebalanceContext {
    /// The role whose rebalances are counted (a metrics label).
    role: &'static str,
    epochs: Mutex<HashMap<(String, i32), u64>>,
    counter: Mutex<u64>,
}

impl RebalanceContext {
    pub fn new(role: &'static str) -> Self {
        Self {
            role,
            epochs: Mutex::default(),
            counter: Mutex::default(),
        }
    }

    /// Every partition assigned now.
    pub fn assigned(&self) -> Vec<(String, i32)> {
        self.epochs
            .lock()
            .map(|epochs| epochs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The current epoch of a partition; `None` when not assigned.
    pub fn epoch(&self, topic: &str, partition: i32) -> Option<u64> {
        self.epochs
            .lock()
            .ok()?
            .get(&(topic.to_string(), partition))
            .copied()
    }

    fn bump(&self, partitions: impl Iterator<Item = (String, i32)>, assigned: bool) {
        let (Ok(mut epochs), Ok(mut counter)) = (self.epochs.lock(), self.counter.lock()) else {
            return;
        };
        for partition in partitions {
            *counter += 1;
            if assigned {
                epochs.insert(partition, *counter);
            } else {
                epochs.remove(&partition);
            }
        }
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            tracing::info!(?partitions, "partitions revoked");
            rebalanced(self.role, "revoke");
            self.bump(partitions.into_iter(), false);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions: Vec<(String, i32)> = list
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(?partitions, "partitions assigned");
                rebalanced(self.role, "assign");
                self.bump(partitions.into_iter(), true);
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

fn rebalanced(role: &'static str, kind: &'static str) {
    metrics::counter!("logbook_rebalances_total", "role" => role, "kind" => kind).increment(1);
}
