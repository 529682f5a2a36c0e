//! The read models a fresh fold of the log gives, the read models as stored, and the checks
//! that compare them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use logbook_commands::domain::{Account, apply};
use logbook_events::{AccountEvent, EventEnvelope, KafkaSettings};
use sqlx::PgPool;
use uuid::Uuid;

use super::generator::balance_after;
use super::kafka::{committed_log, log_ends};
use crate::TestEnv;
use crate::log::Record;

/// An account as a read model holds it: owner, currency, balance, overdraft, status, version.
pub type AccountState = (String, String, i64, i64, String, i64);

/// The read models reduced to what a fold must reproduce.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Models {
    pub accounts: BTreeMap<Uuid, AccountState>,
    /// Ledger lines per account: (count, sum of signed amounts).
    pub lines: BTreeMap<Uuid, (i64, i64)>,
    pub transfers: BTreeMap<Uuid, String>,
}

/// The read models a fresh fold of `log` gives, counting only events below `cutoff[partition]`
/// when a cutoff is given (the ledger's stored offsets).
pub fn expected(log: &[(Record, EventEnvelope)], cutoff: Option<&HashMap<i32, i64>>) -> Models {
    let mut accounts: BTreeMap<Uuid, Account> = BTreeMap::new();
    let mut models = Models::default();
    let mut legs: BTreeMap<Uuid, (bool, bool)> = BTreeMap::new();
    for (record, envelope) in log {
        if cutoff.is_some_and(|c| record.offset >= c.get(&record.partition).copied().unwrap_or(0)) {
            continue;
        }
        let event = envelope.decode_account().expect("account event");
        let account = accounts
            .entry(envelope.aggregate_id)
            .or_insert_with(|| Account::new(envelope.aggregate_id));
        let before = account.balance();
        apply(account, &event);
        if let Some(line) = money_line(&event, before, account.balance()) {
            let entry = models.lines.entry(envelope.aggregate_id).or_default();
            *entry = (entry.0 + 1, entry.1 + line);
        }
        match &event {
            AccountEvent::TransferDebited { transfer_id, .. } => {
                legs.entry(*transfer_id).or_default();
            }
            AccountEvent::TransferCredited { transfer_id, .. } => {
                legs.entry(*transfer_id).or_default().0 = true
            }
            AccountEvent::TransferRefunded { transfer_id, .. } => {
                legs.entry(*transfer_id).or_default().1 = true
            }
            _ => {}
        }
    }
    for (id, account) in accounts {
        let status = account.status().map_or("none", |s| s.as_str()).to_owned();
        let currency = account
            .currency()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let owner = account.owner_id().unwrap_or_default().to_owned();
        let state = (
            owner,
            currency,
            account.balance(),
            account.overdraft_limit(),
            status,
            account.version() as i64,
        );
        models.accounts.insert(id, state);
    }
    for (id, (credited, refunded)) in legs {
        let status = if refunded {
            "failed"
        } else if credited {
            "completed"
        } else {
            "pending"
        };
        models.transfers.insert(id, status.to_owned());
    }
    models
}

fn money_line(event: &AccountEvent, before: i64, after: i64) -> Option<i64> {
    balance_after(event).map(|_| after - before)
}

/// The read models as stored.
pub async fn stored(db: &PgPool) -> Models {
    let accounts: Vec<(Uuid, String, String, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT account_id, owner_id, currency, balance, overdraft_limit, status, version FROM accounts",
    )
    .fetch_all(db)
    .await
    .expect("accounts");
    let lines: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT account_id, count(*), sum(amount)::int8 FROM account_transactions GROUP BY account_id",
    )
    .fetch_all(db)
    .await
    .expect("lines");
    let transfers: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT transfer_id, status FROM transfers")
            .fetch_all(db)
            .await
            .expect("transfers");
    Models {
        accounts: accounts
            .into_iter()
            .map(|(id, o, c, b, l, s, v)| (id, (o, c, b, l, s, v)))
            .collect(),
        lines: lines
            .into_iter()
            .map(|(id, n, sum)| (id, (n, sum)))
            .collect(),
        transfers: transfers.into_iter().collect(),
    }
}

