//! Audit endpoints (auditor, admin): an account's full history, its state as of any instant,
//! and the tamper check of the archive.
//!
//! All three read the `archive` projection (`event_archive`). `min_position` waits for that
//! projection. The as-of state is the fold of the account's archived events up to the instant
//! with the processor's own pure `apply` (no second implementation of the domain). Events of
//! one processor transaction share one `occurred_at` (the batch is stamped once), so no
//! instant lies between them: an as-of answer shows all of a batch's events or none, as
//! every reader of the log saw them.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use logbook_commands::domain::{Account, apply};
use logbook_events::{ALL_EVENT_TYPES, Position};
use logbook_projections::Projection;
use logbook_projections::queries::audit::{self, ArchivedEvent, HistoryCursor, HistoryFilter};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::AccountId;
use super::queries::{QueryError, min_position, params, reject_invalid};
use super::require;
use crate::auth::Principal;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;

/// The audit routes (merged into the main router).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(state_as_of))
        .routes(routes!(verify))
}

/// Query string of the history.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub min_position: Option<String>,
}

/// Query string of the as-of state.
#[derive(Debug, Default, Deserialize)]
pub struct StateParams {
    pub as_of: Option<String>,
    pub min_position: Option<String>,
}

/// Query string of the tamper check.
#[derive(Debug, Default, Deserialize)]
pub struct VerifyParams {
    pub account_id: Option<String>,
}

/// An account's state at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateView {
    pub account_id: Uuid,
    pub as_of: DateTime<Utc>,
    pub owner_id: Option<String>,
    pub currency: Option<String>,
    /// Minor units.
    pub balance: i64,
    pub overdraft_limit: i64,
    /// `active`, `frozen` or `closed`.
    pub status: Option<&'static str>,
    /// Sequence of the last event folded (= the state's version).
    pub sequence: u64,
    /// Log position of that event.
    pub position: Position,
    pub event_id: Uuid,
    pub last_event_at: DateTime<Utc>,
}

/// GET /v1/audit/accounts/{id}/events?limit=&cursor=&from=&to=&type=
#[utoipa::path(get, path = "/v1/audit/accounts/{id}/events", tag = "audit",
    summary = "An account's full history",
    description = "Archived envelopes in sequence order with actor, times, command, correlation and causation ids and hashes. Keyset pagination: pass `next_cursor` as `cursor`.",
    params(("id" = Uuid, Path, description = "Account id"),
        ("limit" = Option<u32>, Query, minimum = 1, description = "Page size, default 50; values above 500 are capped at 500"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("from" = Option<String>, Query, description = "RFC 3339: events that occurred at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339: events that occurred before (exclusive)"),
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("min_position" = Option<String>, Query, description = "Wait until the archive has this position")),
    responses((status = 200, description = "A page of events, each with its `position`.",
        content_type = "application/json",
        example = json!({ "items": [{ "position": "v1.2.17", "event_id": "0193a5c2-7d1e-7c3a-9f00-0000000000e1",
            "aggregate_type": "account", "aggregate_id": "0193a5c2-7d1e-7c3a-9f00-0000000000a1",
            "sequence": 1, "event_type": "AccountOpened", "schema_version": 1,
            "occurred_at": "2026-11-25T10:00:00.000000Z",
            "command_id": "0193a5c2-7d1e-7c3a-9f00-0000000000c1",
            "correlation_id": "0193a5c2-7d1e-7c3a-9f00-0000000000c1",
            "causation_id": "0193a5c2-7d1e-7c3a-9f00-0000000000c1",
            "actor": { "sub": "svc", "role": "service" },
            "prev_hash": "0000000000000000000000000000000000000000000000000000000000000000",
            "hash": "5b0c…", "data": { "owner_id": "o", "currency": "EUR", "overdraft_limit": 0 } }],
            "next_cursor": null }))))]
pub async fn history(
    State(state): State<AppState>,
    principal: Principal,
    AccountId(id): AccountId,
    query: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    require(&principal, Action::Audit)?;
    let params = params(query)?;
    let mut errors = Vec::new();
    let filter = HistoryFilter {
        from: instant(params.from.as_deref(), "/query/from", &mut errors),
        to: instant(params.to.as_deref(), "/query/to", &mut errors),
        event_type: event_type(params.event_type, &mut errors),
        after: params.cursor.as_deref().and_then(|c| {
            HistoryCursor::decode(c)
                .map_err(|_| errors.push(FieldError::new("/query/cursor", "a cursor from a page")))
                .ok()
        }),
        limit: super::queries::limit(params.limit.as_deref(), &mut errors),
    };
    let position = min_position(params.min_position.as_deref(), &mut errors);
    reject_invalid(errors)?;
    let pool = archive(&state, position).await?;
    let page = audit::history(pool, id, &filter)
        .await
        .map_err(ApiError::internal)?;
    if page.items.is_empty() && !has_events(pool, id).await? {
        return Err(ApiError::NotFound.into());
    }
    Ok(Json(page).into_response())
}

