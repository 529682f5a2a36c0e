//! The HTTP listener: connections, their limits and timeouts, TLS, graceful shutdown.
//!
//! - at most `max_connections` connections at a time: past it, new ones wait in the kernel's
//!   accept queue until one closes (`logbook_http_connections` shows how many are open);
//! - a client must send a request's headers within `header_timeout`, or the connection is
//!   closed (slowloris); on an HTTP/1.1 keep-alive connection the same timer runs while it
//!   waits for the next request, so it is also the idle timeout;
//! - HTTP/2: at most `max_streams` concurrent requests per connection, and pings every
//!   `header_timeout` that close a connection whose peer stopped answering;
//! - a TLS handshake must finish within `header_timeout`;
//! - on shutdown, no new connection is accepted, open ones finish their requests (up to
//!   `drain`), then the rest are closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub max_streams: u32,
    /// How long open requests may take to finish at shutdown.
    pub drain: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            max_streams: 100,
            drain: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is set) until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // e.g. out of file descriptors: wait a moment instead of spinning
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = router
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(axum::body::Body::new)
            });
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            metrics::gauge!("logbook_http_connections").increment(1.0);
            let served = connection(stream, acceptor, service, limits, watcher).await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            metrics::gauge!("logbook_http_connections").decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!("open connections did not finish in time and were closed");
        }
    }
    Ok(())
}

/// One connection: the TLS handshake if any, then HTTP/1.1 or HTTP/2 with the limits.
async fn connection<S>(
    stream: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    limits: ServerLimits,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tower::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let builder = builder(limits);
    let service = TowerToHyperService::new(service);
    match acceptor {
        None => {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            watcher.watch(connection.into_owned()).await
        }
        Some(acceptor) => {
            let tls = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream))
                .await
                .map_err(|_| "TLS handshake timed out")??;
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            watcher.watch(connection.into_owned()).await
        }
    }
}

fn builder(limits: ServerLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    builder
}
