//! The typed settings of every role, from flags and `LOGBOOK_*` environment variables.
//!
//! [`Args`] is what clap reads (strings and file paths, secrets as values or `*_FILE` paths);
//! [`Args::resolve`] turns it into [`Settings`], reading secret files once. Nothing here has a
//! default host, port or password: `scripts/dev services` writes them to `.logbook/env`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub mod security;

use clap::{Args as ClapArgs, ValueEnum};
use logbook_events::{KafkaSettings, Secret};

/// Flags and environment variables shared by all subcommands.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// Address the HTTP API listens on (serve, all).
    #[arg(long, env = "LOGBOOK_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,

    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "LOGBOOK_KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,
    /// Kafka security.protocol (plaintext, ssl, sasl_plaintext, sasl_ssl).
    #[arg(long, env = "LOGBOOK_KAFKA_SECURITY_PROTOCOL", global = true)]
    pub kafka_security_protocol: Option<String>,
    /// Kafka SASL mechanism (e.g. SCRAM-SHA-512).
    #[arg(long, env = "LOGBOOK_KAFKA_SASL_MECHANISM", global = true)]
    pub kafka_sasl_mechanism: Option<String>,
    #[arg(long, env = "LOGBOOK_KAFKA_SASL_USERNAME", global = true)]
    pub kafka_sasl_username: Option<String>,
    #[arg(
        long,
        env = "LOGBOOK_KAFKA_SASL_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub kafka_sasl_password: Option<String>,
    #[arg(long, env = "LOGBOOK_KAFKA_SASL_PASSWORD_FILE", global = true)]
    pub kafka_sasl_password_file: Option<PathBuf>,
    /// CA bundle for Kafka TLS.
    #[arg(long, env = "LOGBOOK_KAFKA_SSL_CA_LOCATION", global = true)]
    pub kafka_ssl_ca_location: Option<String>,
    /// Prefix of the topic names.
    #[arg(
        long,
        env = "LOGBOOK_TOPIC_PREFIX",
        default_value = "logbook",
        global = true
    )]
    pub topic_prefix: String,
    /// Partitions of the commands and events topics (created by `logbook topics`).
    #[arg(
        long,
        env = "LOGBOOK_TOPIC_PARTITIONS",
        default_value_t = 12,
        global = true
    )]
    pub topic_partitions: i32,
    #[arg(
        long,
        env = "LOGBOOK_TOPIC_REPLICATION_FACTOR",
        default_value_t = 3,
        global = true
    )]
    pub topic_replication_factor: i32,
    #[arg(long, env = "LOGBOOK_TOPIC_MIN_INSYNC_REPLICAS", global = true)]
    pub topic_min_insync_replicas: Option<i32>,

    /// PostgreSQL URL, without the password (give it by LOGBOOK_DATABASE_PASSWORD[_FILE]).
    #[arg(
        long,
        env = "LOGBOOK_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    #[arg(
        long,
        env = "LOGBOOK_DATABASE_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub database_password: Option<String>,
    #[arg(long, env = "LOGBOOK_DATABASE_PASSWORD_FILE", global = true)]
    pub database_password_file: Option<PathBuf>,
    #[arg(
        long,
        env = "LOGBOOK_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub database_max_connections: u32,

    /// HS256 secret for the bearer tokens.
    #[arg(
        long,
        env = "LOGBOOK_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    #[arg(long, env = "LOGBOOK_JWT_SECRET_FILE", global = true)]
    pub jwt_secret_file: Option<PathBuf>,
    /// JWT algorithm and keys besides the secret, TLS, CORS.
    #[command(flatten)]
    pub security: security::SecurityArgs,

    /// HTTP limits (body, URL, header sizes) and the Idempotency-Key expiry.
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,

    /// How long a command request waits for its result before answering 504.
    #[arg(
        long,
        env = "LOGBOOK_COMMAND_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub command_timeout_ms: u64,
    /// How long a query with `min_position` waits for the projection before answering 503.
    #[arg(
        long,
        env = "LOGBOOK_READ_WAIT_MS",
        default_value_t = 5_000,
        global = true
    )]
    pub read_wait_ms: u64,
    /// Requests per second per principal (every role), and the burst above it; 0 switches
    /// rate limiting off.
    #[arg(
        long,
        env = "LOGBOOK_RATE_LIMIT_PER_SECOND",
        default_value_t = 1000.0,
        global = true
    )]
    pub rate_limit_per_second: f64,
    #[arg(
        long,
        env = "LOGBOOK_RATE_LIMIT_BURST",
        default_value_t = 2000.0,
        global = true
    )]
    pub rate_limit_burst: f64,
    /// Per client IP for requests without a valid token.
    #[arg(
        long,
        env = "LOGBOOK_RATE_LIMIT_ANONYMOUS_PER_SECOND",
        default_value_t = 20.0,
        global = true
    )]
    pub rate_limit_anonymous_per_second: f64,
    /// Per-role overrides, e.g. `customer=50:100,service=5000:10000` (rate:burst).
    #[arg(long, env = "LOGBOOK_RATE_LIMITS", default_value = "", global = true)]
    pub rate_limits: String,
    /// Processors and sagas: batching, dedupe horizon, missing offsets, instance id.
    #[command(flatten)]
    pub processing: crate::processing::ProcessingArgs,

    /// Log format.
    #[arg(long, env = "LOGBOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// development relaxes the production checks (replication warnings).
    #[arg(long, env = "LOGBOOK_ENVIRONMENT", value_enum, default_value_t = Environment::Production, global = true)]
    pub environment: Environment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

