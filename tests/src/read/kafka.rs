//! Appending test events with Kafka transactions (some aborted), and reading the log back.

use std::collections::HashMap;
use std::time::Duration;

use logbook_events::{EventEnvelope, KafkaSettings, encode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use uuid::Uuid;

use super::Planned;
use crate::log::{self, Record};

/// Appends `events` in transactions of `chunk` records. Before every `abort_every`-th
/// transaction, a transaction of corrupted copies (wrong sequences and balances) is aborted:
/// a read_committed reader must never see them. Blocking.
pub fn produce(kafka: &KafkaSettings, events: &[Planned], chunk: usize, abort_every: usize) {
    let producer = transactional(kafka);
    for (index, chunk) in events.chunks(chunk.max(1)).enumerate() {
        if abort_every > 0 && index % abort_every == 0 {
            producer.begin_transaction().expect("begin");
            for (partition, envelope) in chunk {
                let mut bad = envelope.clone();
                bad.sequence += 1_000;
                send(&producer, kafka, *partition, &encode(&bad));
            }
            producer.flush(Duration::from_secs(30)).expect("flush");
            producer
                .abort_transaction(Duration::from_secs(30))
                .expect("abort");
        }
        producer.begin_transaction().expect("begin");
        for (partition, envelope) in chunk {
            send(&producer, kafka, *partition, &encode(envelope));
        }
        producer
            .commit_transaction(Duration::from_secs(30))
            .expect("commit");
    }
}

/// Appends raw bytes (e.g. a poison record) to a partition, committed. Blocking.
pub fn produce_raw(kafka: &KafkaSettings, partition: i32, payload: &[u8]) {
    let producer = transactional(kafka);
    producer.begin_transaction().expect("begin");
    send(&producer, kafka, partition, payload);
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit");
}

fn transactional(kafka: &KafkaSettings) -> BaseProducer {
    let producer: BaseProducer = kafka
        .client_config()
        .set("transactional.id", format!("read-test-{}", Uuid::new_v4()))
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "10")
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions");
    producer
}

fn send(producer: &BaseProducer, kafka: &KafkaSettings, partition: i32, payload: &[u8]) {
    let topic = kafka.topics().events;
    let mut record = BaseRecord::<(), [u8]>::to(&topic)
        .partition(partition)
        .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
}

/// The end (high watermark) of every events partition. Blocking.
pub fn log_ends(kafka: &KafkaSettings, partitions: i32) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = kafka.client_config().create().expect("consumer");
    let topic = kafka.topics().events;
    (0..partitions)
        .map(|p| {
            (
                p,
                consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1,
            )
        })
        .collect()
}

/// [`produce`] on a blocking thread.
pub async fn produce_async(
    kafka: &KafkaSettings,
    events: Vec<Planned>,
    chunk: usize,
    abort_every: usize,
) {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || produce(&kafka, &events, chunk, abort_every))
        .await
        .expect("join");
}

/// Every committed event with its position, on a blocking thread.
pub async fn committed_log(kafka: &KafkaSettings) -> Vec<(Record, EventEnvelope)> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || log::events(&kafka))
        .await
        .expect("join")
}
