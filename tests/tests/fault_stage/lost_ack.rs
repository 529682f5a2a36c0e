//! A lost acknowledgement, then an abort: the transactor's own client against a private broker
//! that it reaches only through a TCP relay the test cuts ([`logbook_tests::relay`]).
//!
//! The broker writes a record of an open transaction, but its acknowledgement never reaches the
//! producer, and the connection is cut: the record waits in the producer for a retry. The
//! transaction is then aborted. librdkafka's `abort_transaction` would purge that record and give
//! its sequence number to the next record of the partition, which the broker would then drop as
//! a duplicate while the producer reports it delivered: a committed transaction missing a
//! record. This is how the chaos test lost a transfer's credit in CI; the transactor now replaces
//! the producer instead (a new epoch), and the next transaction's record is in the log.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use logbook_commands::txn::{
    Counting, KafkaTxnClient, Outcome, Transactor, TxnError, TxnOffsets, send, settle,
};
use logbook_tests::child::free_port;
use logbook_tests::log::read_committed;
use logbook_tests::relay::Relay;
use logbook_tests::services::{PrivateServices, kafka_settings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseRecord;
use rdkafka::{ClientConfig, TopicPartitionList};

type Client = KafkaTxnClient<Counting>;

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
#[ignore = "fault test: run by the fault stage of scripts/dev test"]
fn an_abort_after_a_lost_acknowledgement_keeps_every_record_of_the_next_transaction() {
    let (relay, listener) = Relay::bind();
    let listen_port = free_port();
    let services = PrivateServices::start_relayed("lost-ack", listen_port, relay.port());
    relay.forward_to(listener, ([127, 0, 0, 1], listen_port).into());
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let kafka = kafka_settings(services.vars(), &prefix);
    let topic = format!("{prefix}.lost-ack");
    create_topic(&kafka.brokers, &topic);

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", format!("127.0.0.1:{}", relay.port()))
        .set("transactional.id", format!("{prefix}-producer"))
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", "60000")
        .set("reconnect.backoff.max.ms", "500");
    let client = Client::connect(config, Counting::default, TIMEOUT).expect("producer");
    let stop = Arc::new(AtomicBool::new(false));
    let mut txn = Transactor::new(client, "test", TIMEOUT, Duration::from_secs(90), stop);
    let offsets: TxnOffsets = Arc::new((TopicPartitionList::new(), group(&kafka.brokers)));

    let committed = txn.run(|c| produce(c, &topic, "first"), &offsets, |_, ()| Ok(()));
    assert!(matches!(committed, Outcome::Committed(())), "{committed:?}");

    let aborted = txn.run(
        |c| {
            produce(c, &topic, "acknowledged")?;
            settle(c.producer(), TIMEOUT)?;
            relay.drop_answers();
            let before = high_watermark(&kafka.brokers, &topic);
            produce(c, &topic, "written, never acknowledged")?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while high_watermark(&kafka.brokers, &topic) == before {
                assert!(
                    Instant::now() < deadline,
                    "the broker never wrote the record"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            relay.cut();
            // the producer sees its connection closed: the record waits for a retry
            std::thread::sleep(Duration::from_secs(1));
            let healer = relay.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(4));
                healer.heal();
            });
            Err(TxnError::abort("the acknowledgement was lost"))
        },
        &offsets,
        |_, ()| Ok(()),
    );
    assert!(matches!(aborted, Outcome::Aborted(_)), "{aborted:?}");

    // redone, as the processor and the saga redo an aborted batch, until it commits
    let mut attempts = Vec::new();
    while attempts.len() < 5 {
        match txn.run(|c| produce(c, &topic, "next"), &offsets, |_, ()| Ok(())) {
            Outcome::Committed(()) => break,
            other => attempts.push(format!("{other:?}")),
        }
    }
    assert!(
        attempts.len() < 5,
        "the next transaction never committed: {attempts:?}"
    );

    let values: Vec<String> = read_committed(&kafka, &topic)
        .into_iter()
        .map(|record| String::from_utf8_lossy(&record.payload).into_owned())
        .collect();
    assert_eq!(
        values,
        ["first", "next"],
        "the committed records of the topic"
    );
}

fn produce(client: &Client, topic: &str, value: &str) -> Result<(), TxnError> {
    let (key, payload) = (String::from("k"), value.as_bytes().to_vec());
    let record = BaseRecord::to(topic)
        .key(&key)
        .payload(&payload)
        .partition(0);
    Ok(send(client.producer(), record, TIMEOUT)?)
}

fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let created = futures::executor::block_on(admin.create_topics(
        &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .expect("create topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// The group metadata `send_offsets_to_transaction` needs (no offsets are sent: the list is
/// empty).
fn group(brokers: &str) -> rdkafka::consumer::ConsumerGroupMetadata {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "lost-ack")
        .create()
        .expect("consumer");
    consumer.group_metadata().expect("group metadata")
}

/// The partition's high watermark (open transactions included) read directly from the broker,
/// not through the relay.
fn high_watermark(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "lost-ack-probe")
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("probe");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    high
}
