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
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::JwtKeys;
use crate::gateway::Gateway;
use crate::readiness::{KafkaProbe, Readiness};
use crate::settings::http::HttpSettings;
pub use crate::state::AppState;
use logbook_events::KafkaSettings;

/// How long open requests (and the audit queue) may take to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound, not yet serving HTTP application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    gateway: Option<Arc<Gateway>>,
    /// HTTPS when configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: crate::server::ServerLimits,
    /// Writes the security audit trail; finished after the last request.
    audit_writer: Option<crate::security::trail::Writer>,
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
    pub async fn build(
        kafka: &KafkaSettings,
        settings: &HttpSettings,
        db: Option<PgPool>,
    ) -> anyhow::Result<Self> {
        let jwt = Arc::new(JwtKeys::from_settings(
            settings.jwt.secret.as_ref(),
            &settings.jwt.options,
        )?);
        let gateway = Gateway::start(kafka, settings.command_timeout).await?;
        let readiness = Arc::new(Readiness::new(KafkaProbe::new(kafka)?));
        let progress = db
            .clone()
            .map(|pool| logbook_projections::ProgressWatcher::start_with(pool, settings.read_wait));
        let (security_trail, audit_writer) = match &db {
            Some(pool) => {
                let (audit, writer) = crate::security::trail::SecurityTrail::start(pool.clone());
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
        let personal = match (&db, &settings.kek) {
            (Some(pool), Some(kek)) => Some(crate::personal::KeyStore::new(
                pool.clone(),
                Arc::new(crate::personal::KeyRing::new(&kek.keys)?),
            )),
            _ => None,
        };
        let state = AppState {
            personal,
            security_trail,
            rate_limiter: settings
                .rate_limits
                .clone()
                .map(|q| Arc::new(crate::ratelimit::RateLimiter::new(q))),
            kafka: Arc::new(kafka.clone()),
            progress,
            commands: gateway.clone(),
            jwt,
            db,
            readiness,
            metrics: crate::telemetry::metrics_handle(),
            idempotency,
            rebuilds: crate::rebuilds::Rebuilds::new(),
        };
        let router = crate::limits::apply(router(state), settings.limits, request_timeout)
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
        let listener = TcpListener::bind(settings.addr).await?;
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

/// The routes with their middleware, outermost first on `/v1`: the token is verified once
/// ([`crate::auth::authenticate`]), the security trail observes the answer, the rate limiter
/// admits the request, and on commands the Idempotency-Key store replays or claims.
pub fn router(state: AppState) -> Router {
    use crate::routes::{command_routes, operations_routes, read_routes};
    use axum::middleware::from_fn_with_state;
    let commands = command_routes().route_layer(from_fn_with_state(
        state.idempotency.clone(),
        crate::idempotency::answer_once,
    ));
    let v1 = commands
        .merge(read_routes())
        .route_layer(from_fn_with_state(
            state.rate_limiter.clone(),
            crate::ratelimit::limit,
        ))
        .layer(from_fn_with_state(
            state.security_trail.clone(),
            crate::security::trail::observe,
        ))
        .layer(from_fn_with_state(
            state.jwt.clone(),
            crate::auth::authenticate,
        ));
    let (router, _) = v1.merge(operations_routes()).split_for_parts();
    router
        .merge(crate::openapi::docs_router())
        .merge(crate::console::router())
        .fallback(crate::limits::no_route)
        .method_not_allowed_fallback(crate::limits::method_not_allowed)
        .with_state(state)
}
