//! Exactly once against the log's own hazards: lost group offsets, partitions added behind
//! Logbook's back, commands on the wrong partition, records the saga cannot read.

use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_commands::domain::AccountCommand;
use logbook_commands::envelope::{CommandEnvelope, Outcome};
use logbook_commands::processor::{Processor, ProcessorError};
use logbook_commands::txn::MissingOffsets;
use logbook_events::partitioner::partition_of;
use logbook_events::topics::{TopicError, TopicLayout, ensure_topics};
use logbook_events::{Actor, KafkaSettings};
use logbook_tests::checks::assert_log_invariants;
use logbook_tests::{TestApp, TestEnv, log};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use uuid::Uuid;

async fn open_and_fund(app: &TestApp, token: &str, amount: i64) -> Uuid {
    let id = Uuid::new_v4();
    let body = json!({"owner_id": "bank", "currency": "EUR", "account_id": id});
    assert_eq!(
        app.post_until_answered(token, "/v1/accounts", &body)
            .await
            .0,
        201
    );
    if amount > 0 {
        let path = format!("/v1/accounts/{id}/deposits");
        let (status, _) = app
            .post_until_answered(token, &path, &json!({"amount": amount}))
            .await;
        assert_eq!(status, 200);
    }
    id
}

fn admin(kafka: &KafkaSettings) -> AdminClient<DefaultClientContext> {
    kafka.client_config().create().expect("admin client")
}

