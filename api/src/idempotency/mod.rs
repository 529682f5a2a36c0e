//! `Idempotency-Key` on the command endpoints: the same key and the same request get the first
//! answer again (status, `Location`, body), also after a gateway restart and also for
//! rejections; the same key with another request gets 422; while the first attempt is in
//! flight, 409 with `Retry-After`.
//!
//! Keys are scoped per principal (the token's `role` and `sub`). The request fingerprint is the SHA-256 of
//! method, path and canonical JSON body (object keys sorted, insignificant whitespace dropped).
//! 5xx answers are not final: the key is released and a retry runs again, still at most once:
//! the key keeps its [`Intent`] (the command id, the id of what it creates, the instant of the
//! first attempt), which the middleware hands to the handler as a request extension, so every
//! attempt sends the same command and the processor dedupes it (or refuses it as expired once
//! its horizon has passed). Without a database the middleware only checks the key's form.

mod store;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use store::{Claim, IdempotencyStore, Intent, KeyRef, StoreError, StoredAnswer};

use crate::auth::Authentication;
use crate::problem::{ApiError, FieldError};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotency-replayed";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// Headers of an answer that are stored and replayed with it.
const KEPT_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];

/// Middleware of the command routes (inside [`crate::auth::authenticate`]).
pub async fn answer_once(
    State(store): State<Option<IdempotencyStore>>,
    request: Request,
    next: Next,
) -> Response {
    let key = match request.headers().get(HEADER).map(valid_key).transpose() {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(error) => return error.into_response(),
    };
    let Some(store) = store else {
        return next.run(request).await;
    };
    let Ok(principal) = Authentication::of(request.extensions()).cloned() else {
        // Unauthenticated: the handler answers 401 and nothing is stored.
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, store.max_body_bytes()).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let limit = store.max_body_bytes();
            return ApiError::PayloadTooLarge { limit }.into_response();
        }
    };
    let key = KeyRef {
        // scoped by role too: one `sub` under two roles holds two sets of keys
        principal: format!("{}:{}", principal.role.as_str(), principal.sub),
        key,
        fingerprint: fingerprint(parts.method.as_str(), parts.uri.path(), &bytes),
    };
    let token = match store.claim(&key).await {
        Ok(Claim::Owner { token, intent }) => {
            parts.extensions.insert(intent);
            token
        }
        Ok(Claim::Replay(answer)) => return replayed(answer),
        Ok(Claim::Mismatch) => return ApiError::IdempotencyKeyReused.into_response(),
        Ok(Claim::InFlight) => return ApiError::IdempotencyInFlight.into_response(),
        Err(error) => {
            tracing::warn!(%error, "idempotency store unavailable");
            return ApiError::Unavailable.into_response();
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    settle(&store, &key, token, response).await
}

/// Stores a final answer (or releases the key after a 5xx) and returns the answer.
async fn settle(
    store: &IdempotencyStore,
    key: &KeyRef,
    token: chrono::DateTime<chrono::Utc>,
    response: Response,
) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        let _ = store.release(key, token).await;
        return ApiError::internal(anyhow::anyhow!("unreadable response body")).into_response();
    };
    let outcome = if parts.status.is_server_error() {
        store.release(key, token).await
    } else {
        let answer = StoredAnswer {
            status: parts.status.as_u16(),
            headers: kept_headers(&parts.headers),
            body: bytes.to_vec(),
        };
        store.complete(key, token, &answer).await
    };
    if let Err(error) = outcome {
        // The row stays in flight until the in-flight timeout; a retry then takes it over.
        tracing::warn!(%error, "idempotency answer not stored");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn kept_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_string(), value.to_string()))
        })
        .collect()
}

/// The stored answer as a response, marked as replayed.
fn replayed(answer: StoredAnswer) -> Response {
    let status = axum::http::StatusCode::from_u16(answer.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// 1 to [`MAX_KEY_LEN`] visible ASCII characters.
pub fn valid_key(value: &HeaderValue) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    if (1..=MAX_KEY_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Ok(String::from_utf8_lossy(bytes).into_owned());
    }
    Err(ApiError::Validation(vec![FieldError::new(
        "/header/Idempotency-Key",
        format!("1 to {MAX_KEY_LEN} visible ASCII characters"),
    )]))
}

/// SHA-256 of method, path and the canonical body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b"\n");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(canonical_body(body));
    hash.finalize().to_vec()
}

/// JSON with sorted keys and no insignificant whitespace; an empty body counts as `{}` (as the
/// status-change endpoints read it); anything not JSON stays as it is.
fn canonical_body(body: &[u8]) -> Vec<u8> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return b"{}".to_vec();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let mut out = String::new();
            canonical(&value, &mut out);
            out.into_bytes()
        }
        Err(_) => body.to_vec(),
    }
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_key_order_and_whitespace_but_not_content_or_target() {
        let a = fingerprint("POST", "/v1/transfers", br#"{"a":1,"b":[1,{"y":2,"x":1}]}"#);
        let b = fingerprint(
            "POST",
            "/v1/transfers",
            b" { \"b\" : [1, {\"x\":1,\"y\":2}], \"a\": 1 } ",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint("POST", "/v1/transfers", br#"{"a":2,"b":[1,{"y":2,"x":1}]}"#)
        );
        assert_ne!(
            a,
            fingerprint("POST", "/v1/other", br#"{"a":1,"b":[1,{"y":2,"x":1}]}"#)
        );
        assert_eq!(
            fingerprint("POST", "/p", b""),
            fingerprint("POST", "/p", b"{}")
        );
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(valid_key(&HeaderValue::from_static("order-4711")).is_ok());
        assert!(valid_key(&HeaderValue::from_static("")).is_err());
        assert!(valid_key(&HeaderValue::from_static("with space")).is_err());
        let long = HeaderValue::from_str(&"k".repeat(256)).expect("value");
        assert!(valid_key(&long).is_err());
    }

    #[test]
    fn replays_restore_status_headers_and_body() {
        let answer = StoredAnswer {
            status: 201,
            headers: BTreeMap::from([("location".to_string(), "/v1/accounts/x".to_string())]),
            body: b"{\"ok\":true}".to_vec(),
        };
        let response = replayed(answer);
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/v1/accounts/x");
        assert_eq!(response.headers()[REPLAYED], "true");
    }
}
