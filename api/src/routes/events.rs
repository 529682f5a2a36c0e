//! `GET /v1/events?after=&limit=&type=&aggregate_id=`: the analysts' NDJSON event stream.
//!
//! One line per event, `{"cursor":"c1.…","position":"v1.<p>.<o>","event":{envelope}}`. The
//! `cursor` of a line is a [`LogCursor`] just past that event: passing the last cursor
//! received as `after` resumes exactly there, also after a broken connection. Events come
//! from `event_archive` partition by partition in log order (so each account's events in
//! sequence order); no order holds across partitions. The body is chunked and produced page by
//! page by a task behind a small channel, so memory stays bounded however long the stream.
//! A database error mid-stream aborts the body (the client sees a truncated response and
//! resumes from its last cursor), never a silent end.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use logbook_events::{LogCursor, encode};
use logbook_projections::queries::stream::{self, StreamEvent, StreamFilter};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::audit::event_type;
use super::queries::{QueryError, params, reject_invalid};
use super::require;
use crate::auth::Principal;
use crate::policy::Action;
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;

/// Lines sent when `limit` is absent.
pub const DEFAULT_STREAM_LIMIT: u64 = 10_000;
/// Most lines one request may ask for.
pub const MAX_STREAM_LIMIT: u64 = 1_000_000;
/// Events read per database page (and sent per chunk).
const PAGE: u32 = 500;

/// The events route (merged into the main router).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Query string of the stream.
#[derive(Debug, Default, Deserialize)]
pub struct StreamParams {
    pub after: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub aggregate_id: Option<String>,
}

/// A checked stream request.
#[derive(Debug, Clone)]
struct Request {
    cursor: LogCursor,
    limit: u64,
    filter: StreamFilter,
}

/// GET /v1/events
#[utoipa::path(get, path = "/v1/events", tag = "analysts",
    summary = "Stream envelopes as NDJSON",
    description = "One line per event: `{\"cursor\":\"c1…\",\"position\":\"v1.<p>.<o>\",\"event\":{envelope}}`. Pass the last `cursor` received as `after` to resume. Log order within a partition (so per account); none across partitions.",
    params(("after" = Option<String>, Query, description = "A `cursor` from a previous line; absent: the start of the log"),
        ("limit" = Option<u64>, Query, minimum = 1, description = "Most lines, default 10000, capped at 1000000"),
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("aggregate_id" = Option<Uuid>, Query, description = "Only this account")),
    responses((status = 200, description = "Chunked NDJSON.", content_type = "application/x-ndjson")))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    require(&principal, Action::ExportEvents)?;
    let request = request(params(query)?)?;
    let pool = state.db.clone().ok_or(ApiError::Unavailable)?;
    let (lines, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        if let Err(error) = produce(&pool, request, &lines).await {
            tracing::error!(%error, "event stream failed");
            let _ = lines
                .send(Err(std::io::Error::other("event stream failed")))
                .await;
        }
    });
    let body = Body::from_stream(futures::stream::unfold(receiver, |mut receiver| async {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    }));
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

fn request(params: StreamParams) -> Result<Request, ApiError> {
    let mut errors = Vec::new();
    let cursor = match params.after.as_deref() {
        None => LogCursor::start(),
        Some(token) => LogCursor::parse_token(token).unwrap_or_else(|_| {
            errors.push(FieldError::new(
                "/query/after",
                "a cursor from a previous line (c1…)",
            ));
            LogCursor::start()
        }),
    };
    let limit = match params.limit.as_deref().map(str::parse::<u64>) {
        None => DEFAULT_STREAM_LIMIT,
        Some(Ok(n)) if n >= 1 => n.min(MAX_STREAM_LIMIT),
        Some(_) => {
            errors.push(FieldError::new(
                "/query/limit",
                format!("an integer from 1 to {MAX_STREAM_LIMIT}"),
            ));
            0
        }
    };
    let aggregate_id = params.aggregate_id.as_deref().and_then(|text| {
        Uuid::parse_str(text)
            .map_err(|_| errors.push(FieldError::new("/query/aggregate_id", "not a UUID")))
            .ok()
    });
    let event_type = event_type(params.event_type, &mut errors);
    reject_invalid(errors)?;
    Ok(Request {
        cursor,
        limit,
        filter: StreamFilter {
            event_type,
            aggregate_id,
        },
    })
}

/// Sends pages of lines until `limit` lines are out, the archive is exhausted, or the client
/// is gone.
async fn produce(
    pool: &PgPool,
    mut request: Request,
    lines: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), anyhow::Error> {
    let mut left = request.limit;
    for partition in stream::partitions(pool).await? {
        while left > 0 {
            let want = u32::try_from(left.min(u64::from(PAGE))).unwrap_or(PAGE);
            let page =
                stream::page(pool, partition, &request.cursor, &request.filter, want).await?;
            let full = page.len() as u32 == want;
            let mut chunk = Vec::with_capacity(page.len() * 700);
            for event in &page {
                request.cursor.advance(partition, event.position.offset);
                write_line(&mut chunk, &request.cursor, event);
            }
            left -= page.len() as u64;
            if !chunk.is_empty() && lines.send(Ok(Bytes::from(chunk))).await.is_err() {
                return Ok(());
            }
            if !full {
                break;
            }
        }
    }
    Ok(())
}

/// Appends one NDJSON line (the format of [`logbook_ops::tools::lines`]).
fn write_line(out: &mut Vec<u8>, cursor: &LogCursor, event: &StreamEvent) {
    logbook_ops::tools::lines::write_line(out, cursor, event.position, &encode(&event.envelope));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        let ok = request(StreamParams {
            after: Some("c1.0-3".into()),
            limit: Some("99999999".into()),
            event_type: Some("FundsDeposited".into()),
            aggregate_id: Some(Uuid::nil().to_string()),
        })
        .expect("valid");
        assert_eq!(ok.cursor.next_offset(0), 3);
        assert_eq!(ok.limit, MAX_STREAM_LIMIT);
        let bad = request(StreamParams {
            after: Some("v1.0.3".into()),
            limit: Some("0".into()),
            event_type: Some("x".into()),
            aggregate_id: Some("y".into()),
        });
        match bad {
            Err(ApiError::Validation(errors)) => assert_eq!(errors.len(), 4),
            other => panic!("{other:?}"),
        }
    }
}
