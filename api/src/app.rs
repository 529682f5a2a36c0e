//! Building the HTTP application: state, router, middleware, listener, graceful shutdown.
//!
//! [`Application::build`] binds the listener (port 0 works: tests read [`Application::port`]) and
//! connects the gateway; [`Application::run_until`] serves until the shutdown future completes,
//! then drains open requests and stops the gateway's results listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use logbook_events::KafkaSettings;
use metrics_exporter_prometheus::PrometheusHandle;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::JwtKeys;
use crate::gateway::Gateway;
use crate::settings::Settings;

/// How long open requests (and the audit queue) may take to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared by all handlers (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub gateway: Option<Arc<Gateway>>,
    pub jwt: Arc<JwtKeys>,
    pub db: Option<PgPool>,
    /// Readiness probes, at most one a second.
    pub readiness: Arc<crate::routes::health::Readiness>,
    pub metrics: PrometheusHandle,
    /// How far the projections are (read-your-writes); present when a database is configured.
    pub progress: Option<Arc<logbook_projections::ProgressWatcher>>,
    pub kafka: Arc<KafkaSettings>,
    /// None when rate limiting is switched off.
    pub rate_limiter: Option<Arc<crate::ratelimit::RateLimiter>>,
    /// Idempotency-Key answers; present when a database is configured.
    pub idempotency: Option<crate::idempotency::IdempotencyStore>,
    /// The security audit trail; present when a database is configured.
    pub security_audit: Option<crate::security::audit::SecurityAudit>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

/// A small client used only to see whether Kafka answers.
pub struct KafkaProbe {
    consumer: BaseConsumer,
    topic: String,
}

impl KafkaProbe {
    pub fn new(kafka: &KafkaSettings) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            consumer: kafka.client_config().create()?,
            // the topic the API writes (its Kafka identity may read nothing else but results)
            topic: kafka.topics().commands,
        })
    }

    /// Blocking: metadata of the commands topic within `timeout`.
    pub fn check(&self, timeout: Duration) -> bool {
        self.consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .map(|m| m.topics().iter().all(|t| t.error().is_none()))
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for KafkaProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProbe")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// A bound, not yet serving HTTP application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    gateway: Option<Arc<Gateway>>,
    /// HTTPS when configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: crate::server::ServerLimits,
    /// Writes the security audit trail; finished after the last request.
    audit_writer: Option<crate::security::audit::Writer>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects everything the HTTP role needs and binds its address.
    pub async fn build(settings: &Settings, db: Option<PgPool>) -> anyhow::Result<Self> {
        let kafka = settings.require_kafka()?;
        let jwt = Arc::new(JwtKeys::from_settings(
            settings.jwt_secret.as_ref(),
            &settings.jwt,
        )?);
        let gateway = Gateway::start(kafka, settings.command_timeout).await?;
        let readiness = Arc::new(crate::routes::health::Readiness::new(KafkaProbe::new(
            kafka,
        )?));
        let progress = db
            .clone()
            .map(|pool| logbook_projections::ProgressWatcher::start_with(pool, settings.read_wait));
        let (security_audit, audit_writer) = match &db {
            Some(pool) => {
                let (audit, writer) = crate::security::audit::SecurityAudit::start(pool.clone());
                (Some(audit), Some(writer))
            }
            None => (None, None),
        };
        let tls = settings
            .tls
            .as_ref()
            .map(crate::security::tls::server_config)
            .transpose()?;
        // Every request ends within this; an in-flight Idempotency-Key older than it is orphaned.
        let request_timeout = settings.command_timeout + Duration::from_secs(5);
        let idempotency = db.clone().map(|pool| {
            crate::idempotency::IdempotencyStore::start(
                pool,
                settings.limits.idempotency_ttl,
                request_timeout,
                settings.limits.max_body_bytes,
            )
        });
        let state = AppState {
            security_audit,
            rate_limiter: settings
                .rate_limits
                .clone()
                .map(|q| Arc::new(crate::ratelimit::RateLimiter::new(q))),
            kafka: Arc::new(kafka.clone()),
            progress,
            gateway: Some(gateway.clone()),
            jwt,
            db,
            readiness,
            metrics: crate::telemetry::metrics_handle(),
            idempotency,
        };
        let router =
            crate::limits::apply(
                crate::routes::router(state),
                settings.limits,
                request_timeout,
            )
            .layer(axum::middleware::from_fn_with_state(
                crate::security::headers::HeaderPolicy { tls: tls.is_some() },
                crate::security::headers::secure,
            ))
            // a 5xx is logged where it arises (internal errors once, outages once per outage), not
            // once more per request here
            .layer(TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ));
        let router = match crate::security::headers::cors(&settings.cors_origins)? {
            Some(cors) => router.layer(cors),
            None => router,
        };
        let listener = TcpListener::bind(settings.require_http_addr()?).await?;
        Ok(Self {
            listener,
            router,
            gateway: Some(gateway),
            tls,
            limits: crate::server::ServerLimits {
                drain: DRAIN_TIMEOUT,
                ..settings.limits.server
            },
            audit_writer,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, then finishes open requests and stops.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.listener.local_addr()?,
            tls = self.tls.is_some(),
            "HTTP API listening"
        );
        crate::server::serve(self.listener, self.router, self.tls, self.limits, shutdown).await?;
        if let Some(writer) = self.audit_writer {
            writer.finish(DRAIN_TIMEOUT).await;
        }
        if let Some(gateway) = self.gateway {
            tokio::task::spawn_blocking(move || gateway.shutdown()).await?;
        }
        Ok(())
    }
}
