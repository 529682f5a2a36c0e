//! Baseline (d): what a team without event sourcing would write. The same HTTP shape as
//! Logbook's command and account endpoints (paths, bodies, status codes) over one PostgreSQL
//! table with `SELECT … FOR UPDATE`. It checks no token (the generator sends one anyway):
//! its figures are a ceiling for that design, not a like-for-like security cost.

mod sql;

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::bodies::{AmountBody, OpenBody, TransferBody};

use self::sql::LedgerError;
use super::copy::{DbArgs, DbError};

#[derive(Debug, Clone, Args)]
pub struct PlainPgArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Database connections (requests that hold a row lock at once).
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PlainPgError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves until the process is stopped.
pub async fn run(args: PlainPgArgs) -> Result<(), PlainPgError> {
    let pool = PgPoolOptions::new()
        .max_connections(args.connections)
        .connect_with(args.db.options()?)
        .await?;
    sql::create_schema(&pool).await?;
    let app = Router::new()
        .route("/v1/accounts", post(open))
        .route("/v1/accounts/{id}", get(read))
        .route("/v1/accounts/{id}/deposits", post(deposit))
        .route("/v1/accounts/{id}/withdrawals", post(withdraw))
        .route("/v1/transfers", post(transfer))
        .route("/health/ready", get(|| async { "ok" }))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %args.addr, "plain PostgreSQL ledger listening");
    axum::serve(listener, app).await?;
    Ok(())
}

fn answer(result: Result<Response, LedgerError>) -> Response {
    match result {
        Ok(response) => response,
        Err(LedgerError::NotFound) => problem(StatusCode::NOT_FOUND, "unknown account"),
        Err(LedgerError::InsufficientFunds) => problem(StatusCode::CONFLICT, "insufficient funds"),
        Err(LedgerError::Sql(error)) => {
            tracing::warn!(%error, "database error");
            problem(StatusCode::SERVICE_UNAVAILABLE, "database error")
        }
    }
}

pub(super) fn problem(status: StatusCode, title: &str) -> Response {
    let body = json!({ "type": "about:blank", "title": title, "status": status.as_u16() });
    (
        status,
        [("content-type", "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The refusal of a non-positive amount, if it is one.
fn invalid_amount(amount: i64) -> Option<Response> {
    (amount <= 0).then(|| problem(StatusCode::UNPROCESSABLE_ENTITY, "amount must be positive"))
}

async fn open(State(pool): State<PgPool>, Json(body): Json<OpenBody>) -> Response {
    let overdraft = body.overdraft_limit.unwrap_or(0);
    let result = sql::open(&pool, &body.owner_id, &body.currency, overdraft).await;
    answer(result.map_err(LedgerError::from).map(|id| {
        let location = format!("/v1/accounts/{id}");
        let body = Json(json!({ "account_id": id, "version": 1, "duplicate": false }));
        (StatusCode::CREATED, [("location", location)], body).into_response()
    }))
}

async fn deposit(
    State(pool): State<PgPool>,
    Path(id): Path<Uuid>,
    Json(body): Json<AmountBody>,
) -> Response {
    if let Some(refused) = invalid_amount(body.amount) {
        return refused;
    }
    let result = sql::post(&pool, id, body.amount, body.reference.as_deref()).await;
    answer(
        result.map(|version| Json(json!({ "account_id": id, "version": version })).into_response()),
    )
}

async fn withdraw(
    State(pool): State<PgPool>,
    Path(id): Path<Uuid>,
    Json(body): Json<AmountBody>,
) -> Response {
    if let Some(refused) = invalid_amount(body.amount) {
        return refused;
    }
    let result = sql::post(&pool, id, -body.amount, body.reference.as_deref()).await;
    answer(
        result.map(|version| Json(json!({ "account_id": id, "version": version })).into_response()),
    )
}

async fn transfer(State(pool): State<PgPool>, Json(body): Json<TransferBody>) -> Response {
    if let Some(refused) = invalid_amount(body.amount) {
        return refused;
    }
    let (from, to) = (body.from_account_id, body.to_account_id);
    let result = sql::transfer(&pool, from, to, body.amount, body.reference.as_deref()).await;
    answer(result.map(|id| {
        let body = Json(json!({ "transfer_id": id, "status": "completed" }));
        (StatusCode::ACCEPTED, body).into_response()
    }))
}

async fn read(State(pool): State<PgPool>, Path(id): Path<Uuid>) -> Response {
    let result = sql::read(&pool, id).await.map_err(LedgerError::from);
    answer(result.and_then(|row| {
        let (balance, currency, version) = row.ok_or(LedgerError::NotFound)?;
        let body = json!({ "account_id": id, "balance": balance, "currency": currency, "version": version });
        Ok(Json(body).into_response())
    }))
}
