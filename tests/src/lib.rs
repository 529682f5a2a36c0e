//! Test harness for the end-to-end tests: every test gets fresh topics (a unique prefix) and a
//! fresh database on the one real Kafka broker and the one real PostgreSQL server that
//! `scripts/dev services` started, so tests run in parallel without seeing each other.
//!
//! Connection settings come from the environment (`scripts/dev test` exports them) or, when
//! absent, from `.logbook/env` at the workspace root.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use logbook_api::auth::{JwtKeys, Role};
use logbook_api::settings::http::HttpSettings;
use logbook_cli::roles::{self, Roles, Shutdown};
use logbook_cli::settings::{AllArgs, Settings};
use logbook_events::topics::{TopicLayout, ensure_topics};
use logbook_events::{KafkaSettings, Secret};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;
use uuid::Uuid;

pub mod bank;
pub mod checks;
pub mod child;
mod cleanup;
pub mod client;
pub mod disaster;
pub mod log;
pub mod read;
pub mod relay;
pub mod services;

/// Partitions of the test topics: enough to spread accounts, small enough to be quick.
pub const TEST_PARTITIONS: i32 = 4;

/// Processors in tests snapshot a partition every this many events (10,000 in production), so
/// that the restores of the fault tests (SIGKILL, unclear commits, rebalances) start from
/// snapshots too.
pub const TEST_SNAPSHOT_EVERY_EVENTS: u64 = 25;

/// Fresh topics and a fresh, migrated database.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub kafka: KafkaSettings,
    pub db: PgPool,
    pub db_options: PgConnectOptions,
    pub database_url: String,
    pub database_name: String,
    pub database_password: Option<Secret>,
    pub jwt_secret: Secret,
    /// This environment's key-encryption key of personal data.
    pub kek: [u8; 32],
    pub partitions: i32,
    /// The `LOGBOOK_*` settings of the servers this environment lives on.
    pub services: HashMap<String, String>,
    /// Drops the database and deletes the topics after a passing test.
    _cleanup: std::sync::Arc<cleanup::Cleanup>,
}

impl TestEnv {
    /// Topics with [`TEST_PARTITIONS`] partitions.
    pub async fn new() -> TestEnv {
        Self::with_partitions(TEST_PARTITIONS).await
    }

    pub async fn with_partitions(partitions: i32) -> TestEnv {
        Self::on(&service_vars(), partitions).await
    }

    /// Fresh topics and a fresh database on the servers `vars` name (e.g. a fault test's
    /// [`services::PrivateServices`]).
    pub async fn on(vars: &HashMap<String, String>, partitions: i32) -> TestEnv {
        init_logs();
        let base_url = vars
            .get("LOGBOOK_DATABASE_URL")
            .expect("LOGBOOK_DATABASE_URL");
        let password = vars
            .get("LOGBOOK_DATABASE_PASSWORD_FILE")
            .map(|path| std::fs::read_to_string(path).expect("database password file"))
            .map(|p| Secret::new(p.trim_end()));
        let id = Uuid::new_v4().simple().to_string();
        let prefix = format!("t{}", &id[..16]);
        let kafka = services::kafka_settings(vars, &prefix);
        // replication as the servers' settings say (3 and 2 on a three-node cluster)
        let setting = |name: &str| vars.get(name).and_then(|v| v.parse().ok());
        let layout = TopicLayout {
            partitions,
            replication_factor: setting("LOGBOOK_TOPIC_REPLICATION_FACTOR").unwrap_or(1),
            min_insync_replicas: setting("LOGBOOK_TOPIC_MIN_INSYNC_REPLICAS"),
        };
        let topic_settings = kafka.clone();
        tokio::task::spawn_blocking(move || ensure_topics(&topic_settings, &layout))
            .await
            .expect("join")
            .expect("test topics");

        let base = logbook_projections::db::options(base_url, password.as_ref()).expect("url");
        let admin = logbook_projections::db::pool(base.clone(), 1);
        let database_name = format!("test_{prefix}");
        sqlx::query(&format!("CREATE DATABASE {database_name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let cleanup = std::sync::Arc::new(cleanup::Cleanup {
            kafka: kafka.clone(),
            server: base.clone(),
            database: database_name.clone(),
        });
        let db_options = base.database(&database_name);
        let db = logbook_projections::db::pool(db_options.clone(), 10);
        logbook_projections::db::migrate(&db)
            .await
            .expect("migrations");
        let database_url = replace_database(base_url, &database_name);
        TestEnv {
            kafka,
            db,
            db_options,
            database_url,
            database_name,
            database_password: password,
            jwt_secret: Secret::new(format!("test-jwt-{id}")),
            kek: random_kek(),
            partitions,
            services: vars.clone(),
            _cleanup: cleanup,
        }
    }

