//! The write path end to end through HTTP, Kafka transactions and the processor: serial
//! consistency per account under concurrency, at-most-once per command id, intact hash chains,
//! schema-valid events.

use std::sync::Arc;

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_commands::domain::AccountCommand;
use logbook_commands::envelope::{CommandEnvelope, Outcome};
use logbook_events::Actor;
use logbook_tests::checks::{assert_log_invariants, assert_schema_valid};
use logbook_tests::{TestApp, TestEnv, log};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use uuid::Uuid;

async fn open_account(app: &TestApp, token: &str, owner: &str) -> Uuid {
    let id = Uuid::new_v4();
    let response = app
        .post(
            "/v1/accounts",
            token,
            &json!({"owner_id": owner, "currency": "EUR", "account_id": id}),
        )
        .await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    id
}

async fn log_of(env: &TestEnv) -> Vec<(log::Record, logbook_events::EventEnvelope)> {
    let kafka = env.kafka.clone();
    tokio::task::spawn_blocking(move || log::events(&kafka))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_withdrawals_of_ten_from_one_hundred_leave_exactly_ten() {
    let env = TestEnv::new().await;
    let app = Arc::new(env.spawn(Roles::ALL).await);
    let token = Arc::new(env.token(Role::Service, "svc-test"));
    let account = open_account(&app, &token, "owner-1").await;
    let deposit = app
        .post(
            &format!("/v1/accounts/{account}/deposits"),
            &token,
            &json!({"amount": 100}),
        )
        .await;
    assert_eq!(deposit.status(), 200);

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, token) = (app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let path = format!("/v1/accounts/{account}/withdrawals");
            let response = app.post(&path, &token, &json!({"amount": 10})).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json body");
            (status, body)
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, body) = task.await.expect("join");
        if status == 409 {
            assert_eq!(
                body["type"], "urn:logbook:problem:insufficient_funds",
                "{body}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        40,
        "{statuses:?}"
    );

    let events = log_of(&env).await;
    let withdrawn = events
        .iter()
        .filter(|(_, e)| e.event_type == "FundsWithdrawn")
        .count();
    assert_eq!(withdrawn, 10);
    let by_account = assert_log_invariants(&events);
    assert_eq!(
        by_account[&account].len(),
        12,
        "open + deposit + 10 withdrawals"
    );
    assert_schema_valid(&events);
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_sent_twice_is_applied_once() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "svc-test");
    let account = open_account(&app, &token, "owner-2").await;

    // Through HTTP: the same Idempotency-Key replays the first answer (the gateway's
    // idempotency store), and its command id is the same anyway (processor dedupe).
    let path = format!("/v1/accounts/{account}/deposits");
    let send = || async {
        let response = app
            .client
            .post(app.url(&path))
            .bearer_auth(&token)
            .header("Idempotency-Key", "deposit-once-1")
            .json(&json!({"amount": 25}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("json")
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(second, first);

    // Straight onto the commands topic: the same envelope twice, in one burst.
    let envelope = CommandEnvelope {
        command_id: Uuid::now_v7(),
        aggregate_id: account,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor {
            sub: "svc-test".into(),
            role: "service".into(),
        },
        issued_at: chrono::Utc::now(),
        traceparent: None,
        command: AccountCommand::Deposit {
            amount: 7,
            reference: None,
        },
        transfer: None,
        reply_partition: None,
    };
    let producer: FutureProducer = env
        .kafka
        .client_config()
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let (key, payload, topic) = (
        account.to_string(),
        envelope.encode(),
        env.kafka.topics().commands,
    );
    for _ in 0..2 {
        let record = FutureRecord::to(&topic).key(&key).payload(&payload);
        producer
            .send(record, std::time::Duration::from_secs(10))
            .await
            .expect("produce");
    }
    // the deposit after them shows both were processed before it
    let last = app.post(&path, &token, &json!({"amount": 1})).await;
    assert_eq!(last.status(), 200);

    let events = log_of(&env).await;
    let by_account = assert_log_invariants(&events);
    let deposits: Vec<i64> = by_account[&account]
        .iter()
        .filter(|e| e.event_type == "FundsDeposited")
        .map(|e| e.data["amount"].as_i64().expect("amount"))
        .collect();
    assert_eq!(deposits, [25, 7, 1]);
    let kafka = env.kafka.clone();
    let results = tokio::task::spawn_blocking(move || log::results(&kafka))
        .await
        .expect("join");
    let for_envelope: Vec<&Outcome> = results
        .iter()
        .filter(|r| r.command_id == envelope.command_id)
        .map(|r| &r.outcome)
        .collect();
    assert_eq!(for_envelope.len(), 2, "one result per command record");
    assert!(
        matches!(
            for_envelope[1],
            Outcome::Accepted {
                duplicate: true,
                ..
            }
        ),
        "{for_envelope:?}"
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_write_no_event_and_map_to_statuses() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "svc-test");
    let account = open_account(&app, &token, "owner-3").await;
    let base = format!("/v1/accounts/{account}");
    let cases = [
        (
            format!("{base}/withdrawals"),
            json!({"amount": 1}),
            409,
            "insufficient_funds",
        ),
        (format!("{base}/unfreeze"), json!({}), 409, "not_frozen"),
        (
            format!("/v1/accounts/{}/deposits", Uuid::new_v4()),
            json!({"amount": 5}),
            404,
            "account_not_found",
        ),
        (
            format!("{base}/deposits"),
            json!({"amount": -5}),
            422,
            "validation",
        ),
        (
            format!("{base}/deposits"),
            json!({"amount": 5, "extra": 1}),
            422,
            "validation",
        ),
        (
            format!("{base}/deposits"),
            json!({"amount": 1.5}),
            422,
            "validation",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = app.post(&path, &token, &body).await;
        assert_eq!(response.status().as_u16(), status, "{path} {body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path} {body}"
        );
        let problem: Value = response.json().await.expect("json");
        assert_eq!(
            problem["type"],
            format!("urn:logbook:problem:{code}"),
            "{problem}"
        );
    }
    let open_again = app
        .post(
            "/v1/accounts",
            &token,
            &json!({"owner_id": "x", "currency": "EUR", "account_id": account}),
        )
        .await;
    assert_eq!(open_again.status(), 409);

    // a customer may not touch another owner's account, and learns nothing about it
    let mallory = env.token(Role::Customer, "mallory");
    let response = app
        .post(
            &format!("{base}/withdrawals"),
            &mallory,
            &json!({"amount": 5}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let auditor = env.token(Role::Auditor, "aud");
    let response = app
        .post(&format!("{base}/deposits"), &auditor, &json!({"amount": 5}))
        .await;
    assert_eq!(response.status(), 403);
    let response = app
        .client
        .post(app.url(&format!("{base}/deposits")))
        .json(&json!({"amount": 5}))
        .send()
        .await;
    assert_eq!(response.expect("request").status(), 401);

    let events = log_of(&env).await;
    assert_eq!(events.len(), 1, "only AccountOpened: {events:?}");
    app.stop().await.expect("clean stop");
}
