//! The projector loop of one projection, on its own OS thread (librdkafka calls block).
//!
//! collect a batch (records of current epochs, ends of partitions) → slice and decode →
//! ONE PostgreSQL transaction (rows + offsets + notice) → on commit, move the partitions' stored
//! offsets on and stop the poisoned ones; on failure, seek back to the offsets the batch started
//! from. The transaction always ends before the consumer is polled again, so no batch spans
//! a rebalance.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use logbook_events::linger::Linger;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::runtime::Handle;

use super::context::ProjectorContext;
use super::{ProjectorError, ProjectorSettings, clients};
use crate::apply::{ApplyError, Counts, apply};
use crate::batch::{Poison, Record, Slice, slice};
use crate::ledger::staged::Staged;
use crate::metrics;
use crate::projection::Sink;

const SEEK_TIMEOUT: Duration = Duration::from_secs(10);
/// Keeps a failing consumer (e.g. broker unreachable) from spinning.
const CONSUMER_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What one poll cycle brought.
#[derive(Debug, Default)]
struct Collected {
    records: Vec<Record>,
    ends: HashSet<i32>,
}

pub(crate) struct Worker {
    settings: ProjectorSettings,
    sink: Sink,
    consumer: BaseConsumer<ProjectorContext>,
    pool: PgPool,
    runtime: Handle,
    stop: Arc<AtomicBool>,
    topic: String,
    backoff: Duration,
    kafka: logbook_events::retry::Outage,
    /// A rebuild's ledger rows held across batches (see [`Worker::stage_ledger`]).
    staged: Option<Staged>,
}

