//! Chaos under load (issue 20): a three-node Kafka cluster of the test's own, two instances of
//! every role as OS processes, a bank workload whose clients retry every ambiguous answer with
//! the same key through either gateway, and a nemesis that in turn kills the broker leading most
//! events partitions (and brings it back), pauses the broker coordinating a processor's
//! transactions, restarts PostgreSQL, and kills and pauses role instances. Afterwards: money
//! conserved over the definite answers, nothing applied twice, gapless sequences and intact
//! chains, every transfer settled, `logbook verify` intact, read models equal to a fresh fold.
//!
//! The fault stage runs one round of the nemesis. `scripts/dev chaos` runs more
//! (`LOGBOOK_CHAOS_ROUNDS`) and writes the timeline (`LOGBOOK_CHAOS_OUT`), which it plots.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logbook_api::auth::Role;
use logbook_events::{AccountEvent, EventEnvelope, KafkaSettings};
use logbook_tests::TestEnv;
use logbook_tests::bank::{Bank, check_ledger};
use logbook_tests::child::{free_port, wait_live};
use logbook_tests::read::models::{assert_equal_to_fresh_fold, wait_caught_up};
use logbook_tests::services::{PrivateServices, signal};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use uuid::Uuid;

use crate::faults::{CATCH_UP, Child, settled, verify};

/// The leader of each partition of `topic` (broker id = node id), by partition.
fn leaders(kafka: &KafkaSettings, topic: &str) -> HashMap<i32, i32> {
    let consumer: BaseConsumer = kafka.client_config().create().expect("metadata client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(20))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| (p.id(), p.leader())))
        .collect()
}

/// The node leading most partitions of `topic`.
fn busiest_leader(kafka: &KafkaSettings, topic: &str) -> i32 {
    let mut count: HashMap<i32, usize> = HashMap::new();
    for leader in leaders(kafka, topic).into_values() {
        *count.entry(leader).or_default() += 1;
    }
    count
        .into_iter()
        .max_by_key(|(node, n)| (*n, -node))
        .map(|(node, _)| node)
        .expect("a leader")
}

/// The node coordinating the transactions of `transactional_id`: the leader of its partition of
/// `__transaction_state` (Java's `abs(hashCode) % partitions`, 12 partitions on the cluster).
fn coordinator(kafka: &KafkaSettings, transactional_id: &str) -> i32 {
    let hash = transactional_id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let partition = if hash == i32::MIN { 0 } else { hash.abs() } % 12;
    leaders(kafka, "__transaction_state")[&partition]
}

/// The transactional id a role's child process logged (JSON logs).
fn transactional_id(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            // the JSON log puts an event's fields beside its message
            let field = &v["transactional_id"];
            field.as_str().map(|id| id.trim_matches('"').to_owned())
        })
        .find(|id| id.contains("processors"))
}

/// Every debited transfer was either credited and completed, or refunded.
fn assert_transfers_settled(events: &[(logbook_tests::log::Record, EventEnvelope)]) {
    let mut open: HashMap<Uuid, i64> = HashMap::new();
    for (_, envelope) in events {
        match envelope.decode_account() {
            Ok(AccountEvent::TransferDebited { transfer_id, .. }) => {
                *open.entry(transfer_id).or_default() += 1;
            }
            Ok(AccountEvent::TransferCompleted { transfer_id, .. })
            | Ok(AccountEvent::TransferRefunded { transfer_id, .. }) => {
                *open.entry(transfer_id).or_default() -= 1;
            }
            _ => {}
        }
    }
    let unsettled: Vec<_> = open.iter().filter(|(_, n)| **n != 0).collect();
    assert!(unsettled.is_empty(), "transfers not settled: {unsettled:?}");
}

/// The roles of the run: two of each, as processes.
struct Roles {
    gateways: Vec<Child>,
    processors: Vec<Child>,
    sagas: Vec<Child>,
    projectors: Vec<Child>,
}

impl Roles {
    fn start(env: &TestEnv, ports: &[u16]) -> Roles {
        let gateways = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let vars = [
                    ("LOGBOOK_HTTP_ADDR", format!("127.0.0.1:{port}")),
                    ("LOGBOOK_COMMAND_TIMEOUT_MS", "8000".to_string()),
                    ("LOGBOOK_RATE_LIMIT_PER_SECOND", "0".to_string()),
                ];
                Child::start(env, "serve", &format!("chaos-serve-{i}"), &vars)
            })
            .collect();
        let two = |role: &'static str| {
            (0..2)
                .map(|i| Child::start(env, role, &format!("chaos-{role}-{i}"), &[]))
                .collect::<Vec<_>>()
        };
        Roles {
            gateways,
            processors: two("process"),
            sagas: two("saga"),
            projectors: two("project"),
        }
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Child> {
        self.gateways
            .iter_mut()
            .chain(self.processors.iter_mut())
            .chain(self.sagas.iter_mut())
            .chain(self.projectors.iter_mut())
    }
}

/// Pauses a process with SIGSTOP for `seconds`, then resumes it.
async fn pause(pid: i32, seconds: u64) {
    signal("STOP", pid);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    signal("CONT", pid);
}

