//! Backup, restore and the disaster drill against the real broker and database: traffic through
//! the HTTP API, a backup, the topics and the database destroyed, a restore into fresh topics,
//! every projection rebuilt, and every read model and hash chain compared with the state before.
//! Also: incremental backups across aborted and open transactions, a restore continued after it
//! was cut short, and a restore refused on a topic that holds other records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_events::topics::TopicLayout;
use logbook_ops::backup::{
    BackupOptions, BackupReport, Manifest, RestoreError, RestoreOptions, RestoreReport, TopicRole,
    run_backup, run_restore,
};
use logbook_tests::checks::assert_log_invariants;
use logbook_tests::disaster::{
    all_topics, backup_folder, committed, contents, delete_topics, drop_database, read_models,
};
use logbook_tests::read::{Generator, Running, produce_async, produce_raw, wait_caught_up};
use logbook_tests::{TestApp, TestEnv, log};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;
use uuid::Uuid;

const CATCH_UP: Duration = Duration::from_secs(120);

async fn backup(env: &TestEnv, out: &std::path::Path, all: bool, segment: u64) -> BackupReport {
    let kafka = env.kafka.clone();
    let options = BackupOptions {
        out: out.to_owned(),
        include_commands_and_results: all,
        segment_records: segment,
        progress: false,
    };
    tokio::task::spawn_blocking(move || run_backup(&kafka, &options))
        .await
        .expect("join")
        .expect("backup")
}

async fn restore(
    env: &TestEnv,
    from: &std::path::Path,
    force: bool,
) -> Result<RestoreReport, RestoreError> {
    let kafka = env.kafka.clone();
    let layout = TopicLayout {
        partitions: env.partitions,
        replication_factor: 1,
        min_insync_replicas: None,
    };
    let options = RestoreOptions {
        from: from.to_owned(),
        force,
        progress: false,
    };
    tokio::task::spawn_blocking(move || run_restore(&kafka, &layout, &options))
        .await
        .expect("join")
}

/// Per aggregate: (sequence, hash) of every event, after checking the log's invariants.
async fn chains(env: &TestEnv) -> BTreeMap<Uuid, Vec<(u64, String)>> {
    let kafka = env.kafka.clone();
    let events = tokio::task::spawn_blocking(move || log::events(&kafka))
        .await
        .expect("join");
    assert_log_invariants(&events)
        .into_iter()
        .map(|(id, list)| (id, list.into_iter().map(|e| (e.sequence, e.hash)).collect()))
        .collect()
}

async fn post(app: &TestApp, token: &str, path: &str, body: serde_json::Value) -> u16 {
    app.post_until_answered(token, path, &body).await.0
}

