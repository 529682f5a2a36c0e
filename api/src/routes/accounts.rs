//! Account command endpoints: open, deposit, withdraw, freeze, unfreeze, close, overdraft limit.
//!
//! Each handler takes the account id and the body through [`super::extract`] (which checks
//! the body against its schema), checks the role matrix, builds the command and hands it to
//! [`crate::routes::execute`]. Ownership (a customer acts only on its own
//! accounts) is checked by the processor, which holds the account's state.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use logbook_commands::domain::AccountCommand;
use logbook_events::Currency;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::{AccountId, CommandBody, CommandPayload};
use super::{Accepted, CommandRequest, execute, reject_foreign, require};
use crate::auth::{Principal, Role};
use crate::idempotency::Intent;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;
use crate::validation::CommandSchema;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountBody {
    pub owner_id: String,
    pub currency: String,
    pub overdraft_limit: Option<i64>,
    pub account_id: Option<Uuid>,
    pub holder: Option<crate::personal::HolderInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountBody {
    pub amount: i64,
    pub reference: Option<String>,
}

/// A deposit's body (an [`AmountBody`] checked against the deposit schema).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct DepositBody(pub AmountBody);

/// A withdrawal's body (an [`AmountBody`] checked against the withdrawal schema).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct WithdrawalBody(pub AmountBody);

impl CommandPayload for OpenAccountBody {
    const SCHEMA: CommandSchema = CommandSchema::OpenAccount;
}

impl CommandPayload for DepositBody {
    const SCHEMA: CommandSchema = CommandSchema::Deposit;
}

impl CommandPayload for WithdrawalBody {
    const SCHEMA: CommandSchema = CommandSchema::Withdrawal;
}

impl CommandPayload for ReasonBody {
    const SCHEMA: CommandSchema = CommandSchema::StatusChange;
}

impl CommandPayload for LimitBody {
    const SCHEMA: CommandSchema = CommandSchema::OverdraftLimit;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitBody {
    pub limit: i64,
}

/// What a successful command answers (example for the OpenAPI document).
fn accepted_example() -> serde_json::Value {
    json!({
        "account_id": "0193a5c2-7d1e-7c3a-9f00-000000000001",
        "command_id": "0193a5c2-7d1e-7c3a-9f00-0000000000c1",
        "version": 2,
        "position": "v1.3.41",
        "duplicate": false
    })
}

/// POST /v1/accounts
#[utoipa::path(post, path = "/v1/accounts", tag = "commands",
    summary = "Open an account",
    description = "Opens an account for `owner_id` in one currency, optionally with the holder's personal data (encrypted with the owner's data key before it leaves the gateway). A customer opens accounts for itself only.",
    request_body(content = ref("#/components/schemas/OpenAccount"), content_type = "application/json",
        description = "schemas/commands/open-account.json"),
    responses((status = 201, description = "Opened; `Location` names the account.", body = Accepted,
        headers(("Location" = String, description = "/v1/accounts/{account_id}")),
        example = json!(accepted_example()))))]
pub async fn open_account(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<OpenAccountBody>,
) -> Result<Response, ApiError> {
    require(&principal, Action::OpenAccount)?;
    let body = body.into_result()?;
    // lengths and ranges are the schema's (checked by parse_body); what it cannot say is
    // whether the code names a currency
    let currency = Currency::parse(&body.currency);
    let overdraft_limit = body.overdraft_limit.unwrap_or(0);
    // a customer opens accounts for itself, without credit and without choosing the id
    if principal.role == Role::Customer
        && (body.owner_id != principal.sub
            || body.overdraft_limit.is_some()
            || body.account_id.is_some())
    {
        return Err(ApiError::Forbidden);
    }
    let Ok(currency) = currency else {
        let error = FieldError::new("/currency", "a three-letter ISO 4217 code, e.g. EUR");
        return Err(ApiError::Validation(vec![error]));
    };
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    // A retried open (same Idempotency-Key) names the same account: the id kept with the key.
    let account_id = body.account_id.unwrap_or_else(|| request.resource_id());
    let holder = match &body.holder {
        Some(input) => {
            let (command_id, _) = request.identity();
            let sealed = super::personal::seal(
                &state,
                &body.owner_id,
                account_id,
                command_id,
                input,
                "/holder",
            );
            Some(sealed.await?)
        }
        None => None,
    };
    let command = AccountCommand::Open {
        owner_id: body.owner_id,
        currency,
        overdraft_limit,
        holder,
    };
    let accepted = execute(&state, request, account_id, command).await?;
    let location = format!("/v1/accounts/{account_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(accepted),
    )
        .into_response())
}

/// POST /v1/accounts/{id}/deposits
#[utoipa::path(post, path = "/v1/accounts/{id}/deposits", tag = "commands", summary = "Pay money in",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body(content = ref("#/components/schemas/Deposit"), content_type = "application/json",
        description = "schemas/commands/deposit.json"),
    responses((status = 200, description = "Applied.", body = Accepted, example = json!(accepted_example()))))]
pub async fn deposit(
    State(state): State<AppState>,
    principal: Principal,
    id: AccountId,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<DepositBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    let body = body.map(|b| b.0);
    money(state, principal, id, request, body, Action::Deposit).await
}

