//! The state the HTTP handlers share ([`AppState`]); each middleware gets only its own part of
//! it (the token keys, the rate limiter, the Idempotency-Key store, the security trail).

use std::sync::Arc;

use logbook_events::KafkaSettings;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::auth::JwtKeys;
use crate::bus::CommandBus;
use crate::readiness::Readiness;

/// Shared by all handlers (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// Where commands go (the Kafka gateway).
    pub commands: Arc<dyn CommandBus>,
    pub jwt: Arc<JwtKeys>,
    pub db: Option<PgPool>,
    /// Readiness probes, at most one a second.
    pub readiness: Arc<Readiness>,
    pub metrics: PrometheusHandle,
    /// How far the projections are (read-your-writes); present when a database is configured.
    pub progress: Option<Arc<logbook_projections::ProgressWatcher>>,
    pub kafka: Arc<KafkaSettings>,
    /// None when rate limiting is switched off.
    pub rate_limiter: Option<Arc<crate::ratelimit::RateLimiter>>,
    /// Idempotency-Key answers; present when a database is configured.
    pub idempotency: Option<crate::idempotency::IdempotencyStore>,
    /// The security audit trail; present when a database is configured.
    pub security_trail: Option<crate::security::trail::SecurityTrail>,
    /// The holders' data keys; present when a database and a key-encryption key are configured.
    pub personal: Option<crate::personal::KeyStore>,
    /// The rebuilds this process started and how they ended.
    pub rebuilds: Arc<crate::rebuilds::Rebuilds>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("commands", &self.commands)
            .finish_non_exhaustive()
    }
}
