//! Admin endpoints: projection status and zero-downtime rebuilds. Admin role only; every call
//! is recorded on the `logbook::security` audit target with who made it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use logbook_projections::rebuild::rebuild;
use logbook_projections::{Projection, ProjectorSettings};
use serde_json::json;

use super::require;
use crate::app::AppState;
use crate::auth::Principal;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};

/// GET /v1/admin/projections: per projection and partition, stored offset, log end, lag, state.
pub async fn projections(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    require(&principal, Action::Admin)?;
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let partitions = logbook_projections::admin::status(pool, &state.kafka)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "partitions": partitions })).into_response())
}

/// POST /v1/admin/projections/{name}/rebuild: starts a rebuild into shadow tables (202); the
/// live tables keep serving until the swap. Progress shows in the status as `<name>__rebuild`.
pub async fn start_rebuild(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require(&principal, Action::Admin)?;
    let projection = Projection::parse(&name).ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new("/path/name", "unknown projection")])
    })?;
    let pool = state.db.clone().ok_or(ApiError::Unavailable)?;
    tracing::info!(
        target: "logbook::security",
        sub = %principal.sub,
        role = principal.role.as_str(),
        projection = projection.name(),
        "admin action: projection rebuild started"
    );
    let settings = ProjectorSettings::new(state.kafka.clone());
    tokio::spawn(async move {
        match rebuild(settings, pool, projection, None, std::future::pending()).await {
            Ok(report) => tracing::info!(
                projection = projection.name(),
                took_ms = report.took.as_millis() as u64,
                "rebuild swapped in"
            ),
            Err(error) => tracing::error!(projection = projection.name(), %error, "rebuild failed"),
        }
    });
    let body = json!({ "projection": projection.name(), "status": "started" });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