/// POST /v1/accounts/{id}/withdrawals
#[utoipa::path(post, path = "/v1/accounts/{id}/withdrawals", tag = "commands", summary = "Take money out",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body(content = ref("#/components/schemas/Withdrawal"), content_type = "application/json",
        description = "schemas/commands/withdrawal.json"),
    responses((status = 200, description = "Applied.", body = Accepted, example = json!(accepted_example()))))]
pub async fn withdraw(
    State(state): State<AppState>,
    principal: Principal,
    id: AccountId,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<WithdrawalBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    let body = body.map(|b| b.0);
    money(state, principal, id, request, body, Action::Withdraw).await
}

async fn money(
    state: AppState,
    principal: Principal,
    AccountId(account_id): AccountId,
    request: CommandRequest,
    body: CommandBody<AmountBody>,
    action: Action,
) -> Result<Response, ApiError> {
    require(&principal, action)?;
    let ownership = reject_foreign(&state, &principal, account_id).await?;
    // amount range and reference length: the schema's (checked by CommandBody)
    let body = body.checked(ownership)?;
    let (amount, reference) = (body.amount, body.reference);
    let command = match action {
        Action::Withdraw => AccountCommand::Withdraw { amount, reference },
        _ => AccountCommand::Deposit { amount, reference },
    };
    let accepted = execute(&state, request, account_id, command).await?;
    Ok(Json(accepted).into_response())
}

/// POST /v1/accounts/{id}/freeze
#[utoipa::path(post, path = "/v1/accounts/{id}/freeze", tag = "commands", summary = "Freeze an account (no money moves until unfrozen)",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body(content = ref("#/components/schemas/StatusChange"), content_type = "application/json",
        description = "schemas/commands/status-change.json (an empty body is the same as {})"),
    responses((status = 200, description = "Applied.", body = Accepted, example = json!(accepted_example()))))]
pub async fn freeze(
    State(state): State<AppState>,
    principal: Principal,
    id: AccountId,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<ReasonBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    status_change(state, principal, id, request, body, Action::Freeze).await
}

/// POST /v1/accounts/{id}/unfreeze
#[utoipa::path(post, path = "/v1/accounts/{id}/unfreeze", tag = "commands", summary = "Unfreeze an account",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body(content = ref("#/components/schemas/StatusChange"), content_type = "application/json",
        description = "schemas/commands/status-change.json (an empty body is the same as {})"),
    responses((status = 200, description = "Applied.", body = Accepted, example = json!(accepted_example()))))]
pub async fn unfreeze(
    State(state): State<AppState>,
    principal: Principal,
    id: AccountId,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<ReasonBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    status_change(state, principal, id, request, body, Action::Unfreeze).await
}

/// POST /v1/accounts/{id}/close
#[utoipa::path(post, path = "/v1/accounts/{id}/close", tag = "commands", summary = "Close an account (its balance must be zero)",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body(content = ref("#/components/schemas/StatusChange"), content_type = "application/json",
        description = "schemas/commands/status-change.json (an empty body is the same as {})"),
    responses((status = 200, description = "Applied.", body = Accepted, example = json!(accepted_example()))))]
pub async fn close(
    State(state): State<AppState>,
    principal: Principal,
    id: AccountId,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<ReasonBody>,
) -> Result<Response, ApiError> {
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    status_change(state, principal, id, request, body, Action::Close).await
}

async fn status_change(
    state: AppState,
    principal: Principal,
    AccountId(account_id): AccountId,
    request: CommandRequest,
    body: CommandBody<ReasonBody>,
    action: Action,
) -> Result<Response, ApiError> {
    require(&principal, action)?;
    let ownership = reject_foreign(&state, &principal, account_id).await?;
    let body = body.checked(ownership)?;
    let reason = body.reason;
    let command = match action {
        Action::Freeze => AccountCommand::Freeze { reason },
        Action::Unfreeze => AccountCommand::Unfreeze { reason },
        _ => AccountCommand::Close { reason },
    };
    let accepted = execute(&state, request, account_id, command).await?;
    Ok(Json(accepted).into_response())
}

/// PUT /v1/accounts/{id}/overdraft-limit
#[utoipa::path(put, path = "/v1/accounts/{id}/overdraft-limit", tag = "commands",
    summary = "Set the overdraft limit (service, admin)",
    description = "A credit decision of the bank: how far below zero the balance may go. A limit below the account's current overdraft is refused (409 limit_below_overdraft).",
    params(("id" = Uuid, Path, description = "Account id")),
    request_body(content = ref("#/components/schemas/OverdraftLimit"), content_type = "application/json",
        description = "schemas/commands/overdraft-limit.json"),
    responses((status = 200, description = "Applied.", body = Accepted, example = json!(accepted_example()))))]
pub async fn set_overdraft_limit(
    State(state): State<AppState>,
    principal: Principal,
    AccountId(account_id): AccountId,
    headers: HeaderMap,
    intent: Option<Extension<Intent>>,
    body: CommandBody<LimitBody>,
) -> Result<Response, ApiError> {
    require(&principal, Action::SetOverdraftLimit)?;
    let body = body.into_result()?;
    let command = AccountCommand::SetOverdraftLimit {
        overdraft_limit: body.limit,
    };
    let request = CommandRequest::new(&principal, &headers, intent.map(|i| i.0));
    let accepted = execute(&state, request, account_id, command).await?;
    Ok(Json(accepted).into_response())
}
