//! Operations endpoints: liveness, readiness (Kafka and PostgreSQL answer), Prometheus metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;

/// GET /health/live: the process serves requests.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

/// GET /health/ready: 200 only when Kafka (and PostgreSQL, when configured) answer.
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
