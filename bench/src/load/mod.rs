//! The open-loop load generator.
//!
//! Request `i` is due at `start + i / rate`, whatever happened to earlier requests; a pool of
//! `clients` workers takes the next due request, waits for its time and sends it. Latency is
//! measured from the due time, so a server (or a generator) that falls behind shows up in the
//! figures instead of silently lowering the offered load (no coordinated omission). The time
//! on the wire alone is reported beside it as the service time.
//!
//! - `args`: options and the operation mix; `client`: the HTTP calls;
//! - `collect`: histograms and timeline; `setup`: accounts and server counters.

pub mod args;
mod client;
mod collect;
mod setup;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::time::Instant;
use uuid::Uuid;

use self::args::{LoadArgs, Op};
use self::client::{Api, ClientError};
use self::collect::{Collector, Measured, Report};
use self::setup::{ServerCounters, Setup};
use crate::procstat::{Sampler, Watched};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Token {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("client: {0}")]
    Client(#[from] ClientError),
    #[error("a rate above zero and at least one client and one account are needed")]
    Settings,
    #[error("cannot write the result: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot encode the result: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The JSON result of one load run.
#[derive(Debug, Serialize)]
struct LoadResult {
    label: String,
    url: String,
    rate: f64,
    clients: usize,
    mix: String,
    warmup_seconds: u64,
    setup: Setup,
    server: Option<ServerCounters>,
    #[serde(flatten)]
    measured: Measured,
}

/// What every worker shares.
#[derive(Debug)]
struct Plan {
    api: Api,
    accounts: Vec<Uuid>,
    mix: args::Mix,
    start: Instant,
    rate: f64,
    total: u64,
    next: AtomicU64,
    freshness_every: u64,
}

fn read_secret(path: &std::path::Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| LoadError::Token {
            path: path.to_owned(),
            source,
        })
}

/// Runs the load described by `args` and writes the result to `args.out`.
pub async fn run(args: LoadArgs) -> Result<(), LoadError> {
    if args.rate <= 0.0 || args.clients == 0 || args.accounts < 2 {
        return Err(LoadError::Settings);
    }
    let api = Api::new(&args.url, &read_secret(&args.token_file)?, args.clients)?;
    let admin = args
        .admin_token_file
        .as_deref()
        .map(read_secret)
        .transpose()?;
    tracing::info!(accounts = args.accounts, "opening and funding accounts");
    let (accounts, setup) = setup::open_accounts(&api, args.accounts, 64).await?;
    tracing::info!(seconds = setup.seconds, "accounts ready; load starts");
    let before = api.metrics().await.ok().map(|t| ServerCounters::parse(&t));
    let seconds = args.warmup + args.duration;
    let plan = Arc::new(Plan {
        api: api.clone(),
        accounts,
        mix: args.mix.clone(),
        start: Instant::now() + Duration::from_millis(100),
        rate: args.rate,
        total: (args.rate * seconds as f64) as u64,
        next: AtomicU64::new(0),
        freshness_every: args.freshness_every.max(1),
    });
    let (reports, mut inbox) = unbounded_channel();
    let collector = tokio::spawn(async move {
        let mut collector = Collector::new(args.warmup as f64, args.duration as f64);
        while let Some(report) = inbox.recv().await {
            collector.add(report);
        }
        collector.finish()
    });
    let done = Arc::new(AtomicBool::new(false));
    let mut watched = args.procs.clone();
    watched.push(Watched {
        name: "generator".to_owned(),
        pid: std::process::id(),
    });
    let sampler = tokio::spawn(sample(
        plan.clone(),
        admin,
        watched,
        reports.clone(),
        done.clone(),
    ));
    let workers: Vec<_> = (0..args.clients)
        .map(|_| tokio::spawn(work(plan.clone(), reports.clone())))
        .collect();
    drop(reports);
    for worker in workers {
        let _ = worker.await;
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let measured = collector.await.map_err(std::io::Error::other)?;
    let after = api.metrics().await.ok().map(|t| ServerCounters::parse(&t));
    let result = LoadResult {
        label: args.label,
        url: args.url,
        rate: args.rate,
        clients: args.clients,
        mix: args.mix.describe(),
        warmup_seconds: args.warmup,
        setup,
        server: before.zip(after).map(|(b, a)| a.since(&b)),
        measured,
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&result)?)?;
    tracing::info!(out = %args.out.display(), ok_per_s = result.measured.throughput_ok_per_s,
        p99_ms = result.measured.latency.p99_ms, "load run written");
    Ok(())
}

