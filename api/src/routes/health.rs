//! Operations endpoints: liveness, readiness (Kafka and PostgreSQL answer), Prometheus metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;

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
        (status = 503, description = "A dependency does not answer.", body = Object,
            example = json!({ "status": "not_ready", "checks": { "kafka": false, "database": true, "gateway": true } }))))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let kafka = state.kafka_probe.clone();
    let kafka_ok = tokio::task::spawn_blocking(move || kafka.check(Duration::from_secs(2)))
        .await
        .unwrap_or(false);
    let database_ok = match &state.db {
        Some(pool) => logbook_projections::db::ping(pool).await,
        None => true,
    };
    let gateway_ok = state.gateway.as_ref().is_none_or(|g| g.is_listening());
    let ready = kafka_ok && database_ok && gateway_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "kafka": kafka_ok, "database": database_ok, "gateway": gateway_ok },
    });
    (status, Json(body)).into_response()
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
