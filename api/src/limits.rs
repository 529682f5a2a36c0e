//! Limits of the HTTP contract and the problem+json answers at its edges.
//!
//! - body size (413), URL length (414), total header size (431), per-request timeout (504),
//!   all configurable through [`LimitArgs`] (`LOGBOOK_MAX_*`);
//! - unknown routes (404) and methods (405) answer problem+json;
//! - [`problemize`] turns any error answered by a layer or extractor outside our handlers
//!   (tower-http's 413 and timeouts, axum's rejections) into problem+json, so no error leaves
//!   the server in another shape.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use clap::Args as ClapArgs;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::problem::ApiError;

/// Flags and `LOGBOOK_*` variables of the HTTP limits and idempotency keys.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "HTTP limits")]
pub struct LimitArgs {
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "LOGBOOK_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Longest request target (path and query) in bytes (414 beyond).
    #[arg(long, env = "LOGBOOK_MAX_URI_BYTES", default_value_t = 8 * 1024)]
    pub max_uri_bytes: usize,
    /// Largest sum of header names and values in bytes (431 beyond).
    #[arg(long, env = "LOGBOOK_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// How long an Idempotency-Key's answer is kept, in seconds.
    #[arg(long, env = "LOGBOOK_IDEMPOTENCY_TTL_SECS", default_value_t = 24 * 3600)]
    pub idempotency_ttl_secs: u64,
    /// Most open HTTP connections; more wait to be accepted.
    #[arg(long, env = "LOGBOOK_HTTP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub http_max_connections: usize,
    /// A request's headers must arrive within this (also the keep-alive idle timeout), ms.
    #[arg(long, env = "LOGBOOK_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,
    /// Most concurrent requests on one HTTP/2 connection.
    #[arg(long, env = "LOGBOOK_HTTP_MAX_STREAMS", default_value_t = 100)]
    pub http_max_streams: u32,
}

impl LimitArgs {
    pub fn resolve(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_uri_bytes: self.max_uri_bytes,
            max_header_bytes: self.max_header_bytes,
            idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs.max(1)),
            server: crate::server::ServerLimits {
                max_connections: self.http_max_connections.max(1),
                header_timeout: Duration::from_millis(self.http_header_timeout_ms.max(100)),
                max_streams: self.http_max_streams.max(1),
                ..crate::server::ServerLimits::default()
            },
        }
    }
}

/// The resolved limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    pub idempotency_ttl: Duration,
    /// Connections: how many, header and idle timeouts, HTTP/2 streams.
    pub server: crate::server::ServerLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            server: crate::server::ServerLimits::default(),
        }
    }
}

/// Wraps `router` in the limits; `timeout` bounds every request (504 problem beyond).
pub fn apply(router: Router, limits: Limits, timeout: Duration) -> Router {
    router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(from_fn_with_state(limits, edge))
}

/// 414 and 431 before anything else looks at the request; problem+json for every error after.
async fn edge(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        return ApiError::UriTooLong {
            limit: limits.max_uri_bytes,
        }
        .into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > limits.max_header_bytes {
        return ApiError::HeadersTooLarge {
            limit: limits.max_header_bytes,
        }
        .into_response();
    }
    problemize(next.run(request).await, limits)
}

/// Any error response that is not problem+json yet becomes one (same status; `Allow` kept).
fn problemize(response: Response, limits: Limits) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let error = match status {
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        },
        other => ApiError::Other(other),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = error.into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

fn is_problem(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// Router fallback: 404 problem naming the path.
pub async fn no_route(uri: Uri) -> Response {
    ApiError::RouteNotFound(truncated(uri.path())).into_response()
}

/// Method fallback: 405 problem (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let mut response = ApiError::MethodNotAllowed {
        method: truncated(method.as_str()),
        path: truncated(uri.path()),
    }
    .into_response();
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// At most 200 characters of a client-supplied string in an answer.
fn truncated(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app(limits: Limits) -> Router {
        let router = Router::new()
            .route("/echo", post(|body: axum::body::Bytes| async move { body }))
            .fallback(no_route)
            .method_not_allowed_fallback(method_not_allowed);
        apply(router, limits, Duration::from_secs(5))
    }

    async fn send(limits: Limits, request: Request) -> (StatusCode, serde_json::Value) {
        let response = app(limits).oneshot(request).await.expect("infallible");
        let status = response.status();
        assert!(is_problem(&response), "{status} is not problem+json");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    fn request(method: &str, uri: &str, body: Vec<u8>) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .expect("request")
    }

    #[tokio::test]
    async fn each_limit_answers_its_problem() {
        let limits = Limits {
            max_body_bytes: 10,
            max_uri_bytes: 30,
            max_header_bytes: 100,
            ..Limits::default()
        };
        let (status, body) = send(limits, request("POST", "/echo", vec![b'x'; 11])).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["type"], "urn:logbook:problem:payload_too_large");
        assert_eq!(body["detail"], "the request body is larger than 10 bytes");
        let long = format!("/echo?{}", "a".repeat(40));
        let (status, body) = send(limits, request("POST", &long, Vec::new())).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert_eq!(body["type"], "urn:logbook:problem:uri_too_long");
        let mut big = request("POST", "/echo", Vec::new());
        let padding = HeaderValue::from_str(&"p".repeat(120)).expect("value");
        big.headers_mut().insert("x-pad", padding);
        let (status, _) = send(limits, big).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_request_over_the_timeout_is_a_504_problem() {
        let slow = Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let app = apply(slow, Limits::default(), Duration::from_millis(50));
        let response = app
            .oneshot(request("GET", "/slow", Vec::new()))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(is_problem(&response));
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems() {
        let (status, body) = send(Limits::default(), request("GET", "/nope", Vec::new())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["type"], "urn:logbook:problem:no_route");
        let (status, body) = send(Limits::default(), request("DELETE", "/echo", Vec::new())).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["type"], "urn:logbook:problem:method_not_allowed");
        assert_eq!(body["status"], 405);
    }
}
