//! The security audit trail: authentication failures, permission denials, rate-limit
//! rejections and admin actions, with who, what, when and from where.
//!
//! Where it lives: the `security_audit` table in PostgreSQL (append-only by trigger). These
//! records are born at the HTTP edge, not in the domain: they belong to no account, so they
//! stay out of the events topic and its per-account hash chains, and the HTTP role already
//! holds a PostgreSQL pool. [`observe`] sees every `/v1` answer and hands the interesting ones
//! to [`SecurityTrail`], a bounded queue that one writer task drains in batches (one INSERT
//! per batch), so a flood of bad requests costs the database one statement per batch, never
//! one per request. The log line on the `logbook::security` target is written as well.
//! Trade-off: a crash loses what was queued and not yet written (at most one batch, a few
//! milliseconds), and a full queue drops records (counted in
//! `logbook_security_audit_dropped_total`) rather than slowing the API down.
//!
//! Bounded under attack: unauthenticated denials (no valid token: 401, and 429 before
//! authentication) are aggregated per source, kind and minute into one row with a `count`
//! ([`Aggregator`], at most [`MAX_SOURCES`] sources a minute; the rest share one row), and
//! stored paths are cut to [`MAX_PATH_CHARS`]. Over time: `logbook prune-security-audit` removes
//! rows past the retention age, the one deletion the table's trigger allows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::auth::Authentication;

/// Records queued before new ones are dropped.
const QUEUE: usize = 10_000;
/// Most records per INSERT.
const BATCH: usize = 500;
/// Longest path stored.
pub const MAX_PATH_CHARS: usize = 200;
/// Most sources aggregated apart per minute.
pub const MAX_SOURCES: usize = 10_000;
/// How often aggregated rows of past minutes are written.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AuthenticationFailed,
    PermissionDenied,
    RateLimited,
    AdminAction,
}

impl Kind {
    /// Every kind, in the order the trail's readers list them.
    pub const ALL: [Kind; 4] = [
        Kind::AuthenticationFailed,
        Kind::PermissionDenied,
        Kind::RateLimited,
        Kind::AdminAction,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::AuthenticationFailed => "authentication_failed",
            Kind::PermissionDenied => "permission_denied",
            Kind::RateLimited => "rate_limited",
            Kind::AdminAction => "admin_action",
        }
    }

    /// What an answer to `method path` with `status` is worth recording as, if anything.
    pub fn of(method: &Method, path: &str, status: StatusCode) -> Option<Kind> {
        match status {
            StatusCode::UNAUTHORIZED => Some(Kind::AuthenticationFailed),
            StatusCode::FORBIDDEN => Some(Kind::PermissionDenied),
            StatusCode::TOO_MANY_REQUESTS => Some(Kind::RateLimited),
            s if s.is_success() && is_admin_path(path) && method != Method::GET => {
                Some(Kind::AdminAction)
            }
            _ => None,
        }
    }
}

/// Paths whose successful changes are admin actions: `/v1/admin/…` and owner erasures.
fn is_admin_path(path: &str) -> bool {
    path.starts_with("/v1/admin/")
        || (path.starts_with("/v1/owners/") && path.ends_with("/erasure"))
}

/// One entry of the trail.
#[derive(Debug, Clone)]
pub struct Record {
    pub occurred_at: DateTime<Utc>,
    pub kind: Kind,
    pub sub: Option<String>,
    pub role: Option<String>,
    pub client_ip: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub detail: Option<String>,
    /// How many requests the row stands for (aggregated denials).
    pub count: u32,
}

/// Unauthenticated denials per source, kind, status, reason and minute: the first is written at
/// once (auditors see an attack start without delay), the rest of that minute as one more row
/// with their `count` when the minute is over.
#[derive(Debug, Default)]
pub struct Aggregator {
    open: HashMap<AggregateKey, Record>,
}

