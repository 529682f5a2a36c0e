//! Operations endpoints: liveness, readiness (Kafka and PostgreSQL answer), Prometheus metrics.
//!
//! Readiness is probed at most once a second whatever the request rate
//! ([`crate::readiness::Readiness`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::readiness::Checks;
use crate::state::AppState;

/// GET /health/live: the process serves requests.
#[utoipa::path(get, path = "/health/live", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process serves requests.", body = Object,
        example = json!({ "status": "live" }))))]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

/// GET /health/ready: 200 only when Kafka (and PostgreSQL, when configured) answer.
#[utoipa::path(get, path = "/health/ready", tag = "operations", summary = "Readiness",
    responses(
        (status = 200, description = "Kafka, PostgreSQL and the gateway answer.", body = Object,
            example = json!({ "status": "ready", "checks": { "kafka": true, "database": true, "gateway": true } })),
        (status = 503, description = "A dependency does not answer: a problem+json body that names it.", body = Object,
            content_type = "application/problem+json",
            example = json!({ "type": "urn:logbook:problem:not_ready", "title": "Not ready", "status": 503,
                "detail": "not available: kafka", "status_text": "not_ready",
                "checks": { "kafka": false, "database": true, "gateway": true } }))))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let Checks {
        kafka: kafka_ok,
        database: database_ok,
    } = state.readiness.checks(state.db.as_ref()).await;
    let gateway_ok = state.commands.is_listening();
    let checks = json!({ "kafka": kafka_ok, "database": database_ok, "gateway": gateway_ok });
    if kafka_ok && database_ok && gateway_ok {
        return (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": checks })),
        )
            .into_response();
    }
    let down: Vec<&str> = [
        ("kafka", kafka_ok),
        ("database", database_ok),
        ("gateway", gateway_ok),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    let body = json!({
        "type": crate::problem::problem_type("not_ready"),
        "title": "Not ready",
        "status": 503,
        "detail": format!("not available: {}", down.join(", ")),
        "status_text": "not_ready",
        "checks": checks,
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// GET /metrics: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format.", body = String,
        content_type = "text/plain", example = "logbook_commands_total{command=\"deposit\",outcome=\"accepted\"} 42\n")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}
