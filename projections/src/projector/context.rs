//! The projector consumer's librdkafka callbacks and the partition state they share with the
//! worker loop.
//!
//! On assignment the rebalance callback reads the stored next offsets from PostgreSQL and
//! assigns the partitions AT those offsets: Kafka's committed offsets are never used. Every
//! assignment or revocation moves the partition's *epoch* on, and the worker applies only
//! records received in the current epoch, so nothing fetched under an earlier ownership is
//! used. The statistics callback keeps each partition's committed log end for the lag gauge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset};
use sqlx::PgPool;
use tokio::runtime::Handle;

use crate::{metrics, offsets};

/// What the worker knows about one assigned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub epoch: u64,
    /// Stored next offset (as of the last commit of this worker).
    pub next: i64,
    /// Stopped on a poison event: nothing more is applied until reassigned.
    pub stopped: bool,
    /// Committed end of the log (last stable offset), from the client statistics.
    pub log_end: Option<i64>,
    /// The last thing seen from the partition was its end.
    pub at_end: bool,
}

#[derive(Debug, Default)]
struct Partitions {
    owned: HashMap<i32, Owned>,
    counter: u64,
}

/// Callbacks and shared partition state of one projection's consumer.
#[derive(Debug)]
pub struct ProjectorContext {
    /// The offsets key (`ledger`, `ledger__rebuild`, …): logs, metrics, stored offsets.
    key: String,
    topic: String,
    pool: PgPool,
    runtime: Handle,
    partitions: Mutex<Partitions>,
    fatal: Mutex<Option<String>>,
}

impl ProjectorContext {
    pub fn new(key: String, topic: String, pool: PgPool, runtime: Handle) -> Self {
        Self {
            key,
            topic,
            pool,
            runtime,
            partitions: Mutex::default(),
            fatal: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Partitions) -> T) -> T {
        let mut guard = self
            .partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The current epoch of a partition; `None` when not assigned.
    pub fn epoch(&self, partition: i32) -> Option<u64> {
        self.with(|s| s.owned.get(&partition).map(|o| o.epoch))
    }

    /// Stored next offsets of the partitions that may be applied (assigned, not stopped).
    pub fn applicable(&self) -> HashMap<i32, i64> {
        self.with(|s| {
            s.owned
                .iter()
                .filter(|(_, o)| !o.stopped)
                .map(|(p, o)| (*p, o.next))
                .collect()
        })
    }

    /// Sets the stored next offset after a commit or a rewind.
    pub fn set_next(&self, partition: i32, next: i64) {
        self.with(|s| {
            if let Some(owned) = s.owned.get_mut(&partition) {
                owned.next = next;
                if let Some(end) = owned.log_end {
                    metrics::lag(&self.key, partition, end - next);
                }
            }
        });
    }

    pub fn set_stopped(&self, partition: i32) {
        self.with(|s| {
            if let Some(owned) = s.owned.get_mut(&partition) {
                owned.stopped = true;
            }
        });
    }

    /// Records whether the last thing seen from `partition` was its end.
    pub fn set_at_end(&self, partition: i32, at_end: bool) {
        self.with(|s| {
            if let Some(owned) = s.owned.get_mut(&partition) {
                owned.at_end = at_end;
            }
        });
    }

    /// The assigned partitions and their state.
    pub fn snapshot(&self) -> HashMap<i32, Owned> {
        self.with(|s| s.owned.clone())
    }

    /// Why the consumer cannot go on (stored offsets could not be read), if so.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    /// Starts (new epochs of) the given partitions at their stored offsets.
    pub fn assigned(&self, offsets: &HashMap<i32, i64>) {
        self.with(|s| {
            for (partition, next) in offsets {
                s.counter += 1;
                let owned = Owned {
                    epoch: s.counter,
                    next: *next,
                    stopped: false,
                    log_end: None,
                    at_end: false,
                };
                s.owned.insert(*partition, owned);
                metrics::running(&self.key, *partition);
            }
        });
    }

    fn revoked(&self, partitions: &[i32]) {
        self.with(|s| s.owned.retain(|p, _| !partitions.contains(p)));
    }

    /// The stored offsets, retried while the database is away (up to four minutes, inside the
    /// consumer's poll interval): the partitions cannot start without them.
    fn load_offsets(&self, partitions: &[i32]) -> Result<HashMap<i32, i64>, String> {
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(240);
        while std::time::Instant::now() < deadline {
            let load = async {
                let load = offsets::load(&self.pool, &self.key, partitions);
                tokio::time::timeout(Duration::from_secs(10), load).await
            };
            match self.runtime.block_on(load) {
                Ok(Ok(stored)) => return Ok(stored),
                Ok(Err(error)) if crate::db::note_refusal(&error) => return Err(error.to_string()),
                Ok(Err(error)) => last = error.to_string(),
                Err(_) => last = "timed out".to_owned(),
            }
            tracing::warn!(projection = %self.key, error = %last, "reading stored offsets failed; retrying");
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(last)
    }

    fn on_assign(&self, consumer: &BaseConsumer<Self>, list: &mut TopicPartitionList) {
        let partitions = partitions_of(list);
        match self.load_offsets(&partitions) {
            Ok(stored) => {
                for (partition, next) in &stored {
                    let _ =
                        list.set_partition_offset(&self.topic, *partition, Offset::Offset(*next));
                }
                tracing::info!(projection = %self.key, ?stored, "partitions assigned at their stored offsets");
                self.assigned(&stored);
            }
            Err(error) => {
                tracing::error!(projection = %self.key, %error, "cannot read stored offsets: stopping");
                if let Ok(mut fatal) = self.fatal.lock() {
                    fatal.get_or_insert(error);
                }
            }
        }
        metrics::rebalanced("assign");
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(list),
            _ => consumer.assign(list),
        };
        if let Err(error) = result {
            tracing::error!(projection = %self.key, %error, "assign failed");
        }
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let partitions = partitions_of(list);
        tracing::info!(projection = %self.key, ?partitions, lost = consumer.assignment_lost(), "partitions revoked");
        metrics::rebalanced("revoke");
        self.revoked(&partitions);
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(list),
            _ => consumer.unassign(),
        };
        if let Err(error) = result {
            tracing::warn!(projection = %self.key, %error, "unassign failed");
        }
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for ProjectorContext {
    /// End-of-partition events also reach the client's error callback: they are not errors.
    fn error(&self, error: KafkaError, reason: &str) {
        if logbook_events::refusal::note(&error, reason) {
            return;
        }
        if !logbook_events::kafka::is_end_of_partition(&error) {
            tracing::error!(projection = %self.key, %error, reason, "kafka client error");
        }
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        self.with(|s| {
            for (partition, owned) in s.owned.iter_mut() {
                let Some(stats) = topic.partitions.get(partition) else {
                    continue;
                };
                if stats.ls_offset >= 0 {
                    owned.log_end = Some(stats.ls_offset);
                    metrics::lag(&self.key, *partition, stats.ls_offset - owned.next);
                }
            }
        });
    }
}

impl ConsumerContext for ProjectorContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.on_assign(consumer, list),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.on_revoke(consumer, list),
            other => {
                tracing::warn!(projection = %self.key, error = ?other, "rebalance error: unassigning");
                self.with(|s| s.owned.clear());
                let _ = consumer.unassign();
            }
        }
    }
}
