//! The holes in exactly once that a careful read found, each closed and proven through HTTP:
//! a reused transfer id, a retry after the dedupe horizon, a refund that could be refused,
//! waiters that leaked.

use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_tests::checks::assert_log_invariants;
use logbook_tests::client::Answer;
use logbook_tests::{TestApp, TestEnv, log};
use serde_json::{Value, json};
use uuid::Uuid;

async fn open(app: &TestApp, token: &str) -> Uuid {
    let id = Uuid::new_v4();
    let body = json!({"owner_id": "bank", "currency": "EUR", "account_id": id});
    let (status, answer) = app.post_until_answered(token, "/v1/accounts", &body).await;
    assert_eq!(status, 201, "{answer}");
    id
}

async fn deposit(app: &TestApp, token: &str, account: Uuid, amount: i64) {
    let path = format!("/v1/accounts/{account}/deposits");
    let (status, answer) = app
        .post_until_answered(token, &path, &json!({"amount": amount}))
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// The account's balance and version in the read model once `ready` accepts them.
async fn account_when(
    app: &TestApp,
    token: &str,
    account: Uuid,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = app.read(token, &format!("/v1/accounts/{account}")).await;
        if answer.status == 200 && ready(&answer.body) {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "account {account} did not get there: {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn transfer_body(from: Uuid, to: Uuid, amount: i64, transfer_id: Uuid) -> Value {
    json!({"from_account_id": from, "to_account_id": to, "amount": amount, "transfer_id": transfer_id})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_id_names_one_transfer_for_ever() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "bank");
    let (first, second, target) = (
        open(&app, &token).await,
        open(&app, &token).await,
        open(&app, &token).await,
    );
    deposit(&app, &token, first, 100).await;
    deposit(&app, &token, second, 100).await;
    let id = Uuid::new_v4();
    let body = transfer_body(first, target, 30, id);

    let accepted = app
        .command(&token, "/v1/transfers", Some("k1"), &body)
        .await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    // another source, another key: refused, nothing debited
    let other = transfer_body(second, target, 30, id);
    let reused = app
        .command(&token, "/v1/transfers", Some("k2"), &other)
        .await;
    assert_eq!(reused.status, 409, "{:?}", reused.body);
    assert_eq!(reused.problem(), Some("transfer_id_reused"));
    // another amount, or another principal: refused too
    let more = transfer_body(first, target, 31, id);
    let answer = app.command(&token, "/v1/transfers", None, &more).await;
    assert_eq!(answer.problem(), Some("transfer_id_reused"));
    let stranger = env.token(Role::Service, "another-service");
    let answer = app.command(&stranger, "/v1/transfers", None, &body).await;
    assert_eq!(answer.problem(), Some("transfer_id_reused"));
    // the same request replays with its key, and without one it is the same command again
    let replay = app
        .command(&token, "/v1/transfers", Some("k1"), &body)
        .await;
    assert!(replay.replayed && replay.status == 202, "{replay:?}");
    let again = app.command(&token, "/v1/transfers", None, &body).await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["command_id"], accepted.body["command_id"]);

    // a refused debit keeps its id for ever
    let refused_id = Uuid::new_v4();
    let too_much = transfer_body(second, target, 1_000_000, refused_id);
    let refused = app.command(&token, "/v1/transfers", None, &too_much).await;
    assert_eq!(refused.problem(), Some("insufficient_funds"));
    let later = transfer_body(first, target, 5, refused_id);
    let answer = app.command(&token, "/v1/transfers", None, &later).await;
    assert_eq!(answer.problem(), Some("transfer_id_reused"));

    account_when(&app, &token, target, |a| a["balance"] == 30).await;
    account_when(&app, &token, first, |a| a["balance"] == 70).await;
    account_when(&app, &token, second, |a| a["balance"] == 100).await;
    let transfer = app.read(&token, &format!("/v1/transfers/{id}")).await;
    assert_eq!(transfer.body["from_account_id"], json!(first));
    assert_eq!(transfer.body["amount"], 30);
    let kafka = env.kafka.clone();
    let events = tokio::task::spawn_blocking(move || log::events(&kafka))
        .await
        .expect("join");
    assert_log_invariants(&events);
    let credits = events
        .iter()
        .filter(|(_, e)| e.event_type == "TransferCredited")
        .count();
    assert_eq!(credits, 1, "one transfer, one credit");
    app.stop().await.expect("clean stop");
}

