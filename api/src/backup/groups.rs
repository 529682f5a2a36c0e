//! Where the processors and the sagas start after a restore.
//!
//! Their consumer groups lived in the lost cluster and read from the earliest offset when they
//! have no committed one. On a restored log that would run every old command again and re-send
//! the next step of every old transfer, with only the processors' bounded dedupe window between
//! that and money moved twice. So a restore commits their offsets itself: the processors start
//! at the end of the commands topic (every command there was applied or answered: a client
//! that got no answer retries with its Idempotency-Key, which gives the same command id), the
//! sagas at the end of the results topic and, per events partition, at the first transfer debit
//! that has neither a credit nor a refund in the log (the end when there is none), so unfinished
//! transfers are finished and finished ones are not touched. Blocking.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use logbook_events::{AccountEvent, EventEnvelope, KafkaSettings};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Transfer debits without a credit or refund yet, by where they landed in the target.
#[derive(Debug, Default, Clone)]
pub struct OpenTransfers {
    open: HashMap<Uuid, (i32, i64)>,
    /// Credited or refunded; partitions are restored one after the other, so a credit (on the
    /// target account's partition) may come before its debit.
    settled: HashSet<Uuid>,
}

impl OpenTransfers {
    /// Notes an event written at `offset` of target partition `partition`.
    pub fn note(&mut self, partition: i32, offset: i64, envelope: &EventEnvelope) {
        match envelope.decode_account() {
            Ok(AccountEvent::TransferDebited { transfer_id, .. })
                if !self.settled.contains(&transfer_id) =>
            {
                self.open.insert(transfer_id, (partition, offset));
            }
            Ok(AccountEvent::TransferCredited { transfer_id, .. })
            | Ok(AccountEvent::TransferRefunded { transfer_id, .. }) => {
                self.open.remove(&transfer_id);
                self.settled.insert(transfer_id);
            }
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The first open debit's offset per partition.
    pub fn first_per_partition(&self) -> BTreeMap<i32, i64> {
        let mut first = BTreeMap::new();
        for (partition, offset) in self.open.values() {
            let entry = first.entry(*partition).or_insert(*offset);
            *entry = (*entry).min(*offset);
        }
        first
    }
}

/// Commits the processors' and the sagas' start offsets (see the module docs).
pub fn position_groups(
    kafka: &KafkaSettings,
    partitions: i32,
    open: &OpenTransfers,
) -> Result<(), KafkaError> {
    let topics = kafka.topics();
    let groups = kafka.groups();
    let (processors, sagas) = (groups.processors, groups.sagas);
    let ends = |topic: &str| -> Result<Vec<(i32, i64)>, KafkaError> {
        let reader: BaseConsumer = kafka.client_config().create()?;
        (0..partitions)
            .map(|p| Ok((p, reader.fetch_watermarks(topic, p, TIMEOUT)?.1)))
            .collect()
    };
    commit(
        kafka,
        &processors,
        &topics.commands,
        &ends(&topics.commands)?,
    )?;
    let first_open = open.first_per_partition();
    let events: Vec<(i32, i64)> = ends(&topics.events)?
        .into_iter()
        .map(|(p, end)| (p, first_open.get(&p).copied().unwrap_or(end)))
        .collect();
    commit(kafka, &sagas, &topics.events, &events)?;
    commit(kafka, &sagas, &topics.results, &ends(&topics.results)?)
}

fn commit(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&list, CommitMode::Sync)?;
    tracing::info!(group, topic, ?offsets, "consumer group positioned");
    Ok(())
}