impl Worker {
    /// Creates the consumer and joins `group_id` (the assignment happens while polling).
    pub(crate) fn new(
        settings: ProjectorSettings,
        sink: Sink,
        group_id: &str,
        pool: PgPool,
        runtime: Handle,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, ProjectorError> {
        let topic = settings.kafka.topics().events;
        let key = sink.offsets_key().into_owned();
        let context = ProjectorContext::new(key, topic.clone(), pool.clone(), runtime.clone());
        let consumer = clients::consumer(&settings, group_id, context)?;
        Ok(Self {
            backoff: settings.retry_min,
            kafka: logbook_events::retry::Outage::new("projector", "kafka"),
            settings,
            sink,
            consumer,
            pool,
            runtime,
            stop,
            topic,
            staged: None,
        })
    }

    /// Keeps account and transfer rows in memory across batches, at most about `cap`, and
    /// writes them on [`Worker::flush_staged`] (a rebuild of the ledger into empty shadow
    /// tables, which have no other writer).
    pub(crate) fn stage_ledger(&mut self, cap: usize) {
        self.staged = Some(Staged::new(cap));
    }

    /// Writes the staged rows, in a transaction of its own; with `evict`, forgets them after.
    pub(crate) fn flush_staged(&mut self, evict: bool) -> Result<(), ProjectorError> {
        let Some(staged) = self.staged.as_mut() else {
            return Ok(());
        };
        if !staged.is_dirty() && !evict {
            return Ok(());
        }
        let (pool, sink) = (&self.pool, &self.sink);
        self.runtime.block_on(async {
            let mut tx = pool.begin().await?;
            staged.flush(&mut tx, sink).await?;
            tx.commit().await
        })?;
        staged.flushed(evict);
        Ok(())
    }

    pub(crate) fn context(&self) -> &ProjectorContext {
        self.consumer.context()
    }

    /// Partitions of the events topic (blocking metadata request).
    pub(crate) fn partition_count(&self, topic: &str) -> Result<usize, ProjectorError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))?;
        Ok(metadata.topics().iter().map(|t| t.partitions().len()).sum())
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Runs batches until asked to stop.
    pub(crate) fn run(mut self) -> Result<(), ProjectorError> {
        while !self.stopping() {
            self.step()?;
        }
        tracing::info!(projection = %self.context().key(), "projector stopping: no batch open");
        Ok(())
    }

    /// One poll cycle and, if it brought anything to apply, one transaction.
    pub(crate) fn step(&mut self) -> Result<(), ProjectorError> {
        if let Some(error) = self.context().fatal() {
            return Err(ProjectorError::Offsets(error));
        }
        let collected = self.collect();
        let ends = self.end_positions(&collected.ends);
        let mut slices = slice(collected.records, &self.context().applicable(), &ends);
        if slices.is_empty() || self.stopping() {
            return Ok(());
        }
        self.apply(&mut slices)
    }

    /// Polls until the batch is full or its [`Linger`] closes it (the end of a partition counts
    /// as something received). Keeps only records of current epochs.
    fn collect(&mut self) -> Collected {
        let mut received: Vec<(u64, Record)> = Vec::new();
        let mut ends = HashSet::new();
        let mut clock = Linger::start(self.settings.batch_linger);
        while received.len() < self.settings.batch_max && !self.stopping() {
            let Some(next) = clock.next_poll() else {
                break;
            };
            match self.consumer.poll(next.timeout) {
                // past the linger, nothing more already fetched: the batch is complete
                None if next.draining => break,
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.context().set_at_end(partition, true);
                    ends.insert(partition);
                    clock.received();
                }
                Some(Err(error)) => {
                    self.kafka.failed(&error);
                    if next.draining {
                        break;
                    }
                    std::thread::sleep(CONSUMER_ERROR_PAUSE);
                }
                Some(Ok(message)) => {
                    self.kafka.recovered();
                    let partition = message.partition();
                    let Some(epoch) = self.context().epoch(partition) else {
                        continue;
                    };
                    self.context().set_at_end(partition, false);
                    ends.remove(&partition);
                    let record = Record {
                        partition,
                        offset: message.offset(),
                        payload: message.payload().map(<[u8]>::to_vec),
                    };
                    received.push((epoch, record));
                    clock.received();
                }
            }
        }
        let context = self.consumer.context();
        let records = received
            .into_iter()
            .filter(|(epoch, record)| context.epoch(record.partition) == Some(*epoch))
            .map(|(_, record)| record)
            .collect();
        Collected { records, ends }
    }

    /// The consumer position of partitions whose end was reached (past transaction markers).
    fn end_positions(&self, ends: &HashSet<i32>) -> HashMap<i32, i64> {
        if ends.is_empty() {
            return HashMap::new();
        }
        let Ok(positions) = self.consumer.position() else {
            return HashMap::new();
        };
        positions
            .elements_for_topic(&self.topic)
            .iter()
            .filter(|e| ends.contains(&e.partition()))
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some((e.partition(), offset)),
                _ => None,
            })
            .collect()
    }

    fn apply(&mut self, slices: &mut [Slice]) -> Result<(), ProjectorError> {
        let started = Instant::now();
        let staged = self.staged.as_mut();
        let result = self
            .runtime
            .block_on(apply(&self.pool, &self.sink, slices, staged));
        match result {
            Ok(counts) => {
                self.backoff = self.settings.retry_min;
                self.committed(slices, counts, started.elapsed());
                if self.staged.as_ref().is_some_and(Staged::over_cap)
                    && let Err(error) = self.flush_staged(true)
                {
                    // still staged: tried again after the next batch
                    tracing::warn!(projection = %self.context().key(), %error, "writing the staged rows failed");
                }
                Ok(())
            }
            // the staged rows would miss whatever moved the offsets (the rebuild's own commit
            // that answered with an error, or another writer): only starting over is safe
            Err(ApplyError::Moved(stored)) if self.staged.is_some() => {
                Err(ProjectorError::Offsets(format!(
                    "the offsets of {} moved under a staged batch: {stored:?}",
                    self.context().key()
                )))
            }
            Err(ApplyError::Moved(stored)) => {
                let key = self.context().key().to_owned();
                tracing::warn!(projection = %key, ?stored, "offsets moved by another writer: resuming from them");
                metrics::batch_rolled_back(&key, "moved");
                let stored: HashMap<i32, i64> = stored.into_iter().collect();
                for s in slices.iter() {
                    self.rewind(
                        s.partition,
                        stored.get(&s.partition).copied().unwrap_or(s.from),
                    )?;
                }
                Ok(())
            }
            Err(ApplyError::Database(error)) => {
                let key = self.context().key().to_owned();
                tracing::error!(projection = %key, %error, retry_in = ?self.backoff, "batch rolled back");
                metrics::batch_rolled_back(&key, "failed");
                for s in slices.iter() {
                    self.rewind(s.partition, s.from)?;
                }
                std::thread::sleep(self.backoff);
                self.backoff = (self.backoff * 2).min(self.settings.retry_max);
                Ok(())
            }
        }
    }

    fn committed(&self, slices: &[Slice], counts: Counts, took: Duration) {
        for s in slices {
            self.context().set_next(s.partition, s.to);
            if let Some(poison) = &s.poison {
                self.stop_partition(s.partition, poison);
            }
        }
        let key = self.context().key();
        metrics::batch_committed(key, counts.applied, counts.duplicates, took.as_secs_f64());
        tracing::debug!(projection = %key, applied = counts.applied, duplicates = counts.duplicates, ms = took.as_millis() as u64, "batch committed");
    }

    /// A poison event: the partition stops at it, loudly, and stays stopped.
    fn stop_partition(&self, partition: i32, poison: &Poison) {
        let key = self.context().key();
        tracing::error!(
            projection = %key,
            partition,
            offset = poison.offset,
            reason = %poison.reason,
            "poison event: partition stopped (fix the event or the code, then restart)"
        );
        metrics::poisoned(key, partition);
        self.context().set_stopped(partition);
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, partition);
        if let Err(error) = self.consumer.pause(&list) {
            tracing::warn!(projection = %key, partition, %error, "pause failed (records are dropped anyway)");
        }
    }

    /// Consumes `partition` again from `offset` (a seek that fails ends the worker: going on
    /// could skip records).
    fn rewind(&self, partition: i32, offset: i64) -> Result<(), ProjectorError> {
        self.context().set_next(partition, offset);
        self.consumer
            .seek(&self.topic, partition, Offset::Offset(offset), SEEK_TIMEOUT)
            .map_err(|source| ProjectorError::Seek { partition, source })
    }
}
