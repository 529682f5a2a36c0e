//! The HTTP routes and what the command handlers share: role checks, body parsing, and
//! [`execute`], which turns a command into an envelope, sends it through the command bus and
//! maps its result to a response.
//!
//! - [`accounts`]: the account commands; [`transfers`]: transfers and their status;
//! - [`queries`]: accounts, ledger lines; [`audit`]: the auditors' history, as-of state and
//!   chain verification; [`events`]: the analysts' NDJSON stream;
//! - [`admin`]: projections, rebuilds and how the rebuilds started here ended; [`security_trail`]: the security audit trail;
//! - [`personal`]: the holder's personal data (change, erasure) and its sealing;
//! - [`health`]: liveness, readiness, metrics.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod events;
pub mod extract;
pub mod health;
pub mod personal;
pub mod queries;
pub mod security_trail;
pub mod transfers;

use std::time::Instant;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use logbook_commands::domain::{AccountCommand, RejectionKind};
use logbook_commands::envelope::{CommandEnvelope, Outcome};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::gateway::GatewayError;
use crate::idempotency::Intent;
use crate::policy::{Access, Action, access};
use crate::problem::ApiError;
use crate::state::AppState;

/// The command endpoints (POST, and PUT for the overdraft limit; they take an `Idempotency-Key`).
pub(crate) fn command_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accounts::open_account))
        .routes(routes!(accounts::deposit))
        .routes(routes!(accounts::withdraw))
        .routes(routes!(accounts::freeze))
        .routes(routes!(accounts::unfreeze))
        .routes(routes!(accounts::close))
        .routes(routes!(accounts::set_overdraft_limit))
        .routes(routes!(transfers::create))
        .merge(personal::command_routes())
}

/// Every other `/v1` endpoint: queries, audit, admin. Register a documented handler with
/// `.routes(routes!(handler))` (see [`crate::openapi`]); `.route(...)` leaves it undocumented.
pub(crate) fn read_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transfers::get_transfer))
        .routes(routes!(transfers::list_account_transfers))
        .routes(routes!(admin::projections))
        .routes(routes!(admin::start_rebuild))
        .routes(routes!(admin::rebuilds))
        .routes(routes!(security_trail::list))
        .merge(personal::admin_routes())
        .merge(queries::routes())
        .merge(audit::routes())
        .merge(events::routes())
}

/// Health and metrics (no token, no rate limit).
pub(crate) fn operations_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
}

/// Every documented route without middleware: what the OpenAPI document is generated from.
pub fn api_routes() -> OpenApiRouter<AppState> {
    command_routes()
        .merge(read_routes())
        .merge(operations_routes())
}

/// The body of a successful command.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub account_id: Uuid,
    pub command_id: Uuid,
    pub version: u64,
    /// Opaque token: pass it as `min_position` to read your own write.
    pub position: String,
    /// True when this command id had been applied before (a retry).
    pub duplicate: bool,
}

/// What a command request carries besides the command: who, which intent, which trace.
#[derive(Debug)]
pub struct CommandRequest {
    actor: logbook_events::Actor,
    /// The same for every attempt of a request with an Idempotency-Key (kept with the key);
    /// fresh otherwise. Never derived from client input.
    intent: Intent,
    traceparent: Option<String>,
}

impl CommandRequest {
    /// `intent`: what the Idempotency-Key middleware stored for the key, if any.
    pub fn new(principal: &Principal, headers: &HeaderMap, intent: Option<Intent>) -> Self {
        let traceparent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|t| valid_traceparent(t))
            .map(str::to_string);
        Self {
            actor: principal.actor(),
            intent: intent.unwrap_or_else(|| Intent::fresh(Utc::now())),
            traceparent,
        }
    }

    /// The id of what the request creates (an account, a transfer), kept with its key.
    pub fn resource_id(&self) -> Uuid {
        self.intent.resource_id
    }

    /// The command id and first-attempt instant this request sends.
    pub fn identity(&self) -> (Uuid, DateTime<Utc>) {
        (self.intent.command_id, self.intent.first_attempt_at)
    }

    /// Sends another command id and first-attempt instant (a transfer id claimed earlier by
    /// the same request keeps the command it was first sent with).
    pub fn with_command(mut self, command_id: Uuid, first_attempt_at: DateTime<Utc>) -> Self {
        self.intent.command_id = command_id;
        self.intent.first_attempt_at = first_attempt_at;
        self
    }
}