/// One round of the nemesis; each fault is marked on the timeline.
async fn nemesis_round(
    services: &Arc<PrivateServices>,
    env: &TestEnv,
    roles: &mut Roles,
    bank: &Bank,
    faults: &mut Vec<(f64, String)>,
) {
    let mut mark = |what: String| {
        eprintln!("chaos {:.1}s: {what}", bank.elapsed());
        faults.push((bank.elapsed(), what));
    };
    let wait = |s| tokio::time::sleep(Duration::from_secs(s));
    wait(5).await;
    let kafka = env.kafka.clone();
    let events_topic = kafka.topics().events;
    let leader = tokio::task::spawn_blocking(move || busiest_leader(&kafka, &events_topic))
        .await
        .expect("join");
    mark(format!(
        "SIGKILL broker {leader} (leads most events partitions)"
    ));
    let node = services.clone();
    tokio::task::spawn_blocking(move || node.kill_node(leader))
        .await
        .expect("join");
    wait(8).await;
    mark(format!("broker {leader} started again"));
    let node = services.clone();
    tokio::task::spawn_blocking(move || node.start_again())
        .await
        .expect("join");
    wait(5).await;

    let log = env.child_log(&roles.processors[0].current_name());
    let kafka = env.kafka.clone();
    let coordinating = tokio::task::spawn_blocking(move || {
        transactional_id(&log).map(|id| coordinator(&kafka, &id))
    })
    .await
    .expect("join");
    assert!(
        coordinating.is_some(),
        "the processor's transactional id was not logged"
    );
    if let Some(node) = coordinating {
        mark(format!(
            "SIGSTOP broker {node} (coordinates a processor's transactions) for 10 s"
        ));
        pause(services.node_pid(node), 10).await;
        mark(format!("broker {node} resumed"));
    }
    wait(5).await;

    mark("PostgreSQL restarted".into());
    let pg = services.clone();
    tokio::task::spawn_blocking(move || pg.restart_postgres())
        .await
        .expect("join");
    wait(4).await;

    mark("SIGKILL processor 0 (replaced)".into());
    roles.processors[0].kill_and_replace(env);
    wait(4).await;
    mark("SIGSTOP processor 1 for 8 s".into());
    pause(roles.processors[1].pid(), 8).await;
    wait(3).await;
    mark("SIGKILL gateway 0 and projector 0 (replaced)".into());
    roles.gateways[0].kill_and_replace(env);
    roles.projectors[0].kill_and_replace(env);
    wait(4).await;
    mark("SIGSTOP saga 0 for 8 s".into());
    pause(roles.sagas[0].pid(), 8).await;
    wait(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test: run by the fault stage of scripts/dev test"]
async fn a_cluster_under_load_and_a_nemesis_keeps_every_invariant() {
    let services = Arc::new(
        tokio::task::spawn_blocking(|| PrivateServices::start_cluster("chaos"))
            .await
            .expect("join"),
    );
    let env = TestEnv::on(services.vars(), 6).await;
    let ports = [free_port(), free_port()];
    let mut roles = Roles::start(&env, &ports);
    let urls: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    for url in &urls {
        wait_live(url).await;
    }
    let token = env.token(Role::Service, "bank");
    let bank = Bank::open(&urls[0], &token, 16).await.through(urls.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (bank, stop) = (bank.clone(), stop.clone());
        tokio::spawn(async move { bank.run(8, stop).await })
    };
    let rounds: u32 = std::env::var("LOGBOOK_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut faults = Vec::new();
    for _ in 0..rounds {
        nemesis_round(&services, &env, &mut roles, &bank, &mut faults).await;
    }
    stop.store(true, Ordering::Relaxed);
    let tally = load.await.expect("clients");
    if let Ok(out) = std::env::var("LOGBOOK_CHAOS_OUT") {
        let timeline = bank.timeline.lock().expect("timeline").clone();
        let report = json!({
            "rounds": rounds, "partitions": env.partitions, "brokers": 3,
            "instances_per_role": 2, "clients": 8, "accounts": bank.accounts.len(),
            "answers": tally.answers, "retries": tally.retries, "expired": tally.expired.len(),
            "faults": faults, "timeline": timeline,
        });
        std::fs::write(&out, serde_json::to_vec_pretty(&report).expect("json")).expect("write");
    }
    assert!(
        tally.answers.values().sum::<u64>() > 100,
        "too little traffic: {tally:?}"
    );
    for child in roles.all() {
        assert!(
            child.is_running(),
            "{} exited by itself",
            child.current_name()
        );
    }

    let events = settled(&env).await;
    check_ledger(&bank, &tally, &events);
    assert_transfers_settled(&events);
    for projection in ["ledger", "archive"] {
        wait_caught_up(&env.db, &env.kafka, env.partitions, projection, CATCH_UP).await;
    }
    assert_equal_to_fresh_fold(&env).await;
    verify(&env).await;
    eprintln!("chaos: {} faults, invariants held; {tally:?}", faults.len());
    drop(roles);
}
