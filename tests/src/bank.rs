//! A bank workload for the fault tests, and the ledger's invariants checked after it.
//!
//! Clients move money between accounts (deposits, withdrawals, transfers) through the HTTP API
//! and retry every ambiguous answer (a 5xx, a timeout, a refused connection, a key still in
//! flight) with the same Idempotency-Key until a definite one, as a careful client does. They
//! tally what the definite answers say: the money that entered and left the bank. A
//! `command_expired` answer says only that the retry did nothing; whether the first attempt was
//! applied is settled afterwards from the log, as the problem body tells clients to.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use logbook_events::EventEnvelope;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::log::Record;

/// What the definite answers said.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Deposits minus withdrawals answered 200.
    pub net: i64,
    /// Commands answered `command_expired`, with the money they would have moved.
    pub expired: Vec<(Uuid, i64)>,
    /// Definite answers by status.
    pub answers: HashMap<u16, u64>,
    /// Ambiguous answers retried (5xx, timeouts, refused connections).
    pub retries: u64,
}

/// One answer as the timeline records it: seconds since the bank opened, the status (0 for no
/// answer at all) and whether it was definite.
pub type Sample = (f64, u16, bool);

/// Accounts of the bank and the money put in to start with.
#[derive(Debug, Clone)]
pub struct Bank {
    pub base_url: String,
    /// Every gateway's base URL: attempts go to them in turn, as through a load balancer
    /// (`base_url` alone unless [`Bank::through`] names more).
    pub gateways: Vec<String>,
    /// Every answer (definite or not) with its time, for a timeline.
    pub timeline: Arc<std::sync::Mutex<Vec<Sample>>>,
    started: Instant,
    pub token: String,
    pub accounts: Vec<Uuid>,
    pub funded: i64,
    client: reqwest::Client,
}

impl Bank {
    /// Opens `count` accounts and funds them (retrying until the API answers).
    pub async fn open(base_url: &str, token: &str, count: usize) -> Bank {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        let mut bank = Bank {
            base_url: base_url.to_string(),
            gateways: vec![base_url.to_string()],
            timeline: Arc::default(),
            started: Instant::now(),
            token: token.to_string(),
            accounts: Vec::new(),
            funded: 0,
            client,
        };
        for i in 0..count {
            let id = Uuid::new_v4();
            let body = json!({"owner_id": "bank", "currency": "EUR", "account_id": id});
            let (status, answer) = bank.until_definite("/v1/accounts", &body).await;
            assert_eq!(status, 201, "{answer}");
            let amount = 10_000 + 100 * i as i64;
            let path = format!("/v1/accounts/{id}/deposits");
            let (status, answer) = bank.until_definite(&path, &json!({"amount": amount})).await;
            assert_eq!(status, 200, "{answer}");
            bank.funded += amount;
            bank.accounts.push(id);
        }
        bank
    }

    /// The same bank, its requests spread over these gateways.
    pub fn through(mut self, gateways: Vec<String>) -> Bank {
        self.gateways = gateways;
        self
    }

    /// Seconds since the bank was opened (the timeline's clock).
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn record(&self, status: u16, definite: bool) {
        if let Ok(mut timeline) = self.timeline.lock() {
            timeline.push((self.elapsed(), status, definite));
        }
    }

    /// Runs `clients` clients until `stop` is set; returns what their definite answers said.
    pub async fn run(&self, clients: usize, stop: Arc<AtomicBool>) -> Tally {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut tasks = Vec::new();
        for client in 0..clients {
            let (bank, tally, stop) = (self.clone(), tally.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut n: u64 = client as u64 * 7919 + 1;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    bank.one_intent(n >> 16, &tally).await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("client");
        }
        tally.lock().await.clone()
    }

    async fn one_intent(&self, n: u64, tally: &Mutex<Tally>) {
        let count = self.accounts.len() as u64;
        let from = self.accounts[(n % count) as usize];
        let to = self.accounts[((n / count) % count) as usize];
        let amount = 1 + (n % 300) as i64;
        let (path, body, delta) = match n % 10 {
            0 | 1 => (
                format!("/v1/accounts/{from}/deposits"),
                json!({"amount": amount}),
                amount,
            ),
            2 => (
                format!("/v1/accounts/{from}/withdrawals"),
                json!({"amount": amount}),
                -amount,
            ),
            _ if from == to => return,
            _ => (
                "/v1/transfers".to_string(),
                json!({"from_account_id": from, "to_account_id": to, "amount": amount}),
                0,
            ),
        };
        let (status, answer, retries) = self.until_definite_counting(&path, &body).await;
        let mut tally = tally.lock().await;
        tally.retries += retries;
        *tally.answers.entry(status).or_default() += 1;
        match status {
            200 => tally.net += delta,
            409 if answer["type"] == "urn:logbook:problem:command_expired" => {
                let command = answer["command_id"]
                    .as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .expect("an expired command names its id");
                tally.expired.push((command, delta));
            }
            202 | 409 => {}
            other => panic!("unexpected definite answer {other}: {answer}"),
        }
    }

    /// POSTs one intent until it gets a definite answer.
    pub async fn until_definite(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, answer, _) = self.until_definite_counting(path, body).await;
        (status, answer)
    }

    async fn until_definite_counting(&self, path: &str, body: &Value) -> (u16, Value, u64) {
        let key_id = Uuid::new_v4();
        let key = key_id.to_string();
        // a retry goes to the next gateway; intents start on any
        let first = key_id.as_u128() as usize;
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut retries = 0;
        loop {
            let gateway = &self.gateways[(first + retries as usize) % self.gateways.len()];
            let response = self
                .client
                .post(format!("{gateway}{path}"))
                .bearer_auth(&self.token)
                .header("Idempotency-Key", &key)
                .json(body)
                .send()
                .await;
            if let Ok(response) = response {
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let in_flight = answer["type"] == "urn:logbook:problem:idempotency_in_flight";
                let definite = matches!(status, 200 | 201 | 202 | 404 | 409 | 422) && !in_flight;
                self.record(status, definite);
                if definite {
                    return (status, answer, retries);
                }
            } else {
                self.record(0, false);
            }
            retries += 1;
            assert!(
                Instant::now() < deadline,
                "no definite answer for {path} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Checks the ledger after the workload: every invariant of the log, conservation of money
/// over the definite answers (expired commands settled from the log), no balance below zero.
/// Returns the final balance per account.
pub fn check_ledger(
    bank: &Bank,
    tally: &Tally,
    events: &[(Record, EventEnvelope)],
) -> HashMap<Uuid, i64> {
    let by_account = crate::checks::assert_log_invariants(events);
    let applied: std::collections::HashSet<Uuid> =
        events.iter().map(|(_, e)| e.command_id).collect();
    let settled_expired: i64 = tally
        .expired
        .iter()
        .filter(|(command, _)| applied.contains(command))
        .map(|(_, delta)| delta)
        .sum();
    let balances: HashMap<Uuid, i64> = bank
        .accounts
        .iter()
        .map(|account| {
            let balance = by_account
                .get(account)
                .and_then(|history| {
                    history
                        .iter()
                        .rev()
                        .find_map(|e| e.data.get("balance_after").and_then(Value::as_i64))
                })
                .unwrap_or(0);
            (*account, balance)
        })
        .collect();
    let total: i64 = balances.values().sum();
    assert_eq!(
        total,
        bank.funded + tally.net + settled_expired,
        "money conserved over the definite answers ({tally:?})"
    );
    assert!(
        balances.values().all(|b| *b >= 0),
        "a balance below zero: {balances:?}"
    );
    balances
}
