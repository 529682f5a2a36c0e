//! The `logbook` command line: roles as subcommands, plus tools.

use std::time::Duration;

use clap::{Parser, Subcommand};
use logbook_events::topics::{TopicLayout, ensure_topics};

use crate::auth::{JwtKeys, Role};
use crate::roles::{self, Roles, Shutdown};
use crate::settings::{Args, Environment};

#[derive(Debug, Parser)]
#[command(
    name = "logbook",
    version,
    about = "Event-sourced money ledger on Kafka and PostgreSQL"
)]
pub struct Cli {
    #[command(flatten)]
    pub args: Args,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP API: command gateway and queries.
    Serve,
    /// Command processors (join the processors' consumer group).
    Process,
    /// Transfer process manager (credit after debit, refund after a rejected credit).
    Saga,
    /// Projectors: fold the event log into the PostgreSQL read models.
    Project,
    /// Every role in one process (local use).
    All,
    /// Mint a bearer token from the configured key.
    Token {
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Create the topics (idempotent) and check their partition counts.
    Topics,
    /// Apply the PostgreSQL migrations.
    Migrate,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::telemetry::init_tracing(cli.args.log_format);
    let settings = cli.args.resolve()?;
    match cli.command {
        Command::Serve => run_roles(settings, Roles::SERVE).await,
        Command::Process => run_roles(settings, Roles::PROCESS).await,
        Command::Saga => run_roles(settings, Roles::SAGA).await,
        Command::Project => run_roles(settings, Roles::PROJECT).await,
        Command::All => run_roles(settings, Roles::ALL).await,
        Command::Token { role, sub, ttl } => {
            let keys = JwtKeys::hs256(settings.require_jwt_secret()?);
            let token = keys.mint(&sub, role, ttl, chrono::Utc::now())?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
        Command::Topics => {
            let kafka = settings.require_kafka()?.clone();
            let layout = TopicLayout {
                partitions: settings.topic_partitions,
                replication_factor: settings.topic_replication_factor,
                min_insync_replicas: settings.topic_min_insync_replicas,
            };
            if settings.environment == Environment::Production && layout.replication_factor < 3 {
                tracing::warn!(
                    replication_factor = layout.replication_factor,
                    "replication factor below 3: the log is not durable against a broker loss"
                );
            }
            let report =
                tokio::task::spawn_blocking(move || ensure_topics(&kafka, &layout)).await??;
            tracing::info!(created = ?report.created, partitions = report.partitions, "topics ready");
            Ok(())
        }
        Command::Migrate => {
            let options = logbook_projections::db::options(
                settings.require_database_url()?,
                settings.database_password.as_ref(),
            )?;
            let pool = logbook_projections::db::pool(options, 2);
            tokio::time::timeout(
                Duration::from_secs(60),
                logbook_projections::db::migrate(&pool),
            )
            .await??;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}

async fn run_roles(settings: crate::settings::Settings, which: Roles) -> anyhow::Result<()> {
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        roles::signal().await;
        let _ = trigger.send(true);
    });
    roles::run(settings, which, shutdown).await
}
