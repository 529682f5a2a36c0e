//! Helpers of the backup and disaster tests: the whole log record by record (keys, headers,
//! timestamps), the read models as comparable JSON, and destroying a test's topics and database.

use std::time::{Duration, Instant};

use logbook_events::KafkaSettings;
use logbook_events::topics::partition_counts;
use logbook_ops::backup::segment::StoredRecord;
use logbook_ops::backup::source::{PartitionSource, SourceError};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;
use sqlx::PgPool;

use crate::TestEnv;

/// A record without its offset: what a restore must reproduce exactly, in order.
pub type Content = (
    i32,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    Option<Vec<u8>>,
    i64,
);

/// Every committed record of `topic` in (partition, offset) order. Blocking.
pub fn full_log(kafka: &KafkaSettings, topic: &str, partitions: i32) -> Vec<(i32, StoredRecord)> {
    let source = PartitionSource::new(kafka).expect("reader");
    let mut out = Vec::new();
    for partition in 0..partitions {
        let bounds = source.bounds(topic, partition).expect("bounds");
        source
            .read(topic, partition, bounds.low, bounds.stable_end, |record| {
                out.push((partition, record));
                Ok::<(), SourceError>(())
            })
            .expect("read partition");
    }
    out
}

/// [`full_log`] without offsets.
pub fn contents(log: &[(i32, StoredRecord)]) -> Vec<Content> {
    log.iter()
        .map(|(p, r)| {
            (
                *p,
                r.key.clone(),
                r.headers.clone(),
                r.payload.clone(),
                r.timestamp,
            )
        })
        .collect()
}

/// The whole log of each of the three topics, on a blocking thread.
pub async fn all_topics(env: &TestEnv) -> [Vec<(i32, StoredRecord)>; 3] {
    let kafka = env.kafka.clone();
    let partitions = env.partitions;
    tokio::task::spawn_blocking(move || {
        let topics = kafka.topics();
        [&topics.events, &topics.commands, &topics.results]
            .map(|topic| full_log(&kafka, topic, partitions))
    })
    .await
    .expect("join")
}

/// Every read model as JSON rows in a stable order. The archive's `offset` column is left out:
/// a restore keeps partitions and order but not offsets (the source's transaction markers are
/// not reproduced); the rank within the partition stands for it.
pub async fn read_models(db: &PgPool) -> Vec<(&'static str, Value)> {
    let queries = [
        (
            "accounts",
            "SELECT coalesce(json_agg(t ORDER BY account_id), '[]') FROM accounts t",
        ),
        (
            "account_transactions",
            "SELECT coalesce(json_agg(t ORDER BY account_id, sequence), '[]') FROM account_transactions t",
        ),
        (
            "transfers",
            "SELECT coalesce(json_agg(t ORDER BY transfer_id), '[]') FROM transfers t",
        ),
        (
            "event_archive",
            "SELECT coalesce(json_agg(json_build_object('partition', partition, 'rank', rank, \
             'event_id', event_id, 'aggregate_type', aggregate_type, 'aggregate_id', aggregate_id, \
             'sequence', sequence, 'event_type', event_type, 'occurred_at', occurred_at, \
             'envelope', envelope) ORDER BY partition, rank), '[]') FROM (SELECT *, \
             row_number() OVER (PARTITION BY partition ORDER BY \"offset\") AS rank \
             FROM event_archive) t",
        ),
    ];
    let mut out = Vec::new();
    for (name, sql) in queries {
        let rows: Value = sqlx::query_scalar(sql)
            .fetch_one(db)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, rows));
    }
    out
}

/// Deletes this test's topics and waits until the broker no longer lists them. The broker
/// is shared with the other tests, so "destroying the Kafka data" is deleting this test's topics.
pub async fn delete_topics(kafka: &KafkaSettings) {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let topics = kafka.topics();
        let admin: AdminClient<DefaultClientContext> =
            kafka.client_config().create().expect("admin");
        let names = topics.all();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in futures::executor::block_on(admin.delete_topics(&names, &options))
            .expect("delete topics")
        {
            result.expect("topic deleted");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = partition_counts(&kafka, &topics).expect("metadata");
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "topics still listed: {left:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .expect("join");
}

/// Closes the test's pool and drops its database.
pub async fn drop_database(env: &TestEnv) {
    env.db.close().await;
    let vars = crate::service_vars();
    let url = vars.get("LOGBOOK_DATABASE_URL").expect("database url");
    let options =
        logbook_projections::db::options(url, env.database_password.as_ref()).expect("options");
    let admin = logbook_projections::db::pool(options, 1);
    sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", env.database_name))
        .execute(&admin)
        .await
        .expect("drop database");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&env.database_name)
        .fetch_one(&admin)
        .await
        .expect("pg_database");
    assert_eq!(left, 0, "database {} still exists", env.database_name);
    admin.close().await;
}

/// A fresh, empty backup folder under the temp folder.
pub fn backup_folder(env: &TestEnv) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{}-backup", env.kafka.topic_prefix));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The committed offsets of `group` on `topic` (None where nothing is committed). Blocking.
pub fn committed(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let found = consumer
        .committed_offsets(list, Duration::from_secs(30))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match found.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
        .collect()
}
