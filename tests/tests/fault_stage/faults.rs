//! Fault tests: real faults (SIGSTOP, SIGKILL) against private servers of each test's own.
//! They run in the fault stage of `scripts/dev test`, one at a time (`--ignored
//! --test-threads=1`), so they never disturb the main suite; they assert no timing beyond loose
//! bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_tests::bank::{Bank, check_ledger};
use logbook_tests::child::{free_port, wait_live};
use logbook_tests::read::models::{assert_equal_to_fresh_fold, wait_caught_up};
use logbook_tests::services::PrivateServices;
use logbook_tests::{TestEnv, log};

pub(crate) const CATCH_UP: Duration = Duration::from_secs(120);

async fn private(name: &'static str) -> PrivateServices {
    tokio::task::spawn_blocking(move || PrivateServices::start(name))
        .await
        .expect("join")
}

pub(crate) async fn settled(env: &TestEnv) -> Vec<(log::Record, logbook_events::EventEnvelope)> {
    let kafka = env.kafka.clone();
    tokio::task::spawn_blocking(move || log::settled_events(&kafka, Duration::from_secs(120)))
        .await
        .expect("join")
}

/// The broker is paused while commits are in flight: the processor's commits time out on the
/// client, then complete (or are aborted by the broker) once it resumes. Whatever happened,
/// nothing is decided twice: no sequence is duplicated and the read models equal a fresh fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test: run by the fault stage of scripts/dev test"]
async fn commits_left_unclear_by_a_paused_broker_are_never_applied_twice() {
    let services = private("unclear").await;
    let env = TestEnv::on(services.vars(), 4).await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "bank");
    let bank = Bank::open(&app.url(""), &token, 12).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (bank, stop) = (bank.clone(), stop.clone());
        tokio::spawn(async move { bank.run(6, stop).await })
    };
    for pause in [4, 8, 13] {
        tokio::time::sleep(Duration::from_secs(3)).await;
        services.pause_broker();
        tokio::time::sleep(Duration::from_secs(pause)).await;
        services.resume_broker();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = load.await.expect("clients");
    assert!(
        tally.answers.values().sum::<u64>() > 50,
        "too little traffic: {tally:?}"
    );

    let events = settled(&env).await;
    check_ledger(&bank, &tally, &events);
    for projection in ["ledger", "archive"] {
        wait_caught_up(&env.db, &env.kafka, env.partitions, projection, CATCH_UP).await;
    }
    assert_equal_to_fresh_fold(&env).await;
    app.stop()
        .await
        .expect("the roles rode out the pauses and stop cleanly");
}

