//! Reading a test's topics back for assertions: every committed event or result, in order.

use std::time::{Duration, Instant};

use logbook_commands::envelope::CommandResult;
use logbook_events::{EventEnvelope, KafkaSettings, decode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

pub mod trail;

/// One committed record of a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// Every committed record of `topic` up to its current end (read_committed). Blocking.
pub fn read_committed(kafka: &KafkaSettings, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer<logbook_events::kafka::Reporting> = kafka
        .client_config()
        .set("group.id", "test-reader-unused")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(logbook_events::kafka::Reporting)
        .expect("reader");
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    let mut open = 0;
    for partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *partition, timeout)
            .expect("watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, *partition, Offset::Beginning)
                .expect("add");
            open += 1;
        }
    }
    let mut records = Vec::new();
    if open == 0 {
        return records;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    while open > 0 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            Some(Ok(message)) => records.push(Record {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().unwrap_or_default().to_vec(),
            }),
        }
    }
    assert_eq!(open, 0, "reading {topic} did not reach the end");
    records
}

/// Every committed event, decoded, with its partition and offset. Blocking.
pub fn events(kafka: &KafkaSettings) -> Vec<(Record, EventEnvelope)> {
    read_committed(kafka, &kafka.topics().events)
        .into_iter()
        .map(|record| {
            let envelope = decode(&record.payload).expect("event decodes");
            (record, envelope)
        })
        .collect()
}

/// Every committed command result. Blocking.
pub fn results(kafka: &KafkaSettings) -> Vec<CommandResult> {
    read_committed(kafka, &kafka.topics().results)
        .into_iter()
        .map(|record| CommandResult::decode(&record.payload).expect("result decodes"))
        .collect()
}

/// Every committed event, once every debited transfer is completed or refunded on its source
/// (the saga has finished its steps). Blocking; panics after `timeout`.
pub fn settled_events(kafka: &KafkaSettings, timeout: Duration) -> Vec<(Record, EventEnvelope)> {
    let deadline = Instant::now() + timeout;
    loop {
        let log = events(kafka);
        let count = |kind: &str| log.iter().filter(|(_, e)| e.event_type == kind).count();
        let debited = count("TransferDebited");
        let settled = count("TransferCompleted") + count("TransferRefunded");
        let credited = count("TransferCredited") + count("TransferRefunded");
        if debited == settled && debited == credited {
            return log;
        }
        if Instant::now() >= deadline {
            let open = trail::unsettled(&log);
            panic!(
                "transfers did not settle: {debited} debited, {credited} credited or refunded, \
                 {settled} completed or refunded; what the log holds about {open:?}:\n{}",
                trail::describe(kafka, &log, &open)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
