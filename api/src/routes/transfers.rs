//! `POST /v1/transfers`: the debit step of a transfer, answered 202 once the source is debited.
//!
//! The gateway sends debit-for-transfer to the source account; the source's processor checks
//! funds, status and ownership (a customer transfers only from its own accounts). The credit to
//! the target and, if the target refuses it (closed, unknown, other currency), the refund are the
//! saga's steps. The target's currency is authoritative only on the target's partition, so the
//! currency check there is the rule; for callers that may read both accounts the gateway also
//! looks the target up in the `accounts` read model and answers 409 at once when it already
//! knows the currencies differ. A customer learns nothing of a target it does not own but
//! whether the transfer completed or failed: no currency, no existence, no reason.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use logbook_commands::domain::{AccountCommand, RejectionKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{CommandBody, CommandPayload, TransferId};
use super::{CommandRequest, execute, require};
use crate::auth::Principal;
use crate::idempotency::Intent;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::reservations::{Reservation, TransferRequest, reserve};
use crate::state::AppState;
use crate::validation::CommandSchema;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: i64,
    pub transfer_id: Option<Uuid>,
    pub reference: Option<String>,
}

impl CommandPayload for TransferBody {
    const SCHEMA: CommandSchema = CommandSchema::Transfer;
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransferAccepted {
    pub transfer_id: Uuid,
    /// Always `pending`: the credit is the saga's next step.
    pub status: &'static str,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: i64,
    pub command_id: Uuid,
    /// Position of the debit (read-your-writes on the source account).
    pub position: String,
    pub duplicate: bool,
}

/// POST /v1/transfers
#[utoipa::path(post, path = "/v1/transfers", tag = "commands", summary = "Transfer money",
    description = "Debits the source at once (202); the saga then credits the target, or refunds the source when the target refuses. Follow it with GET /v1/transfers/{id}.",
    request_body(content = ref("#/components/schemas/Transfer"), content_type = "application/json",
        description = "schemas/commands/transfer.json"),
    responses((status = 202, description = "Source debited; credit pending.", body = TransferAccepted,
        example = json!({
            "transfer_id": "0193a5c2-7d1e-7c3a-9f00-0000000000f1", "status": "pending",
            "from_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000001",
            "to_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000002", "amount": 500,
            "command_id": "0193a5c2-7d1e-7c3a-9f00-0000000000c2", "position": "v1.3.42", "duplicate": false
        }))))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<TransferBody>,
) -> Result<Response, ApiError> {
    require(&principal, Action::Transfer)?;
    // a customer's foreign source is 404 before anything else of the body is checked
    let source = serde_json::from_slice::<serde_json::Value>(body.raw())
        .ok()
        .and_then(|b| b["from_account_id"].as_str().and_then(|s| s.parse().ok()));
    let ownership = match source {
        Some(source) => super::reject_foreign(&state, &principal, source).await?,
        None => super::Ownership::Unlimited,
    };
    let body = body.checked(ownership)?;
    // amount range and reference length: the schema's (checked by CommandBody); what it cannot
    // say is that the two accounts differ
    if body.from_account_id == body.to_account_id {
        let error = FieldError::new("/to_account_id", "must differ from from_account_id");
        return Err(ownership.hide(ApiError::Validation(vec![error])));
    }
    if crate::policy::access(principal.role, Action::ReadAccount) == crate::policy::Access::Any {
        reject_known_currency_mismatch(&state, body.from_account_id, body.to_account_id).await?;
    }
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    // a retry with the same Idempotency-Key names the same transfer: the id kept with the key
    let transfer_id = body.transfer_id.unwrap_or_else(|| request.resource_id());
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let wanted = TransferRequest {
        transfer_id,
        from_account_id: body.from_account_id,
        to_account_id: body.to_account_id,
        amount: body.amount,
    };
    let (command_id, first_attempt_at) = request.identity();
    let request = match reserve(pool, &principal, wanted, command_id, first_attempt_at)
        .await
        .map_err(ApiError::internal)?
    {
        Reservation::Claimed {
            command_id,
            first_attempt_at,
        } => request.with_command(command_id, first_attempt_at),
        Reservation::Reused => {
            return Err(ApiError::Rejected {
                kind: RejectionKind::Conflict,
                code: "transfer_id_reused".into(),
                message: "this transfer_id names another transfer".into(),
                command_id: None,
            });
        }
    };
    let command = AccountCommand::DebitForTransfer {
        transfer_id,
        to_account_id: body.to_account_id,
        amount: body.amount,
        reference: body.reference,
    };
    let accepted = execute(&state, request, body.from_account_id, command).await?;
    let answer = TransferAccepted {
        transfer_id,
        status: "pending",
        from_account_id: body.from_account_id,
        to_account_id: body.to_account_id,
        amount: body.amount,
        command_id: accepted.command_id,
        position: accepted.position,
        duplicate: accepted.duplicate,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// 409 when the read model already shows two different currencies (best effort: an account not
/// projected yet is left to the target's processor, whose rejection the saga refunds).
async fn reject_known_currency_mismatch(
    state: &AppState,
    from: Uuid,
    to: Uuid,
) -> Result<(), ApiError> {
    let Some(pool) = &state.db else { return Ok(()) };
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT account_id, currency::text FROM accounts WHERE account_id = ANY($1)",
    )
    .bind(vec![from, to])
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let currency = |id: Uuid| {
        rows.iter()
            .find(|(a, _)| *a == id)
            .map(|(_, c)| c.trim().to_string())
    };
    match (currency(from), currency(to)) {
        (Some(a), Some(b)) if a != b => Err(ApiError::Rejected {
            kind: RejectionKind::Conflict,
            code: "currency_mismatch".to_string(),
            message: format!("the accounts hold different currencies ({a} and {b})"),
            command_id: None,
        }),
        _ => Ok(()),
    }
}

/// GET /v1/transfers/{id}: pending, completed, or failed with the reason, and when each step
/// happened. Customers see transfers touching an account they own; others get 404.
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "queries", summary = "A transfer's status",
    params(("id" = Uuid, Path, description = "Transfer id"),
        ("min_position" = Option<String>, Query, description = "Wait until the read model has this position (from a command answer)")),
    responses((status = 200, description = "The transfer.", body = logbook_projections::queries::TransferView,
        example = json!({
            "transfer_id": "0193a5c2-7d1e-7c3a-9f00-0000000000f1",
            "from_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000001",
            "to_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000002", "amount": 500, "currency": "EUR",
            "status": "completed", "reason": null, "reference": "rent",
            "debited_at": "2026-11-25T10:00:00Z", "credited_at": "2026-11-25T10:00:01Z",
            "refunded_at": null, "updated_at": "2026-11-25T10:00:01Z"
        }))))]
