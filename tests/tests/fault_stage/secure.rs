//! Least privilege, end to end: `scripts/dev services --secure` (TLS, SCRAM users and ACLs on
//! Kafka; TLS and one role per Logbook role on PostgreSQL), every Logbook role as its own process
//! with its own identity, a transfer through all of them, and each identity refused what its role
//! does not do. Starts private servers: runs in the private-services stage of `scripts/dev test`.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use logbook_events::KafkaSettings;
use logbook_tests::child::{free_port, wait_ready};
use logbook_tests::logbook_binary;
use logbook_tests::services::{PrivateServices, kafka_settings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

const PREFIX: &str = "secure";

/// Runs the `logbook` binary with exactly the settings of a role's file (and `extra`).
fn logbook(vars: &HashMap<String, String>, args: &[&str], extra: &[(&str, String)]) -> Command {
    let mut command = Command::new(logbook_binary());
    for (inherited, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOGBOOK_")) {
        command.env_remove(inherited);
    }
    command
        .args(args)
        .envs(vars)
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LOGBOOK_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,librdkafka=warn");
    command
}

fn run_tool(vars: &HashMap<String, String>, args: &[&str]) -> String {
    let output = logbook(vars, args, &[]).output().expect("logbook runs");
    assert!(
        output.status.success(),
        "logbook {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A long-running role process, logging to a file of its own in the temporary folder.
fn spawn_role(vars: &HashMap<String, String>, role: &str, extra: &[(&str, String)]) -> Child {
    spawn_logged(vars, role, extra).0
}

fn spawn_logged(
    vars: &HashMap<String, String>,
    role: &str,
    extra: &[(&str, String)],
) -> (Child, std::path::PathBuf) {
    let log = std::env::temp_dir().join(format!("t{PREFIX}-{role}-{}.log", Uuid::new_v4()));
    let file = std::fs::File::create(&log).expect("log file");
    let child = logbook(vars, &[role], extra)
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("start a role");
    (child, log)
}

struct Roles(Vec<Child>);

impl Drop for Roles {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn post(url: &str, token: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Produces one record as `kafka`'s identity: whether the broker took it.
async fn produce(kafka: &KafkaSettings, topic: &str) -> Result<(), String> {
    let producer: FutureProducer = kafka
        .client_config()
        .set("message.timeout.ms", "8000")
        .create()
        .map_err(|e| e.to_string())?;
    let key = Uuid::new_v4().to_string();
    let record = FutureRecord::<String, [u8]>::to(topic)
        .key(&key)
        .payload(b"{}");
    producer
        .send(record, Timeout::After(Duration::from_secs(10)))
        .await
        .map(|_| ())
        .map_err(|(error, _)| error.to_string())
}

fn watermarks(kafka: &KafkaSettings, topic: &str) -> Result<(i64, i64), String> {
    let consumer: BaseConsumer = kafka.client_config().create().map_err(|e| e.to_string())?;
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

async fn pg_connect(url: &str, password_file: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    let password = std::fs::read_to_string(password_file).expect("password file");
    let options: PgConnectOptions = url.parse()?;
    options.password(password.trim_end()).connect().await
}

async fn pg_role(vars: &HashMap<String, String>) -> sqlx::PgConnection {
    pg_connect(
        &vars["LOGBOOK_DATABASE_URL"],
        &vars["LOGBOOK_DATABASE_PASSWORD_FILE"],
    )
    .await
    .expect("connect with the role's settings")
}

async fn refused(conn: &mut sqlx::PgConnection, sql: &str) -> bool {
    match sqlx::query(sql).execute(&mut *conn).await {
        Err(sqlx::Error::Database(e)) => e.code().as_deref() == Some("42501"),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts its own secure Kafka and PostgreSQL: run by the private-services stage"]
async fn every_role_runs_with_its_own_identity_and_nothing_more() {
    let services = tokio::task::block_in_place(|| PrivateServices::start_secure("secure", PREFIX));
    let vars = |role: &str| services.role_vars(role);
    let admin = vars("admin");
    tokio::task::block_in_place(|| {
        run_tool(&admin, &["topics"]);
        run_tool(&admin, &["migrate"]);
    });
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let http = [("LOGBOOK_HTTP_ADDR", format!("127.0.0.1:{port}"))];
    let _roles = Roles(vec![
        spawn_role(&vars("gateway"), "serve", &http),
        // snapshots often, so that the processor's rights on the snapshots topic are used
        spawn_role(
            &vars("processor"),
            "process",
            &[("LOGBOOK_SNAPSHOT_EVERY_EVENTS", "3".into())],
        ),
        spawn_role(&vars("saga"), "saga", &[]),
        spawn_role(&vars("projector"), "project", &[]),
    ]);
    let token = tokio::task::block_in_place(|| {
        run_tool(&admin, &["token", "--role", "service", "--sub", "bank"])
    });

    // a transfer goes through every role, each with its own identity
    wait_ready(&url).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b] {
        let body = json!({"owner_id": "o", "currency": "EUR", "account_id": id});
        let (status, body) = post(&format!("{url}/v1/accounts"), &token, body).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = post(
        &format!("{url}/v1/accounts/{a}/deposits"),
        &token,
        json!({"amount": 100}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let transfer = json!({"from_account_id": a, "to_account_id": b, "amount": 30});
    let (status, body) = post(&format!("{url}/v1/transfers"), &token, transfer).await;
    assert_eq!(status, 202, "{body}");
    wait_balance(&url, &token, b, 30).await;

    kafka_least_privilege(&services).await;
    database_least_privilege(&services).await;

    // the read-only tools identity verifies the log and the archive, and backs the log up
    let backup = std::env::temp_dir().join(format!("t{PREFIX}-backup-{}", Uuid::new_v4()));
    tokio::task::block_in_place(|| {
        run_tool(&vars("tools"), &["verify"]);
        run_tool(&vars("tools"), &["verify", "--source", "archive"]);
        run_tool(
            &vars("tools"),
            &["backup", "--out", backup.to_str().expect("path")],
        );
    });
    let _ = std::fs::remove_dir_all(&backup);

    // rebuilds replace tables: not from the API's role, but with the owner's settings; the
    // swapped-in tables keep the grants (the API reads them, the projector writes them)
    let admin_token = tokio::task::block_in_place(|| {
        run_tool(&admin, &["token", "--role", "admin", "--sub", "ops"])
    });
    let rebuild = format!("{url}/v1/admin/projections/ledger/rebuild");
    let (status, body) = post(&rebuild, &admin_token, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "urn:logbook:problem:rebuild_not_permitted");
    tokio::task::block_in_place(|| run_tool(&admin, &["rebuild", "ledger"]));
    let (status, body) = post(
        &format!("{url}/v1/accounts/{b}/deposits"),
        &token,
        json!({"amount": 5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_balance(&url, &token, b, 35).await;
}

async fn wait_balance(url: &str, token: &str, account: Uuid, balance: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(&format!("{url}/v1/accounts/{account}"), token).await;
        if status == 200 && body["balance"] == json!(balance) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "balance {balance} never showed: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn kafka_least_privilege(services: &PrivateServices) {
    let topics = KafkaSettings::plaintext("", PREFIX).topics();
    let identity = |role: &str| kafka_settings(&services.role_vars(role), PREFIX);
    let mut anonymous = identity("admin");
    anonymous.security_protocol = None;
    anonymous.sasl_mechanism = None;
    anonymous.sasl_username = None;
    anonymous.sasl_password = None;
    assert!(
        produce(&anonymous, &topics.commands).await.is_err(),
        "a client without credentials produced a command"
    );
    let mut wrong = identity("gateway");
    wrong.sasl_password = Some(logbook_events::Secret::new("not-the-password"));
    assert!(
        produce(&wrong, &topics.commands).await.is_err(),
        "a wrong password produced"
    );
    for (role, topic) in [
        ("projector", &topics.commands),
        ("tools", &topics.commands),
        ("gateway", &topics.events),
        ("saga", &topics.events),
        ("projector", &topics.events),
    ] {
        assert!(
            produce(&identity(role), topic).await.is_err(),
            "{role} could write to {topic}"
        );
    }
    for (role, topic) in [("gateway", &topics.events), ("projector", &topics.commands)] {
        let read = tokio::task::block_in_place(|| watermarks(&identity(role), topic));
        assert!(read.is_err(), "{role} could read {topic}");
    }
    for topic in [&topics.events, &topics.commands] {
        let read = tokio::task::block_in_place(|| watermarks(&identity("tools"), topic));
        assert!(read.is_ok(), "tools cannot read {topic}: {read:?}");
    }
    // the control of the checks above: with rights, the same call does produce
    let admin = identity("admin");
    let scratch = format!("{PREFIX}.scratch");
    let new_topic = NewTopic::new(&scratch, 1, TopicReplication::Fixed(1));
    let client: AdminClient<DefaultClientContext> =
        admin.client_config().create().expect("admin client");
    client
        .create_topics([&new_topic], &AdminOptions::new())
        .await
        .expect("create a scratch topic");
    let mut produced = produce(&admin, &scratch).await;
    for _ in 0..20 {
        if produced.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        produced = produce(&admin, &scratch).await;
    }
    assert!(
        produced.is_ok(),
        "the admin could not produce: {produced:?}"
    );
}

async fn database_least_privilege(services: &PrivateServices) {
    let gateway = services.role_vars("gateway");
    let plain = gateway["LOGBOOK_DATABASE_URL"]
        .split('?')
        .next()
        .expect("url")
        .to_string()
        + "?sslmode=disable";
    assert!(
        pg_connect(&plain, &gateway["LOGBOOK_DATABASE_PASSWORD_FILE"])
            .await
            .is_err(),
        "PostgreSQL accepted a connection without TLS"
    );

    let mut api = pg_role(&gateway).await;
    assert!(refused(&mut api, "UPDATE accounts SET balance = balance + 1").await);
    assert!(refused(&mut api, "DELETE FROM event_archive").await);
    assert!(refused(&mut api, "DROP TABLE accounts").await);
    assert!(refused(&mut api, "CREATE TABLE mine (x int)").await);
    sqlx::query("SELECT count(*) FROM accounts")
        .execute(&mut api)
        .await
        .expect("the API reads the read models");
    let _ = api.close().await;

    let mut projector = pg_role(&services.role_vars("projector")).await;
    assert!(refused(&mut projector, "SELECT * FROM security_audit").await);
    assert!(refused(&mut projector, "SELECT * FROM idempotency_keys").await);
    assert!(refused(&mut projector, "DROP TABLE accounts").await);
    let _ = projector.close().await;

    let mut tools = pg_role(&services.role_vars("tools")).await;
    assert!(refused(&mut tools, "DELETE FROM accounts").await);
    assert!(refused(&mut tools, "INSERT INTO security_audit DEFAULT VALUES").await);
    sqlx::query("SELECT count(*) FROM security_audit")
        .execute(&mut tools)
        .await
        .expect("tools read everything");
    let _ = tools.close().await;
}

/// Waits (at most `within`) for `child` to exit; its exit status, or None if it still runs.
fn exit_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// A refusal is the one answer of Kafka or PostgreSQL that no role waits out: a wrong password,
/// or an identity whose ACLs or grants do not cover the role, stops the process with one error
/// line that says what was refused and what to check (instead of retrying for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts its own secure Kafka and PostgreSQL: run by the private-services stage"]
async fn a_refused_role_exits_with_one_clear_error() {
    let services =
        tokio::task::block_in_place(|| PrivateServices::start_secure("refused", "refused"));
    let vars = |role: &str| services.role_vars(role);
    let admin = vars("admin");
    tokio::task::block_in_place(|| {
        run_tool(&admin, &["topics"]);
        run_tool(&admin, &["migrate"]);
    });
    let wrong = std::env::temp_dir().join(format!("t{PREFIX}-wrong-{}", Uuid::new_v4()));
    std::fs::write(&wrong, "not-the-password").expect("write");
    let wrong = wrong.display().to_string();
    let kafka_password = ("LOGBOOK_KAFKA_SASL_PASSWORD_FILE", wrong.clone());
    let db_password = ("LOGBOOK_DATABASE_PASSWORD_FILE", wrong);
    let http = || ("LOGBOOK_HTTP_ADDR", format!("127.0.0.1:{}", free_port()));
    let kafka_refused = "kafka refused this process";
    let cases = [
        (
            "processor",
            "process",
            vec![kafka_password.clone()],
            kafka_refused,
        ),
        (
            "gateway",
            "serve",
            vec![kafka_password.clone(), http()],
            kafka_refused,
        ),
        ("projector", "project", vec![kafka_password], kafka_refused),
        // an identity whose ACLs do not cover the role
        ("projector", "process", vec![], "TopicAuthorizationFailed"),
        ("gateway", "saga", vec![], kafka_refused),
        ("tools", "project", vec![], kafka_refused),
        // PostgreSQL: the projector's and the API's passwords
        (
            "projector",
            "project",
            vec![db_password.clone()],
            "postgresql refused this process",
        ),
        (
            "gateway",
            "serve",
            vec![db_password, http()],
            "postgresql refused this process",
        ),
    ];
    let mut running: Vec<_> = cases
        .iter()
        .map(|(identity, role, extra, _)| spawn_logged(&vars(identity), role, extra))
        .collect();
    for ((child, log), (identity, role, _, expected)) in running.iter_mut().zip(&cases) {
        let status = tokio::task::block_in_place(|| exit_within(child, Duration::from_secs(90)));
        let _ = child.kill();
        let output = std::fs::read_to_string(&*log).unwrap_or_default();
        let status = status.unwrap_or_else(|| panic!("{role} as {identity} still runs: {output}"));
        assert!(!status.success(), "{role} as {identity}: {status}");
        let errors: Vec<&str> = output
            .lines()
            .filter(|l| l.starts_with("logbook: "))
            .collect();
        assert_eq!(errors.len(), 1, "{role} as {identity}: {output}");
        assert!(
            errors[0].contains(expected),
            "{role} as {identity}: {}",
            errors[0]
        );
        assert!(errors[0].contains("cannot fix"), "{}", errors[0]);
    }
}
