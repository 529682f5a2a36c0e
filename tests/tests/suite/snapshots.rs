//! Snapshots (issue 20): the processor writes them in its transactions; a restore from the newest
//! snapshot plus the tail equals a restore from the whole log; a snapshot that cannot be used
//! (garbage chunks, or one taken of another log) falls back to an older one or the full log; and
//! a processor that restores from snapshots goes on deciding as if it had read everything.

use std::time::Duration;

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_commands::processor::restore::{RestoreLimits, Restored, restore_partition};
use logbook_commands::processor::snapshot::{SnapshotPolicy, chunks, codec, write};
use logbook_commands::processor::state::PartitionState;
use logbook_events::KafkaSettings;
use logbook_tests::checks::assert_log_invariants;
use logbook_tests::{TestApp, TestEnv, log};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::json;
use uuid::Uuid;

const ACCOUNTS: usize = 8;

async fn open(app: &TestApp, token: &str) -> Uuid {
    let id = Uuid::new_v4();
    let body = json!({"owner_id": "bank", "currency": "EUR", "account_id": id});
    let (status, _) = app.post_until_answered(token, "/v1/accounts", &body).await;
    assert_eq!(status, 201);
    id
}

async fn money(app: &TestApp, token: &str, account: Uuid, kind: &str, amount: i64) -> u16 {
    let path = format!("/v1/accounts/{account}/{kind}");
    let (status, body) = app
        .post_until_answered(token, &path, &json!({"amount": amount}))
        .await;
    assert!(status == 200 || status == 409, "{status} {body}");
    status
}

/// Restores every partition, with and without snapshots, on a blocking thread.
async fn restore_all(kafka: &KafkaSettings, partitions: i32, snapshots: bool) -> Vec<Restored> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let limits = RestoreLimits {
            timeout: Duration::from_secs(60),
            dedupe_horizon: Duration::from_secs(900),
            dedupe_capacity: 1_000_000,
            snapshots,
        };
        (0..partitions)
            .map(|p| restore_partition(&kafka, p, limits).expect("restores"))
            .collect()
    })
    .await
    .expect("join")
}

/// What a restore must reproduce: every account with its hash head, every remembered command
/// with its outcome, the last event.
fn essence(state: &PartitionState) -> impl PartialEq + std::fmt::Debug {
    let mut accounts: Vec<_> = state
        .accounts
        .iter()
        .map(|slot| (slot.account.to_parts(), slot.last_hash))
        .collect();
    accounts.sort_by_key(|(parts, _)| parts.id);
    let mut applied: Vec<_> = state
        .dedupe
        .entries()
        .0
        .into_iter()
        .map(|(id, applied, _)| (id, applied))
        .collect();
    applied.sort_by_key(|(id, _)| *id);
    (
        accounts,
        applied,
        state.last_offset,
        state.last_event_id,
        state.next_write,
    )
}

