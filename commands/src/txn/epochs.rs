//! The rebalance callbacks of a transactional loop: ownership epochs, and where assigned
//! partitions start.
//!
//! [`RebalanceContext`] counts an *epoch* per assigned topic partition: every assignment or
//! revocation moves it on. A record is used only if it was received in its partition's current
//! epoch (and, in the processor, only if the partition's state was restored in that same epoch),
//! so nothing fetched or restored under an earlier ownership is ever used.
//!
//! On assignment it looks at the group's committed offsets: a partition without one starts at
//! its beginning when it is empty (a fresh installation), and otherwise as [`MissingOffsets`]
//! says; by default it is refused (left without a start, and reported by
//! [`RebalanceContext::refused`]) rather than replayed or skipped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use logbook_events::kafka::Reporting;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::group::MissingOffsets;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Per-partition ownership epochs of a consumer's topics, and the start of new partitions.
pub struct RebalanceContext {
    /// The role whose rebalances are counted (a metrics label).
    role: &'static str,
    missing_offsets: MissingOffsets,
    /// A client of the same group that never joins it: it reads committed offsets and
    /// watermarks during a rebalance (the member itself cannot while it waits to be assigned).
    probe: Option<BaseConsumer<Reporting>>,
    epochs: Mutex<HashMap<(String, i32), u64>>,
    counter: Mutex<u64>,
    /// Assigned partitions that hold data but have no committed offset (refused).
    refused: Mutex<Vec<(String, i32)>>,
}

impl std::fmt::Debug for RebalanceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebalanceContext")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl RebalanceContext {
    /// `probe`: a client configured for the member's group (never subscribed).
    pub fn new(
        role: &'static str,
        missing_offsets: MissingOffsets,
        probe: Option<BaseConsumer<Reporting>>,
    ) -> Self {
        Self {
            role,
            missing_offsets,
            probe,
            epochs: Mutex::default(),
            counter: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    /// Partitions refused for lack of a committed offset (the loop must stop).
    pub fn refused(&self) -> Vec<(String, i32)> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Sets the start of each partition of `assignment` that has no committed offset.
    fn choose_starts(&self, assignment: &mut TopicPartitionList) {
        let Some(consumer) = &self.probe else {
            return;
        };
        let committed = match consumer.committed_offsets(assignment.clone(), TIMEOUT) {
            Ok(committed) => committed,
            Err(error) => {
                // librdkafka fetches them itself; a missing one then surfaces as an error
                tracing::warn!(%error, "committed offsets unknown at assignment");
                return;
            }
        };
        for element in committed.elements() {
            if matches!(element.offset(), Offset::Offset(_)) {
                continue;
            }
            let (topic, partition) = (element.topic(), element.partition());
            let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, TIMEOUT) else {
                continue;
            };
            let start = match self.missing_offsets {
                _ if low == high => Offset::Offset(low),
                MissingOffsets::Earliest => Offset::Offset(low),
                MissingOffsets::Latest => Offset::Offset(high),
                MissingOffsets::Refuse => {
                    if let Ok(mut refused) = self.refused.lock() {
                        refused.push((topic.to_string(), partition));
                    }
                    continue;
                }
            };
            if low != high {
                tracing::warn!(
                    role = self.role,
                    topic,
                    partition,
                    ?start,
                    "no committed offset: starting where --missing-offsets says"
                );
            }
            let _ = assignment.set_partition_offset(topic, partition, start);
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

impl ClientContext for RebalanceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        logbook_events::kafka::client_error(&error, reason);
    }
}

impl ConsumerContext for RebalanceContext {
    /// The default rebalance (incremental, as `cooperative-sticky` asks), with the starts of
    /// partitions without committed offsets chosen first.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.choose_starts(tpl);
                if let Err(error) = consumer.incremental_assign(tpl) {
                    tracing::error!(%error, "incremental assign failed");
                }
                self.post_rebalance(consumer, &Rebalance::Assign(tpl));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(tpl));
                if let Err(error) = consumer.incremental_unassign(tpl) {
                    tracing::error!(%error, "incremental unassign failed");
                }
            }
            other => {
                let error = rdkafka::error::KafkaError::Rebalance(other.into());
                self.post_rebalance(consumer, &Rebalance::Error(error));
            }
        }
    }

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