    /// Settings for a Logbook process of this environment: the defaults `logbook all` declares
    /// for its flags, with this environment's Kafka, database and key, HTTP on an ephemeral
    /// port, rate limits off, and smaller batches (so a setting added later needs nothing here).
    pub fn settings(&self) -> Settings {
        #[derive(clap::Parser)]
        struct All {
            #[command(flatten)]
            args: AllArgs,
        }
        let parsed = <All as clap::Parser>::try_parse_from([
            "logbook",
            "--kafka-brokers",
            &self.kafka.brokers,
            "--database-url",
            &self.database_url,
            "--database-max-connections",
            "10",
            "--http-addr",
            "127.0.0.1:0",
            "--command-timeout-ms",
            "30000",
            "--rate-limit-per-second",
            "0",
            "--processor-batch-max",
            "500",
            "--snapshot-every-events",
            &TEST_SNAPSHOT_EVERY_EVENTS.to_string(),
        ])
        .expect("the harness's flags parse");
        let mut settings = parsed
            .args
            .resolve()
            .expect("the harness's settings resolve");
        // set after resolving: a `*_FILE` variable of the test's own environment would win
        settings.kafka = self.kafka.clone();
        if let Some(database) = settings.database.as_mut() {
            database.password = self.database_password.clone();
        }
        http(&mut settings).jwt.secret = Some(self.jwt_secret.clone());
        http(&mut settings).kek = Some(logbook_api::settings::security::KekSettings {
            keys: vec![self.kek],
        });
        settings
    }

    /// Starts `logbook <role>` as a separate OS process of this environment (for SIGKILL tests);
    /// its log goes to the temp folder.
    pub fn spawn_child(&self, role: &str, name: &str) -> child::RoleProcess {
        self.spawn_child_with(role, name, &[])
    }

    /// [`TestEnv::spawn_child`] with more `LOGBOOK_*` variables (e.g. `LOGBOOK_HTTP_ADDR`).
    pub fn spawn_child_with(
        &self,
        role: &str,
        name: &str,
        vars: &[(&str, String)],
    ) -> child::RoleProcess {
        let log = self.child_log(name);
        let mut command = self.logbook_command();
        command
            .arg(role)
            .env("LOGBOOK_LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("TEST_CHILD_LOG").unwrap_or_else(|_| "info,librdkafka=warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log file"),
            ));
        for (name, value) in vars {
            command.env(name, value);
        }
        child::RoleProcess(command.spawn().expect("start a logbook child process"))
    }

    /// The `logbook` binary with this environment's settings (Kafka, topic prefix, database and
    /// its password, token key) and none inherited from the test's own environment.
    pub fn logbook_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(logbook_binary());
        for (inherited, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOGBOOK_")) {
            command.env_remove(inherited);
        }
        command
            .env("LOGBOOK_KAFKA_BROKERS", &self.kafka.brokers)
            .env("LOGBOOK_TOPIC_PREFIX", &self.kafka.topic_prefix)
            .env("LOGBOOK_DATABASE_URL", &self.database_url)
            .env("LOGBOOK_JWT_SECRET", self.jwt_secret.expose())
            .env("LOGBOOK_KEK", self.kek_base64())
            .env(
                "LOGBOOK_SNAPSHOT_EVERY_EVENTS",
                TEST_SNAPSHOT_EVERY_EVENTS.to_string(),
            )
            .env("LOGBOOK_ENVIRONMENT", "development");
        if let Some(file) = self.services.get("LOGBOOK_DATABASE_PASSWORD_FILE") {
            command.env("LOGBOOK_DATABASE_PASSWORD_FILE", file);
        }
        command
    }

    /// The key-encryption key as `LOGBOOK_KEK` takes it.
    pub fn kek_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.kek)
    }

    /// Where a child process named `name` writes its log.
    pub fn child_log(&self, name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{}-{name}.log", self.kafka.topic_prefix))
    }

    /// A bearer token of this environment's key.
    pub fn token(&self, role: Role, sub: &str) -> String {
        JwtKeys::hs256(&self.jwt_secret)
            .mint(sub, role, 3600, chrono::Utc::now())
            .expect("token")
    }

    /// Starts the given roles in this process; the HTTP API (if any) on an ephemeral port.
    pub async fn spawn(&self, roles: Roles) -> TestApp {
        self.spawn_with(self.settings(), roles).await
    }

    pub async fn spawn_with(&self, settings: Settings, which: Roles) -> TestApp {
        let (stop, shutdown) = Shutdown::new();
        let (address_tx, mut address_rx) = watch::channel(None);
        let settings_for_app = settings.clone();
        let task = tokio::spawn(async move {
            roles::run_reporting(settings_for_app, which, shutdown, address_tx).await
        });
        let address = if which.http {
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                address_rx.wait_for(Option::is_some),
            )
            .await
            .expect("HTTP API did not start");
            *address_rx.borrow()
        } else {
            None
        };
        TestApp {
            address,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
            client: reqwest::Client::new(),
        }
    }
}

