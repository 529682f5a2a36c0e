//! librdkafka callbacks of the processor's clients.
//!
//! [`RebalanceContext`] counts an *epoch* per assigned topic partition: every assignment or revocation
//! moves it on. A message is processed only if it was received in the partition's current epoch
//! and the partition's state was restored in that same epoch, so nothing fetched or restored
//! under an earlier ownership is ever used. [`DeliveryContext`] collects the offsets the broker
//! gave to the records of the open transaction (they become the `position` tokens).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Message};

/// Per-partition ownership epochs of the commands topic.
#[derive(Debug, Default)]
pub struct RebalanceContext {
    epochs: Mutex<HashMap<(String, i32), u64>>,
    counter: Mutex<u64>,
}

impl RebalanceContext {
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
            crate::metrics::rebalanced("revoke");
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
                crate::metrics::rebalanced("assign");
                self.bump(partitions.into_iter(), true);
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Opaque of a record whose delivery report is not tracked (the command results: the commit
/// flushes them and fails if one is not delivered).
pub const UNTRACKED: usize = usize::MAX;

/// Offsets of the records produced in the open transaction, by the index given at send time.
///
/// The producer's own polling thread (a `ThreadedProducer`) calls [`ProducerContext::delivery`];
/// the processor thread sleeps in [`DeliveryContext::wait_settled`] until the reports it needs
/// are in, so nothing spins while the broker acknowledges.
#[derive(Debug, Default)]
pub struct DeliveryContext {
    deliveries: Mutex<Deliveries>,
    settled: Condvar,
}

#[derive(Debug, Default)]
struct Deliveries {
    offsets: HashMap<usize, i64>,
    failures: Vec<String>,
    /// Tracked records reported (delivered or failed) since the last reset.
    reported: usize,
}

impl DeliveryContext {
    /// Forgets the previous transaction's deliveries.
    pub fn reset(&self) {
        if let Ok(mut deliveries) = self.deliveries.lock() {
            deliveries.offsets.clear();
            deliveries.failures.clear();
            deliveries.reported = 0;
        }
    }

    /// Waits until `count` tracked records sent since the last reset have a delivery report;
    /// `false` when `timeout` passes first.
    pub fn wait_settled(&self, count: usize, timeout: Duration) -> bool {
        let Ok(deliveries) = self.deliveries.lock() else {
            return false;
        };
        self.settled
            .wait_timeout_while(deliveries, timeout, |d| d.reported < count)
            .map(|(_, waited)| !waited.timed_out())
            .unwrap_or(false)
    }

    /// Offsets by record index, or the first delivery failure.
    pub fn take(&self) -> Result<HashMap<usize, i64>, String> {
        let mut deliveries = self.deliveries.lock().map_err(|_| "poisoned".to_string())?;
        if let Some(failure) = deliveries.failures.first() {
            return Err(failure.clone());
        }
        Ok(std::mem::take(&mut deliveries.offsets))
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if index == UNTRACKED {
            return;
        }
        let Ok(mut deliveries) = self.deliveries.lock() else {
            return;
        };
        match result {
            Ok(message) => {
                deliveries.offsets.insert(index, message.offset());
            }
            Err((error, _)) => deliveries.failures.push(error.to_string()),
        }
        deliveries.reported += 1;
        self.settled.notify_all();
    }
}