type AggregateKey = (i64, String, &'static str, u16, Option<String>);

impl Aggregator {
    /// Takes a record: the first of its kind this minute (or anything that is not an
    /// unauthenticated denial) is given back to be written now; the others are counted.
    pub fn add(&mut self, record: Record) -> Option<Record> {
        if record.sub.is_some() || record.kind == Kind::AdminAction {
            return Some(record);
        }
        let minute = record.occurred_at.timestamp().div_euclid(60);
        let mut source = record.client_ip.clone().unwrap_or_else(|| "-".into());
        let key = |source: String| {
            let reason = record.detail.clone();
            (minute, source, record.kind.as_str(), record.status, reason)
        };
        if !self.open.contains_key(&key(source.clone()))
            && self.open.keys().filter(|k| k.0 == minute).count() >= MAX_SOURCES
        {
            source = "other sources".into();
        }
        let key = key(source.clone());
        if let Some(held) = self.open.get_mut(&key) {
            held.count = held.count.saturating_add(1);
            return None;
        }
        let mut rest = record.clone();
        rest.count = 0;
        rest.occurred_at = DateTime::from_timestamp(minute * 60, 0).unwrap_or(record.occurred_at);
        if source == "other sources" {
            rest.client_ip = None;
        }
        self.open.insert(key, rest);
        Some(record)
    }

    /// The rows of the minutes before `now` (all of them when `all`): one per key that had
    /// more than its first request.
    pub fn finished(&mut self, now: DateTime<Utc>, all: bool) -> Vec<Record> {
        let minute = now.timestamp().div_euclid(60);
        let done: Vec<_> = self
            .open
            .keys()
            .filter(|k| all || k.0 < minute)
            .cloned()
            .collect();
        done.into_iter()
            .filter_map(|key| self.open.remove(&key))
            .filter(|record| record.count > 0)
            .map(|mut record| {
                let detail = record.detail.take().unwrap_or_default();
                record.detail = Some(format!("{} more this minute; {detail}", record.count));
                record
            })
            .collect()
    }
}

/// The queue in front of the writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecurityTrail {
    queue: mpsc::Sender<Record>,
}

impl SecurityTrail {
    /// The recorder and its writer task.
    pub fn start(pool: PgPool) -> (Self, Writer) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = oneshot::channel();
        let writer = Writer {
            stop,
            task: tokio::spawn(write(pool, rx, stopped)),
        };
        (Self { queue }, writer)
    }

    pub fn record(&self, record: Record) {
        tracing::info!(
            target: "logbook::security",
            kind = record.kind.as_str(),
            sub = record.sub.as_deref().unwrap_or("-"),
            ip = record.client_ip.as_deref().unwrap_or("-"),
            method = %record.method,
            path = %record.path,
            status = record.status,
            detail = record.detail.as_deref().unwrap_or(""),
            "security event"
        );
        if self.queue.try_send(record).is_err() {
            metrics::counter!("logbook_security_audit_dropped_total").increment(1);
        }
    }
}

/// The task that writes the queue to PostgreSQL.
#[derive(Debug)]
pub struct Writer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Writer {
    /// Writes what is queued, then stops (waiting at most `bound`).
    pub async fn finish(self, bound: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(bound, self.task).await.is_err() {
            tracing::warn!("security audit records still queued at shutdown were not written");
        }
    }
}

/// Middleware on `/v1` (inside [`crate::auth::authenticate`]): records authentication failures,
/// denials, rate limits and admin actions.
pub async fn observe(
    State(audit): State<Option<SecurityTrail>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(audit) = audit else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let (sub, role, detail) = match Authentication::of(request.extensions()) {
        Ok(p) => (Some(p.sub.clone()), Some(p.role.as_str().to_string()), None),
        Err(why) => (None, None, Some(why.to_string())),
    };
    let response = next.run(request).await;
    let status = response.status();
    let Some(kind) = Kind::of(&method, &path, status) else {
        return response;
    };
    audit.record(Record {
        occurred_at: Utc::now(),
        kind,
        sub,
        role,
        client_ip,
        method: method.to_string(),
        path: path.chars().take(MAX_PATH_CHARS).collect(),
        status: status.as_u16(),
        detail,
        count: 1,
    });
    response
}

async fn write(pool: PgPool, mut rx: mpsc::Receiver<Record>, mut stop: oneshot::Receiver<()>) {
    let mut received = Vec::with_capacity(BATCH);
    let mut aggregator = Aggregator::default();
    let mut ticks = tokio::time::interval(FLUSH_EVERY);
    loop {
        let stopping = tokio::select! {
            count = rx.recv_many(&mut received, BATCH) => count == 0,
            _ = ticks.tick() => false,
            _ = &mut stop => true,
        };
        if stopping {
            while let Ok(record) = rx.try_recv() {
                received.push(record);
            }
        }
        let mut batch: Vec<Record> = received
            .drain(..)
            .filter_map(|record| aggregator.add(record))
            .collect();
        batch.extend(aggregator.finished(Utc::now(), stopping));
        for chunk in batch.chunks(BATCH) {
            insert_with_retries(&pool, chunk).await;
        }
        if stopping {
            return;
        }
    }
}