/// Accounts, deposits, withdrawals (one refused), a freeze, a close, and transfers (one to the
/// frozen account, one refunded because its target is closed) through the HTTP API; waits until
/// every transfer is settled.
async fn traffic(env: &TestEnv, app: &TestApp) {
    let token = env.token(Role::Service, "drill");
    let mut accounts = Vec::new();
    for i in 0..9 {
        let id = Uuid::now_v7();
        let body =
            json!({"owner_id": format!("owner-{}", i % 3), "currency": "EUR", "account_id": id});
        assert_eq!(post(app, &token, "/v1/accounts", body).await, 201);
        accounts.push(id);
    }
    let closed = accounts.pop().expect("nine accounts");
    let path = format!("/v1/accounts/{closed}/close");
    assert_eq!(post(app, &token, &path, json!({})).await, 200);
    for (i, id) in accounts.iter().enumerate() {
        let path = format!("/v1/accounts/{id}/deposits");
        let body = json!({"amount": 1_000 + i as i64, "reference": format!("salary {i}")});
        assert_eq!(post(app, &token, &path, body).await, 200);
        let path = format!("/v1/accounts/{id}/withdrawals");
        assert_eq!(post(app, &token, &path, json!({"amount": 100})).await, 200);
    }
    let path = format!("/v1/accounts/{}/withdrawals", accounts[0]);
    assert_eq!(
        post(app, &token, &path, json!({"amount": 1_000_000})).await,
        409
    );
    let frozen = accounts[7];
    let path = format!("/v1/accounts/{frozen}/freeze");
    assert_eq!(
        post(app, &token, &path, json!({"reason": "drill"})).await,
        200
    );
    for i in 0..7 {
        let to = match i {
            3 => closed,
            6 => frozen,
            _ => accounts[i + 1],
        };
        let body =
            json!({"from_account_id": accounts[i], "to_account_id": to, "amount": 50 + i as i64});
        assert_eq!(post(app, &token, "/v1/transfers", body).await, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (pending, all): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM transfers",
        )
        .fetch_one(&env.db)
        .await
        .expect("transfers");
        if all == 7 && pending == 0 {
            // and the sources know it (the saga's last steps are in the log)
            let kafka = env.kafka.clone();
            tokio::task::spawn_blocking(move || {
                logbook_tests::log::settled_events(&kafka, Duration::from_secs(60))
            })
            .await
            .expect("join");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "transfers not settled: {pending} of {all} pending"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disaster_drill_restores_every_read_model_and_hash_chain() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    traffic(&env, &app).await;
    app.stop().await.expect("roles stopped cleanly");
    for projection in ["ledger", "archive"] {
        wait_caught_up(&env.db, &env.kafka, env.partitions, projection, CATCH_UP).await;
    }
    let models_before = read_models(&env.db).await;
    let chains_before = chains(&env).await;
    let logs_before = all_topics(&env).await;
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE status = 'failed'")
        .fetch_one(&env.db)
        .await
        .expect("failed transfers");
    assert_eq!(failed, 1, "the transfer to the closed account is refunded");

    let dir = backup_folder(&env);
    let report = backup(&env, &dir, true, 10).await;
    let total: usize = logs_before.iter().map(Vec::len).sum();
    assert_eq!(report.records_added as usize, total);
    assert!(report.segments_added > 4, "small segments: {report:?}");

    // The disaster: this test's topics and its database are gone.
    delete_topics(&env.kafka).await;
    drop_database(&env).await;

    // Recovery: fresh topics and a freshly migrated, empty database (TestEnv::new), the backup
    // restored into the topics, every projection rebuilt by running the projector to the end.
    let fresh = TestEnv::new().await;
    let restored = restore(&fresh, &dir, false).await.expect("restore");
    assert_eq!(restored.records_written as usize, total);
    assert_eq!(restored.events_verified as usize, logs_before[0].len());
    assert_eq!(restored.aggregates_verified, chains_before.len());
    assert_eq!(restored.undecodable_events, 0);
    assert_eq!(restored.open_transfers, 0);
    // Processors and sagas start after what the log holds, not at the beginning.
    let kafka = fresh.kafka.clone();
    let partitions = fresh.partitions;
    let (processors, sagas) = tokio::task::spawn_blocking(move || {
        let topics = kafka.topics();
        let prefix = &kafka.topic_prefix;
        (
            committed(
                &kafka,
                &format!("{prefix}.processors"),
                &topics.commands,
                partitions,
            ),
            committed(
                &kafka,
                &format!("{prefix}.sagas"),
                &topics.events,
                partitions,
            ),
        )
    })
    .await
    .expect("join");
    let per_partition = |log: &[(i32, logbook_ops::backup::segment::StoredRecord)]| {
        (0..fresh.partitions)
            .map(|p| Some(log.iter().filter(|(q, _)| *q == p).count() as i64))
            .collect::<Vec<_>>()
    };
    assert_eq!(processors, per_partition(&logs_before[1]));
    assert_eq!(sagas, per_partition(&logs_before[0]));
    let projector = Running::start(&fresh);
    for projection in ["ledger", "archive"] {
        wait_caught_up(
            &fresh.db,
            &fresh.kafka,
            fresh.partitions,
            projection,
            CATCH_UP,
        )
        .await;
    }
    projector.stop().await;

    let logs_after = all_topics(&fresh).await;
    for (before, after) in logs_before.iter().zip(&logs_after) {
        assert_eq!(
            contents(after),
            contents(before),
            "a topic differs after the restore"
        );
    }
    assert_eq!(chains(&fresh).await, chains_before, "hash chains differ");
    let models_after = read_models(&fresh.db).await;
    for ((name, before), (_, after)) in models_before.iter().zip(&models_after) {
        assert!(
            before.as_array().is_some_and(|rows| !rows.is_empty()),
            "{name} empty"
        );
        assert_eq!(after, before, "read model {name} differs after recovery");
    }

    // Running the same restore again (a retry) writes nothing twice.
    let again = restore(&fresh, &dir, false).await.expect("second restore");
    assert_eq!(
        (again.records_written, again.records_skipped as usize),
        (0, total)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// An open (uncommitted) transaction of `count` records on partition 0; dropped = aborted.
fn open_transaction(env: &TestEnv, count: usize) -> BaseProducer {
    let producer: BaseProducer = env
        .kafka
        .client_config()
        .set("transactional.id", format!("drill-open-{}", Uuid::new_v4()))
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init");
    producer.begin_transaction().expect("begin");
    let topic = env.kafka.topics().events;
    for n in 0..count {
        let payload = format!("open-{n}");
        let record = BaseRecord::<(), str>::to(&topic)
            .partition(0)
            .payload(&payload);
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    producer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_incremental_and_restores_continue_or_refuse() {
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 7);
    // aborted transactions mixed in: their records and the markers are offset gaps
    produce_async(&env.kafka, generator.events(600), 50, 3).await;
    let dir = backup_folder(&env);
    let first = backup(&env, &dir, false, 200).await;
    let logged = all_topics(&env).await[0].len() as u64;
    assert_eq!((first.records_added, first.records_total), (logged, logged));

    // An open transaction is not backed up, and the bookmark stays below it.
    let kafka = env.kafka.clone();
    let open = {
        let env = env.clone();
        tokio::task::spawn_blocking(move || open_transaction(&env, 5))
            .await
            .expect("join")
    };
    produce_async(&kafka, generator.events(300), 50, 0).await;
    let second = backup(&env, &dir, false, 200).await;
    let logged_now = all_topics(&env).await[0].len() as u64;
    assert_eq!(
        second.records_added,
        logged_now - logged,
        "only the new records"
    );
    let manifest = Manifest::load(&dir).expect("manifest").expect("some");
    let events = manifest.topic(TopicRole::Events).expect("events");
    assert_eq!(events.records(), logged_now);
    for p in &events.partition_backups {
        let listed: u64 = p.segments.iter().map(|s| s.records).sum();
        assert_eq!(
            listed, p.records,
            "p{}: segments and count agree",
            p.partition
        );
        assert!(
            p.segments
                .windows(2)
                .all(|w| w[0].next_offset <= w[1].first_offset)
        );
    }
    tokio::task::spawn_blocking(move || {
        open.commit_transaction(Duration::from_secs(30))
            .expect("commit")
    })
    .await
    .expect("join");
    // Now committed: the open transaction's records and what partition 0 got after them (the
    // stable end stopped both runs and readers there). They are not envelopes: the restores
    // below keep them unverified.
    let third = backup(&env, &dir, false, 200).await;
    let logged_final = all_topics(&env).await[0].len() as u64;
    assert!(logged_final >= logged_now + 5);
    assert_eq!(third.records_added, logged_final - logged_now);
    assert_eq!(backup(&env, &dir, false, 200).await.records_added, 0);

    // A restore of the first half, then of everything: the second run continues, no duplicate.
    let target = TestEnv::new().await;
    let half = backup_folder(&target);
    copy_backup_prefix(&dir, &half, 1);
    let partial = restore(&target, &half, false)
        .await
        .expect("partial restore");
    let full = restore(&target, &dir, false)
        .await
        .expect("continued restore");
    assert_eq!(partial.records_written + full.records_written, logged_final);
    assert_eq!(full.undecodable_events, 5);
    assert_eq!(full.records_skipped, partial.records_written);
    let restored = all_topics(&target).await;
    assert_eq!(contents(&restored[0]), contents(&all_topics(&env).await[0]));

    // A topic holding something else is refused, unless forced.
    let other = TestEnv::new().await;
    let kafka = other.kafka.clone();
    tokio::task::spawn_blocking(move || produce_raw(&kafka, 1, b"not from this backup"))
        .await
        .expect("join");
    let refused = restore(&other, &dir, false).await;
    assert!(
        matches!(refused, Err(RestoreError::NotEmpty { partition: 1, .. })),
        "{refused:?}"
    );
    let forced = restore(&other, &dir, true).await.expect("forced restore");
    assert_eq!(forced.records_written, logged_final);
    for folder in [dir, half] {
        let _ = std::fs::remove_dir_all(folder);
    }
}

/// A copy of a backup folder whose manifest keeps only the first `segments` segments of each
/// partition: the state of an earlier backup run.
fn copy_backup_prefix(from: &std::path::Path, to: &std::path::Path, segments: usize) {
    let mut manifest = Manifest::load(from).expect("manifest").expect("some");
    for topic in &mut manifest.topics {
        for partition in &mut topic.partition_backups {
            partition.segments.truncate(segments);
            let last = partition.segments.last();
            partition.records = last.map_or(0, |s| s.first_index + s.records);
            partition.next_offset = last.map_or(0, |s| s.next_offset);
        }
    }
    for file in manifest.files() {
        let target = to.join(file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("folder");
        std::fs::copy(from.join(file), target).expect("copy segment");
    }
    manifest.save(to).expect("save manifest");
}

/// The figures of docs/operations.md: `LOGBOOK_DRILL_EVENTS` (default 1 000 000) valid,
/// chained events appended transactionally, then the time of a backup, of a restore into fresh
/// topics, and of rebuilding every projection from the restored log into an empty database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test -p logbook-tests --release --test suite -- --ignored disaster::recovery_times --nocapture"]
async fn recovery_times() {
    let total: usize = std::env::var("LOGBOOK_DRILL_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 42);
    let (started, mut produced) = (Instant::now(), 0);
    while produced < total {
        let mut events = generator.events(20_000);
        events.truncate(total - produced);
        produced += events.len();
        produce_async(&env.kafka, events, 5_000, 0).await;
    }
    let load = started.elapsed().as_secs_f64();
    let dir = backup_folder(&env);
    let started = Instant::now();
    let report = backup(&env, &dir, false, 100_000).await;
    let backup_secs = started.elapsed().as_secs_f64();
    assert_eq!(report.records_added as usize, total);
    let fresh = TestEnv::new().await;
    let started = Instant::now();
    let restored = restore(&fresh, &dir, false).await.expect("restore");
    let restore_secs = started.elapsed().as_secs_f64();
    assert_eq!(restored.events_verified as usize, total);
    let started = Instant::now();
    let projector = Running::start(&fresh);
    let hour = Duration::from_secs(3_600);
    for projection in ["ledger", "archive"] {
        wait_caught_up(&fresh.db, &fresh.kafka, fresh.partitions, projection, hour).await;
    }
    projector.stop().await;
    let rebuild_secs = started.elapsed().as_secs_f64();
    let rate = |secs: f64| total as f64 / secs;
    eprintln!(
        "events: {total} ({} segments, {} bytes; loaded in {load:.1} s)",
        report.segments_added, report.bytes_added
    );
    eprintln!(
        "backup: {backup_secs:.1} s ({:.0} events/s)",
        rate(backup_secs)
    );
    eprintln!(
        "restore (with checksum and hash-chain verification): {restore_secs:.1} s ({:.0} events/s)",
        rate(restore_secs)
    );
    eprintln!(
        "rebuild of every projection into an empty database: {rebuild_secs:.1} s ({:.0} events/s)",
        rate(rebuild_secs)
    );
    let _ = std::fs::remove_dir_all(dir);
}
