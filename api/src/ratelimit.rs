//! Rate limits (the `governor` crate's GCRA): a bucket per principal (by role quota) and, before
//! authentication, per client address (IPv6 by /64). Over the limit a request gets 429
//! problem+json with `Retry-After` and the `RateLimit-Limit` / `RateLimit-Remaining` /
//! `RateLimit-Reset` headers. State is bounded: [`BoundedStore`] keeps at most [`MAX_KEYS`] keys
//! per limiter, and beyond that newcomers share one bucket.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Authentication;
use crate::auth::Role;
use crate::problem::ApiError;

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

/// What a limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: f64,
    pub remaining: f64,
    /// Until a token is back (for Retry-After), or until the bucket is full.
    pub reset: Duration,
}

type Limiter = governor::RateLimiter<
    String,
    BoundedStore<String>,
    governor::clock::DefaultClock,
    governor::middleware::StateInformationMiddleware,
>;

/// Rate limiting state, bounded: per principal (one limiter per role, keyed by `sub`) and per
/// client address for unauthenticated requests (IPv4 addresses, IPv6 /64 networks: a host
/// gets a /64 for free). Each limiter holds at most `max_keys` keys (see [`BoundedStore`]).
#[derive(Debug)]
pub struct RateLimiter {
    quotas: Quotas,
    by_role: HashMap<Role, Limiter>,
    anonymous: Limiter,
}

/// Default cap on keys per limiter.
pub const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    pub fn new(quotas: Quotas) -> Self {
        Self::with_max_keys(quotas, MAX_KEYS)
    }

    pub fn with_max_keys(quotas: Quotas, max_keys: usize) -> Self {
        let limiter = |quota: Quota| {
            let plain: governor::RateLimiter<String, BoundedStore<String>, _> =
                governor::RateLimiter::new(
                    governor_quota(quota),
                    BoundedStore::new(max_keys),
                    governor::clock::DefaultClock::default(),
                );
            plain.with_middleware::<governor::middleware::StateInformationMiddleware>()
        };
        Self {
            by_role: quotas
                .by_role
                .iter()
                .map(|(role, quota)| (*role, limiter(*quota)))
                .collect(),
            anonymous: limiter(quotas.anonymous),
            quotas,
        }
    }

    /// Takes one token for a principal.
    pub fn check_principal(&self, role: Role, sub: &str) -> Decision {
        let quota = self
            .quotas
            .by_role
            .get(&role)
            .copied()
            .unwrap_or(self.quotas.anonymous);
        match self.by_role.get(&role) {
            Some(limiter) => decide(limiter, sub.to_string(), quota),
            None => decide(&self.anonymous, format!("{role:?}:{sub}"), quota),
        }
    }

    /// Takes one token for an unauthenticated caller at `ip`.
    pub fn check_address(&self, ip: Option<IpAddr>) -> Decision {
        decide(&self.anonymous, address_key(ip), self.quotas.anonymous)
    }
}

fn decide(limiter: &Limiter, key: String, quota: Quota) -> Decision {
    let period = Duration::from_secs_f64(1.0 / quota.per_second);
    match limiter.check_key(&key) {
        Ok(snapshot) => {
            let remaining = f64::from(snapshot.remaining_burst_capacity());
            Decision {
                allowed: true,
                limit: quota.burst,
                remaining,
                reset: period.mul_f64((quota.burst - remaining).max(0.0)),
            }
        }
        Err(not_until) => Decision {
            allowed: false,
            limit: quota.burst,
            remaining: 0.0,
            reset: not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )),
        },
    }
}

/// A bucket of `per_second` cells a second and `burst` cells deep, in governor's terms.
fn governor_quota(quota: Quota) -> governor::Quota {
    let period = Duration::from_secs_f64(1.0 / quota.per_second.max(0.000_001));
    let burst = NonZeroU32::new(quota.burst.round().clamp(1.0, f64::from(u32::MAX)) as u32)
        .unwrap_or(NonZeroU32::MIN);
    governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// The key of an unauthenticated caller: its IPv4 address, or its IPv6 /64.
pub fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_string(),
    }
}

/// A governor state store that holds at most `capacity` keys. Known keys keep their own bucket.
/// A new key while the store is full first makes it forget keys idle for a minute (their
/// buckets are full again, so forgetting them changes nothing), and if it is still full, the
/// newcomer shares one bucket with every other newcomer: under a flood of sources the memory
/// stays bounded and the flood is limited as if it were one client.
#[derive(Debug)]
pub struct BoundedStore<K> {
    capacity: usize,
    keys: RwLock<HashMap<K, Entry>>,
    overflow: governor::state::InMemoryState,
    created: Instant,
}

#[derive(Debug, Default)]
struct Entry {
    state: governor::state::InMemoryState,
    /// Milliseconds since the store's creation when the key was last seen.
    seen: AtomicU64,
}

