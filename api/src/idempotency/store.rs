//! The PostgreSQL side of idempotency keys (table `idempotency_keys`).
//!
//! [`IdempotencyStore::claim`] either makes this request the owner of its key (new, expired,
//! released after a 5xx, or an in-flight row whose owner is presumed dead because it is older
//! than the in-flight timeout) or tells what the key already holds. The owner then
//! [`complete`](IdempotencyStore::complete)s the row with its answer, or
//! [`release`](IdempotencyStore::release)s it when the answer is not final (5xx). A key keeps its
//! [`Intent`] (command id, resource id, first attempt) from its first claim until it expires, so
//! every retry sends the same command. Rows carry an expiry; a background task purges expired
//! ones.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

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

/// The identity of a keyed request, the same for every attempt: the command id it sends, the
/// id of what it creates (an account, a transfer) and when it was first attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub command_id: Uuid,
    pub resource_id: Uuid,
    pub first_attempt_at: DateTime<Utc>,
}

impl Intent {
    /// A fresh intent (a request without a key, or a key seen for the first time).
    pub fn fresh(now: DateTime<Utc>) -> Self {
        Self {
            command_id: Uuid::now_v7(),
            resource_id: Uuid::now_v7(),
            first_attempt_at: now,
        }
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key; `token` identifies the ownership when completing.
    Owner {
        token: DateTime<Utc>,
        intent: Intent,
    },
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
            if let Some((token, intent)) = self.try_take(key).await? {
                return Ok(Claim::Owner { token, intent });
            }
            let row: Option<Row> = sqlx::query_as(
                "SELECT fingerprint, status, headers, body FROM idempotency_keys \
                 WHERE principal = $1 AND key = $2 AND expires_at > now()",
            )
            .bind(&key.principal)
            .bind(&key.key)
            .fetch_optional(&self.pool)
            .await?;
            // None: expired between the two statements; try again.
            if let Some((fingerprint, status, headers, body)) = row {
                return Ok(match status {
                    _ if fingerprint != key.fingerprint => Claim::Mismatch,
                    // in flight, or released and taken by a retry in between
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

    /// Inserts the key, or takes over an expired row (with a fresh intent), or a released or
    /// stale in-flight row of the same request (with its intent); the new `started_at` and the
    /// intent when taken.
    async fn try_take(&self, key: &KeyRef) -> Result<Option<(DateTime<Utc>, Intent)>, StoreError> {
        let fresh = Intent::fresh(Utc::now());
        let taken: Option<(DateTime<Utc>, Uuid, Uuid, DateTime<Utc>)> = sqlx::query_as(
            "INSERT INTO idempotency_keys (principal, key, fingerprint, started_at, expires_at, \
               in_flight, command_id, resource_id, first_attempt_at) \
             VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp() + make_interval(secs => $4), \
               true, $6, $7, clock_timestamp()) \
             ON CONFLICT (principal, key) DO UPDATE SET \
               fingerprint = EXCLUDED.fingerprint, status = NULL, headers = '{}'::jsonb, \
               body = NULL, started_at = EXCLUDED.started_at, in_flight = true, \
               expires_at = CASE WHEN idempotency_keys.expires_at <= now() \
                 THEN EXCLUDED.expires_at ELSE idempotency_keys.expires_at END, \
               command_id = CASE WHEN idempotency_keys.expires_at <= now() \
                 THEN EXCLUDED.command_id \
                 ELSE coalesce(idempotency_keys.command_id, EXCLUDED.command_id) END, \
               resource_id = CASE WHEN idempotency_keys.expires_at <= now() \
                 THEN EXCLUDED.resource_id \
                 ELSE coalesce(idempotency_keys.resource_id, EXCLUDED.resource_id) END, \
               first_attempt_at = CASE WHEN idempotency_keys.expires_at <= now() \
                 THEN EXCLUDED.first_attempt_at ELSE idempotency_keys.first_attempt_at END \
             WHERE idempotency_keys.expires_at <= now() \
                OR (idempotency_keys.status IS NULL \
                    AND idempotency_keys.fingerprint = EXCLUDED.fingerprint \
                    AND (NOT idempotency_keys.in_flight \
                      OR idempotency_keys.started_at \
                         <= clock_timestamp() - make_interval(secs => $5))) \
             RETURNING started_at, command_id, resource_id, first_attempt_at",
        )
        .bind(&key.principal)
        .bind(&key.key)
        .bind(&key.fingerprint)
        .bind(self.ttl.as_secs_f64())
        .bind(self.in_flight_timeout.as_secs_f64())
        .bind(fresh.command_id)
        .bind(fresh.resource_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            taken.map(|(token, command_id, resource_id, first_attempt_at)| {
                (
                    token,
                    Intent {
                        command_id,
                        resource_id,
                        first_attempt_at,
                    },
                )
            }),
        )
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

    /// Frees the key after an answer that is not final (5xx), so a retry runs again, with the
    /// same intent (command id, first attempt).
    pub async fn release(&self, key: &KeyRef, token: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET in_flight = false \
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
