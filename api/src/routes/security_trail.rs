//! `GET /v1/audit/security?since=&until=&sub=&kind=&limit=&cursor=`: the security audit trail for
//! auditors and admins, oldest first from `since` (to `until`, exclusive), optionally only one
//! principal's entries or one kind of outcome, paginated by an opaque cursor.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::routes::require;
use crate::security::trail::Kind;
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    pub since: Option<String>,
    pub until: Option<String>,
    pub sub: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// The checked query string.
#[derive(Debug, PartialEq, Eq)]
struct Filter {
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    sub: Option<String>,
    kind: Option<&'static str>,
    limit: i64,
    after: i64,
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
    description = "Authentication failures, denied permissions, rate limiting and admin actions, oldest first; filters combine.",
    params(("since" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant; default: the start"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant: entries before it (exclusive); default: no end"),
        ("sub" = Option<String>, Query, description = "Only this principal's entries (the token's `sub`)"),
        ("kind" = Option<String>, Query, description = "Only this outcome: `authentication_failed`, `permission_denied`, `rate_limited` or `admin_action`"),
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
    let filter = parse(&params)?;
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let mut items: Vec<Entry> = sqlx::query_as(
        "SELECT id, occurred_at, kind, sub, role, client_ip, method, path, status, detail, count \
         FROM security_audit WHERE occurred_at >= $1 AND id > $2 \
         AND ($4::timestamptz IS NULL OR occurred_at < $4) AND ($5::text IS NULL OR sub = $5) \
         AND ($6::text IS NULL OR kind = $6) ORDER BY id LIMIT $3",
    )
    .bind(filter.since)
    .bind(filter.after)
    .bind(filter.limit + 1)
    .bind(filter.until)
    .bind(filter.sub)
    .bind(filter.kind)
    .fetch_all(pool)
    .await
    .map_err(ApiError::internal)?;
    let limit = filter.limit;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string()).unwrap_or_default()
    });
    Ok(Json(Page { items, next_cursor }))
}

/// `since` (default: the epoch), `until` (default: none), `sub`, `kind` (one of
/// [`Kind::ALL`]), `limit` (1..=1000, default 100), `cursor` (an entry id).
fn parse(params: &Params) -> Result<Filter, ApiError> {
    let mut errors = Vec::new();
    let mut instant = |value: Option<&str>, pointer: &str| {
        value.and_then(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| errors.push(FieldError::new(pointer, "an RFC 3339 timestamp")))
                .ok()
        })
    };
    let since = instant(params.since.as_deref(), "/query/since").unwrap_or(DateTime::UNIX_EPOCH);
    let until = instant(params.until.as_deref(), "/query/until");
    let kind = params.kind.as_deref().and_then(|text| {
        let kind = Kind::ALL.iter().map(Kind::as_str).find(|k| *k == text);
        if kind.is_none() {
            let kinds: Vec<&str> = Kind::ALL.iter().map(Kind::as_str).collect();
            errors.push(FieldError::new(
                "/query/kind",
                format!("one of {}", kinds.join(", ")),
            ));
        }
        kind
    });
    let sub = params.sub.clone().filter(|s| !s.is_empty());
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
        Ok(Filter {
            since,
            until,
            sub,
            kind,
            limit,
            after,
        })
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
            ..Params::default()
        };
        let defaults = parse(&params(None, None, None)).expect("defaults");
        assert_eq!(
            (
                defaults.since,
                defaults.limit,
                defaults.after,
                defaults.until
            ),
            (DateTime::<Utc>::UNIX_EPOCH, 100, 0, None)
        );
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
            Params {
                until: Some("tomorrow".into()),
                ..Params::default()
            },
            Params {
                kind: Some("denied".into()),
                ..Params::default()
            },
        ] {
            assert!(matches!(parse(&bad), Err(ApiError::Validation(_))));
        }
    }

    #[test]
    fn filters_name_a_principal_an_outcome_and_an_end() {
        let filter = parse(&Params {
            until: Some("2026-11-25T11:00:00+01:00".into()),
            sub: Some("mallory".into()),
            kind: Some("permission_denied".into()),
            ..Params::default()
        })
        .expect("valid");
        assert_eq!(filter.sub.as_deref(), Some("mallory"));
        assert_eq!(filter.kind, Some("permission_denied"));
        assert_eq!(
            filter.until.map(|t| t.to_rfc3339()),
            Some("2026-11-25T10:00:00+00:00".into())
        );
        let empty = parse(&Params {
            sub: Some(String::new()),
            ..Params::default()
        })
        .expect("valid");
        assert_eq!(empty.sub, None, "an empty principal filters nothing");
    }
}
