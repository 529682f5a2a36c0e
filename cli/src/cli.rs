//! The `logbook` command line: roles as subcommands, plus tools.

use std::time::Duration;

use clap::{Parser, Subcommand};
use logbook_events::topics::{TopicLayout, ensure_topics};

use crate::roles::{self, Roles, Shutdown};
use crate::settings::connections::{DatabaseArgs, KafkaArgs, TopicArgs};
use crate::settings::{
    AllArgs, Environment, GlobalArgs, KafkaDatabaseArgs, ServeArgs, Settings, WorkerArgs,
};
use logbook_api::auth::{JwtKeys, Role};
use logbook_api::settings::security::{JwtArgs, KekArgs};
use logbook_events::KafkaSettings;
use logbook_projections::db::DatabaseSettings;

#[derive(Debug, Parser)]
#[command(
    name = "logbook",
    version,
    about = "Event-sourced money ledger on Kafka and PostgreSQL",
    after_help = "Each subcommand takes only its own settings: `logbook <subcommand> --help`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP API: command gateway and queries.
    Serve(ServeArgs),
    /// Command processors (join the processors' consumer group).
    Process(WorkerArgs),
    /// Transfer process manager (credit after debit, refund after a rejected credit).
    Saga(WorkerArgs),
    /// Projectors: fold the event log into the PostgreSQL read models.
    Project(KafkaDatabaseArgs),
    /// Every role in one process (local use).
    All(AllArgs),
    /// Mint a bearer token from the configured key.
    Token {
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        #[command(flatten)]
        jwt: JwtArgs,
    },
    /// Create the topics (idempotent) and check their partition counts.
    Topics {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        layout: TopicArgs,
    },
    /// Apply the PostgreSQL migrations.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Remove security audit rows older than the retention age (at least 30 days); the prune
    /// is recorded in the trail.
    PruneSecurityAudit {
        /// Keep this many days.
        #[arg(
            long,
            env = "LOGBOOK_SECURITY_AUDIT_RETENTION_DAYS",
            default_value_t = 365
        )]
        retention_days: u32,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Rewrap every owner's data key under the current key-encryption key (`LOGBOOK_KEK`), with
    /// the old ones given in `LOGBOOK_KEK_PREVIOUS`; events and read models are untouched. Run it
    /// with the database role that owns the tables, then drop the old key from the settings.
    RotateKek {
        #[command(flatten)]
        kek: KekArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print the OpenAPI document (`logbook openapi > schemas/openapi.json`).
    Openapi,
    /// Rebuild projections (ledger, archive, or all) from offset 0 into shadow tables, then
    /// swap them in while the live tables keep serving. Several run at the same time.
    Rebuild {
        #[arg(required = true, num_args = 1..)]
        projections: Vec<String>,
        #[command(flatten)]
        connections: KafkaDatabaseArgs,
    },
    /// Recompute every hash chain over the Kafka log or the archive; prints the report
    /// (intact with counts, or the first broken event) and fails when broken.
    Verify {
        #[command(flatten)]
        args: logbook_ops::tools::verify::VerifyArgs,
        /// Kafka for `--source kafka`.
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The database for `--source archive`.
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Export a range of the log from Kafka to an NDJSON or CSV file.
    Export {
        #[command(flatten)]
        args: logbook_ops::tools::export::ExportArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Fold the log (or an NDJSON export) up to an instant into a separate schema.
    Replay {
        #[command(flatten)]
        args: logbook_ops::tools::replay::ReplayArgs,
        #[command(flatten)]
        connections: KafkaDatabaseArgs,
    },
    /// Copy the event log (all partitions) into compressed, checksummed segment files;
    /// incremental: a second run into the same folder adds only what is new.
    Backup {
        /// Backup folder (created if missing).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Also back up the commands and command-results topics.
        #[arg(long)]
        all_topics: bool,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Write a backup into the configured topics (created if missing), verifying checksums
    /// and hash chains; continues an interrupted restore.
    Restore {
        /// Backup folder written by `logbook backup`.
        #[arg(long)]
        from: std::path::PathBuf,
        /// Append even to partitions that hold other records.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        layout: TopicArgs,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    logbook_api::telemetry::init_tracing(cli.global.log_format);
    match cli.command {
        Command::Serve(args) => run_roles(args.resolve()?, Roles::SERVE).await,
        Command::Process(args) => run_roles(args.resolve()?, Roles::PROCESS).await,
        Command::Saga(args) => run_roles(args.resolve()?, Roles::SAGA).await,
        Command::Project(args) => run_roles(args.resolve()?, Roles::PROJECT).await,
        Command::All(args) => run_roles(args.resolve()?, Roles::ALL).await,
        Command::Token {
            role,
            sub,
            ttl,
            jwt,
        } => {
            let jwt = jwt.resolve()?;
            let keys = JwtKeys::from_settings(jwt.secret.as_ref(), &jwt.options)?;
            let token = keys.mint(&sub, role, ttl, chrono::Utc::now())?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
        Command::Topics { kafka, layout } => {
            create_topics(kafka.resolve()?, layout.layout(), cli.global.environment).await
        }
        Command::Openapi => {
            use std::io::Write;
            write!(
                std::io::stdout(),
                "{}",
                logbook_api::openapi::document_text()
            )?;
            Ok(())
        }
        Command::Rebuild {
            projections,
            connections,
        } => {
            let kafka = connections.kafka.resolve()?;
            rebuild_projections(&kafka, &connections.database.resolve()?, &projections).await
        }
        Command::Verify {
            args,
            kafka,
            database,
        } => crate::cli_ops::verify(&kafka, &database, args).await,
        Command::Export { args, kafka } => crate::cli_ops::export_log(kafka.resolve()?, args).await,
        Command::Replay { args, connections } => {
            let kafka = connections.kafka.resolve()?;
            crate::cli_ops::replay_log(kafka, connections.database.resolve()?, args).await
        }
        Command::Backup {
            out,
            all_topics,
            kafka,
        } => crate::cli_ops::backup(kafka.resolve()?, out, all_topics).await,
        Command::Restore {
            from,
            force,
            kafka,
            layout,
        } => crate::cli_ops::restore(kafka.resolve()?, layout.layout(), from, force).await,
        Command::PruneSecurityAudit {
            retention_days,
            database,
        } => {
            let pool = database.resolve()?.pool_of(1)?;
            let removed =
                logbook_api::security::prune::prune(&pool, retention_days, chrono::Utc::now())
                    .await?;
            tracing::info!(removed, retention_days, "security audit pruned");
            Ok(())
        }
        Command::RotateKek { kek, database } => {
            let kek = kek
                .resolve()?
                .ok_or_else(|| anyhow::anyhow!("LOGBOOK_KEK (or LOGBOOK_KEK_FILE) is not set"))?;
            let ring = logbook_api::personal::KeyRing::new(&kek.keys)?;
            let current = ring.current_id().to_owned();
            let pool = database.resolve()?.pool_of(1)?;
            let store = logbook_api::personal::KeyStore::new(pool, std::sync::Arc::new(ring));
            let rewrapped = store.rotate().await?;
            tracing::info!(rewrapped, kek_id = %current, "data keys rewrapped under the current key-encryption key");
            Ok(())
        }
        Command::Migrate { database } => {
            let pool = database.resolve()?.pool_of(2)?;
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

/// `logbook topics`: creates what is missing; outside development, warns about the topics as
/// they are (not as configured) when weaker than production needs.
async fn create_topics(
    kafka: KafkaSettings,
    layout: TopicLayout,
    environment: Environment,
) -> anyhow::Result<()> {
    let check = environment != Environment::Development;
    let report = tokio::task::spawn_blocking(move || {
        let report = ensure_topics(&kafka, &layout)?;
        if check {
            warn_weak_durability(&kafka)?;
        }
        Ok::<_, logbook_events::topics::TopicError>(report)
    })
    .await??;
    tracing::info!(created = ?report.created, partitions = report.partitions, "topics ready");
    Ok(())
}

async fn run_roles(settings: Settings, which: Roles) -> anyhow::Result<()> {
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        roles::signal().await;
        let _ = trigger.send(true);
    });
    roles::run(settings, which, shutdown).await
}

/// `logbook rebuild <projection>...` (or `all`): the rebuilds run side by side, with one
/// progress line on stderr every second.
async fn rebuild_projections(
    kafka: &KafkaSettings,
    database: &DatabaseSettings,
    names: &[String],
) -> anyhow::Result<()> {
    use logbook_projections::Projection;
    use logbook_projections::rebuild::{RebuildProgress, rebuild};
    let mut projections: Vec<Projection> = Vec::new();
    for name in names {
        let chosen = match name.as_str() {
            "all" => Projection::ALL.to_vec(),
            _ => vec![Projection::parse(name).ok_or_else(|| {
                anyhow::anyhow!("unknown projection {name} (ledger, archive, all)")
            })?],
        };
        for projection in chosen {
            if !projections.contains(&projection) {
                projections.push(projection);
            }
        }
    }
    let pool = database.pool_of(4 * projections.len() as u32)?;
    let mut watches = Vec::new();
    let mut jobs = Vec::new();
    for projection in projections {
        let (progress, watch) = tokio::sync::watch::channel(RebuildProgress::default());
        watches.push(watch);
        let projector = logbook_projections::ProjectorSettings::new(kafka.clone());
        jobs.push(rebuild(
            projector,
            pool.clone(),
            projection,
            Some(progress),
            roles::signal(),
        ));
    }
    let reporter = tokio::spawn(report_rebuilds(watches));
    let reports = futures::future::try_join_all(jobs).await;
    reporter.abort();
    eprintln!();
    for report in reports? {
        tracing::info!(
            projection = report.projection.name(),
            took_ms = report.took.as_millis() as u64,
            "rebuild swapped in"
        );
    }
    Ok(())
}

/// Writes the offsets the rebuilds still have to apply, once a second.
async fn report_rebuilds(
    watches: Vec<tokio::sync::watch::Receiver<logbook_projections::rebuild::RebuildProgress>>,
) {
    use std::io::Write;
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let progress: Vec<_> = watches.iter().map(|w| w.borrow().clone()).collect();
        let _ = write!(
            std::io::stderr(),
            "\r{:<80}",
            format!(
                "rebuild: {}, {:.0} s",
                logbook_projections::rebuild::describe(&progress),
                started.elapsed().as_secs_f64()
            )
        );
    }
}

/// Reads the topics' replication and configuration and warns about every setting weaker than
/// production needs (RF 3, min.insync.replicas 2, no unclean leader election). Blocking.
fn warn_weak_durability(kafka: &KafkaSettings) -> Result<(), logbook_events::topics::TopicError> {
    use logbook_events::durability::{describe_topics, durability_warnings};
    let topics = kafka.topics();
    let names = [
        topics.commands.as_str(),
        topics.events.as_str(),
        topics.results.as_str(),
    ];
    for topic in describe_topics(kafka, &names)? {
        for warning in durability_warnings(&topic) {
            tracing::warn!(topic = %topic.name, "{warning}");
        }
    }
    Ok(())
}
