//! Rate limits: a token bucket per principal (by role quota) and, before authentication, per
//! client IP. Over the limit a request gets 429 problem+json with `Retry-After` and the
//! `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` headers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::Role;
use crate::problem::problem_type;

/// Sustained requests per second and burst size of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub per_second: f64,
    pub burst: f64,
}

/// Quotas by role, and for unauthenticated callers by IP.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    pub by_role: HashMap<Role, Quota>,
    pub anonymous: Quota,
}

impl Quotas {
    /// `default` for every role, then overrides like `customer=50:100,service=5000:10000`.
    pub fn parse(default: Quota, anonymous: Quota, overrides: &str) -> Result<Quotas, String> {
        let mut by_role: HashMap<Role, Quota> = Role::ALL.iter().map(|r| (*r, default)).collect();
        for item in overrides
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let (role, quota) = item
                .split_once('=')
                .ok_or(format!("{item}: expected role=rate:burst"))?;
            let role = Role::ALL
                .into_iter()
                .find(|r| r.as_str() == role.trim())
                .ok_or(format!("{item}: unknown role"))?;
            let (rate, burst) = quota
                .split_once(':')
                .ok_or(format!("{item}: expected rate:burst"))?;
            let parse = |v: &str| v.trim().parse::<f64>().ok().filter(|v| *v > 0.0);
            let (Some(per_second), Some(burst)) = (parse(rate), parse(burst)) else {
                return Err(format!("{item}: rate and burst must be positive numbers"));
            };
            by_role.insert(role, Quota { per_second, burst });
        }
        Ok(Quotas { by_role, anonymous })
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// What a bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: f64,
    pub remaining: f64,
    /// Until a token is back (for Retry-After), or until the bucket is full.
    pub reset: Duration,
}

/// Token buckets keyed by principal (`sub:<sub>`) or client IP (`ip:<addr>`).
#[derive(Debug)]
pub struct RateLimiter {
    quotas: Quotas,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets idle this long are full again and are forgotten.
const IDLE: Duration = Duration::from_secs(600);
const SWEEP_ABOVE: usize = 100_000;

impl RateLimiter {
    pub fn new(quotas: Quotas) -> Self {
        Self {
            quotas,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket at `now`.
    pub fn check(&self, key: &str, quota: Quota, now: Instant) -> Decision {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Decision {
                allowed: true,
                limit: quota.burst,
                remaining: quota.burst,
                reset: Duration::ZERO,
            };
        };
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: quota.burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * quota.per_second;
        bucket.tokens = (bucket.tokens + refill).min(quota.burst);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let missing = if allowed {
            quota.burst - bucket.tokens
        } else {
            1.0 - bucket.tokens
        };
        Decision {
            allowed,
            limit: quota.burst,
            remaining: bucket.tokens.floor(),
            reset: Duration::from_secs_f64(missing / quota.per_second),
        }
    }

    fn key_and_quota(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        ip: Option<IpAddr>,
    ) -> (String, Quota) {
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match state.jwt.authenticate(header) {
            Ok(principal) => {
                let quota = self
                    .quotas
                    .by_role
                    .get(&principal.role)
                    .copied()
                    .unwrap_or(self.quotas.anonymous);
                (
                    format!("principal:{}:{}", principal.role.as_str(), principal.sub),
                    quota,
                )
            }
            Err(_) => (
                format!(
                    "ip:{}",
                    ip.map_or("unknown".to_string(), |ip| ip.to_string())
                ),
                self.quotas.anonymous,
            ),
        }
    }
}

/// The middleware: limits every request that reaches it.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limiter) = state.rate_limiter.clone() else {
        return next.run(request).await;
    };
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (key, quota) = limiter.key_and_quota(&state, request.headers(), ip);
    let decision = limiter.check(&key, quota, Instant::now());
    if !decision.allowed {
        tracing::info!(target: "logbook::security", key, "rate limited");
        metrics::counter!("logbook_rate_limited_total").increment(1);
        let mut response = too_many(decision);
        add_headers(response.headers_mut(), decision);
        return response;
    }
    let mut response = next.run(request).await;
    add_headers(response.headers_mut(), decision);
    response
}

fn too_many(decision: Decision) -> Response {
    let body = serde_json::json!({
        "type": problem_type("rate_limited"),
        "title": "Too many requests",
        "status": 429,
        "detail": "rate limit exceeded; retry after the time in Retry-After",
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    let retry = decision.reset.as_secs_f64().ceil().max(1.0) as u64;
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    response
}

fn add_headers(headers: &mut HeaderMap, decision: Decision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit as u64));
    headers.insert(
        "ratelimit-remaining",
        HeaderValue::from(decision.remaining.max(0.0) as u64),
    );
    headers.insert(
        "ratelimit-reset",
        HeaderValue::from(decision.reset.as_secs_f64().ceil() as u64),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        per_second: 2.0,
        burst: 3.0,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(Quotas {
            by_role: HashMap::new(),
            anonymous: QUOTA,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("k", QUOTA, start).allowed);
        }
        let refused = limiter.check("k", QUOTA, start);
        assert!(!refused.allowed);
        assert_eq!(refused.reset, Duration::from_millis(500));
        assert!(
            limiter.check("other", QUOTA, start).allowed,
            "buckets are per key"
        );
        assert!(
            limiter
                .check("k", QUOTA, start + Duration::from_millis(500))
                .allowed
        );
        assert!(
            !limiter
                .check("k", QUOTA, start + Duration::from_millis(500))
                .allowed
        );
    }

    #[test]
    fn quotas_parse_per_role_overrides() {
        let quotas = Quotas::parse(QUOTA, QUOTA, "customer=5:10, service=100:200").expect("parses");
        assert_eq!(
            quotas.by_role[&Role::Customer],
            Quota {
                per_second: 5.0,
                burst: 10.0
            }
        );
        assert_eq!(quotas.by_role[&Role::Admin], QUOTA);
        assert!(Quotas::parse(QUOTA, QUOTA, "nobody=1:1").is_err());
        assert!(Quotas::parse(QUOTA, QUOTA, "customer=0:1").is_err());
    }
}
