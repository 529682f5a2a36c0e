//! PostgreSQL connections and schema migrations.
//!
//! All SQL migrations of Logbook live in `projections/migrations` (sqlx refuses versions it
//! does not know, so there is exactly one folder); they are embedded in the binary.

use std::str::FromStr;
use std::time::Duration;

use logbook_events::Secret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The embedded migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL")]
    Url(#[source] sqlx::Error),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Where and how a role connects: the URL (without password), the password and the pool size
/// of a long-lived role. Every pool of the binary is built from this.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub password: Option<Secret>,
    pub max_connections: u32,
}

impl DatabaseSettings {
    pub fn options(&self) -> Result<PgConnectOptions, DbError> {
        options(&self.url, self.password.as_ref())
    }

    /// The pool of a long-lived role (`max_connections`).
    pub fn pool(&self) -> Result<PgPool, DbError> {
        self.pool_of(self.max_connections)
    }

    /// A pool of `size` connections (tools and projectors size theirs by their work).
    pub fn pool_of(&self, size: u32) -> Result<PgPool, DbError> {
        Ok(pool(self.options()?, size))
    }
}

/// Connection options from a URL without password plus the password secret.
pub fn options(url: &str, password: Option<&Secret>) -> Result<PgConnectOptions, DbError> {
    let mut options = PgConnectOptions::from_str(url).map_err(DbError::Url)?;
    if let Some(password) = password {
        options = options.password(password.expose());
    }
    Ok(options.application_name("logbook"))
}

/// A pool; connects lazily so a role can start before the database answers.
pub fn pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// Applies the pending migrations (idempotent; safe to run from many instances at once:
/// sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Whether PostgreSQL refused the credentials or the connection itself (SQLSTATE class 28:
/// wrong password, no `pg_hba.conf` entry, role may not log in): no retry fixes that.
pub fn is_refusal(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("28"))
}

/// Notes `error` as a refusal of this process if it is one ([`logbook_events::refusal`]); says
/// whether it was.
pub fn note_refusal(error: &sqlx::Error) -> bool {
    let refused = is_refusal(error);
    if refused {
        logbook_events::refusal::note_database(&error.to_string());
    }
    refused
}

/// Whether the database answers.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .is_ok()
}
