//! The broker under test is real Apache Kafka with working transactions: a read_committed
//! consumer sees a committed record and never an aborted one.

use std::time::Duration;

use logbook_tests::TestEnv;
use logbook_tests::log::read_committed;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_committed_and_never_aborted_records() {
    let env = TestEnv::new().await;
    let kafka = env.kafka.clone();
    let records = tokio::task::spawn_blocking(move || {
        let topic = kafka.topics().events;
        let producer: BaseProducer = kafka
            .client_config()
            .set(
                "transactional.id",
                format!("{}-broker-test", kafka.topic_prefix),
            )
            .create()
            .expect("producer");
        let timeout = Duration::from_secs(30);
        producer
            .init_transactions(timeout)
            .expect("init transactions");

        producer.begin_transaction().expect("begin");
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(0)
                    .key("k")
                    .payload("committed"),
            )
            .expect("send committed");
        producer.commit_transaction(timeout).expect("commit");

        producer.begin_transaction().expect("begin");
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(0)
                    .key("k")
                    .payload("aborted"),
            )
            .expect("send aborted");
        producer
            .flush(timeout)
            .expect("flush: the aborted record reached the log");
        producer.abort_transaction(timeout).expect("abort");

        producer.begin_transaction().expect("begin");
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(0)
                    .key("k")
                    .payload("after"),
            )
            .expect("send after");
        producer.commit_transaction(timeout).expect("commit");
        read_committed(&kafka, &topic)
    })
    .await
    .expect("join");
    let payloads: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    assert_eq!(payloads, ["committed", "after"]);
    // the aborted record and the transaction markers still took offsets: the log is real
    assert!(
        records[1].offset >= 4,
        "offsets {:?}",
        records.iter().map(|r| r.offset).collect::<Vec<_>>()
    );
}