/// Runs a processor until it stops by itself (or `within` passes: then `None`).
async fn processor_outcome(
    env: &TestEnv,
    missing: MissingOffsets,
    within: Duration,
) -> Option<Result<(), ProcessorError>> {
    let mut settings = env.settings().processing.processor(&env.kafka);
    settings.missing_offsets = missing;
    tokio::time::timeout(
        within,
        Processor::run_until(settings, std::future::pending()),
    )
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_group_offsets_are_refused_unless_told_how_to_start() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "bank");
    let account = open_and_fund(&app, &token, 100).await;
    app.stop().await.expect("stop");
    let group = env.kafka.groups().processors;
    let deleted = admin(&env.kafka)
        .delete_groups(&[&group], &AdminOptions::new())
        .await
        .expect("delete groups");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");

    let refused = processor_outcome(&env, MissingOffsets::Refuse, Duration::from_secs(60)).await;
    let error = refused
        .expect("the processor stops by itself")
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("no committed offset"), "{text}");
    assert!(
        text.contains("--missing-offsets"),
        "says what to do: {text}"
    );

    // told to replay: old commands come again and are answered from the dedupe memory
    let mut settings = env.settings();
    settings.processing.missing_offsets = MissingOffsets::Earliest;
    let app = env.spawn_with(settings, Roles::ALL).await;
    let path = format!("/v1/accounts/{account}/deposits");
    let (status, _) = app
        .post_until_answered(&token, &path, &json!({"amount": 1}))
        .await;
    assert_eq!(status, 200);
    let kafka = env.kafka.clone();
    let events = tokio::task::spawn_blocking(move || log::events(&kafka))
        .await
        .expect("join");
    let mine = assert_log_invariants(&events);
    let last = mine[&account].last().expect("events");
    assert_eq!(last.data["balance_after"], 101, "nothing applied twice");
    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_added_behind_logbooks_back_are_refused() {
    let env = TestEnv::new().await;
    let topics = env.kafka.topics();
    let grown = [
        NewPartitions::new(&topics.commands, env.partitions as usize + 2),
        NewPartitions::new(&topics.events, env.partitions as usize + 2),
    ];
    let results = admin(&env.kafka)
        .create_partitions(&grown, &AdminOptions::new())
        .await
        .expect("create partitions");
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let kafka = env.kafka.clone();
    let layout = TopicLayout {
        partitions: env.partitions,
        replication_factor: 1,
        min_insync_replicas: None,
    };
    let topics_result = tokio::task::spawn_blocking(move || {
        // metadata shows the new partitions after a moment
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let result = ensure_topics(&kafka, &layout);
            if result.is_err() || Instant::now() > deadline {
                return result;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .expect("join");
    let error = topics_result.expect_err("logbook topics refuses");
    assert!(
        matches!(error, TopicError::Layout(_)),
        "a layout error: {error}"
    );
    assert!(
        error.to_string().contains("new topic generation"),
        "{error}"
    );

    let outcome = processor_outcome(&env, MissingOffsets::Refuse, Duration::from_secs(60)).await;
    let error = outcome.expect("stops by itself").expect_err("refused");
    assert!(matches!(error, ProcessorError::Layout(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_read_from_a_partition_its_key_does_not_belong_to_is_refused() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::PROCESS).await;
    let account = Uuid::new_v4();
    let right = partition_of(account, env.partitions);
    let wrong = (right + 1) % env.partitions;
    let command_id = Uuid::now_v7();
    let envelope = CommandEnvelope {
        command_id,
        aggregate_id: account,
        correlation_id: command_id,
        causation_id: None,
        actor: Actor {
            sub: "svc".into(),
            role: "service".into(),
        },
        issued_at: chrono::Utc::now(),
        traceparent: None,
        command: AccountCommand::Open {
            owner_id: "o".into(),
            currency: logbook_events::Currency::parse("EUR").expect("EUR"),
            overdraft_limit: 0,
            holder: None,
        },
        transfer: None,
        reply_partition: None,
    };
    let producer: FutureProducer = env.kafka.client_config().create().expect("producer");
    let (key, payload) = (account.to_string(), envelope.encode());
    let topic = env.kafka.topics().commands;
    producer
        .send(
            FutureRecord::to(&topic)
                .partition(wrong)
                .key(&key)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .expect("sent");
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let kafka = env.kafka.clone();
        let results = tokio::task::spawn_blocking(move || log::results(&kafka))
            .await
            .expect("join");
        if let Some(result) = results.into_iter().find(|r| r.command_id == command_id) {
            break result;
        }
        assert!(Instant::now() < deadline, "no result");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        matches!(&result.outcome, Outcome::Rejected { code, .. } if code == "wrong_partition"),
        "{result:?}"
    );
    let kafka = env.kafka.clone();
    let events = tokio::task::spawn_blocking(move || log::events(&kafka))
        .await
        .expect("join");
    assert!(events.is_empty(), "a refused command writes no event");
    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_saga_stops_at_a_record_it_cannot_decode() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "bank");
    let source = open_and_fund(&app, &token, 100).await;
    let target = open_and_fund(&app, &token, 0).await;
    let partition = partition_of(source, env.partitions);
    let producer: FutureProducer = env.kafka.client_config().create().expect("producer");
    let topic = env.kafka.topics().events;
    producer
        .send(
            FutureRecord::to(&topic)
                .partition(partition)
                .key("garbage")
                .payload("this is not an event envelope"),
            Duration::from_secs(10),
        )
        .await
        .expect("sent");
    let body = json!({"from_account_id": source, "to_account_id": target, "amount": 10});
    let debit = app.command(&token, "/v1/transfers", None, &body).await;
    assert_eq!(debit.status, 202, "{:?}", debit.body);

    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metric("logbook_saga_poison_total").await.unwrap_or(0.0) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the saga did not report the record"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // the debit behind the undecodable record is not acted on
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kafka = env.kafka.clone();
    let records =
        tokio::task::spawn_blocking(move || log::read_committed(&kafka, &kafka.topics().events))
            .await
            .expect("join");
    let credits = records
        .iter()
        .filter_map(|r| logbook_events::decode(&r.payload).ok())
        .filter(|e| e.event_type == "TransferCredited")
        .count();
    assert_eq!(credits, 0, "the saga skipped past an undecodable record");
    app.stop().await.expect("stop");
}
