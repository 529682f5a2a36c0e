//! Admin endpoints: projection status and zero-downtime rebuilds (their outcome: [`crate::rebuilds`]). Admin role only; every call
//! is recorded on the `logbook::security` audit target with who made it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use logbook_projections::rebuild::rebuild;
use logbook_projections::{Projection, ProjectorSettings};

use super::require;
use crate::auth::Principal;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;
use logbook_commands::domain::RejectionKind;

/// The body of `GET /v1/admin/projections`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProjectionsStatus {
    pub partitions: Vec<logbook_projections::admin::PartitionStatus>,
}

/// The body of a started rebuild.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RebuildStarted {
    /// Follow it in `GET /v1/admin/rebuilds`.
    pub rebuild_id: uuid::Uuid,
    pub projection: String,
    /// Always `started`.
    pub status: String,
}

/// GET /v1/admin/projections: per projection and partition, stored offset, log end, lag, state.
#[utoipa::path(get, path = "/v1/admin/projections", tag = "admin", summary = "Projection status",
    responses((status = 200, description = "Per projection and partition.", body = ProjectionsStatus,
        example = json!({ "partitions": [{ "projection": "ledger", "partition": 0, "next_offset": 120,
            "log_end": 120, "lag": 0, "state": "running", "error": null,
            "updated_at": "2026-11-25T10:00:00Z" }] }))))]
pub async fn projections(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    require(&principal, Action::Admin)?;
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let partitions = logbook_projections::admin::status(pool, &state.kafka)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(ProjectionsStatus { partitions }).into_response())
}

/// POST /v1/admin/projections/{name}/rebuild: starts a rebuild into shadow tables (202); the
/// live tables keep serving until the swap. Progress shows in the status as `<name>__rebuild`.
/// 409 `rebuild_not_permitted` where the API's database role may not replace tables (a
/// least-privilege deployment: `logbook rebuild` runs with the owner's settings instead).
#[utoipa::path(post, path = "/v1/admin/projections/{name}/rebuild", tag = "admin",
    summary = "Rebuild a projection without downtime",
    params(("name" = String, Path, description = "`ledger` or `archive`")),
    responses((status = 202, description = "Started; progress shows in the status as `<name>__rebuild`.",
        body = RebuildStarted, example = json!({ "rebuild_id": "0193a5c2-7d1e-7c3a-9f00-0000000000b1",
            "projection": "ledger", "status": "started" }))))]
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
    let permitted = logbook_projections::rebuild::permitted(&pool, projection)
        .await
        .map_err(ApiError::internal)?;
    if !permitted {
        return Err(ApiError::Rejected {
            kind: RejectionKind::Conflict,
            code: "rebuild_not_permitted".to_string(),
            message: "the API's database role may not replace the projection's tables: run \
                      `logbook rebuild` with the owner's settings"
                .to_string(),
            command_id: None,
        });
    }
    tracing::info!(
        target: "logbook::security",
        sub = %principal.sub,
        role = principal.role.as_str(),
        projection = projection.name(),
        "admin action: projection rebuild started"
    );
    let settings = ProjectorSettings::new((*state.kafka).clone());
    let rebuild_id = state.rebuilds.start(projection.name(), &principal.sub);
    let rebuilds = state.rebuilds.clone();
    tokio::spawn(async move {
        match rebuild(settings, pool, projection, None, std::future::pending()).await {
            Ok(report) => {
                tracing::info!(
                    projection = projection.name(),
                    took_ms = report.took.as_millis() as u64,
                    "rebuild swapped in"
                );
                rebuilds.finish(rebuild_id, Ok(report.took));
            }
            Err(error) => {
                tracing::error!(projection = projection.name(), %error, "rebuild failed");
                rebuilds.finish(rebuild_id, Err(error.to_string()));
            }
        }
    });
    let body = RebuildStarted {
        rebuild_id,
        projection: projection.name().to_string(),
        status: "started".to_string(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The body of `GET /v1/admin/rebuilds`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RebuildList {
    pub rebuilds: Vec<crate::rebuilds::RebuildRun>,
}

/// GET /v1/admin/rebuilds
#[utoipa::path(get, path = "/v1/admin/rebuilds", tag = "admin",
    summary = "Rebuilds started through this gateway",
    description = "The last 20 rebuilds this gateway process started, newest first, with their outcome. In memory: another gateway or a restarted one does not know them.",
    responses((status = 200, description = "The runs.", body = RebuildList,
        example = json!({ "rebuilds": [{ "rebuild_id": "0193a5c2-7d1e-7c3a-9f00-0000000000b1",
            "projection": "ledger", "started_by": "root", "started_at": "2026-11-25T10:00:00Z",
            "state": "swapped", "finished_at": "2026-11-25T10:00:02Z", "took_ms": 1840,
            "error": null }] }))))]
pub async fn rebuilds(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<RebuildList>, ApiError> {
    require(&principal, Action::Admin)?;
    Ok(Json(RebuildList {
        rebuilds: state.rebuilds.list(),
    }))
}