/// GET /v1/audit/accounts/{id}/state?as_of=<RFC 3339>
#[utoipa::path(get, path = "/v1/audit/accounts/{id}/state", tag = "audit",
    summary = "An account's state as of an instant",
    description = "The fold of the archived events that occurred at or before `as_of`, with the domain's own apply. 404 when the account had no event by then.",
    params(("id" = Uuid, Path, description = "Account id"),
        ("as_of" = String, Query, description = "RFC 3339 instant"),
        ("min_position" = Option<String>, Query, description = "Wait until the archive has this position")),
    responses((status = 200, description = "The state and the event it reflects.",
        content_type = "application/json",
        example = json!({ "account_id": "0193a5c2-7d1e-7c3a-9f00-0000000000a1",
            "as_of": "2026-11-25T10:30:00Z", "owner_id": "o", "currency": "EUR", "balance": 2500,
            "overdraft_limit": 0, "status": "active", "sequence": 2, "position": "v1.2.18",
            "event_id": "0193a5c2-7d1e-7c3a-9f00-0000000000e2",
            "last_event_at": "2026-11-25T10:05:00Z" }))))]
pub async fn state_as_of(
    State(state): State<AppState>,
    principal: Principal,
    AccountId(id): AccountId,
    query: Result<Query<StateParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    require(&principal, Action::Audit)?;
    let params = params(query)?;
    let mut errors = Vec::new();
    let as_of = instant(params.as_of.as_deref(), "/query/as_of", &mut errors);
    if params.as_of.is_none() {
        errors.push(FieldError::new(
            "/query/as_of",
            "required: an RFC 3339 instant",
        ));
    }
    let position = min_position(params.min_position.as_deref(), &mut errors);
    reject_invalid(errors)?;
    let as_of = as_of.ok_or(ApiError::NotFound)?;
    let pool = archive(&state, position).await?;
    let folded = audit::fold_until(pool, id, as_of, Folded::new(id), Folded::step)
        .await
        .map_err(ApiError::internal)?;
    let view = folded.view(as_of).map_err(ApiError::internal)?;
    Ok(Json(view.ok_or(ApiError::NotFound)?).into_response())
}

/// GET /v1/audit/verify?account_id=
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    summary = "Tamper check of the archive",
    description = "Recomputes every hash chain (or one account's): `intact` with counts, or `broken` with the first broken event (account, sequence, expected vs found).",
    params(("account_id" = Option<Uuid>, Query, description = "Only this account")),
    responses((status = 200, description = "The report.", content_type = "application/json",
        example = json!({ "status": "broken", "events": 120, "aggregates": 9, "breaks": 1,
            "first_break": { "position": "v1.1.7", "aggregate_id": "0193a5c2-7d1e-7c3a-9f00-0000000000a1",
                "sequence": 3, "kind": "bad_hash", "expected": "9f2c…", "found": "41aa…" },
            "took_ms": 4 }))))]
pub async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<VerifyParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    require(&principal, Action::Audit)?;
    let params = params(query)?;
    let account = match params.account_id.as_deref() {
        None => None,
        Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
            ApiError::Validation(vec![FieldError::new("/query/account_id", "not a UUID")])
        })?),
    };
    let pool = archive(&state, None).await?;
    let report = audit::verify(pool, account)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(report).into_response())
}

/// The fold of an account's events with the domain's `apply`.
#[derive(Debug)]
struct Folded {
    account: Account,
    last: Option<ArchivedEvent>,
    error: Option<String>,
}

impl Folded {
    fn new(id: Uuid) -> Folded {
        Folded {
            account: Account::new(id),
            last: None,
            error: None,
        }
    }

    fn step(&mut self, event: ArchivedEvent) {
        // A duplicate in the log (same sequence again) is not applied twice.
        if self.error.is_some() || event.envelope.sequence <= self.account.version() {
            return;
        }
        match event.envelope.decode_account() {
            Ok(decoded) => apply(&mut self.account, &decoded),
            Err(error) => {
                self.error = Some(format!("event at {}: {error}", event.position));
                return;
            }
        }
        self.last = Some(event);
    }

