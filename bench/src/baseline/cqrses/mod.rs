//! Baseline (e): the same account domain on the `cqrs-es` + `postgres-es` crates (what a Rust
//! team might pick instead of Logbook), behind the same HTTP shape as the plain baseline.
//!
//! Events go to postgres-es's `events` table (optimistic concurrency on the sequence; a
//! conflicting command is retried, as a client of that framework would), the read model is a
//! `GenericQuery` view updated after each commit. A transfer is a debit then a credit (two
//! aggregates, two transactions), like Logbook's saga. No token is checked.

mod domain;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cqrs_es::AggregateError;
use cqrs_es::persist::GenericQuery;
use postgres_es::{PostgresCqrs, PostgresViewRepository, postgres_cqrs};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::bodies::{AmountBody, OpenBody, TransferBody};

use self::domain::{Account, AccountCommand, AccountError, AccountView};
use super::plainpg::{PlainPgArgs, PlainPgError, problem};

type ViewQuery = GenericQuery<PostgresViewRepository<AccountView, Account>, AccountView, Account>;

#[derive(Clone)]
struct App {
    cqrs: Arc<PostgresCqrs<Account>>,
    views: Arc<ViewQuery>,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
        sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
        event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    "CREATE TABLE IF NOT EXISTS account_view (view_id text NOT NULL,
        version bigint CHECK (version >= 0) NOT NULL, payload json NOT NULL, PRIMARY KEY (view_id))",
];

/// Tries a conflicting command again this many times.
const RETRIES: usize = 20;

/// Serves until the process is stopped (same flags as `plain-pg`).
pub async fn run(args: PlainPgArgs) -> Result<(), PlainPgError> {
    let pool: PgPool = PgPoolOptions::new()
        .max_connections(args.connections)
        .connect_with(args.db.options()?)
        .await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    let repository = Arc::new(PostgresViewRepository::new("account_view", pool.clone()));
    let writer = GenericQuery::new(repository.clone());
    let cqrs = postgres_cqrs(pool, vec![Box::new(writer)], ());
    let app = App {
        cqrs: Arc::new(cqrs),
        views: Arc::new(GenericQuery::new(repository)),
    };
    let router = Router::new()
        .route("/v1/accounts", post(open))
        .route("/v1/accounts/{id}", get(read))
        .route("/v1/accounts/{id}/deposits", post(deposit))
        .route("/v1/accounts/{id}/withdrawals", post(withdraw))
        .route("/v1/transfers", post(transfer))
        .route("/health/ready", get(|| async { "ok" }))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %args.addr, "cqrs-es ledger listening");
    axum::serve(listener, router).await?;
    Ok(())
}

async fn execute(app: &App, id: Uuid, command: AccountCommand) -> Result<(), Response> {
    let key = id.to_string();
    for _ in 0..RETRIES {
        match app.cqrs.execute(&key, command.clone()).await {
            Ok(()) => return Ok(()),
            Err(AggregateError::AggregateConflict) => continue,
            Err(error) => return Err(refusal(error)),
        }
    }
    Err(problem(StatusCode::CONFLICT, "too many concurrent changes"))
}

fn refusal(error: AggregateError<AccountError>) -> Response {
    match error {
        AggregateError::UserError(AccountError::NotFound) => {
            problem(StatusCode::NOT_FOUND, "unknown account")
        }
        AggregateError::UserError(refused) => problem(StatusCode::CONFLICT, &refused.to_string()),
        other => {
            tracing::warn!(error = %other, "framework error");
            problem(StatusCode::SERVICE_UNAVAILABLE, "storage error")
        }
    }
}

fn post_command(amount: i64, reference: Option<String>, transfer: Option<Uuid>) -> AccountCommand {
    AccountCommand::Post {
        amount,
        reference,
        transfer_id: transfer,
    }
}

async fn open(State(app): State<App>, Json(body): Json<OpenBody>) -> Response {
    let id = Uuid::now_v7();
    let command = AccountCommand::Open {
        owner_id: body.owner_id,
        currency: body.currency,
        overdraft_limit: body.overdraft_limit.unwrap_or(0).max(0),
    };
    match execute(&app, id, command).await {
        Ok(()) => {
            let body = Json(json!({ "account_id": id, "version": 1, "duplicate": false }));
            (
                StatusCode::CREATED,
                [("location", format!("/v1/accounts/{id}"))],
                body,
            )
                .into_response()
        }
        Err(refused) => refused,
    }
}

async fn change(app: &App, id: Uuid, amount: i64, reference: Option<String>) -> Response {
    match execute(app, id, post_command(amount, reference, None)).await {
        Ok(()) => Json(json!({ "account_id": id })).into_response(),
        Err(refused) => refused,
    }
}

async fn deposit(
    State(app): State<App>,
    Path(id): Path<Uuid>,
    Json(body): Json<AmountBody>,
) -> Response {
    if body.amount <= 0 {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "amount must be positive");
    }
    change(&app, id, body.amount, body.reference).await
}

async fn withdraw(
    State(app): State<App>,
    Path(id): Path<Uuid>,
    Json(body): Json<AmountBody>,
) -> Response {
    if body.amount <= 0 {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "amount must be positive");
    }
    change(&app, id, -body.amount, body.reference).await
}

async fn transfer(State(app): State<App>, Json(body): Json<TransferBody>) -> Response {
    if body.amount <= 0 {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "amount must be positive");
    }
    let transfer_id = Uuid::now_v7();
    let debit = post_command(-body.amount, body.reference.clone(), Some(transfer_id));
    if let Err(refused) = execute(&app, body.from_account_id, debit).await {
        return refused;
    }
    let credit = post_command(body.amount, body.reference, Some(transfer_id));
    if let Err(refused) = execute(&app, body.to_account_id, credit).await {
        return refused;
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "transfer_id": transfer_id, "status": "completed" })),
    )
        .into_response()
}

async fn read(State(app): State<App>, Path(id): Path<Uuid>) -> Response {
    match app.views.load(&id.to_string()).await {
        Some(view) => Json(json!({ "account_id": id, "balance": view.balance,
            "currency": view.currency, "version": view.version }))
        .into_response(),
        None => problem(StatusCode::NOT_FOUND, "unknown account"),
    }
}
