//! Transfers across partitions through the saga: completed, refunded, rejected at once, and a
//! bank test where money is neither created nor destroyed under concurrent random traffic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_events::EventEnvelope;
use logbook_tests::checks::{assert_log_invariants, assert_schema_valid};
use logbook_tests::{TestApp, TestEnv, log};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

async fn open(app: &TestApp, token: &str, currency: &str) -> Uuid {
    let id = Uuid::new_v4();
    let body = json!({"owner_id": "bank", "currency": currency, "account_id": id});
    let response = app.post("/v1/accounts", token, &body).await;
    assert_eq!(response.status(), 201);
    id
}

async fn money(app: &TestApp, token: &str, account: Uuid, kind: &str, amount: i64) -> u16 {
    let path = format!("/v1/accounts/{account}/{kind}");
    app.post(&path, token, &json!({"amount": amount}))
        .await
        .status()
        .as_u16()
}

async fn transfer(app: &TestApp, token: &str, from: Uuid, to: Uuid, amount: i64) -> (u16, Value) {
    let body = json!({"from_account_id": from, "to_account_id": to, "amount": amount});
    let response = app.post("/v1/transfers", token, &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Waits until every debited transfer of the log is credited or refunded, and completed or
/// refunded on its source; returns the log.
async fn settled_log(env: &TestEnv) -> Vec<(log::Record, EventEnvelope)> {
    let kafka = env.kafka.clone();
    tokio::task::spawn_blocking(move || log::settled_events(&kafka, Duration::from_secs(60)))
        .await
        .expect("join")
}

/// What a failed settle prints about a transfer (`log::trail`), checked on a completed one: its
/// three events, the saga's two step commands with their results, and both groups' positions.
async fn assert_trail_of_completed(
    env: &TestEnv,
    log: &[(log::Record, EventEnvelope)],
    transfer: &str,
) {
    let id: Uuid = transfer.parse().expect("transfer id");
    assert!(!log::trail::unsettled(log).contains(&id));
    let (kafka, log) = (env.kafka.clone(), log.to_vec());
    let trail = tokio::task::spawn_blocking(move || log::trail::describe(&kafka, &log, &[id]))
        .await
        .expect("join");
    for needle in [
        "TransferDebited",
        "TransferCredited",
        "TransferCompleted",
        "command",
        "Credit at commands[",
        "Complete at commands[",
        "Credit at results[",
        "Complete at results[",
        "sagas on",
        "processors on",
    ] {
        assert!(trail.contains(needle), "{needle} missing from:\n{trail}");
    }
    assert!(
        !trail.contains("/?") && !trail.contains("] ?"),
        "a position unknown:\n{trail}"
    );
}

/// GET with the service token, retried until `ready` accepts the JSON body (projection lag).
async fn get_until(
    app: &TestApp,
    token: &str,
    path: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    loop {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        last = response.json().await.unwrap_or(last);
        if status == 200 && ready(&last) {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not reach the expected state: {status} {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of an account's ledger lines, all pages.
async fn ledger_sum(app: &TestApp, token: &str, account: Uuid) -> (i64, usize) {
    let (mut sum, mut lines, mut cursor) = (0, 0, None::<String>);
    loop {
        let mut path = format!("/v1/accounts/{account}/transactions?limit=100");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = get_until(app, token, &path, |_| true).await;
        for line in page["items"].as_array().expect("items") {
            sum += line["amount"].as_i64().expect("amount");
            lines += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return (sum, lines),
        }
    }
}

fn balance(history: &[EventEnvelope]) -> i64 {
    history
        .iter()
        .rev()
        .find_map(|e| e.data.get("balance_after").and_then(Value::as_i64))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_complete_refund_or_are_rejected_at_once() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "bank");
    let (a, b, closed, dollars) = (
        open(&app, &token, "EUR").await,
        open(&app, &token, "EUR").await,
        open(&app, &token, "EUR").await,
        open(&app, &token, "USD").await,
    );
    assert_eq!(money(&app, &token, a, "deposits", 100).await, 200);
    let close = app
        .post(&format!("/v1/accounts/{closed}/close"), &token, &json!({}))
        .await;
    assert_eq!(close.status(), 200);

    let (status, body) = transfer(&app, &token, a, b, 30).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    let completed_id = body["transfer_id"]
        .as_str()
        .expect("transfer id")
        .to_string();
    let (status, body) = transfer(&app, &token, a, closed, 20).await;
    assert_eq!(status, 202);
    let failed_id = body["transfer_id"]
        .as_str()
        .expect("transfer id")
        .to_string();
    // other currency: 409 at once when the read model already knows the target, else the
    // target's processor rejects the credit and the saga refunds
    let (dollar_status, body) = transfer(&app, &token, a, dollars, 10).await;
    assert!(matches!(dollar_status, 202 | 409), "{body}");
    let refunded = if dollar_status == 202 { 2 } else { 1 };
    assert_eq!(transfer(&app, &token, Uuid::new_v4(), b, 5).await.0, 404);
    assert_eq!(transfer(&app, &token, a, b, 1_000).await.0, 409);
    assert_eq!(transfer(&app, &token, a, a, 1).await.0, 422);
    // a customer may not move money out of someone else's account
    let mallory = env.token(Role::Customer, "mallory");
    assert_eq!(transfer(&app, &mallory, a, b, 1).await.0, 404);

    let log = settled_log(&env).await;
    let by_account = assert_log_invariants(&log);
    assert_eq!(
        balance(&by_account[&a]),
        70,
        "30 moved to b; 20 and 10 refunded"
    );
    assert_eq!(balance(&by_account[&b]), 30);
    let refunds: Vec<&str> = by_account[&a]
        .iter()
        .filter(|e| e.event_type == "TransferRefunded")
        .map(|e| e.data["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(refunds.len(), refunded, "{refunds:?}");
    assert!(refunds.contains(&"account_closed"), "{refunds:?}");
    assert!(
        refunded == 1 || refunds.contains(&"currency_mismatch"),
        "{refunds:?}"
    );
    assert!(
        !by_account.contains_key(&closed) || by_account[&closed].len() == 2,
        "closed got nothing"
    );
    assert_schema_valid(&log);
    assert_trail_of_completed(&env, &log, &completed_id).await;

    // the transfers read model tells the same story
    let path = format!("/v1/transfers/{completed_id}");
    let done = get_until(&app, &token, &path, |t| t["status"] == "completed").await;
    assert!(done["credited_at"].is_string(), "{done}");
    let path = format!("/v1/transfers/{failed_id}");
    let failed = get_until(&app, &token, &path, |t| t["status"] == "failed").await;
    assert_eq!(failed["reason"], "account_closed", "{failed}");
    let path = format!("/v1/accounts/{a}/transactions");
    let lines = get_until(&app, &token, &path, |page| {
        page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 2 + 2 * refunded)
    })
    .await;
    let items = lines["items"].as_array().expect("items");
    let refunds = items
        .iter()
        .filter(|l| l["kind"] == "transfer_refund")
        .count();
    assert_eq!(refunds, refunded, "{lines}");
    assert!(
        items.iter().skip(1).all(|l| l["transfer_id"].is_string()),
        "{lines}"
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_test_money_is_neither_created_nor_destroyed() {
    const ACCOUNTS: usize = 20;
    const CLIENTS: usize = 8;
    const RUN: Duration = Duration::from_secs(30);
    let env = TestEnv::new().await;
    let app = Arc::new(env.spawn(Roles::ALL).await);
    let token = Arc::new(env.token(Role::Service, "bank"));
    let mut accounts = Vec::new();
    let mut funded = 0;
    for i in 0..ACCOUNTS {
        let id = open(&app, &token, "EUR").await;
        let amount = 1_000 + 100 * i as i64;
        assert_eq!(money(&app, &token, id, "deposits", amount).await, 200);
        funded += amount;
        accounts.push(id);
    }
    let accounts = Arc::new(accounts);
    let net: Arc<Mutex<i64>> = Arc::new(Mutex::new(funded));
    let outcomes: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (app, token, accounts, net, outcomes) = (
            app.clone(),
            token.clone(),
            accounts.clone(),
            net.clone(),
            outcomes.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut n: usize = client;
            while started.elapsed() < RUN {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345) % (1 << 31);
                let from = accounts[n % ACCOUNTS];
                let to = accounts[(n / ACCOUNTS) % ACCOUNTS];
                let amount = 1 + (n % 300) as i64;
                let status = match n % 10 {
                    0 => {
                        let status = money(&app, &token, from, "deposits", amount).await;
                        if status == 200 {
                            *net.lock().await += amount;
                        }
                        status
                    }
                    1 => {
                        let status = money(&app, &token, from, "withdrawals", amount).await;
                        if status == 200 {
                            *net.lock().await -= amount;
                        }
                        status
                    }
                    _ if from == to => continue,
                    _ => transfer(&app, &token, from, to, amount).await.0,
                };
                assert!(
                    matches!(status, 200 | 202 | 409),
                    "unexpected status {status}"
                );
                *outcomes.lock().await.entry(status).or_default() += 1;
            }
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    let log = settled_log(&env).await;
    let by_account = assert_log_invariants(&log);
    let total: i64 = accounts.iter().map(|a| balance(&by_account[a])).sum();
    assert_eq!(
        total,
        *net.lock().await,
        "sum of balances = deposits - withdrawals"
    );
    for account in accounts.iter() {
        assert!(
            balance(&by_account[account]) >= 0,
            "{account} below its limit"
        );
    }
    // the read models agree: every transfer settled, ledger lines add up to each balance
    for account in accounts.iter() {
        let version = by_account[account].len() as i64;
        let path = format!("/v1/accounts/{account}");
        let view = get_until(&app, &token, &path, |a| {
            a["version"].as_i64() == Some(version)
        })
        .await;
        let (sum, lines) = ledger_sum(&app, &token, *account).await;
        assert_eq!(
            view["balance"].as_i64(),
            Some(sum),
            "lines of {account} add up to its balance"
        );
        assert_eq!(sum, balance(&by_account[account]));
        assert!(lines > 0);
    }
    let debits: Vec<String> = log
        .iter()
        .filter(|(_, e)| e.event_type == "TransferDebited")
        .filter_map(|(_, e)| e.data["transfer_id"].as_str().map(str::to_string))
        .collect();
    for transfer_id in &debits {
        let path = format!("/v1/transfers/{transfer_id}");
        get_until(&app, &token, &path, |t| {
            t["status"] == "completed" || t["status"] == "failed"
        })
        .await;
    }
    let outcomes = outcomes.lock().await;
    assert!(
        outcomes.get(&202).copied().unwrap_or(0) > 100,
        "too few transfers: {outcomes:?}"
    );
    tracing::info!(?outcomes, events = log.len(), "bank test traffic");
    app.stop().await.expect("clean stop");
}