/// One `logbook` role running as an OS process of its own, restarted after a kill.
pub(crate) struct Child {
    role: &'static str,
    name: String,
    vars: Vec<(&'static str, String)>,
    process: logbook_tests::child::RoleProcess,
    restarts: u32,
}

impl Child {
    pub(crate) fn start(
        env: &TestEnv,
        role: &'static str,
        name: &str,
        vars: &[(&'static str, String)],
    ) -> Child {
        Child {
            role,
            name: name.to_string(),
            vars: vars.to_vec(),
            process: env.spawn_child_with(role, name, vars),
            restarts: 0,
        }
    }

    /// The name of the running process (its log is `TestEnv::child_log` of it).
    pub(crate) fn current_name(&self) -> String {
        match self.restarts {
            0 => self.name.clone(),
            n => format!("{}-{n}", self.name),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.process.id() as i32
    }

    /// SIGKILL, then a replacement with the same settings.
    pub(crate) fn kill_and_replace(&mut self, env: &TestEnv) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        self.restarts += 1;
        let name = format!("{}-{}", self.name, self.restarts);
        self.process = env.spawn_child_with(self.role, &name, &self.vars);
    }

    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Runs `logbook verify` against the environment: `intact`, or a failure.
pub(crate) async fn verify(env: &TestEnv) {
    let output = tokio::process::Command::from(env.logbook_command())
        .arg("verify")
        .output()
        .await
        .expect("logbook verify runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("intact"),
        "logbook verify: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The roles as separate processes (`serve`, 2 × `process`, 2 × `saga`, `project`) under a bank
/// workload whose clients retry every ambiguous answer with the same key, while processes are
/// killed with SIGKILL and paused with SIGSTOP past the session (6 s) and transaction (10 s)
/// timeouts. Afterwards every invariant of the ledger holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test: run by the fault stage of scripts/dev test"]
async fn roles_killed_and_paused_under_load_keep_every_invariant() {
    let services = private("roles").await;
    let env = TestEnv::on(services.vars(), 4).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let serve_vars = [
        ("LOGBOOK_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("LOGBOOK_COMMAND_TIMEOUT_MS", "8000".to_string()),
        ("LOGBOOK_RATE_LIMIT_PER_SECOND", "0".to_string()),
    ];
    let mut serve = Child::start(&env, "serve", "serve", &serve_vars);
    let mut processors = [
        Child::start(&env, "process", "process-a", &[]),
        Child::start(&env, "process", "process-b", &[]),
    ];
    let mut sagas = [
        Child::start(&env, "saga", "saga-a", &[]),
        Child::start(&env, "saga", "saga-b", &[]),
    ];
    let mut project = Child::start(&env, "project", "project", &[]);
    wait_live(&url).await;
    let token = env.token(Role::Service, "bank");
    let bank = Bank::open(&url, &token, 16).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (bank, stop) = (bank.clone(), stop.clone());
        tokio::spawn(async move { bank.run(8, stop).await })
    };

    let pause = |child: &Child, seconds: u64| {
        let pid = child.pid();
        async move {
            logbook_tests::services::signal("STOP", pid);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            logbook_tests::services::signal("CONT", pid);
        }
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    processors[0].kill_and_replace(&env);
    tokio::time::sleep(Duration::from_secs(4)).await;
    pause(&sagas[0], 13).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    sagas[1].kill_and_replace(&env);
    tokio::time::sleep(Duration::from_secs(3)).await;
    pause(&processors[1], 13).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    serve.kill_and_replace(&env);
    project.kill_and_replace(&env);
    tokio::time::sleep(Duration::from_secs(4)).await;
    pause(&processors[0], 8).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = load.await.expect("clients");
    assert!(
        tally.answers.values().sum::<u64>() > 100,
        "too little traffic: {tally:?}"
    );
    for child in processors.iter_mut().chain(sagas.iter_mut()) {
        assert!(child.is_running(), "{} exited by itself", child.name);
    }
    assert!(serve.is_running() && project.is_running());

    let events = settled(&env).await;
    check_ledger(&bank, &tally, &events);
    for projection in ["ledger", "archive"] {
        wait_caught_up(&env.db, &env.kafka, env.partitions, projection, CATCH_UP).await;
    }
    assert_equal_to_fresh_fold(&env).await;
    verify(&env).await;
    drop((serve, processors, sagas, project));
}

/// How long until the API opens an account again (a command that moves no money), polled.
async fn recovery(url: &str, token: &str) -> Duration {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    loop {
        let body = serde_json::json!({"owner_id": "probe", "currency": "EUR"});
        let answered = client
            .post(format!("{url}/v1/accounts"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .is_ok_and(|r| r.status() == 201);
        if answered {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no command served 60 s after the fault ended"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `logbook all` under a bank workload while the broker is paused past the session and
/// transaction timeouts, then killed and started again, and PostgreSQL is restarted: the
/// process stays up, serves commands again after each fault, and the ledger holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault test: run by the fault stage of scripts/dev test"]
async fn outages_of_kafka_and_postgresql_are_waited_out() {
    let services = private("outages").await;
    let env = TestEnv::on(services.vars(), 4).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let vars = [
        ("LOGBOOK_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("LOGBOOK_COMMAND_TIMEOUT_MS", "5000".to_string()),
        ("LOGBOOK_RATE_LIMIT_PER_SECOND", "0".to_string()),
    ];
    let mut all = Child::start(&env, "all", "all", &vars);
    wait_live(&url).await;
    let token = env.token(Role::Service, "bank");
    let bank = Bank::open(&url, &token, 12).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (bank, stop) = (bank.clone(), stop.clone());
        tokio::spawn(async move { bank.run(6, stop).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    services.pause_broker();
    tokio::time::sleep(Duration::from_secs(15)).await;
    services.resume_broker();
    let after_pause = recovery(&url, &token).await;
    assert!(
        all.is_running(),
        "logbook all exited during the broker pause"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| services.kill_broker());
    tokio::time::sleep(Duration::from_secs(3)).await;
    // the gateway knows it cannot produce: 503 at once, not a 504 after the command timeout
    let refused = reqwest::Client::new()
        .post(format!("{url}/v1/accounts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"owner_id": "probe", "currency": "EUR"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 503, "while the broker is down");
    assert!(refused.headers().contains_key("retry-after"));
    let ready = reqwest::get(format!("{url}/health/ready"))
        .await
        .expect("ready");
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["checks"]["kafka"], false, "{body}");
    assert_eq!(
        reqwest::get(format!("{url}/health/live"))
            .await
            .expect("live")
            .status(),
        200
    );
    tokio::task::block_in_place(|| services.start_again());
    let after_kill = recovery(&url, &token).await;
    assert!(
        all.is_running(),
        "logbook all exited when the broker was killed"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| services.restart_postgres());
    let after_postgres = recovery(&url, &token).await;
    assert!(
        all.is_running(),
        "logbook all exited when PostgreSQL restarted"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = load.await.expect("clients");
    eprintln!(
        "commands served again: {after_pause:?} after a 15 s broker pause, {after_kill:?} after \
         the broker's restart, {after_postgres:?} after PostgreSQL's restart; {tally:?}"
    );

    let events = settled(&env).await;
    check_ledger(&bank, &tally, &events);
    for projection in ["ledger", "archive"] {
        wait_caught_up(&env.db, &env.kafka, env.partitions, projection, CATCH_UP).await;
    }
    assert_equal_to_fresh_fold(&env).await;
    verify(&env).await;
    drop(all);
}
