//! The PostgreSQL side of idempotency keys (table `idempotency_keys`).
//!
//! [`IdempotencyStore::claim`] either makes this request the owner of its key (new, expired, or
//! an in-flight row whose owner is presumed dead because it is older than the in-flight
//! timeout) or tells what the key already holds. The owner then [`complete`](IdempotencyStore::complete)s
//! the row with its answer, or [`release`](IdempotencyStore::release)s it when the answer is
//! not final (5xx). Rows carry an expiry; a background task purges expired ones.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How often expired keys are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("idempotency store: {0}")]
    Database(#[from] sqlx::Error),
}

/// Which request holds a key: principal, key and request fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub principal: String,
    pub key: String,
    pub fingerprint: Vec<u8>,
}

/// A final answer as stored and replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key; `token` identifies the ownership when completing.
    Owner { token: DateTime<Utc> },
    /// The key already holds the final answer of the same request.
    Replay(StoredAnswer),
    /// The key belongs to another request (other fingerprint).
    Mismatch,
    /// The first request with this key is still in flight.
    InFlight,
}

/// Idempotency keys in PostgreSQL, with a purge task that stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    pool: PgPool,
    ttl: Duration,
    in_flight_timeout: Duration,
    max_body_bytes: usize,
    _purge: Arc<PurgeTask>,
}

#[derive(Debug)]
struct PurgeTask(tokio::task::JoinHandle<()>);

impl Drop for PurgeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Row = (
    Vec<u8>,
    Option<i16>,
    sqlx::types::Json<BTreeMap<String, String>>,
    Option<Vec<u8>>,
);

impl IdempotencyStore {
    /// A store keeping answers for `ttl`; an in-flight row older than `in_flight_timeout` may
    /// be taken over; bodies up to `max_body_bytes` are fingerprinted. Starts the purge task
    /// (needs a tokio runtime).
    pub fn start(
        pool: PgPool,
        ttl: Duration,
        in_flight_timeout: Duration,
        max_body_bytes: usize,
    ) -> Self {
        let purger = pool.clone();
        let task = tokio::spawn(async move {
            let first = tokio::time::Instant::now() + PURGE_EVERY;
            let mut ticks = tokio::time::interval_at(first, PURGE_EVERY);
            loop {
                ticks.tick().await;
                match purge(&purger).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "expired idempotency keys purged"),
                    Err(error) => tracing::warn!(%error, "idempotency key purge failed"),
                }
            }
        });
        Self {
            pool,
            ttl,
            in_flight_timeout,
            max_body_bytes,
            _purge: Arc::new(PurgeTask(task)),
        }
    }

    /// Largest body the middleware reads.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Takes the key for this request, or reports what holds it.
    pub async fn claim(&self, key: &KeyRef) -> Result<Claim, StoreError> {
        for _ in 0..3 {
            if let Some(token) = self.try_take(key).await? {
                return Ok(Claim::Owner { token });
            }
            let row: Option<Row> = sqlx::query_as(
                "SELECT fingerprint, status, headers, body FROM idempotency_keys \
                 WHERE principal = $1 AND key = $2 AND expires_at > now()",
            )
            .bind(&key.principal)
            .bind(&key.key)
            .fetch_optional(&self.pool)
            .await?;
            // None: released or expired between the two statements; try again.
            if let Some((fingerprint, status, headers, body)) = row {
                return Ok(match status {
                    _ if fingerprint != key.fingerprint => Claim::Mismatch,
                    None => Claim::InFlight,
                    Some(status) => Claim::Replay(StoredAnswer {
                        status: u16::try_from(status).unwrap_or(500),
                        headers: headers.0,
                        body: body.unwrap_or_default(),
                    }),
                });
            }
        }
        Ok(Claim::InFlight)
    }

    /// Inserts the key, or takes over an expired row or a stale in-flight row of the same
    /// request; the new `started_at` when taken.
    async fn try_take(&self, key: &KeyRef) -> Result<Option<DateTime<Utc>>, StoreError> {
        let taken = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (principal, key, fingerprint, started_at, expires_at) \
             VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp() + make_interval(secs => $4)) \
             ON CONFLICT (principal, key) DO UPDATE SET \
               fingerprint = EXCLUDED.fingerprint, status = NULL, headers = '{}'::jsonb, \
               body = NULL, started_at = EXCLUDED.started_at, expires_at = EXCLUDED.expires_at \
             WHERE idempotency_keys.expires_at <= now() \
                OR (idempotency_keys.status IS NULL \
                    AND idempotency_keys.fingerprint = EXCLUDED.fingerprint \
                    AND idempotency_keys.started_at <= clock_timestamp() - make_interval(secs => $5)) \
             RETURNING started_at",
        )
        .bind(&key.principal)
        .bind(&key.key)
        .bind(&key.fingerprint)
        .bind(self.ttl.as_secs_f64())
        .bind(self.in_flight_timeout.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken)
    }

    /// Stores the final answer of the owner `token` (a taken-over owner's answer wins).
    pub async fn complete(
        &self,
        key: &KeyRef,
        token: DateTime<Utc>,
        answer: &StoredAnswer,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6 \
             WHERE principal = $1 AND key = $2 AND started_at = $3 AND status IS NULL",
        )
        .bind(&key.principal)
        .bind(&key.key)
        .bind(token)
        .bind(i16::try_from(answer.status).unwrap_or(i16::MAX))
        .bind(sqlx::types::Json(&answer.headers))
        .bind(&answer.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Frees the key after an answer that is not final (5xx), so a retry runs again.
    pub async fn release(&self, key: &KeyRef, token: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE principal = $1 AND key = $2 AND started_at = $3 AND status IS NULL",
        )
        .bind(&key.principal)
        .bind(&key.key)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes expired keys now; how many.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        purge(&self.pool).await
    }
}

async fn purge(pool: &PgPool) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= now()")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