/// A key unseen this long has a full bucket again and is forgotten first.
const IDLE: Duration = Duration::from_secs(60);

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            keys: RwLock::default(),
            overflow: governor::state::InMemoryState::default(),
            created: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.created.elapsed().as_millis() as u64
    }
}

impl<K: Hash + Eq + Clone> governor::state::keyed::ShrinkableKeyedStateStore<K>
    for BoundedStore<K>
{
    /// Forgets idle keys (governor's own notion of "recent" is not needed: idleness is).
    fn retain_recent(&self, _drop_below: governor::nanos::Nanos) {
        let now = self.now_ms();
        let idle = IDLE.as_millis() as u64;
        if let Ok(mut keys) = self.keys.write() {
            keys.retain(|_, entry| now.saturating_sub(entry.seen.load(Ordering::Relaxed)) < idle);
        }
    }

    fn len(&self) -> usize {
        self.keys.read().map(|k| k.len()).unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Clone> governor::state::StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<governor::nanos::Nanos>) -> Result<(T, governor::nanos::Nanos), E>,
    {
        use governor::state::NotKeyed;
        let now = self.now_ms();
        if let Ok(keys) = self.keys.read()
            && let Some(entry) = keys.get(key)
        {
            entry.seen.store(now, Ordering::Relaxed);
            return entry.state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let Ok(mut keys) = self.keys.write() else {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        };
        if !keys.contains_key(key) && keys.len() >= self.capacity {
            let idle = IDLE.as_millis() as u64;
            keys.retain(|_, entry| now.saturating_sub(entry.seen.load(Ordering::Relaxed)) < idle);
            if keys.len() >= self.capacity {
                metrics::counter!("logbook_rate_limit_overflow_total").increment(1);
                return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
            }
        }
        let entry = keys.entry(key.clone()).or_default();
        entry.seen.store(now, Ordering::Relaxed);
        entry.state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// The middleware (inside [`crate::auth::authenticate`]): limits every request that reaches it,
/// by principal when its token is valid, else by client address.
pub async fn limit(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = limiter else {
        return next.run(request).await;
    };
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (key, decision) = match Authentication::of(request.extensions()) {
        Ok(principal) => (
            format!("{}:{}", principal.role.as_str(), principal.sub),
            limiter.check_principal(principal.role, &principal.sub),
        ),
        Err(_) => (address_key(ip), limiter.check_address(ip)),
    };
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
    let retry_after_secs = decision.reset.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::RateLimited { retry_after_secs }.into_response()
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

    fn limiter(max_keys: usize) -> RateLimiter {
        let quotas = Quotas::parse(QUOTA, QUOTA, "").expect("quotas");
        RateLimiter::with_max_keys(quotas, max_keys)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_until_it_refills() {
        let limiter = limiter(10);
        for _ in 0..3 {
            assert!(limiter.check_principal(Role::Customer, "k").allowed);
        }
        let refused = limiter.check_principal(Role::Customer, "k");
        assert!(!refused.allowed);
        assert!(refused.reset > Duration::ZERO && refused.reset <= Duration::from_millis(500));
        assert!(
            limiter.check_principal(Role::Customer, "other").allowed,
            "buckets are per key"
        );
        assert!(
            limiter.check_principal(Role::Service, "k").allowed,
            "and per role"
        );
        std::thread::sleep(Duration::from_millis(520));
        assert!(limiter.check_principal(Role::Customer, "k").allowed);
    }

    #[test]
    fn ipv6_callers_are_limited_by_their_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        assert_ne!(address_key(Some(a)), address_key(Some(c)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(address_key(Some(mapped)), "10.0.0.1");
        let limiter = limiter(10);
        for _ in 0..3 {
            assert!(limiter.check_address(Some(a)).allowed);
        }
        assert!(
            !limiter.check_address(Some(b)).allowed,
            "same /64, same bucket"
        );
        assert!(limiter.check_address(Some(c)).allowed);
    }

    #[test]
    fn beyond_the_key_cap_newcomers_share_one_bucket_and_known_keys_keep_theirs() {
        let limiter = limiter(2);
        let ip = |n: u8| Some(IpAddr::from([10, 0, 0, n]));
        assert!(limiter.check_address(ip(1)).allowed);
        assert!(limiter.check_address(ip(2)).allowed);
        // a flood of new sources: three cells for all of them together
        let newcomers = (3..=40)
            .filter(|n| limiter.check_address(ip(*n)).allowed)
            .count();
        assert_eq!(newcomers, 3);
        assert!(
            limiter.check_address(ip(1)).allowed,
            "a known source keeps its bucket"
        );
        assert_eq!(limiter.anonymous.len(), 2, "memory stays bounded");
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