/// SplitMix64: a well-spread number for request `i` (op, accounts, amount).
fn spread(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn work(plan: Arc<Plan>, reports: UnboundedSender<Report>) {
    let n = plan.accounts.len() as u64;
    loop {
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.total {
            return;
        }
        let due = plan.start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(due).await;
        let draw = spread(i);
        let op = plan.mix.pick(draw);
        let from = (draw >> 16) % n;
        let to = (from + 1 + (draw >> 40) % (n - 1)) % n;
        let (account, other) = (plan.accounts[from as usize], plan.accounts[to as usize]);
        let amount = 1 + ((draw >> 8) % 100) as i64;
        let sent = Instant::now();
        let answer = plan.api.command(op, account, other, amount, i).await;
        let answered = Instant::now();
        let status = answer.as_ref().map_or(0, |a| a.status);
        let _ = reports.send(Report::Command {
            due_s: due.duration_since(plan.start).as_secs_f64(),
            at_s: answered.duration_since(plan.start).as_secs_f64(),
            latency_us: answered.duration_since(due).as_micros() as u64,
            service_us: answered.duration_since(sent).as_micros() as u64,
            op,
            status,
        });
        let Ok(answer) = answer else { continue };
        if !i.is_multiple_of(plan.freshness_every) {
            continue;
        }
        if op != Op::Transfer && status == 200 {
            tokio::spawn(freshness(
                plan.clone(),
                reports.clone(),
                account,
                answer.position,
                answered,
            ));
        } else if let (202, Some(transfer)) = (status, answer.transfer_id) {
            tokio::spawn(settle(plan.clone(), reports.clone(), transfer, answered));
        }
    }
}

/// How often a pending transfer is read again, and how long it may stay pending.
const SETTLE_POLL: Duration = Duration::from_millis(10);
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// Reads a transfer answered 202 (debit done, credit pending) until it is completed or
/// failed; reports the time since the answer (to within `SETTLE_POLL`).
async fn settle(
    plan: Arc<Plan>,
    reports: UnboundedSender<Report>,
    transfer: Uuid,
    answered: Instant,
) {
    let settled = loop {
        let read = plan.api.transfer_status(transfer).await;
        if let Ok((200, Some(status))) = &read
            && status != "pending"
        {
            break true;
        }
        if answered.elapsed() > SETTLE_LIMIT {
            break false;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    };
    let now = Instant::now();
    let _ = reports.send(Report::Settled {
        at_s: now.duration_since(plan.start).as_secs_f64(),
        micros: now.duration_since(answered).as_micros() as u64,
        settled,
    });
}

/// Reads the account with the command's position; reports the time since the answer.
async fn freshness(
    plan: Arc<Plan>,
    reports: UnboundedSender<Report>,
    account: Uuid,
    position: Option<String>,
    answered: Instant,
) {
    let status = plan.api.read_account(account, position.as_deref()).await;
    let now = Instant::now();
    let _ = reports.send(Report::Fresh {
        at_s: now.duration_since(plan.start).as_secs_f64(),
        micros: now.duration_since(answered).as_micros() as u64,
        status: status.unwrap_or(0),
    });
}

/// Once a second until `done`: projector lag (with an admin token) and process usage.
async fn sample(
    plan: Arc<Plan>,
    admin: Option<String>,
    watched: Vec<Watched>,
    reports: UnboundedSender<Report>,
    done: Arc<AtomicBool>,
) {
    let mut sampler = Sampler::new(watched);
    let mut tick = tokio::time::interval_at(plan.start, Duration::from_secs(1));
    while !done.load(Ordering::Relaxed) {
        tick.tick().await;
        let usage = sampler.sample();
        let lag = match &admin {
            Some(token) => plan.api.projector_lag(token).await.ok(),
            None => None,
        };
        let at_s = Instant::now().duration_since(plan.start).as_secs_f64() - 0.5;
        let _ = reports.send(Report::Tick { at_s, lag, usage });
    }
}