/// Resolved settings: what the roles are built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http_addr: Option<SocketAddr>,
    pub kafka: KafkaSettings,
    pub topic_partitions: i32,
    pub topic_replication_factor: i32,
    pub topic_min_insync_replicas: Option<i32>,
    pub database_url: Option<String>,
    pub database_password: Option<Secret>,
    pub database_max_connections: u32,
    pub jwt_secret: Option<Secret>,
    pub jwt: crate::auth::JwtOptions,
    pub tls: Option<security::TlsSettings>,
    /// Origins allowed by CORS; empty: CORS off.
    pub cors_origins: Vec<String>,
    pub limits: crate::limits::Limits,
    pub command_timeout: Duration,
    pub read_wait: Duration,
    pub rate_limits: Option<crate::ratelimit::Quotas>,
    pub processing: crate::processing::Processing,
    pub environment: Environment,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set (flag or environment variable)")]
    Missing(&'static str),
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error("invalid LOGBOOK_RATE_LIMITS: {0}")]
    RateLimits(String),
    #[error("cannot read {name} from {path}: {source}")]
    SecretFile {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Args {
    /// Reads the secret files and builds the typed settings.
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
        let kafka = KafkaSettings {
            brokers: self.kafka_brokers.clone().unwrap_or_default(),
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
        };
        Ok(Settings {
            http_addr: self.http_addr,
            kafka,
            topic_partitions: self.topic_partitions,
            topic_replication_factor: self.topic_replication_factor,
            topic_min_insync_replicas: self.topic_min_insync_replicas,
            database_url: self.database_url.clone(),
            database_password: secret(
                "LOGBOOK_DATABASE_PASSWORD",
                &self.database_password,
                &self.database_password_file,
            )?,
            database_max_connections: self.database_max_connections,
            jwt_secret: secret(
                "LOGBOOK_JWT_SECRET",
                &self.jwt_secret,
                &self.jwt_secret_file,
            )?,
            jwt: self.security.jwt_options()?,
            tls: self.security.tls()?,
            cors_origins: self.security.cors_origins(),
            limits: self.limits.resolve(),
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            read_wait: Duration::from_millis(self.read_wait_ms),
            rate_limits: self.quotas()?,
            processing: self.processing.resolve(),
            environment: self.environment,
        })
    }
}

impl Args {
    fn quotas(&self) -> Result<Option<crate::ratelimit::Quotas>, SettingsError> {
        use crate::ratelimit::{Quota, Quotas};
        if self.rate_limit_per_second <= 0.0 {
            return Ok(None);
        }
        let default = Quota {
            per_second: self.rate_limit_per_second,
            burst: self.rate_limit_burst.max(1.0),
        };
        let anonymous_rate = self.rate_limit_anonymous_per_second.max(0.001);
        let anonymous = Quota {
            per_second: anonymous_rate,
            burst: (anonymous_rate * 2.0).max(1.0),
        };
        Quotas::parse(default, anonymous, &self.rate_limits)
            .map(Some)
            .map_err(SettingsError::RateLimits)
    }
}

impl Settings {
    /// Kafka settings, or an error naming the missing variable.
    pub fn require_kafka(&self) -> Result<&KafkaSettings, SettingsError> {
        if self.kafka.brokers.is_empty() {
            return Err(SettingsError::Missing("LOGBOOK_KAFKA_BROKERS"));
        }
        Ok(&self.kafka)
    }

    pub fn require_database_url(&self) -> Result<&str, SettingsError> {
        self.database_url
            .as_deref()
            .ok_or(SettingsError::Missing("LOGBOOK_DATABASE_URL"))
    }

    pub fn require_jwt_secret(&self) -> Result<&Secret, SettingsError> {
        self.jwt_secret
            .as_ref()
            .ok_or(SettingsError::Missing("LOGBOOK_JWT_SECRET(_FILE)"))
    }

    pub fn require_http_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.http_addr
            .ok_or(SettingsError::Missing("LOGBOOK_HTTP_ADDR"))
    }
}

/// A secret from its value or from a file (the file wins; one trailing newline is dropped).
fn secret(
    name: &'static str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, SettingsError> {
    if file.is_none() {
        return Ok(value.clone().map(Secret::new));
    }
    Ok(read_value(name, value, file)?.map(|text| {
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Secret::new(text.strip_suffix('\r').unwrap_or(text))
    }))
}

/// A setting from its value or from a file, as written (the file wins).
pub(crate) fn read_value(
    name: &'static str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, SettingsError> {
    match file {
        Some(path) => {
            std::fs::read_to_string(path)
                .map(Some)
                .map_err(|source| SettingsError::SecretFile {
                    name,
                    path: path.clone(),
                    source,
                })
        }
        None => Ok(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_wins_and_loses_its_newline() {
        let dir = std::env::temp_dir().join(format!("logbook-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("secret");
        std::fs::write(&path, "from-file\n").expect("write");
        let resolved = secret("X", &Some("from-env".into()), &Some(path)).expect("reads");
        assert_eq!(resolved.expect("set").expose(), "from-file");
        let missing = secret("X", &None, &Some(dir.join("nope")));
        assert!(matches!(missing, Err(SettingsError::SecretFile { .. })));
    }
}
