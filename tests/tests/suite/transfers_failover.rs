//! The bank test with the saga and one of two command processors killed with SIGKILL and
//! restarted in the middle: money is neither created nor destroyed, no transfer stays pending,
//! and the read models agree with the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_events::EventEnvelope;
use logbook_tests::checks::assert_log_invariants;
use logbook_tests::{TestEnv, log};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

const ACCOUNTS: usize = 20;
const CLIENTS: usize = 8;
const RUN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_test_survives_killing_the_saga_and_a_processor() {
    let env = TestEnv::new().await;
    let mut processor = env.spawn_child("process", "p1");
    let mut other = env.spawn_child("process", "p2");
    let mut saga = env.spawn_child("saga", "s1");
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).command_timeout = Duration::from_secs(8);
    let roles = Roles {
        http: true,
        projector: true,
        ..Roles::NONE
    };
    let app = Arc::new(env.spawn_with(settings, roles).await);
    let token = Arc::new(env.token(Role::Service, "bank"));

    let mut accounts = Vec::new();
    let mut funded = 0;
    for i in 0..ACCOUNTS {
        let id = Uuid::new_v4();
        let body = json!({"owner_id": "bank", "currency": "EUR", "account_id": id});
        assert_eq!(
            app.post_until_answered(&token, "/v1/accounts", &body)
                .await
                .0,
            201
        );
        let amount = 1_000 + 50 * i as i64;
        let path = format!("/v1/accounts/{id}/deposits");
        assert_eq!(
            app.post_until_answered(&token, &path, &json!({"amount": amount}))
                .await
                .0,
            200
        );
        funded += amount;
        accounts.push(id);
    }
    let accounts = Arc::new(accounts);
    let net = Arc::new(Mutex::new(funded));
    // every definite answer to a deposit or withdrawal: (delta, status, command id, problem)
    let answers = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (app, token, accounts, net, answers) = (
            app.clone(),
            token.clone(),
            accounts.clone(),
            net.clone(),
            answers.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut n: usize = client + 1;
            while started.elapsed() < RUN {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345) % (1 << 31);
                let (from, to) = (accounts[n % ACCOUNTS], accounts[(n / ACCOUNTS) % ACCOUNTS]);
                let amount = 1 + (n % 200) as i64;
                let (path, body, delta) = match n % 10 {
                    0 => (
                        format!("/v1/accounts/{from}/deposits"),
                        json!({"amount": amount}),
                        amount,
                    ),
                    1 => (
                        format!("/v1/accounts/{from}/withdrawals"),
                        json!({"amount": amount}),
                        -amount,
                    ),
                    _ if from == to => continue,
                    _ => (
                        "/v1/transfers".to_string(),
                        json!({"from_account_id": from, "to_account_id": to, "amount": amount}),
                        0,
                    ),
                };
                let (status, answer) = app.post_until_answered(&token, &path, &body).await;
                assert!(matches!(status, 200 | 202 | 409), "{status} {answer}");
                if status == 200 {
                    *net.lock().await += delta;
                }
                if delta != 0 {
                    let command = answer["command_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let problem = answer["type"].as_str().unwrap_or_default().to_string();
                    answers.lock().await.push((delta, status, command, problem));
                }
            }
        }));
    }
    // a third of the way in: SIGKILL the saga and one processor, start replacements
    tokio::time::sleep(RUN / 3).await;
    processor.kill().expect("SIGKILL processor");
    saga.kill().expect("SIGKILL saga");
    let killed_at = Instant::now();
    let _ = (processor.wait(), saga.wait());
    let mut processor = env.spawn_child("process", "p3");
    let mut saga = env.spawn_child("saga", "s2");
    for client in clients {
        client.await.expect("client");
    }
    // the killed processes' open transactions are aborted by the broker after their timeout
    tokio::time::sleep(
        (killed_at + Duration::from_secs(15)).saturating_duration_since(Instant::now()),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let events = loop {
        let kafka = env.kafka.clone();
        let events = tokio::task::spawn_blocking(move || log::events(&kafka))
            .await
            .expect("join");
        let count = |kind: &str| events.iter().filter(|(_, e)| e.event_type == kind).count();
        let debited = count("TransferDebited");
        let settled = debited == count("TransferCredited") + count("TransferRefunded")
            && debited == count("TransferCompleted") + count("TransferRefunded");
        // read_committed readers see the new owners' writes once the killed processes' open
        // transactions are aborted; a real loss never converges and fails below
        let sum: i64 = events
            .iter()
            .filter(|(_, e)| e.data.get("balance_after").is_some())
            .fold(std::collections::HashMap::new(), |mut last, (_, e)| {
                last.insert(
                    e.aggregate_id,
                    e.data["balance_after"].as_i64().unwrap_or(0),
                );
                last
            })
            .values()
            .sum();
        if settled && sum == *net.lock().await {
            break events;
        }
        if Instant::now() >= deadline {
            let explained = explain(&events, &answers.lock().await);
            let net = *net.lock().await;
            panic!(
                "transfers stuck pending or money lost: settled {settled}, sum {sum}, net {net}: {explained}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let by_account = assert_log_invariants(&events);
    let balance = |id: &Uuid| {
        by_account[id]
            .iter()
            .rev()
            .find_map(|e| e.data.get("balance_after").and_then(Value::as_i64))
            .unwrap_or(0)
    };
    let total: i64 = accounts.iter().map(balance).sum();
    assert_eq!(
        total,
        *net.lock().await,
        "sum of balances = deposits - withdrawals"
    );
    assert!(
        accounts.iter().all(|a| balance(a) >= 0),
        "a balance below its limit"
    );
    let transfers = events
        .iter()
        .filter(|(_, e)| e.event_type == "TransferDebited")
        .count();
    assert!(transfers > 50, "too little traffic: {transfers} transfers");

    // the ledger read model agrees with the log for every account
    for account in accounts.iter() {
        let (version, expected) = (by_account[account].len() as i64, balance(account));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = app
                .client
                .get(app.url(&format!("/v1/accounts/{account}")))
                .bearer_auth(token.as_str())
                .send()
                .await;
            let view: Value = response
                .expect("request")
                .json()
                .await
                .unwrap_or(Value::Null);
            if view["version"].as_i64() == Some(version) {
                assert_eq!(view["balance"].as_i64(), Some(expected));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "projection of {account} did not catch up: {view}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for child in [&mut processor, &mut other, &mut saga] {
        let _ = child.kill();
        let _ = child.wait();
    }
    app.stop().await.expect("clean stop");
}

/// Which deposits and withdrawals the clients and the log disagree on: answered 200 but not in
/// the log, or in the log but answered otherwise (by command id).
fn explain(
    events: &[(log::Record, EventEnvelope)],
    answers: &[(i64, u16, String, String)],
) -> String {
    let applied: std::collections::HashSet<String> = events
        .iter()
        .filter(|(_, e)| matches!(e.event_type.as_str(), "FundsDeposited" | "FundsWithdrawn"))
        .map(|(_, e)| e.command_id.to_string())
        .collect();
    let mut out = Vec::new();
    for (delta, status, command, problem) in answers {
        let in_log = applied.contains(command);
        if (*status == 200) != in_log {
            out.push(format!(
                "{command} delta {delta} answered {status} {problem}, in log: {in_log}"
            ));
        }
    }
    format!("{} disagreements: {}", out.len(), out.join("; "))
}