/// Stored next offsets of a projection.
pub async fn offsets(db: &PgPool, projection: &str) -> HashMap<i32, i64> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projection_offsets WHERE projection = $1",
    )
    .bind(projection)
    .fetch_all(db)
    .await
    .expect("offsets");
    rows.into_iter().collect()
}

/// Waits until `projection`'s stored offsets equal the log end of every non-empty partition;
/// returns them. Panics after `timeout`. The ends are read again on every look: they are the
/// last stable offsets (read_committed), which move on once the commit markers of a transaction
/// that has just committed are written, a moment after its commit returned.
pub async fn wait_caught_up(
    db: &PgPool,
    kafka: &KafkaSettings,
    partitions: i32,
    projection: &str,
    timeout: Duration,
) -> HashMap<i32, i64> {
    let started = Instant::now();
    loop {
        let settings = kafka.clone();
        let ends = tokio::task::spawn_blocking(move || log_ends(&settings, partitions))
            .await
            .expect("join");
        let stored = offsets(db, projection).await;
        let done = ends
            .iter()
            .all(|(p, end)| *end == 0 || stored.get(p) == Some(end));
        if done {
            return stored;
        }
        assert!(
            started.elapsed() < timeout,
            "{projection} not caught up: stored {stored:?}, log ends {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Read models equal to a fresh fold of the whole log, archive complete, offsets at the log end.
pub async fn assert_equal_to_fresh_fold(env: &TestEnv) {
    let log = committed_log(&env.kafka).await;
    let models = stored(&env.db).await;
    let fold = expected(&log, None);
    assert_eq!(
        models.accounts, fold.accounts,
        "accounts differ from a fresh fold"
    );
    assert_eq!(
        models.lines, fold.lines,
        "ledger lines differ from a fresh fold"
    );
    assert_eq!(
        models.transfers, fold.transfers,
        "transfers differ from a fresh fold"
    );
    for (id, (_, _, balance, ..)) in &models.accounts {
        assert_eq!(
            models.lines.get(id).map_or(0, |l| l.1),
            *balance,
            "lines of {id} do not sum to its balance"
        );
    }
    let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM event_archive")
        .fetch_one(&env.db)
        .await
        .expect("count");
    assert_eq!(
        archived,
        log.len() as i64,
        "archive incomplete or duplicated"
    );
    let kafka = env.kafka.clone();
    let partitions = env.partitions;
    let ends = tokio::task::spawn_blocking(move || log_ends(&kafka, partitions))
        .await
        .expect("join");
    for projection in ["ledger", "archive"] {
        let stored = offsets(&env.db, projection).await;
        for (partition, end) in &ends {
            assert_eq!(
                stored.get(partition).copied().unwrap_or(0),
                *end,
                "{projection} p{partition} not at the log end"
            );
        }
    }
}

/// After a kill: the ledger equals the fold of exactly the events below its stored offsets,
/// and the archive holds exactly the records below its own.
pub async fn assert_prefix_consistent(env: &TestEnv) {
    let cutoff = offsets(&env.db, "ledger").await;
    let log = committed_log(&env.kafka).await;
    let models = stored(&env.db).await;
    let fold = expected(&log, Some(&cutoff));
    assert_eq!(
        models.accounts, fold.accounts,
        "accounts differ from the fold up to {cutoff:?}"
    );
    assert_eq!(
        models.lines, fold.lines,
        "lines differ from the fold up to {cutoff:?}"
    );
    let archive_cutoff = offsets(&env.db, "archive").await;
    let below = log
        .iter()
        .filter(|(r, _)| r.offset < archive_cutoff.get(&r.partition).copied().unwrap_or(0))
        .count();
    let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM event_archive")
        .fetch_one(&env.db)
        .await
        .expect("count");
    assert_eq!(
        archived, below as i64,
        "archive differs from the log up to {archive_cutoff:?}"
    );
}
