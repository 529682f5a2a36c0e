//! Query endpoints: one account, a listing of accounts, an account's ledger lines.
//!
//! Each handler checks the role matrix, validates the query string (422 with a pointer per
//! parameter), waits for `min_position` when given (read-your-writes: 503 problem+json past the
//! bound, never stale data silently), then reads the `ledger` read model. Support sees status
//! and currency only; a customer sees only its own accounts and gets 404, never 403, for the
//! others, so their existence is not revealed.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use logbook_events::Position;
use logbook_projections::queries::cursor::{AccountCursor, LineCursor};
use logbook_projections::queries::{
    self, AccountFilter, AccountView, LineView, MAX_LIMIT, Page, STATUSES,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::AccountId;
use super::require;
use crate::auth::Principal;
use crate::personal::HolderView;
use crate::policy::{Access, Action, access};
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;

/// The query routes (merged into the main router).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(list_transactions))
}

/// An account as the caller may see it: whole, or (support) status and currency only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AccountOrStatus {
    Full(AccountView),
    Status(StatusView),
}

/// One account with its holder's personal data as the caller may see it (`GET
/// /v1/accounts/{id}` only; listings leave the holder out).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountWithHolder<T> {
    #[serde(flatten)]
    pub account: T,
    /// Absent when the account has no holder data or the caller may see none of it; support
    /// sees the name only; `{"erased": true}` once the owner's data was erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<HolderView>,
}

fn account_example() -> serde_json::Value {
    json!({
        "account_id": "0193a5c2-7d1e-7c3a-9f00-000000000001", "owner_id": "alice",
        "currency": "EUR", "balance": 2500, "overdraft_limit": 0, "status": "active",
        "version": 2, "opened_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:05:00Z"
    })
}

fn account_with_holder_example() -> serde_json::Value {
    let mut example = account_example();
    example["holder"] = json!({"name": "Ada Lovelace", "email": "ada@example.org",
        "address": {"lines": ["12 St James's Square"], "postal_code": "SW1Y 4JH", "city": "London", "country": "GB"},
        "birth_date": "1985-12-10"});
    example
}

/// Query string of a single read.
#[derive(Debug, Default, Deserialize)]
pub struct ReadParams {
    pub min_position: Option<String>,
}

/// Query string of a listing.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub owner_id: Option<String>,
    pub status: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub min_position: Option<String>,
}

/// What support may see of an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusView {
    pub account_id: Uuid,
    pub status: String,
    pub currency: String,
}

impl From<AccountView> for StatusView {
    fn from(account: AccountView) -> Self {
        Self {
            account_id: account.account_id,
            status: account.status,
            currency: account.currency,
        }
    }
}

/// A query failure: an ordinary API error, or the projection not reaching `min_position`.
#[derive(Debug)]
pub enum QueryError {
    Api(ApiError),
    Behind { position: Position, waited_ms: u128 },
}

impl From<ApiError> for QueryError {
    fn from(error: ApiError) -> Self {
        QueryError::Api(error)
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        match self {
            QueryError::Api(error) => error.into_response(),
            QueryError::Behind {
                position,
                waited_ms,
            } => ApiError::ProjectionBehind {
                position: position.to_token(),
                waited_ms,
            }
            .into_response(),
        }
    }
}

/// Whether the principal sees whole accounts or only their status, and on which accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Full(Access),
    Status(Access),
}

impl View {
    fn of(principal: &Principal) -> Result<View, ApiError> {
        match access(principal.role, Action::ReadAccount) {
            Access::Denied => {
                require(principal, Action::ReadAccountStatus)?;
                Ok(View::Status(access(
                    principal.role,
                    Action::ReadAccountStatus,
                )))
            }
            any => Ok(View::Full(any)),
        }
    }

    fn access(&self) -> Access {
        match self {
            View::Full(access) | View::Status(access) => *access,
        }
    }
}

/// GET /v1/accounts/{id}
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "queries", summary = "One account",
    params(("id" = Uuid, Path, description = "Account id"),
        ("min_position" = Option<String>, Query, description = "Wait until the read model has this position (from a command answer)")),
    responses((status = 200, description = "The account (support sees status, currency and the holder's name only) and its holder as the caller may see it.",
        body = AccountWithHolder<AccountOrStatus>, example = json!(account_with_holder_example()))))]
pub async fn get_account(
    State(state): State<AppState>,
    principal: Principal,
    AccountId(id): AccountId,
    query: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    let view = View::of(&principal)?;
    let params = params(query)?;
    let mut errors = Vec::new();
    let position = min_position(params.min_position.as_deref(), &mut errors);
    reject_invalid(errors)?;
    let pool = read_model(&state, position).await?;
    let account = visible_account(pool, id, &principal, view.access()).await?;
    let holder = match &state.personal {
        Some(store) => crate::personal::view(store, id, account.holder.as_deref(), principal.role)
            .await
            .map_err(ApiError::internal)?,
        // no key ring: sealed data cannot be opened here, but whether there is any is no secret
        None => account
            .holder
            .as_ref()
            .filter(|_| principal.role != crate::auth::Role::Analyst)
            .map(|_| HolderView::unavailable()),
    };
    Ok(match view {
        View::Full(_) => Json(AccountWithHolder { account, holder }).into_response(),
        View::Status(_) => Json(AccountWithHolder {
            account: StatusView::from(account),
            holder,
        })
        .into_response(),
    })
}

