//! The security audit trail: authentication failures, permission denials, rate-limit
//! rejections and admin actions, with who, what, when and from where.
//!
//! Where it lives: the `security_audit` table in PostgreSQL (append-only by trigger). These
//! records are born at the HTTP edge, not in the domain: they belong to no account, so they
//! stay out of the events topic and its per-account hash chains, and the HTTP role already
//! holds a PostgreSQL pool. [`observe`] sees every `/v1` answer and hands the interesting ones
//! to [`SecurityAudit`], a bounded queue that one writer task drains in batches (one INSERT
//! per batch), so a flood of bad requests costs the database one statement per batch, never
//! one per request. The log line on the `logbook::security` target is written as well.
//! Trade-off: a crash loses what was queued and not yet written (at most one batch, a few
//! milliseconds), and a full queue drops records (counted in
//! `logbook_security_audit_dropped_total`) rather than slowing the API down.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::app::AppState;

/// Records queued before new ones are dropped.
const QUEUE: usize = 10_000;
/// Most records per INSERT.
const BATCH: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AuthenticationFailed,
    PermissionDenied,
    RateLimited,
    AdminAction,
}

impl Kind {
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
            s if s.is_success() && path.starts_with("/v1/admin/") && method != Method::GET => {
                Some(Kind::AdminAction)
            }
            _ => None,
        }
    }
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
}

/// The queue in front of the writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecurityAudit {
    queue: mpsc::Sender<Record>,
}

impl SecurityAudit {
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

/// Middleware on `/v1`: records authentication failures, denials, rate limits, admin actions.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = next.run(request).await;
    let status = response.status();
    let (Some(audit), Some(kind)) = (&state.security_audit, Kind::of(&method, &path, status))
    else {
        return response;
    };
    let identity = state.jwt.authenticate(authorization.as_deref());
    let (sub, role, detail) = match &identity {
        Ok(p) => (Some(p.sub.clone()), Some(p.role.as_str().to_string()), None),
        Err(error) => (None, None, Some(error_detail(error))),
    };
    audit.record(Record {
        occurred_at: Utc::now(),
        kind,
        sub,
        role,
        client_ip,
        method: method.to_string(),
        path,
        status: status.as_u16(),
        detail,
    });
    response
}

/// Why a token failed, in a few stable words, without any of the token itself.
fn error_detail(error: &crate::auth::AuthError) -> String {
    use jsonwebtoken::errors::ErrorKind;
    let crate::auth::AuthError::Invalid(e) = error else {
        return error.to_string();
    };
    let reason = match e.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not valid yet (nbf)",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "wrong algorithm",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        ErrorKind::Json(_) => "malformed token or unsupported algorithm",
        _ => "malformed token",
    };
    format!("invalid token: {reason}")
}

async fn write(pool: PgPool, mut rx: mpsc::Receiver<Record>, mut stop: oneshot::Receiver<()>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let stopping = tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => received == 0,
            _ = &mut stop => true,
        };
        if stopping {
            while let Ok(record) = rx.try_recv() {
                batch.push(record);
            }
        }
        for chunk in batch.chunks(BATCH) {
            insert_with_retries(&pool, chunk).await;
        }
        batch.clear();
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
         (occurred_at, kind, sub, role, client_ip, method, path, status, detail) \
         SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::text[], $8::int2[], $9::text[])",
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
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
