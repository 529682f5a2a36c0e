//! Running the long-lived roles (`serve`, `process`, `saga`, `project`, `all`) until a shutdown signal.
//!
//! Every role gets the same shutdown signal; when one role fails, the others are told to stop
//! too, so a process never limps on half-alive. Roles wait out Kafka and PostgreSQL outages by
//! themselves; the one Kafka answer no role waits out is a refusal of this process's identity
//! or permissions ([`logbook_events::refusal`]), which stops the process with one error.

use std::future::Future;

use logbook_commands::processor::Processor;
use logbook_commands::saga;
use tokio::sync::watch;

use crate::settings::{Settings, SettingsError};
use logbook_api::app::Application;

/// Which roles run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub http: bool,
    pub processor: bool,
    pub saga: bool,
    pub projector: bool,
}

impl Roles {
    pub const NONE: Roles = Roles {
        http: false,
        processor: false,
        saga: false,
        projector: false,
    };
    pub const SERVE: Roles = Roles {
        http: true,
        ..Roles::NONE
    };
    pub const PROCESS: Roles = Roles {
        processor: true,
        ..Roles::NONE
    };
    pub const SAGA: Roles = Roles {
        saga: true,
        ..Roles::NONE
    };
    pub const PROJECT: Roles = Roles {
        projector: true,
        ..Roles::NONE
    };
    pub const ALL: Roles = Roles {
        http: true,
        processor: true,
        saga: true,
        projector: true,
    };
}

/// A shutdown signal that many tasks can wait on.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (sender, Shutdown(receiver))
    }

    /// Completes when shutdown is asked for (or the sender is gone).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.0.clone();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }
}

/// Runs the chosen roles until `shutdown` fires or one of them fails.
pub async fn run(settings: Settings, roles: Roles, shutdown: Shutdown) -> anyhow::Result<()> {
    run_reporting(settings, roles, shutdown, watch::channel(None).0).await
}

/// [`run`], telling `address` where the HTTP API listens once it is bound (tests bind port 0).
pub async fn run_reporting(
    settings: Settings,
    roles: Roles,
    shutdown: Shutdown,
    address: watch::Sender<Option<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    let (stop_all, local) = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    if roles.processor {
        let processor = settings.processing.processor(&settings.kafka);
        let stop = local.wait();
        tasks.spawn(async move {
            Processor::run_until(processor, stop)
                .await
                .map_err(anyhow::Error::from)
        });
    }
    if roles.saga {
        let saga = settings.processing.saga(&settings.kafka);
        let stop = local.wait();
        tasks.spawn(async move {
            saga::run_until(saga, stop)
                .await
                .map_err(anyhow::Error::from)
        });
    }
    if roles.projector {
        let pool = settings
            .database
            .as_ref()
            .ok_or(SettingsError::Missing("LOGBOOK_DATABASE_URL"))?
            .pool_of(4)?;
        let projector = logbook_projections::ProjectorSettings::new(settings.kafka.clone());
        let stop = local.wait();
        tasks.spawn(async move {
            logbook_projections::run_until(projector, pool, stop)
                .await
                .map_err(anyhow::Error::from)
        });
    }
    if roles.http {
        let http = settings
            .http
            .as_ref()
            .ok_or(SettingsError::Missing("LOGBOOK_HTTP_ADDR"))?;
        let db = settings.database.as_ref().map(|d| d.pool()).transpose()?;
        let app = Application::build(&settings.kafka, http, db).await?;
        let _ = address.send(Some(app.local_addr()?));
        let stop = local.wait();
        tasks.spawn(async move { app.run_until(stop).await });
    }
    let stop = local.wait();
    tasks.spawn(watch_refusal(stop));
    let outer = shutdown.wait();
    tokio::pin!(outer);
    let mut first_error = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            () = &mut outer, if !stopping => {
                stopping = true;
                let _ = stop_all.send(true);
            }
            joined = tasks.join_next() => match joined {
                None => break,
                Some(result) => {
                    let result = result.map_err(anyhow::Error::from).and_then(|r| r);
                    if let Err(error) = result {
                        // a role may fail on a refusal before the watcher reports it: the
                        // refusal is the cause worth naming
                        let error = match logbook_events::refusal::refused() {
                            Some(refusal) => anyhow::anyhow!("{refusal}"),
                            None => error,
                        };
                        tracing::error!(error = format!("{error:#}"), "a role failed: stopping the others");
                        first_error.get_or_insert(error);
                    }
                    let _ = stop_all.send(true);
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Fails as soon as Kafka has refused this process (any client of any role); completes at `stop`.
async fn watch_refusal(stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = tick.tick() => {
                if let Some(refusal) = logbook_events::refusal::refused() {
                    anyhow::bail!("{refusal}");
                }
            }
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