pub async fn get_transfer(
    axum::extract::State(state): axum::extract::State<AppState>,
    principal: Principal,
    TransferId(id): TransferId,
    query: Result<
        axum::extract::Query<super::queries::ReadParams>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, super::queries::QueryError> {
    require(&principal, Action::ReadTransactions)?;
    let params = super::queries::params(query)?;
    let mut errors = Vec::new();
    let position = super::queries::min_position(params.min_position.as_deref(), &mut errors);
    super::queries::reject_invalid(errors)?;
    let pool = super::queries::read_model(&state, position).await?;
    let transfer = logbook_projections::queries::transfer(pool, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let access = crate::policy::access(principal.role, Action::ReadTransactions);
    let transfer = as_seen_by(pool, &principal, access, transfer)
        .await
        .ok_or(ApiError::NotFound)?;
    Ok(Json(transfer).into_response())
}

/// GET /v1/accounts/{id}/transfers?limit=&cursor=: the transfers an account sent or received,
/// each as [`get_transfer`] would show it to the caller.
#[utoipa::path(get, path = "/v1/accounts/{id}/transfers", tag = "queries",
    summary = "The transfers an account sent or received",
    description = "Ordered by transfer id (keyset pagination: pass `next_cursor` as `cursor`). Each transfer is shown as GET /v1/transfers/{id} shows it to the caller: a customer learns why a credit was refused only when it owns the target.",
    params(("id" = Uuid, Path, description = "Account id"),
        ("limit" = Option<u32>, Query, minimum = 1, description = "Page size, default 50; values above 500 are capped at 500"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("min_position" = Option<String>, Query, description = "Wait until the read model has this position")),
    responses((status = 200, description = "A page of transfers.",
        body = logbook_projections::queries::Page<logbook_projections::queries::TransferView>,
        example = json!({ "items": [{
            "transfer_id": "0193a5c2-7d1e-7c3a-9f00-0000000000f1",
            "from_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000001",
            "to_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000002", "amount": 500, "currency": "EUR",
            "status": "completed", "reason": null, "reference": "rent",
            "debited_at": "2026-11-25T10:00:00Z", "credited_at": "2026-11-25T10:00:01Z",
            "refunded_at": null, "updated_at": "2026-11-25T10:00:01Z" }], "next_cursor": null }))))]
pub async fn list_account_transfers(
    axum::extract::State(state): axum::extract::State<AppState>,
    principal: Principal,
    super::extract::AccountId(id): super::extract::AccountId,
    query: Result<
        axum::extract::Query<super::queries::ListParams>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, super::queries::QueryError> {
    use logbook_projections::queries::cursor::TransferCursor;
    require(&principal, Action::ReadTransactions)?;
    let params = super::queries::params(query)?;
    let mut errors = Vec::new();
    let limit = super::queries::limit(params.limit.as_deref(), &mut errors);
    let position = super::queries::min_position(params.min_position.as_deref(), &mut errors);
    let after = params.cursor.as_deref().and_then(|c| {
        TransferCursor::decode(c)
            .map_err(|_| errors.push(FieldError::new("/query/cursor", "a cursor from a page")))
            .ok()
    });
    super::queries::reject_invalid(errors)?;
    let pool = super::queries::read_model(&state, position).await?;
    let access = crate::policy::access(principal.role, Action::ReadTransactions);
    super::queries::visible_account(pool, id, &principal, access).await?;
    let page = logbook_projections::queries::account_transfers(pool, id, after, limit)
        .await
        .map_err(ApiError::internal)?;
    let mut items = Vec::with_capacity(page.items.len());
    for transfer in page.items {
        // the caller may read this account, so it sees every transfer of it
        if let Some(transfer) = as_seen_by(pool, &principal, access, transfer).await {
            items.push(transfer);
        }
    }
    Ok(Json(logbook_projections::queries::Page {
        items,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// A transfer as the caller may see it: None when it touches no account the caller may read;
/// for a caller limited to its own accounts, why a credit was refused only when it owns the
/// target (the reason tells about the target).
async fn as_seen_by(
    pool: &sqlx::PgPool,
    principal: &Principal,
    access: crate::policy::Access,
    mut transfer: logbook_projections::queries::TransferView,
) -> Option<logbook_projections::queries::TransferView> {
    if access == crate::policy::Access::Any {
        return Some(transfer);
    }
    let mut owned = [false, false];
    for (i, account) in [transfer.from_account_id, transfer.to_account_id]
        .into_iter()
        .enumerate()
    {
        if let Some(account) = account {
            owned[i] = super::queries::visible_account(pool, account, principal, access)
                .await
                .is_ok();
        }
    }
    if owned == [false, false] {
        return None;
    }
    if !owned[1] && transfer.reason.is_some() {
        transfer.reason = Some("transfer_failed".into());
    }
    Some(transfer)
}