/// A running Logbook inside the test process.
#[derive(Debug)]
pub struct TestApp {
    pub address: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
    pub client: reqwest::Client,
}

impl TestApp {
    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address.expect("no HTTP role"), path)
    }

    /// POST `body` as JSON with a bearer token.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// POSTs one intent until it has a definitive answer (201, 200, 202, 404, 409, 422),
    /// retrying timeouts, unavailability and "first attempt still in flight" (409
    /// `idempotency_in_flight`) with the same Idempotency-Key, as a client should.
    pub async fn post_until_answered(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let key = Uuid::new_v4().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let response = self
                .client
                .post(self.url(path))
                .bearer_auth(token)
                .header("Idempotency-Key", &key)
                .json(body)
                .send()
                .await;
            if let Ok(response) = response {
                let status = response.status().as_u16();
                if matches!(status, 200 | 201 | 202 | 404 | 409 | 422) {
                    let body: serde_json::Value = response.json().await.expect("json");
                    // a first attempt lost with its gateway holds the key until it is orphaned
                    if body["type"] != "urn:logbook:problem:idempotency_in_flight" {
                        return (status, body);
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no answer for {path} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Graceful stop; returns the roles' outcome (Ok when already stopped).
    pub async fn stop(&self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        match self.task.lock().await.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// `LOGBOOK_*` from the environment, falling back to the workspace's `.logbook/env`.
/// The HTTP part of settings made by [`TestEnv::settings`], which always has one.
pub fn http(settings: &mut Settings) -> &mut HttpSettings {
    settings.http.as_mut().expect("test settings have HTTP")
}

pub fn service_vars() -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = HashMap::new();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.logbook/env");
    if let Ok(text) = std::fs::read_to_string(file) {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((key, value)) = line.split_once('=') {
                vars.insert(key.trim().to_string(), value.trim().to_string());
            }
        }
    }
    for (key, value) in std::env::vars().filter(|(k, _)| k.starts_with("LOGBOOK_")) {
        vars.insert(key, value);
    }
    vars
}

fn init_logs() {
    logbook_api::telemetry::init_tracing(logbook_api::settings::LogFormat::Human);
}

/// The `logbook` binary for tests that need separate OS processes: `LOGBOOK_BIN`, or the
/// workspace's debug build (`scripts/dev test` builds it first).
pub fn logbook_binary() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("LOGBOOK_BIN") {
        return path.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug/logbook");
    assert!(
        path.exists(),
        "{} not built: run cargo build -p logbook-cli --bin logbook",
        path.display()
    );
    path
}

/// 32 random bytes (two v4 UUIDs) for a test's key-encryption key.
fn random_kek() -> [u8; 32] {
    let mut kek = [0u8; 32];
    kek[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    kek[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    kek
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            replace_database("postgres://u@h:1/logbook", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:1/logbook?sslmode=require", "x"),
            "postgres://u@h:1/x?sslmode=require"
        );
    }
}