async fn insert_with_retries(pool: &PgPool, batch: &[Record]) {
    let mut attempt = 0;
    while let Err(error) = insert(pool, batch).await {
        attempt += 1;
        if attempt == 5 {
            tracing::error!(%error, lost = batch.len(), "security audit records not written");
            metrics::counter!("logbook_security_audit_dropped_total").increment(batch.len() as u64);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
}

async fn insert(pool: &PgPool, batch: &[Record]) -> Result<(), sqlx::Error> {
    let column = |f: fn(&Record) -> Option<String>| batch.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO security_audit \
         (occurred_at, kind, sub, role, client_ip, method, path, status, detail, count) \
         SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::text[], $8::int2[], $9::text[], $10::int4[])",
    )
    .bind(batch.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
    .bind(column(|r| Some(r.kind.as_str().to_string())))
    .bind(column(|r| r.sub.clone()))
    .bind(column(|r| r.role.clone()))
    .bind(column(|r| r.client_ip.clone()))
    .bind(column(|r| Some(r.method.clone())))
    .bind(column(|r| Some(r.path.clone())))
    .bind(batch.iter().map(|r| r.status as i16).collect::<Vec<_>>())
    .bind(column(|r| r.detail.clone()))
    .bind(batch.iter().map(|r| r.count as i32).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(ip: &str, at: DateTime<Utc>) -> Record {
        Record {
            occurred_at: at,
            kind: Kind::AuthenticationFailed,
            sub: None,
            role: None,
            client_ip: Some(ip.into()),
            method: "GET".into(),
            path: "/v1/accounts".into(),
            status: 401,
            detail: Some("missing bearer token".into()),
            count: 1,
        }
    }

    #[test]
    fn unauthenticated_denials_become_one_row_per_source_and_minute() {
        let mut aggregator = Aggregator::default();
        let t0 = DateTime::from_timestamp(1_790_000_040, 0).expect("t0");
        let mut written = 0;
        for i in 0..100 {
            let at = t0 + chrono::Duration::milliseconds(i * 100);
            written += usize::from(aggregator.add(denial("10.0.0.1", at)).is_some());
        }
        assert_eq!(written, 1, "the first is written at once, the rest counted");
        assert!(aggregator.add(denial("10.0.0.2", t0)).is_some());
        let mut known = denial("10.0.0.3", t0);
        known.sub = Some("alice".into());
        assert!(
            aggregator.add(known).is_some(),
            "an authenticated denial is its own row"
        );
        assert!(
            aggregator.finished(t0, false).is_empty(),
            "the minute is not over"
        );
        let rows = aggregator.finished(t0 + chrono::Duration::minutes(2), false);
        assert_eq!(
            rows.len(),
            1,
            "one more row for the source that had more: {rows:?}"
        );
        assert_eq!(rows[0].count, 99);
        assert_eq!(rows[0].client_ip.as_deref(), Some("10.0.0.1"));
        assert!(
            rows[0]
                .detail
                .as_deref()
                .unwrap_or("")
                .starts_with("99 more")
        );
    }

    #[test]
    fn only_security_relevant_answers_are_recorded() {
        let of =
            |m: Method, p: &str, s: u16| Kind::of(&m, p, StatusCode::from_u16(s).expect("status"));
        assert_eq!(
            of(Method::GET, "/v1/accounts", 401),
            Some(Kind::AuthenticationFailed)
        );
        assert_eq!(
            of(Method::POST, "/v1/transfers", 403),
            Some(Kind::PermissionDenied)
        );
        assert_eq!(
            of(Method::GET, "/v1/accounts/x", 429),
            Some(Kind::RateLimited)
        );
        assert_eq!(
            of(Method::POST, "/v1/owners/c-1/erasure", 200),
            Some(Kind::AdminAction)
        );
        assert_eq!(
            of(Method::POST, "/v1/admin/projections/ledger/rebuild", 202),
            Some(Kind::AdminAction)
        );
        assert_eq!(of(Method::GET, "/v1/admin/projections", 200), None);
        assert_eq!(
            of(Method::POST, "/v1/admin/projections/x/rebuild", 404),
            None
        );
        assert_eq!(of(Method::GET, "/v1/accounts/x", 404), None);
        assert_eq!(of(Method::POST, "/v1/accounts", 201), None);
    }
}