/// A keyed deposit whose first attempt timed out (504) is applied when the processor comes
/// back; the processor then forgets it (a tiny dedupe capacity stands in for a long wait);
/// the client's retry with the same key must not apply it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_the_processor_no_longer_remembers_is_refused_never_applied_twice() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).command_timeout = Duration::from_secs(1);
    settings.processing.dedupe_capacity = 2;
    let http = Roles {
        http: true,
        projector: true,
        ..Roles::NONE
    };
    let app = env.spawn_with(settings.clone(), http).await;
    let processor = env.spawn_with(settings.clone(), Roles::PROCESS).await;
    let token = env.token(Role::Service, "bank");
    let account = open(&app, &token).await;
    deposit(&app, &token, account, 100).await;
    processor.stop().await.expect("processor stops");

    let path = format!("/v1/accounts/{account}/deposits");
    let first = app
        .command(&token, &path, Some("salary"), &json!({"amount": 10}))
        .await;
    assert_eq!(first.status, 504, "no processor: {:?}", first.body);
    let command_id = first.body["command_id"].clone();

    let processor = env.spawn_with(settings.clone(), Roles::PROCESS).await;
    account_when(&app, &token, account, |a| a["balance"] == 110).await;
    for _ in 0..3 {
        deposit(&app, &token, account, 1).await;
    }
    let retry = app
        .command(&token, &path, Some("salary"), &json!({"amount": 10}))
        .await;
    assert_eq!(retry.status, 409, "{:?}", retry.body);
    assert_eq!(retry.problem(), Some("command_expired"));
    let detail = retry.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(command_id.as_str().unwrap_or("?")),
        "the problem names the command to look for: {detail}"
    );
    // one more deposit goes through: the balance shows the salary once
    deposit(&app, &token, account, 1).await;
    account_when(&app, &token, account, |a| a["balance"] == 114).await;
    processor.stop().await.expect("processor stops");
    app.stop().await.expect("clean stop");
}

/// The whole balance leaves for an account that does not exist; before the refund arrives the
/// owner tries to close the source. Closing must wait, and the refund must land.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_cannot_be_refused() {
    let env = TestEnv::new().await;
    let no_saga = Roles {
        saga: false,
        ..Roles::ALL
    };
    let app = env.spawn(no_saga).await;
    let token = env.token(Role::Service, "bank");
    let source = open(&app, &token).await;
    deposit(&app, &token, source, 50).await;
    let nowhere = Uuid::new_v4();
    let body = json!({"from_account_id": source, "to_account_id": nowhere, "amount": 50});
    let debit = app.command(&token, "/v1/transfers", None, &body).await;
    assert_eq!(debit.status, 202, "{:?}", debit.body);
    let close = app
        .command(
            &token,
            &format!("/v1/accounts/{source}/close"),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(close.status, 409, "{:?}", close.body);
    assert_eq!(close.problem(), Some("transfer_pending"));

    let saga = env.spawn(Roles::SAGA).await;
    let view = account_when(&app, &token, source, |a| a["balance"] == 50).await;
    assert_eq!(view["status"], "active");
    let transfer_id = debit.body["transfer_id"].as_str().expect("transfer id");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let transfer = app
            .read(&token, &format!("/v1/transfers/{transfer_id}"))
            .await;
        if transfer.body["status"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", transfer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    saga.stop().await.expect("saga stops");
    app.stop().await.expect("clean stop");
}

/// Requests that time out, and requests whose client goes away, leave no waiter behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_waiters_never_leak() {
    let env = TestEnv::new().await;
    // a process of its own: the gauge must count this gateway's waiters only
    let timeout = ("LOGBOOK_COMMAND_TIMEOUT_MS", "2000".to_string());
    let server = env.serve_child("waiters", &[timeout]).await;
    let token = env.token(Role::Service, "bank");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let patient = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let account = Uuid::new_v4();
        let url = server.url(&format!("/v1/accounts/{account}/deposits"));
        let (client, patient, token) = (impatient.clone(), patient.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            // no processor runs: every command waits until its timeout or its client leaves
            let client = if i % 2 == 0 { client } else { patient };
            let _ = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"amount": 1}))
                .send()
                .await;
        }));
    }
    for task in tasks {
        task.await.expect("join");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = server.metric("logbook_gateway_waiting_requests").await;
        if waiting == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "waiters left behind: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deposit answers are unchanged by retries without a key: each is a new command.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_retry_within_the_horizon_answers_as_a_duplicate() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "bank");
    let account = open(&app, &token).await;
    let path = format!("/v1/accounts/{account}/deposits");
    let first: Answer = app
        .command(&token, &path, Some("k"), &json!({"amount": 7}))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let replay = app
        .command(&token, &path, Some("k"), &json!({"amount": 7}))
        .await;
    assert!(replay.replayed);
    assert_eq!(replay.body, first.body);
    account_when(&app, &token, account, |a| a["balance"] == 7).await;
    app.stop().await.expect("clean stop");
}
