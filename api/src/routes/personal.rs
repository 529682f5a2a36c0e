//! Personal data endpoints: changing an account holder's fields (`PATCH
//! /v1/accounts/{id}/holder`) and erasing an owner's personal data (`POST
//! /v1/owners/{owner_id}/erasure`, admin), plus the sealing both the open and the change use.
//!
//! Plain text never leaves this module towards Kafka: [`seal`] encrypts every field with the
//! owner's data key ([`crate::personal`]) before the command is built.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use logbook_commands::domain::AccountCommand;
use logbook_events::SealedHolder;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{AccountId, CommandBody, CommandPayload};
use super::queries::{QueryError, ReadParams, min_position, params, read_model, reject_invalid};
use super::{
    Accepted, CommandRequest, account_not_found, account_owner, execute, reject_foreign, require,
};
use crate::auth::Principal;
use crate::idempotency::Intent;
use crate::personal::{HolderInput, KeyStore, holder};
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;
use crate::validation::CommandSchema;

/// The holder routes that take an `Idempotency-Key` (PATCH of the holder).
pub(crate) fn command_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_holder))
}

/// The erasure route (admin).
pub(crate) fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase_owner))
}

impl CommandPayload for HolderInput {
    const SCHEMA: CommandSchema = CommandSchema::Holder;
}

/// Checks what the schema cannot and seals `input` with `owner_id`'s data key for the command
/// `command_id` on `account_id`. `pointer` is where the holder sits in the body.
pub(crate) async fn seal(
    state: &AppState,
    owner_id: &str,
    account_id: Uuid,
    command_id: Uuid,
    input: &HolderInput,
    pointer: &str,
) -> Result<SealedHolder, ApiError> {
    input
        .check(pointer, holder::today())
        .map_err(|e| ApiError::Validation(vec![e]))?;
    let Some(store) = &state.personal else {
        let pointer = if pointer.is_empty() { "/" } else { pointer };
        return Err(ApiError::Validation(vec![FieldError::new(
            pointer,
            "personal data is not accepted: this server has no key-encryption key (LOGBOOK_KEK_FILE)",
        )]));
    };
    let key = store
        .sealing_key(owner_id)
        .await
        .map_err(ApiError::internal)?;
    input
        .seal(&key, account_id, command_id)
        .map_err(ApiError::internal)
}

/// PATCH /v1/accounts/{id}/holder
#[utoipa::path(patch, path = "/v1/accounts/{id}/holder", tag = "commands",
    summary = "Change the holder's personal data (the owner, service, admin)",
    description = "Replaces the fields given (name, email, address, birth_date); the others stay. The fields are encrypted with the owner's data key before they are written. The account must be visible in the read model: pass the `position` of the open as `min_position` right after opening.",
    params(("id" = Uuid, Path, description = "Account id"),
        ("min_position" = Option<String>, Query, description = "Wait until the read model has this position")),
    request_body(content = ref("#/components/schemas/HolderChange"), content_type = "application/json",
        description = "schemas/commands/holder.json"),
    responses((status = 200, description = "Applied.", body = Accepted)))]
pub async fn change_holder(
    State(state): State<AppState>,
    principal: Principal,
    AccountId(account_id): AccountId,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    query: Result<Query<ReadParams>, QueryRejection>,
    body: CommandBody<HolderInput>,
) -> Result<Response, QueryError> {
    require(&principal, Action::ChangeHolder)?;
    let ownership = reject_foreign(&state, &principal, account_id).await?;
    let body = body.checked(ownership)?;
    let params = params(query)?;
    let mut errors = Vec::new();
    let position = min_position(params.min_position.as_deref(), &mut errors);
    reject_invalid(errors)?;
    let pool = read_model(&state, position).await?;
    let owner = account_owner(pool, account_id)
        .await?
        .ok_or_else(account_not_found)?;
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    let (command_id, _) = request.identity();
    let sealed = seal(&state, &owner, account_id, command_id, &body, "").await?;
    let command = AccountCommand::ChangeHolder { holder: sealed };
    let accepted: Accepted = execute(&state, request, account_id, command).await?;
    Ok(Json(accepted).into_response())
}

/// What an erasure answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    pub owner_id: String,
    /// Whether a data key existed and was destroyed now.
    pub key_destroyed: bool,
    pub erased_at: DateTime<Utc>,
}

/// POST /v1/owners/{owner_id}/erasure
#[utoipa::path(post, path = "/v1/owners/{owner_id}/erasure", tag = "admin",
    summary = "Erase an owner's personal data (admin)",
    description = "Destroys the owner's data key: from then on every personal field of the owner, in the log, the read models, exports and backups, reads as erased, for every role and tool. Balances, history and hash chains are untouched. Recorded in the security trail. Erasing twice is harmless.",
    params(("owner_id" = String, Path, description = "The owner id (opaque)")),
    responses((status = 200, description = "Erased.", body = Erasure,
        example = json!({"owner_id": "c-81723", "key_destroyed": true, "erased_at": "2026-11-30T12:00:00Z"}))))]
pub async fn erase_owner(
    State(state): State<AppState>,
    principal: Principal,
    Path(owner_id): Path<String>,
) -> Result<Response, ApiError> {
    require(&principal, Action::EraseOwner)?;
    let chars = owner_id.chars().count();
    if chars == 0 || chars > logbook_commands::domain::MAX_OWNER_ID_CHARS {
        return Err(ApiError::Validation(vec![FieldError::new(
            "/path/owner_id",
            "must be 1 to 128 characters long",
        )]));
    }
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let key_destroyed = KeyStore::erase(pool, &owner_id, &principal.sub)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(target: "logbook::security", %owner_id, by = %principal.sub, key_destroyed, "owner's personal data erased");
    Ok(Json(Erasure {
        owner_id,
        key_destroyed,
        erased_at: Utc::now(),
    })
    .into_response())
}