/// GET /v1/accounts?owner_id=&status=&limit=&cursor=
#[utoipa::path(get, path = "/v1/accounts", tag = "queries", summary = "List accounts",
    description = "Keyset pagination: pass `next_cursor` as `cursor` for the next page. Customers list their own accounts only.",
    params(("owner_id" = Option<String>, Query, description = "Only this owner's accounts"),
        ("status" = Option<String>, Query, description = "`active`, `frozen` or `closed`"),
        ("limit" = Option<u32>, Query, minimum = 1, description = "Page size, default 50; values above 500 are capped at 500"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("min_position" = Option<String>, Query, description = "Wait until the read model has this position")),
    responses((status = 200, description = "A page of accounts.", body = Page<AccountOrStatus>,
        example = json!({ "items": [account_example()], "next_cursor": null }))))]
pub async fn list_accounts(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    let view = View::of(&principal)?;
    let params = params(query)?;
    let mut errors = Vec::new();
    let limit = limit(params.limit.as_deref(), &mut errors);
    let position = min_position(params.min_position.as_deref(), &mut errors);
    let after = cursor(params.cursor.as_deref(), AccountCursor::decode, &mut errors);
    if let Some(status) = &params.status
        && !STATUSES.contains(&status.as_str())
    {
        errors.push(FieldError::new(
            "/query/status",
            "one of active, frozen, closed",
        ));
    }
    reject_invalid(errors)?;
    let owner_id = owner_filter(&principal, view.access(), params.owner_id)?;
    let pool = read_model(&state, position).await?;
    let filter = AccountFilter {
        owner_id,
        status: params.status,
        after,
        limit,
    };
    let page = queries::accounts(pool, &filter)
        .await
        .map_err(ApiError::internal)?;
    Ok(match view {
        View::Full(_) => Json(page).into_response(),
        View::Status(_) => Json(Page {
            items: page.items.into_iter().map(StatusView::from).collect(),
            next_cursor: page.next_cursor,
        })
        .into_response(),
    })
}

/// GET /v1/accounts/{id}/transactions?limit=&cursor=
#[utoipa::path(get, path = "/v1/accounts/{id}/transactions", tag = "queries", summary = "An account's ledger lines",
    params(("id" = Uuid, Path, description = "Account id"),
        ("limit" = Option<u32>, Query, minimum = 1, description = "Page size, default 50; values above 500 are capped at 500"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("min_position" = Option<String>, Query, description = "Wait until the read model has this position")),
    responses((status = 200, description = "A page of ledger lines, oldest first.", body = Page<LineView>,
        example = json!({ "items": [{ "sequence": 2, "kind": "deposit", "amount": 2500, "balance_after": 2500,
            "reference": "salary", "transfer_id": null, "counterparty_id": null,
            "event_id": "0193a5c2-7d1e-7c3a-9f00-0000000000e2", "occurred_at": "2026-11-25T10:05:00Z" }],
            "next_cursor": null }))))]
pub async fn list_transactions(
    State(state): State<AppState>,
    principal: Principal,
    AccountId(id): AccountId,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    require(&principal, Action::ReadTransactions)?;
    let params = params(query)?;
    let mut errors = Vec::new();
    let limit = limit(params.limit.as_deref(), &mut errors);
    let position = min_position(params.min_position.as_deref(), &mut errors);
    let after = cursor(params.cursor.as_deref(), LineCursor::decode, &mut errors);
    reject_invalid(errors)?;
    let pool = read_model(&state, position).await?;
    let access = access(principal.role, Action::ReadTransactions);
    visible_account(pool, id, &principal, access).await?;
    let page = queries::transactions(pool, id, after, limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(page).into_response())
}

/// The read-model pool, once the projection has passed `position` (if given).
pub(crate) async fn read_model(
    state: &AppState,
    position: Option<Position>,
) -> Result<&PgPool, QueryError> {
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let Some(position) = position else {
        return Ok(pool);
    };
    let progress = state.progress.as_ref().ok_or(ApiError::Unavailable)?;
    let bound = progress.max_wait();
    let served_by = queries::SERVED_BY.name();
    if progress.wait_for(served_by, position, bound).await {
        Ok(pool)
    } else {
        metrics::counter!("logbook_read_your_writes_timeouts_total").increment(1);
        Err(QueryError::Behind {
            position,
            waited_ms: bound.as_millis(),
        })
    }
}

