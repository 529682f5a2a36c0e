//! The web console in a real browser: headless Chromium (Debian's, driven by playwright-core in
//! `tests/console/console.mjs`) against the whole stack of this test. The stack is seeded with
//! two accounts, deposits, a withdrawal, a completed and a refunded transfer and a denied request;
//! then the script signs in as each role and checks what the console shows it, walks account ->
//! history -> as-of -> verify, starts a rebuild and watches it swap in, and runs axe-core on every
//! page. Node, the npm packages and Chromium are installed by `scripts/dev test`
//! (`install_console_test_tools`), never by this test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_tests::{TestApp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// The browser script's folder.
fn script_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("console")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_each_role_its_part_and_walks_history_and_a_rebuild() {
    let dir = script_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "{}/node_modules is missing: scripts/dev test installs it (npm ci)",
        dir.display()
    );
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    served_from_the_binary_with_a_strict_policy(&app).await;
    let seeded = seed(&env, &app).await;

    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join("console.mjs"))
        .current_dir(&dir)
        .env("LOGBOOK_URL", app.url(""))
        .env("ACCOUNT_A", seeded.a.to_string())
        .env("ACCOUNT_B", seeded.b.to_string())
        .env("TRANSFER_OK", seeded.completed.to_string())
        .env("TRANSFER_FAILED", seeded.failed.to_string())
        .kill_on_drop(true);
    for role in [
        Role::Customer,
        Role::Support,
        Role::Auditor,
        Role::Analyst,
        Role::Service,
        Role::Admin,
    ] {
        let sub = if role == Role::Customer {
            "alice"
        } else {
            role.as_str()
        };
        command.env(
            format!("TOKEN_{}", role.as_str().to_uppercase()),
            env.token(role, sub),
        );
    }
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the browser test ended within 4 minutes")
        .expect("node runs (scripts/dev test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "console.mjs took {:.1} s\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(output.status.success(), "the browser test failed");
    // the script must have walked every step, not stopped early with success
    assert!(stdout.contains("console: all checks passed"), "{stdout}");
    app.stop().await.expect("clean stop");
}

/// The page and its assets answer without a token, under a policy that lets them load nothing
/// but this origin's scripts, styles and API; an unknown asset is a 404 problem.
async fn served_from_the_binary_with_a_strict_policy(app: &TestApp) {
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let answer = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(answer.status(), 200, "{path}");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe") && !csp.contains("http"),
            "{path}: {csp}"
        );
    }
    let missing = app
        .client
        .get(app.url("/console/nothing.js"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}

/// What the seed created.
struct Seeded {
    /// alice's: 100.00 + 25.00 - 12.00 - 30.00 (to B) - 5.00 (refunded) + 5.00 = 83.00 EUR in
    /// six ledger lines and eight events (opened, 2 deposits, withdrawal, debit, completed,
    /// debit, refund)
    a: Uuid,
    /// bob's: 30.00 EUR
    b: Uuid,
    completed: Uuid,
    /// to an account that does not exist: the saga refunds it
    failed: Uuid,
}

async fn seed(env: &TestEnv, app: &TestApp) -> Seeded {
    let service = env.token(Role::Service, "svc");
    let alice = env.token(Role::Customer, "alice");
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let holder = json!({"name": "Ada Lovelace", "email": "ada@example.org", "birth_date": "1985-12-10",
        "address": {"lines": ["12 St James's Square"], "postal_code": "SW1Y 4JH", "city": "London", "country": "GB"}});
    let opened = app
        .post_until_answered(
            &service,
            "/v1/accounts",
            &json!({"owner_id": "alice", "currency": "EUR", "account_id": a, "holder": holder}),
        )
        .await;
    assert_eq!(opened.0, 201, "{}", opened.1);
    let opened = app
        .post_until_answered(
            &service,
            "/v1/accounts",
            &json!({"owner_id": "bob", "currency": "EUR", "account_id": b}),
        )
        .await;
    assert_eq!(opened.0, 201, "{}", opened.1);
    for amount in [10_000, 2_500] {
        let path = format!("/v1/accounts/{a}/deposits");
        let (status, body) = app
            .post_until_answered(
                &service,
                &path,
                &json!({"amount": amount, "reference": "salary"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let path = format!("/v1/accounts/{a}/withdrawals");
    let (status, body) = app
        .post_until_answered(
            &alice,
            &path,
            &json!({"amount": 1_200, "reference": "cash"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // one after the other, so the history's order is fixed: debit, completed, debit, refund
    let (completed, failed) = (Uuid::new_v4(), Uuid::new_v4());
    // (the source's version after the saga's last step on it: TransferCompleted, TransferRefunded)
    for (id, to, amount, end, version) in [
        (completed, b, 3_000, "completed", 6),
        (failed, Uuid::new_v4(), 500, "failed", 8),
    ] {
        let (status, body) = app
            .post_until_answered(
                &alice,
                "/v1/transfers",
                &json!({"from_account_id": a, "to_account_id": to, "amount": amount,
                    "transfer_id": id, "reference": "rent"}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, transfer) = get(app, &service, &format!("/v1/transfers/{id}")).await;
            let (_, source) = get(app, &service, &format!("/v1/accounts/{a}")).await;
            if transfer["status"] == end && source["version"] == version {
                break;
            }
            assert!(Instant::now() < deadline, "transfer {id} did not end {end}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // a denial of alice's for the security trail
    let denied = app
        .client
        .get(app.url("/v1/admin/projections"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status(), 403);
    // and two more the console's filters must leave out: another principal's, and no token
    let support = env.token(Role::Support, "support");
    let (status, _) = get(app, &support, &format!("/v1/accounts/{a}/transactions")).await;
    assert_eq!(status, 403);
    let anonymous = app.client.get(app.url("/v1/accounts")).send().await;
    assert_eq!(anonymous.expect("request").status(), 401);
    // every line in the ledger and every event in the archive
    let auditor = env.token(Role::Auditor, "auditor");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, account) = get(app, &service, &format!("/v1/accounts/{a}")).await;
        let (_, events) = get(app, &auditor, &format!("/v1/audit/accounts/{a}/events")).await;
        // the trail is written from a queue: wait for the three entries the console filters
        let (_, trail) = get(app, &auditor, "/v1/audit/security?limit=1000").await;
        let entries = trail["items"].as_array().cloned().unwrap_or_default();
        let has =
            |kind: &str, sub: Value| entries.iter().any(|e| e["kind"] == kind && e["sub"] == sub);
        let trail_written = has("permission_denied", json!("alice"))
            && has("permission_denied", json!("support"))
            && has("authentication_failed", Value::Null);
        if account["balance"] == 8_300
            && events["items"].as_array().map_or(0, Vec::len) == 8
            && trail_written
        {
            break;
        }
        assert!(Instant::now() < deadline, "seed did not settle: {account}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Seeded {
        a,
        b,
        completed,
        failed,
    }
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    logbook_tests::client::get(app, token, path).await
}
