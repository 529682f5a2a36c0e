//! HTTP errors as RFC 9457 `application/problem+json`.
//!
//! Every failure of a request becomes one [`ApiError`] variant with one status and a stable
//! `type` URI. Internal errors are logged once here and answered without details.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use logbook_commands::domain::RejectionKind;
use serde::Serialize;
use uuid::Uuid;

/// One invalid field: a JSON pointer into the request body (or `/path/<name>`,
/// `/query/<name>`, `/header/<name>`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{message}")]
    Rejected {
        kind: RejectionKind,
        code: String,
        message: String,
        /// The command the processor refused (absent when the gateway refused the request).
        command_id: Option<Uuid>,
    },
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("not allowed")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error(
        "the command {command_id} was sent but its result did not arrive in time; retry with the same Idempotency-Key"
    )]
    Timeout { command_id: Uuid },
    #[error("the service is not ready")]
    Unavailable,
    #[error(
        "Kafka cannot take commands right now: this command was not sent; retry after Retry-After"
    )]
    NotSent,
    #[error("no such resource: {0}")]
    RouteNotFound(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request URL is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("the request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("the request did not complete in time; retry (with the same Idempotency-Key)")]
    RequestTimeout,
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    #[error("the first request with this Idempotency-Key is still in progress; retry later")]
    IdempotencyInFlight,
    #[error("rate limit exceeded; retry after the time in Retry-After")]
    RateLimited { retry_after_secs: u64 },
    #[error("the read model did not reach position {position} within {waited_ms} ms; retry")]
    ProjectionBehind {
        /// The position asked for (`min_position`), as its token.
        position: String,
        waited_ms: u128,
    },
    #[error("the request failed with status {0}")]
    Other(StatusCode),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_position: Option<String>,
}

impl ApiError {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    /// Status, stable problem code and title.
    fn parts(&self) -> (StatusCode, &str, &'static str) {
        match self {
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            ApiError::Rejected { kind, code, .. } => match kind {
                RejectionKind::NotFound => (StatusCode::NOT_FOUND, code, "Not found"),
                RejectionKind::Conflict => (StatusCode::CONFLICT, code, "Command rejected"),
                RejectionKind::Invalid => {
                    (StatusCode::UNPROCESSABLE_ENTITY, code, "Invalid command")
                }
            },
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::Timeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "command_timeout",
                "Result not in time",
            ),
            ApiError::Unavailable | ApiError::NotSent => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
            ApiError::InvalidJson(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                "Malformed JSON",
            ),
            ApiError::RouteNotFound(_) => (StatusCode::NOT_FOUND, "no_route", "Not found"),
            ApiError::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Body too large",
            ),
            ApiError::UriTooLong { .. } => {
                (StatusCode::URI_TOO_LONG, "uri_too_long", "URL too long")
            }
            ApiError::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Headers too large",
            ),
            ApiError::RequestTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "request_timeout",
                "Request timed out",
            ),
            ApiError::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency-Key reused",
            ),
            ApiError::IdempotencyInFlight => (
                StatusCode::CONFLICT,
                "idempotency_in_flight",
                "Request in progress",
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
            ),
            ApiError::ProjectionBehind { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "projection_behind",
                "Read model behind",
            ),
            ApiError::Other(status) => (
                *status,
                "http_error",
                status.canonical_reason().unwrap_or("Error"),
            ),
        }
    }
}

/// The stable `type` URI of a problem code.
pub fn problem_type(code: &str) -> String {
    format!("urn:logbook:problem:{code}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "internal error");
        }
        let (status, code, title) = self.parts();
        let retry_after: Option<u64> = match &self {
            ApiError::Unavailable
            | ApiError::NotSent
            | ApiError::Timeout { .. }
            | ApiError::RequestTimeout
            | ApiError::IdempotencyInFlight
            | ApiError::ProjectionBehind { .. } => Some(1),
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let problem = Problem {
            type_uri: problem_type(code),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            command_id: match &self {
                ApiError::Timeout { command_id } => Some(*command_id),
                ApiError::Rejected { command_id, .. } => *command_id,
                _ => None,
            },
            min_position: match &self {
                ApiError::ProjectionBehind { position, .. } => Some(position.clone()),
                _ => None,
            },
            errors: match self {
                ApiError::Validation(errors) => errors,
                _ => Vec::new(),
            },
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let response =
            ApiError::internal(anyhow::anyhow!("password=hunter2 at db")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
    }

    #[test]
    fn rejections_map_to_their_status() {
        let rejected = |kind| ApiError::Rejected {
            kind,
            code: "x".into(),
            message: "m".into(),
            command_id: None,
        };
        assert_eq!(
            rejected(RejectionKind::NotFound).parts().0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            rejected(RejectionKind::Conflict).parts().0,
            StatusCode::CONFLICT
        );
        assert_eq!(
            rejected(RejectionKind::Invalid).parts().0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
