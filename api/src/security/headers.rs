//! Security headers on every response, and CORS only for the origins configured.
//!
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`;
//! - `Cache-Control: no-store` on everything under `/v1` and on any request that carried
//!   credentials (answers are per principal and may hold balances);
//! - a strict `Content-Security-Policy`: nothing at all for JSON answers, same-origin scripts
//!   and styles only for the vendored API docs under `/docs`, and only its own scripts, styles
//!   and API calls (nothing inline) for the web console under `/console`;
//! - `Strict-Transport-Security` when the listener speaks TLS.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// CSP of JSON answers: they load nothing and may not be framed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// CSP of the API docs: the vendored Swagger UI from this origin, nothing from elsewhere.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";
/// CSP of the web console: its own scripts, styles and API calls, nothing inline, nothing from
/// another origin.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Whether the listener speaks TLS (then HSTS is sent).
#[derive(Debug, Clone, Copy)]
pub struct HeaderPolicy {
    pub tls: bool,
}

/// Middleware: adds the security headers to the response of every request.
pub async fn secure(State(policy): State<HeaderPolicy>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let credentials = request.headers().contains_key(header::AUTHORIZATION);
    let mut response = next.run(request).await;
    apply(response.headers_mut(), &path, credentials, policy);
    response
}

fn apply(headers: &mut HeaderMap, path: &str, credentials: bool, policy: HeaderPolicy) {
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    let docs = path == "/docs" || path.starts_with("/docs/");
    let console = path == "/console" || path.starts_with("/console/");
    let csp = match (docs, console) {
        (true, _) => DOCS_CSP,
        (_, true) => CONSOLE_CSP,
        _ => API_CSP,
    };
    set(headers, header::CONTENT_SECURITY_POLICY, csp);
    if credentials || path.starts_with("/v1/") {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    if policy.tls {
        set(headers, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
}

/// A CORS layer for `origins`, or None (CORS off: browsers on other origins get no access).
pub fn cors(
    origins: &[String],
) -> Result<Option<CorsLayer>, axum::http::header::InvalidHeaderValue> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|o| HeaderValue::from_str(o))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_get_their_own_csp_and_authenticated_answers_are_not_stored() {
        let mut docs = HeaderMap::new();
        apply(
            &mut docs,
            "/docs/index.html",
            false,
            HeaderPolicy { tls: false },
        );
        assert_eq!(docs[header::CONTENT_SECURITY_POLICY], DOCS_CSP);
        assert!(!docs.contains_key(header::CACHE_CONTROL));
        assert!(!docs.contains_key(header::STRICT_TRANSPORT_SECURITY));

        let mut api = HeaderMap::new();
        apply(&mut api, "/v1/accounts", true, HeaderPolicy { tls: true });
        assert_eq!(api[header::CONTENT_SECURITY_POLICY], API_CSP);
        assert_eq!(api[header::CACHE_CONTROL], "no-store");
        assert_eq!(api[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(api[header::STRICT_TRANSPORT_SECURITY], HSTS);
        let mut console = HeaderMap::new();
        apply(
            &mut console,
            "/console/app.js",
            false,
            HeaderPolicy { tls: false },
        );
        assert_eq!(console[header::CONTENT_SECURITY_POLICY], CONSOLE_CSP);
        assert!(!CONSOLE_CSP.contains("unsafe"));
        assert!(cors(&[]).expect("no origins").is_none());
        assert!(
            cors(&["https://app.example".into()])
                .expect("valid")
                .is_some()
        );
    }
}
