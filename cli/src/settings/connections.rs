//! Where Logbook connects: Kafka (brokers, security, topic prefix), the topic layout that
//! `logbook topics` creates, and PostgreSQL. Each group is flattened into the subcommands
//! that use it, so a subcommand's `--help` lists only its own connections.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use logbook_events::KafkaSettings;
use logbook_events::topics::TopicLayout;
use logbook_projections::db::DatabaseSettings;

use logbook_api::settings::{SettingsError, secret};

/// Kafka flags and `LOGBOOK_KAFKA_*` variables.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "LOGBOOK_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Kafka security.protocol (plaintext, ssl, sasl_plaintext, sasl_ssl).
    #[arg(long, env = "LOGBOOK_KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,
    /// Kafka SASL mechanism (e.g. SCRAM-SHA-512).
    #[arg(long, env = "LOGBOOK_KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    #[arg(long, env = "LOGBOOK_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    #[arg(long, env = "LOGBOOK_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,
    #[arg(long, env = "LOGBOOK_KAFKA_SASL_PASSWORD_FILE")]
    pub kafka_sasl_password_file: Option<PathBuf>,
    /// CA bundle for Kafka TLS.
    #[arg(long, env = "LOGBOOK_KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<String>,
    /// Prefix of the topic names.
    #[arg(long, env = "LOGBOOK_TOPIC_PREFIX", default_value = "logbook")]
    pub topic_prefix: String,
}

impl KafkaArgs {
    /// The Kafka settings; the brokers are required.
    pub fn resolve(&self) -> Result<KafkaSettings, SettingsError> {
        Ok(KafkaSettings {
            brokers: required("LOGBOOK_KAFKA_BROKERS", &self.kafka_brokers)?,
            security_protocol: self.kafka_security_protocol.clone(),
            sasl_mechanism: self.kafka_sasl_mechanism.clone(),
            sasl_username: self.kafka_sasl_username.clone(),
            sasl_password: secret(
                "LOGBOOK_KAFKA_SASL_PASSWORD",
                &self.kafka_sasl_password,
                &self.kafka_sasl_password_file,
            )?,
            ssl_ca_location: self.kafka_ssl_ca_location.clone(),
            topic_prefix: self.topic_prefix.clone(),
        })
    }
}

/// The layout `logbook topics` and `logbook restore` create topics with.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Topics")]
pub struct TopicArgs {
    /// Partitions of the commands and events topics.
    #[arg(long, env = "LOGBOOK_TOPIC_PARTITIONS", default_value_t = 12)]
    pub topic_partitions: i32,
    #[arg(long, env = "LOGBOOK_TOPIC_REPLICATION_FACTOR", default_value_t = 3)]
    pub topic_replication_factor: i32,
    #[arg(long, env = "LOGBOOK_TOPIC_MIN_INSYNC_REPLICAS")]
    pub topic_min_insync_replicas: Option<i32>,
}

impl TopicArgs {
    pub fn layout(&self) -> TopicLayout {
        TopicLayout {
            partitions: self.topic_partitions,
            replication_factor: self.topic_replication_factor,
            min_insync_replicas: self.topic_min_insync_replicas,
        }
    }
}

/// PostgreSQL flags and `LOGBOOK_DATABASE_*` variables.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "PostgreSQL")]
pub struct DatabaseArgs {
    /// PostgreSQL URL, without the password (give it by LOGBOOK_DATABASE_PASSWORD[_FILE]).
    #[arg(long, env = "LOGBOOK_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[arg(long, env = "LOGBOOK_DATABASE_PASSWORD", hide_env_values = true)]
    pub database_password: Option<String>,
    #[arg(long, env = "LOGBOOK_DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,
    /// Connections of the HTTP API's pool.
    #[arg(long, env = "LOGBOOK_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
}

impl DatabaseArgs {
    /// The database settings; the URL is required.
    pub fn resolve(&self) -> Result<DatabaseSettings, SettingsError> {
        Ok(DatabaseSettings {
            url: required("LOGBOOK_DATABASE_URL", &self.database_url)?,
            password: secret(
                "LOGBOOK_DATABASE_PASSWORD",
                &self.database_password,
                &self.database_password_file,
            )?,
            max_connections: self.database_max_connections,
        })
    }
}

/// A setting that must be given and not blank.
fn required(name: &'static str, value: &Option<String>) -> Result<String, SettingsError> {
    value
        .clone()
        .filter(|v| !v.trim().is_empty())
        .ok_or(SettingsError::Missing(name))
}