/// The account, if it exists and the principal may see it (404 otherwise).
pub(crate) async fn visible_account(
    pool: &PgPool,
    id: Uuid,
    principal: &Principal,
    access: Access,
) -> Result<AccountView, ApiError> {
    let account = queries::account(pool, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    match access {
        Access::Any => Ok(account),
        Access::Own if account.owner_id == principal.sub => Ok(account),
        Access::Own | Access::Denied => Err(ApiError::NotFound),
    }
}

/// The owner a listing is restricted to: a customer lists its own accounts only.
fn owner_filter(
    principal: &Principal,
    access: Access,
    requested: Option<String>,
) -> Result<Option<String>, ApiError> {
    match (access, requested) {
        (Access::Own, None) => Ok(Some(principal.sub.clone())),
        (Access::Own, Some(owner)) if owner == principal.sub => Ok(Some(owner)),
        (Access::Own, Some(_)) => {
            tracing::info!(
                target: "logbook::security",
                sub = %principal.sub,
                role = principal.role.as_str(),
                "permission denied: listing another owner's accounts"
            );
            Err(ApiError::Forbidden)
        }
        (_, requested) => Ok(requested),
    }
}

pub(crate) fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(params)| params).map_err(|rejection| {
        ApiError::Validation(vec![FieldError::new(
            "/query",
            format!("invalid query string: {}", rejection.body_text()),
        )])
    })
}

pub(crate) fn reject_invalid(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

pub(crate) fn min_position(token: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Position> {
    let token = token?;
    Position::parse_token(token)
        .map_err(|_| {
            errors.push(FieldError::new(
                "/query/min_position",
                "a position token returned by a command",
            ))
        })
        .ok()
}

/// The page size: default when absent, capped at [`MAX_LIMIT`]; 0 or not a number is invalid.
pub(crate) fn limit(value: Option<&str>, errors: &mut Vec<FieldError>) -> u32 {
    let Some(value) = value else {
        return queries::page_limit(None);
    };
    match value.parse::<u64>() {
        Ok(n) if n >= 1 => queries::page_limit(Some(n.min(u64::from(MAX_LIMIT)) as u32)),
        _ => {
            errors.push(FieldError::new(
                "/query/limit",
                format!("an integer from 1 to {MAX_LIMIT}"),
            ));
            0
        }
    }
}

fn cursor<C, E>(
    value: Option<&str>,
    decode: impl Fn(&str) -> Result<C, E>,
    errors: &mut Vec<FieldError>,
) -> Option<C> {
    let value = value?;
    decode(value)
        .map_err(|_| {
            errors.push(FieldError::new(
                "/query/cursor",
                "a cursor from a previous page",
            ))
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn principal(role: Role) -> Principal {
        Principal {
            sub: "alice".into(),
            role,
        }
    }

    #[test]
    fn roles_see_what_the_matrix_allows() {
        assert_eq!(
            View::of(&principal(Role::Customer)).ok(),
            Some(View::Full(Access::Own))
        );
        assert_eq!(
            View::of(&principal(Role::Support)).ok(),
            Some(View::Status(Access::Any))
        );
        assert_eq!(
            View::of(&principal(Role::Auditor)).ok(),
            Some(View::Full(Access::Any))
        );
        assert!(View::of(&principal(Role::Analyst)).is_err());
    }

    #[test]
    fn customers_list_only_their_own_accounts() {
        let alice = principal(Role::Customer);
        assert_eq!(
            owner_filter(&alice, Access::Own, None).ok(),
            Some(Some("alice".into()))
        );
        assert!(owner_filter(&alice, Access::Own, Some("bob".into())).is_err());
        let service = principal(Role::Service);
        assert_eq!(owner_filter(&service, Access::Any, None).ok(), Some(None));
    }

    #[test]
    fn limits_are_checked_and_capped() {
        let mut errors = Vec::new();
        assert_eq!(limit(None, &mut errors), 50);
        assert_eq!(limit(Some("7"), &mut errors), 7);
        assert_eq!(limit(Some("100000000000"), &mut errors), 500);
        assert!(errors.is_empty());
        limit(Some("0"), &mut errors);
        limit(Some("-1"), &mut errors);
        limit(Some("ten"), &mut errors);
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn positions_and_cursors_are_validated() {
        let mut errors = Vec::new();
        assert_eq!(
            min_position(Some("v1.2.7"), &mut errors),
            Some(Position::new(2, 7))
        );
        assert_eq!(min_position(Some("v1.2"), &mut errors), None);
        assert_eq!(cursor(Some("zz"), LineCursor::decode, &mut errors), None);
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/query/min_position", "/query/cursor"]);
    }

    #[test]
    fn behind_is_a_503_problem_with_retry_after() {
        use axum::http::{StatusCode, header};
        let response = QueryError::Behind {
            position: Position::new(1, 9),
            waited_ms: 5000,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let headers = response.headers();
        assert_eq!(
            headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
        assert!(headers.get(header::RETRY_AFTER).is_some());
    }
}