/// Sends `command` for `account_id` and waits for its result.
pub async fn execute(
    state: &AppState,
    request: CommandRequest,
    account_id: Uuid,
    command: AccountCommand,
) -> Result<Accepted, ApiError> {
    let command_id = request.intent.command_id;
    let name = command.name();
    let envelope = CommandEnvelope {
        command_id,
        aggregate_id: account_id,
        correlation_id: command_id,
        causation_id: None,
        actor: request.actor,
        issued_at: request.intent.first_attempt_at,
        traceparent: Some(request.traceparent.unwrap_or_else(new_traceparent)),
        command,
        transfer: None,
        reply_partition: None,
    };
    let started = Instant::now();
    let result = state.commands.send(&envelope).await;
    let outcome = match &result {
        Ok(result) => match &result.outcome {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Rejected { .. } => "rejected",
        },
        Err(GatewayError::Timeout(_)) => "timeout",
        Err(GatewayError::Unavailable) => "unavailable",
        Err(_) => "error",
    };
    metrics::histogram!("logbook_command_duration_seconds", "command" => name, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("logbook_commands_total", "command" => name, "outcome" => outcome)
        .increment(1);
    match result {
        Ok(result) => match result.outcome {
            Outcome::Accepted {
                version,
                position,
                duplicate,
            } => Ok(Accepted {
                account_id,
                command_id,
                version,
                position,
                duplicate,
            }),
            Outcome::Rejected {
                kind,
                code,
                message,
            } => Err(ApiError::Rejected {
                // "not found" looks the same whoever answers it (see `reject_foreign`)
                command_id: (kind != RejectionKind::NotFound).then_some(command_id),
                kind,
                code,
                message,
            }),
        },
        Err(GatewayError::Timeout(command_id)) => Err(ApiError::Timeout { command_id }),
        Err(GatewayError::Unavailable) => Err(ApiError::NotSent),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// Whether the caller owns the account a command names, as far as the gateway can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Not a customer: ownership does not limit the caller.
    Unlimited,
    /// A customer, and the `accounts` read model shows the account as its own.
    Own,
    /// A customer, and the read model does not know the account (yet).
    Unknown,
}

impl Ownership {
    /// An invalid request on an account a customer is not known to own says only "not found":
    /// otherwise 422 and 404 would tell existing accounts from missing ones.
    pub fn hide(self, error: ApiError) -> ApiError {
        match (self, &error) {
            (Ownership::Unknown, ApiError::Validation(_) | ApiError::InvalidJson(_)) => {
                account_not_found()
            }
            _ => error,
        }
    }
}

/// For a customer, 404 when the account is someone else's, before any other check of the
/// request, so that no answer tells anything about an account it does not own. The `accounts`
/// read model knows the owner once the account is projected; an account it does not know yet
/// goes on to the processor, which holds its state and answers exactly the same way.
pub async fn reject_foreign(
    state: &AppState,
    principal: &Principal,
    account_id: Uuid,
) -> Result<Ownership, ApiError> {
    if principal.role != crate::auth::Role::Customer {
        return Ok(Ownership::Unlimited);
    }
    let Some(pool) = &state.db else {
        return Ok(Ownership::Unknown);
    };
    match account_owner(pool, account_id).await? {
        Some(owner) if owner != principal.sub => Err(account_not_found()),
        Some(_) => Ok(Ownership::Own),
        None => Ok(Ownership::Unknown),
    }
}

/// The owner of an account, if the `accounts` read model has it.
pub(crate) async fn account_owner(
    pool: &sqlx::PgPool,
    account_id: Uuid,
) -> Result<Option<String>, ApiError> {
    sqlx::query_scalar("SELECT owner_id FROM accounts WHERE account_id = $1")
        .bind(account_id)
        .fetch_optional(pool)
        .await
        .map_err(ApiError::internal)
}

/// The answer to a command on an account that does not exist, or that a customer does not own.
pub fn account_not_found() -> ApiError {
    ApiError::Rejected {
        kind: RejectionKind::NotFound,
        code: "account_not_found".into(),
        message: "account not found".into(),
        command_id: None,
    }
}

/// 403 unless the role may do `action` at all (ownership is checked later).
pub fn require(principal: &Principal, action: Action) -> Result<(), ApiError> {
    match access(principal.role, action) {
        Access::Denied => {
            tracing::info!(
                target: "logbook::security",
                sub = %principal.sub,
                role = principal.role.as_str(),
                ?action,
                "permission denied"
            );
            Err(ApiError::Forbidden)
        }
        Access::Own | Access::Any => Ok(()),
    }
}

fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 4
        && [2, 32, 16, 2].iter().zip(&parts).all(|(len, part)| {
            part.len() == *len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

fn new_traceparent() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_checked_and_generated_well_formed() {
        assert!(valid_traceparent(&new_traceparent()));
        assert!(!valid_traceparent("00-xyz-abc-01"));
        assert!(!valid_traceparent(
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
        ));
    }
}
