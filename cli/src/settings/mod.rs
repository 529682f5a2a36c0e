//! The typed settings of each subcommand, from flags and `LOGBOOK_*` environment variables.
//!
//! Settings come in groups, each a clap struct that resolves (reading `*_FILE` secrets once,
//! at start) into the typed settings its users take:
//!
//! | group | resolves to | used by |
//! | --- | --- | --- |
//! | [`connections::KafkaArgs`] | `KafkaSettings` | every subcommand that talks to Kafka |
//! | [`connections::TopicArgs`] | `TopicLayout` | `topics`, `restore` |
//! | [`connections::DatabaseArgs`] | `DatabaseSettings` (builds every pool) | `serve`, `project`, `all`, `migrate`, `rebuild`, … |
//! | `logbook_api::settings::http::HttpArgs` (with TLS, JWT, limits) | `HttpSettings` | `serve`, `all` |
//! | `logbook_api::settings::security::JwtArgs` | `JwtSettings` | `token` (and inside HTTP) |
//! | [`processing::ProcessingArgs`] | [`processing::Processing`] | `process`, `saga`, `all` |
//!
//! A subcommand flattens only the groups it uses, so `logbook token --help` lists what `token`
//! needs. The role subcommands resolve into one [`Settings`]. Nothing here has a default host,
//! port or password: `scripts/dev services` writes them to `.logbook/env`.

pub mod connections;
pub mod processing;

use clap::{Args as ClapArgs, ValueEnum};
use logbook_api::settings::LogFormat;
pub use logbook_api::settings::SettingsError;
use logbook_api::settings::http::{HttpArgs, HttpSettings};
use logbook_events::KafkaSettings;
use logbook_projections::db::DatabaseSettings;

use connections::{DatabaseArgs, KafkaArgs};
use processing::{Processing, ProcessingArgs};

/// Flags every subcommand takes (before or after its name).
#[derive(Debug, Clone, ClapArgs)]
pub struct GlobalArgs {
    /// Log format.
    #[arg(long, env = "LOGBOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// development relaxes the production checks (replication warnings of `topics`).
    #[arg(long, env = "LOGBOOK_ENVIRONMENT", value_enum, default_value_t = Environment::Production, global = true)]
    pub environment: Environment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

/// What the long-lived roles are built from: Kafka for all of them, the database for the
/// projectors and the HTTP API, the HTTP settings for the API, processing for processors and
/// sagas. A role subcommand fills in the parts its roles use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub processing: Processing,
    pub database: Option<DatabaseSettings>,
    pub http: Option<HttpSettings>,
}

/// `logbook project`, `logbook rebuild`, `logbook replay`: Kafka and the database.
#[derive(Debug, Clone, ClapArgs)]
pub struct KafkaDatabaseArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// `logbook serve`: the HTTP API (Kafka, the database and HTTP).
#[derive(Debug, Clone, ClapArgs)]
pub struct ServeArgs {
    #[command(flatten)]
    pub connections: KafkaDatabaseArgs,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `logbook all`: every role's settings (serve's and processing).
#[derive(Debug, Clone, ClapArgs)]
pub struct AllArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

/// `logbook process` and `logbook saga`: Kafka only.
#[derive(Debug, Clone, ClapArgs)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

impl KafkaDatabaseArgs {
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
        Ok(Settings {
            kafka: self.kafka.resolve()?,
            processing: Processing::default(),
            database: Some(self.database.resolve()?),
            http: None,
        })
    }
}

impl ServeArgs {
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
        Ok(Settings {
            http: Some(self.http.resolve()?),
            ..self.connections.resolve()?
        })
    }
}

impl AllArgs {
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
        Ok(Settings {
            processing: self.processing.resolve(),
            ..self.serve.resolve()?
        })
    }
}

impl WorkerArgs {
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
        Ok(Settings {
            kafka: self.kafka.resolve()?,
            processing: self.processing.resolve(),
            database: None,
            http: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The long flags a subcommand accepts.
    fn flags(subcommand: &str) -> Vec<String> {
        let mut cli = crate::cli::Cli::command();
        cli.build(); // propagates the global flags
        let command = cli.find_subcommand(subcommand).expect("subcommand");
        command
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    }

    #[test]
    fn each_subcommand_takes_only_the_settings_it_uses() {
        let has = |subcommand: &str, flag: &str| flags(subcommand).iter().any(|f| f == flag);
        assert!(has("token", "jwt-secret") && !has("token", "kafka-brokers"));
        assert!(!has("token", "database-url") && !has("token", "http-addr"));
        for worker in ["process", "saga"] {
            assert!(has(worker, "kafka-brokers") && has(worker, "processor-batch-max"));
            assert!(!has(worker, "database-url") && !has(worker, "jwt-secret"));
        }
        assert!(has("project", "database-url") && !has("project", "http-addr"));
        assert!(has("serve", "http-addr") && has("serve", "jwt-secret"));
        assert!(!has("serve", "processor-batch-max") && !has("serve", "topic-partitions"));
        assert!(has("topics", "topic-partitions") && !has("topics", "database-url"));
        assert!(has("migrate", "database-url") && !has("migrate", "kafka-brokers"));
        let global = ["log-format", "environment", "help"];
        assert!(
            flags("openapi")
                .iter()
                .all(|f| global.contains(&f.as_str()))
        );
        for every in ["all", "serve", "token", "migrate"] {
            assert!(has(every, "log-format"), "{every} takes the global flags");
        }
    }
}