    fn view(self, as_of: DateTime<Utc>) -> Result<Option<StateView>, anyhow::Error> {
        if let Some(error) = self.error {
            return Err(anyhow::anyhow!("archived history does not fold: {error}"));
        }
        let Some(last) = self.last else {
            return Ok(None);
        };
        let account = self.account;
        Ok(Some(StateView {
            account_id: account.id(),
            as_of,
            owner_id: account.owner_id().map(str::to_owned),
            currency: account.currency().map(|c| c.to_string()),
            balance: account.balance(),
            overdraft_limit: account.overdraft_limit(),
            status: account.status().map(|s| s.as_str()),
            sequence: account.version(),
            position: last.position,
            event_id: last.envelope.event_id,
            last_event_at: last.envelope.occurred_at,
        }))
    }
}

/// The archive's pool, once the archive projection has passed `position` (if given).
async fn archive(state: &AppState, position: Option<Position>) -> Result<&PgPool, QueryError> {
    let pool = state.db.as_ref().ok_or(ApiError::Unavailable)?;
    let Some(position) = position else {
        return Ok(pool);
    };
    let progress = state.progress.as_ref().ok_or(ApiError::Unavailable)?;
    let bound = progress.max_wait();
    if progress
        .wait_for(Projection::Archive.name(), position, bound)
        .await
    {
        Ok(pool)
    } else {
        Err(QueryError::Behind {
            position,
            waited_ms: bound.as_millis(),
        })
    }
}

async fn has_events(pool: &PgPool, id: Uuid) -> Result<bool, ApiError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_archive WHERE aggregate_id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
        .map_err(ApiError::internal)
}

/// An RFC 3339 instant from the query string.
pub(crate) fn instant(
    value: Option<&str>,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let value = value?;
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| errors.push(FieldError::new(pointer, "an RFC 3339 instant")))
        .ok()
}

/// An event type name from the query string.
pub(crate) fn event_type(value: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value?;
    if ALL_EVENT_TYPES.contains(&value.as_str()) {
        Some(value)
    } else {
        errors.push(FieldError::new(
            "/query/type",
            format!("one of {}", ALL_EVENT_TYPES.join(", ")),
        ));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_events::{AccountEvent, Actor, Currency, EventEnvelope, EventMeta, ZERO_HASH};

    fn event(sequence: u64, prev: &str, event: AccountEvent) -> ArchivedEvent {
        let meta = EventMeta {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            command_id: Uuid::nil(),
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
            actor: Actor {
                sub: "s".into(),
                role: "service".into(),
            },
        };
        let envelope = EventEnvelope::new_sealed(meta, Uuid::from_u128(5), sequence, prev, &event);
        ArchivedEvent {
            position: Position::new(0, sequence as i64),
            envelope,
        }
    }

    #[test]
    fn the_fold_uses_apply_and_skips_duplicates() {
        let opened = event(
            1,
            ZERO_HASH,
            AccountEvent::AccountOpened {
                owner_id: "o".into(),
                currency: Currency::parse("EUR").expect("currency"),
                overdraft_limit: 0,
                holder: None,
            },
        );
        let deposit = event(
            2,
            &opened.envelope.hash,
            AccountEvent::FundsDeposited {
                amount: 7,
                balance_after: 7,
                reference: None,
            },
        );
        let mut folded = Folded::new(Uuid::from_u128(5));
        for e in [opened.clone(), deposit.clone(), deposit.clone()] {
            folded.step(e);
        }
        let view = folded.view(Utc::now()).expect("folds").expect("exists");
        assert_eq!((view.balance, view.sequence), (7, 2));
        assert_eq!(view.status, Some("active"));
        assert_eq!(view.position, Position::new(0, 2));
        assert!(
            Folded::new(Uuid::nil())
                .view(Utc::now())
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn instants_and_types_are_validated() {
        let mut errors = Vec::new();
        assert!(instant(Some("2026-11-23T10:00:00+01:00"), "/q", &mut errors).is_some());
        assert!(instant(Some("yesterday"), "/q", &mut errors).is_none());
        assert_eq!(
            event_type(Some("FundsDeposited".into()), &mut errors).as_deref(),
            Some("FundsDeposited")
        );
        assert!(event_type(Some("Nope".into()), &mut errors).is_none());
        assert_eq!(errors.len(), 2);
    }
}
