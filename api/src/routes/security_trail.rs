//! `GET /v1/audit/security?since=&limit=&cursor=`: the security audit trail for auditors and
//! admins, oldest first from `since`, paginated by an opaque cursor.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::routes::require;
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    pub since: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// One entry of the trail, as served.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = SecurityAuditEntry)]
pub struct Entry {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub sub: Option<String>,
    pub role: Option<String>,
    pub client_ip: Option<String>,
    pub method: String,
    pub path: String,
    pub status: i16,
    pub detail: Option<String>,
    /// How many requests the entry stands for (unauthenticated denials are counted per source
    /// and minute).
    pub count: i32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SecurityAuditPage)]
pub struct Page {
    pub items: Vec<Entry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// GET /v1/audit/security
#[utoipa::path(get, path = "/v1/audit/security", tag = "audit", summary = "The security audit trail",
    description = "Authentication failures, denied permissions and admin actions, oldest first.",
    params(("since" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant; default: the start"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size, default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of the trail.", body = Page,
        example = json!({ "items": [{ "id": 7, "occurred_at": "2026-11-25T10:00:00Z",
            "kind": "permission_denied", "sub": "alice", "role": "customer", "client_ip": "127.0.0.1",
            "method": "GET", "path": "/v1/admin/projections", "status": 403, "detail": null,
            "count": 1 }],
            "next_cursor": "7" }))))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    require(&principal, Action::Audit)?;
    let Query(params) =
        query.map_err(|e| ApiError::Validation(vec![FieldError::new("/query", e.body_text())]))?;
    let (since, limit, after) = parse(&params)?;
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let mut items: Vec<Entry> = sqlx::query_as(
        "SELECT id, occurred_at, kind, sub, role, client_ip, method, path, status, detail, count \
         FROM security_audit WHERE occurred_at >= $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(since)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await
    .map_err(ApiError::internal)?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string()).unwrap_or_default()
    });
    Ok(Json(Page { items, next_cursor }))
}

/// `since` (default: the epoch), `limit` (1..=1000, default 100), `cursor` (an entry id).
fn parse(params: &Params) -> Result<(DateTime<Utc>, i64, i64), ApiError> {
    let mut errors = Vec::new();
    let since = match params.since.as_deref() {
        None => DateTime::<Utc>::UNIX_EPOCH,
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| {
                errors.push(FieldError::new("/query/since", "an RFC 3339 timestamp"));
                DateTime::<Utc>::UNIX_EPOCH
            }),
    };
    let limit = match params.limit.as_deref().map(str::parse::<i64>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.push(FieldError::new(
                "/query/limit",
                format!("an integer from 1 to {MAX_LIMIT}"),
            ));
            DEFAULT_LIMIT
        }
    };
    let after = match params.cursor.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            errors.push(FieldError::new(
                "/query/cursor",
                "a cursor from a previous page",
            ));
            0
        }
    };
    if errors.is_empty() {
        Ok((since, limit, after))
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        let params = |since: Option<&str>, limit: Option<&str>, cursor: Option<&str>| Params {
            since: since.map(Into::into),
            limit: limit.map(Into::into),
            cursor: cursor.map(Into::into),
        };
        let (since, limit, after) = parse(&params(None, None, None)).expect("defaults");
        assert_eq!((since, limit, after), (DateTime::<Utc>::UNIX_EPOCH, 100, 0));
        assert!(
            parse(&params(
                Some("2026-11-25T10:00:00Z"),
                Some("1000"),
                Some("7")
            ))
            .is_ok()
        );
        for bad in [
            params(Some("yesterday"), None, None),
            params(None, Some("0"), None),
            params(None, Some("1001"), None),
            params(None, None, Some("-3")),
        ] {
            assert!(matches!(parse(&bad), Err(ApiError::Validation(_))));
        }
    }
}