/// Writes `body` as a snapshot of `partition` covering `covers`, outside any transaction.
fn plant(kafka: &KafkaSettings, partition: i32, covers: i64, body: &[u8]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        kafka.client_config().create().expect("producer");
    let topic = kafka.topics().snapshots;
    for (header, piece) in chunks::split(body, codec::FORMAT, covers) {
        let key = chunks::key(partition, header.index);
        let record = BaseRecord::to(&topic)
            .partition(partition)
            .key(&key)
            .payload(piece)
            .headers(write::record_headers(&header));
        producer.send(record).map_err(|(e, _)| e).expect("sent");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restores_start_from_snapshots_equal_the_full_log_and_fall_back_when_unusable() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.processing.snapshots = SnapshotPolicy {
        every_events: 15,
        interval: Duration::from_secs(300),
    };
    let app = env.spawn_with(settings.clone(), Roles::ALL).await;
    let token = env.token(Role::Service, "snapshots");
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        accounts.push(open(&app, &token).await);
    }
    let mut balance = [0i64; ACCOUNTS];
    for round in 0..12 {
        for (i, account) in accounts.iter().enumerate() {
            let amount = 10 + (round * 7 + i as i64 * 3) % 40;
            if money(&app, &token, *account, "deposits", amount).await == 200 {
                balance[i] += amount;
            }
        }
        // a transfer in flight or settled: the snapshot carries transfer books too
        let body =
            json!({"from_account_id": accounts[0], "to_account_id": accounts[1], "amount": 1});
        let (status, _) = app
            .post_until_answered(&token, "/v1/transfers", &body)
            .await;
        assert_eq!(status, 202);
    }
    app.stop().await.expect("clean stop");

    let partitions = env.partitions;
    let full = restore_all(&env.kafka, partitions, false).await;
    let snapped = restore_all(&env.kafka, partitions, true).await;
    let mut from_snapshot = 0;
    for (p, (full, snapped)) in full.iter().zip(&snapped).enumerate() {
        assert!(full.snapshot.is_none());
        // a partition is snapshotted once it has 15 events and a batch writes to it again
        assert!(
            snapped.snapshot.is_some() || full.folded < 30,
            "partition {p}: {} events and no usable snapshot",
            full.folded
        );
        if let Some(covers) = snapped.snapshot {
            from_snapshot += 1;
            assert!(
                snapped.folded < full.folded,
                "partition {p}: {} events after the snapshot at {covers}, {} in all",
                snapped.folded,
                full.folded
            );
        }
        assert_eq!(
            essence(&snapped.state),
            essence(&full.state),
            "partition {p}"
        );
    }
    assert!(from_snapshot > 0, "some partition had a snapshot");

    // garbage that claims to be the newest snapshot is passed over for the one before it
    let p = snapped
        .iter()
        .position(|r| r.snapshot.is_some())
        .expect("a snapshotted partition");
    let end = snapped[p].state.next_write.expect("end");
    let kafka = env.kafka.clone();
    let garbage = vec![7u8; 1000];
    tokio::task::spawn_blocking(move || plant(&kafka, p as i32, end, &garbage))
        .await
        .expect("join");
    let after_garbage = restore_all(&env.kafka, partitions, true).await;
    assert_eq!(after_garbage[p].snapshot, snapped[p].snapshot);
    assert_eq!(essence(&after_garbage[p].state), essence(&full[p].state));

    // a well-formed snapshot of another log (its last event is not this log's) means the
    // whole log is read
    let mut foreign = PartitionState::new(Duration::from_secs(900), 10);
    foreign.last_offset = full[p].state.last_offset;
    foreign.last_event_id = Some(Uuid::new_v4());
    let body = codec::encode(p as i32, &foreign).expect("encodes");
    let kafka = env.kafka.clone();
    let covers = foreign.last_offset.expect("events") + 1;
    tokio::task::spawn_blocking(move || plant(&kafka, p as i32, covers, &body))
        .await
        .expect("join");
    let after_foreign = restore_all(&env.kafka, partitions, true).await;
    assert_eq!(after_foreign[p].snapshot, None, "the full log instead");
    assert_eq!(essence(&after_foreign[p].state), essence(&full[p].state));

    // a processor restoring from the snapshots decides as if it had read everything: each
    // account's balance goes on from where it was (accounts 0 and 1 also moved money between
    // them through the saga, so only the others' balances are known to the cent)
    let app = env.spawn_with(settings, Roles::ALL).await;
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(money(&app, &token, *account, "deposits", 1).await, 200);
        balance[i] += 1;
        if i >= 2 {
            assert_eq!(
                money(&app, &token, *account, "withdrawals", balance[i]).await,
                200
            );
        }
        let last = if i >= 2 { 1 } else { balance[i] + 1_000 };
        assert_eq!(
            money(&app, &token, *account, "withdrawals", last).await,
            409
        );
    }
    app.stop().await.expect("clean stop");
    let kafka = env.kafka.clone();
    let events =
        tokio::task::spawn_blocking(move || log::settled_events(&kafka, Duration::from_secs(60)))
            .await
            .expect("join");
    assert_log_invariants(&events);
}
