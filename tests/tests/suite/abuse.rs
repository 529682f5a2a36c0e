//! What an attacker with a valid customer token would try: make money from nowhere, or learn
//! about accounts it does not own.

use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_tests::client::Answer;
use logbook_tests::{TestApp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

async fn open(app: &TestApp, token: &str, owner: &str, currency: &str) -> Uuid {
    let id = Uuid::new_v4();
    let body = json!({"owner_id": owner, "currency": currency, "account_id": id});
    let (status, answer) = app.post_until_answered(token, "/v1/accounts", &body).await;
    assert_eq!(status, 201, "{answer}");
    id
}

async fn projected(app: &TestApp, token: &str, account: Uuid, ready: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = app.read(token, &format!("/v1/accounts/{account}")).await;
        if answer.status == 200 && ready(&answer.body) {
            return;
        }
        assert!(Instant::now() < deadline, "{:?}", answer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_cannot_create_money() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let alice = env.token(Role::Customer, "alice");
    let service = env.token(Role::Service, "bank");

    let greedy = json!({"owner_id": "alice", "currency": "EUR", "overdraft_limit": 1_000_000_000_000_000i64});
    let answer = app.command(&alice, "/v1/accounts", None, &greedy).await;
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    let chosen = json!({"owner_id": "alice", "currency": "EUR", "account_id": Uuid::new_v4()});
    assert_eq!(
        app.command(&alice, "/v1/accounts", None, &chosen)
            .await
            .status,
        403
    );
    let plain = json!({"owner_id": "alice", "currency": "EUR"});
    let opened = app.command(&alice, "/v1/accounts", None, &plain).await;
    assert_eq!(opened.status, 201, "{:?}", opened.body);
    let account = opened.body["account_id"].as_str().expect("id").to_string();
    let deposit = format!("/v1/accounts/{account}/deposits");
    assert_eq!(
        app.command(&alice, &deposit, None, &json!({"amount": 100}))
            .await
            .status,
        403,
        "money enters through a service"
    );
    let limit = format!("/v1/accounts/{account}/overdraft-limit");
    assert_eq!(
        app.command_put(&alice, &limit, &json!({"limit": 500}))
            .await
            .status,
        403
    );
    let withdraw = format!("/v1/accounts/{account}/withdrawals");
    let answer = app
        .command(&alice, &withdraw, None, &json!({"amount": 1}))
        .await;
    assert_eq!(answer.problem(), Some("insufficient_funds"));

    // the bank grants credit, and takes it back only as far as it is not used
    assert_eq!(
        app.command_put(&service, &limit, &json!({"limit": 100}))
            .await
            .status,
        200
    );
    let answer = app
        .command(&alice, &withdraw, None, &json!({"amount": 60}))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let refused = app
        .command_put(&service, &limit, &json!({"limit": 59}))
        .await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.problem(), Some("limit_below_overdraft"));
    let answer = app
        .command_put(&service, &limit, &json!({"limit": 60}))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let id: Uuid = account.parse().expect("uuid");
    projected(&app, &alice, id, |a| {
        a["overdraft_limit"] == 60 && a["balance"] == -60
    })
    .await;
    let invalid = app
        .command_put(&service, &limit, &json!({"limit": -1}))
        .await;
    assert_eq!(invalid.status, 422);
    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_learn_nothing_about_accounts_they_do_not_own() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let service = env.token(Role::Service, "bank");
    let alice = env.token(Role::Customer, "alice");
    let mine = open(&app, &service, "alice", "USD").await;
    let bobs = open(&app, &service, "bob", "EUR").await;
    let path = format!("/v1/accounts/{mine}/deposits");
    assert_eq!(
        app.post_until_answered(&service, &path, &json!({"amount": 100}))
            .await
            .0,
        200
    );
    projected(&app, &service, bobs, |_| true).await;
    projected(&app, &service, mine, |a| a["balance"] == 100).await;

    // a foreign account and one that does not exist answer alike, before the body is read
    let nowhere = Uuid::new_v4();
    for account in [bobs, nowhere] {
        let withdraw = format!("/v1/accounts/{account}/withdrawals");
        let bad_body = app
            .command(&alice, &withdraw, None, &json!({"amount": 0}))
            .await;
        assert_eq!(bad_body.status, 404, "{account}: {:?}", bad_body.body);
        assert_same_not_found(&bad_body);
        let close = format!("/v1/accounts/{account}/close");
        assert_same_not_found(&app.command(&alice, &close, None, &json!({})).await);
        let from_foreign = json!({"from_account_id": account, "to_account_id": mine, "amount": 0});
        assert_same_not_found(
            &app.command(&alice, "/v1/transfers", None, &from_foreign)
                .await,
        );
    }
    // a valid withdrawal from a foreign account: 404 too (decided by the processor or the gateway)
    let withdraw = format!("/v1/accounts/{bobs}/withdrawals");
    assert_same_not_found(
        &app.command(&alice, &withdraw, None, &json!({"amount": 1}))
            .await,
    );

    // to a foreign account in another currency: accepted, then failed, and only "failed"
    let to_bob = json!({"from_account_id": mine, "to_account_id": bobs, "amount": 10});
    let accepted = app.command(&alice, "/v1/transfers", None, &to_bob).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let text = accepted.body.to_string();
    assert!(
        !text.contains("EUR"),
        "the answer names the target's currency: {text}"
    );
    let transfer = accepted.body["transfer_id"]
        .as_str()
        .expect("id")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let seen = app.read(&alice, &format!("/v1/transfers/{transfer}")).await;
        if seen.body["status"] == "failed" {
            break seen;
        }
        assert!(Instant::now() < deadline, "{:?}", seen.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen.body["reason"], "transfer_failed");
    assert!(!seen.body.to_string().contains("EUR"), "{:?}", seen.body);
    let for_the_bank = app
        .read(&service, &format!("/v1/transfers/{transfer}"))
        .await;
    assert_eq!(for_the_bank.body["reason"], "currency_mismatch");
    app.stop().await.expect("stop");
}

/// A 404 that says no more than "account not found".
fn assert_same_not_found(answer: &Answer) {
    assert_eq!(answer.status, 404, "{:?}", answer.body);
    assert_eq!(
        answer.problem(),
        Some("account_not_found"),
        "{:?}",
        answer.body
    );
    assert_eq!(answer.body["detail"], "account not found");
    assert!(answer.body.get("command_id").is_none(), "{:?}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_bounded_and_keys_belong_to_one_role() {
    let env = TestEnv::new().await;
    // a short HMAC key is refused at start
    let mut weak = env.settings();
    logbook_tests::http(&mut weak).jwt.secret = Some(logbook_events::Secret::new("short-secret"));
    let http = weak.http.as_ref().expect("http");
    let error = logbook_api::app::Application::build(&weak.kafka, http, None)
        .await
        .expect_err("a short key is refused");
    assert!(error.to_string().contains("at least 32 bytes"), "{error}");

    let app = env.spawn(Roles::ALL).await;
    // a token that lives longer than allowed (24 h by default) is refused
    let lenient = logbook_api::auth::JwtOptions {
        max_lifetime_seconds: 30 * 86_400,
        ..Default::default()
    };
    let keys =
        logbook_api::auth::JwtKeys::from_settings(Some(&env.jwt_secret), &lenient).expect("keys");
    let forever = keys
        .mint("ops", Role::Admin, 7 * 86_400, chrono::Utc::now())
        .expect("minted with the key");
    assert_eq!(app.read(&forever, "/v1/accounts").await.status, 401);

    // one sub under two roles holds two sets of Idempotency-Keys
    let service = env.token(Role::Service, "ops");
    let admin = env.token(Role::Admin, "ops");
    let account = open(&app, &service, "bank", "EUR").await;
    let path = format!("/v1/accounts/{account}/deposits");
    let first = app
        .command(&service, &path, Some("k"), &json!({"amount": 5}))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let second = app
        .command(&admin, &path, Some("k"), &json!({"amount": 5}))
        .await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert!(!second.replayed, "another role's key answered");
    projected(&app, &service, account, |a| a["balance"] == 10).await;
    app.stop().await.expect("stop");
}

/// `replay --into` never touches a live installation, whatever its schema is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_to_write_into_a_live_schema() {
    let env = TestEnv::new().await;
    sqlx::query("CREATE SCHEMA ledger_live")
        .execute(&env.db)
        .await
        .expect("schema");
    let live = logbook_projections::replay::options_in(env.db_options.clone(), "ledger_live");
    let live = logbook_projections::db::pool(live, 1);
    logbook_projections::db::migrate(&live)
        .await
        .expect("a live installation in its own schema");
    for (pool, schema) in [(&env.db, "ledger_live"), (&live, "ledger_live")] {
        let refused = logbook_projections::replay::prepare(pool, schema, true).await;
        assert!(
            matches!(
                refused,
                Err(logbook_projections::replay::ReplayError::LiveSchema(_))
            ),
            "{refused:?}"
        );
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'ledger_live' AND tablename = 'accounts'",
    )
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(tables, 1, "the live schema is untouched");
    // a fresh schema is fine
    logbook_projections::replay::prepare(&env.db, "analysis_1", false)
        .await
        .expect("replay schema");
}

/// A flood of unauthenticated requests costs the trail one row per source and minute, stored
/// paths are cut short, and old rows go only through the retention tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_trail_stays_bounded() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).rate_limits = None;
    let app = env.spawn_with(settings, Roles::SERVE).await;
    let long = format!("/v1/accounts/{}", "x".repeat(1_000));
    for i in 0..50 {
        let path = if i == 0 {
            long.as_str()
        } else {
            "/v1/accounts"
        };
        let answer = app.read("not-a-token", path).await;
        assert_eq!(answer.status, 401);
    }
    app.stop().await.expect("stop: the trail is written");
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT count, path FROM security_audit WHERE kind = 'authentication_failed'",
    )
    .fetch_all(&env.db)
    .await
    .expect("rows");
    assert!(
        rows.len() <= 4,
        "one row per path and minute, not per request: {rows:?}"
    );
    assert_eq!(rows.iter().map(|r| r.0).sum::<i32>(), 50);
    assert!(rows.iter().all(|r| r.1.chars().count() <= 200), "{rows:?}");

    // retention: only the tool deletes, only past the age, and it leaves a trace
    for days in [400, 40, 20] {
        sqlx::query(
            "INSERT INTO security_audit (occurred_at, kind, method, path, status, detail) \
             VALUES (now() - make_interval(days => $1), 'permission_denied', 'GET', '/', 403, $2)",
        )
        .bind(days)
        .bind(format!("{days} days old"))
        .execute(&env.db)
        .await
        .expect("insert");
    }
    let refused = sqlx::query("DELETE FROM security_audit")
        .execute(&env.db)
        .await;
    assert!(refused.is_err(), "the table is append-only");
    use logbook_api::security::prune::{PruneError, prune};
    assert!(matches!(
        prune(&env.db, 7, chrono::Utc::now()).await,
        Err(PruneError::TooShort(7))
    ));
    assert_eq!(
        prune(&env.db, 365, chrono::Utc::now())
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        prune(&env.db, 30, chrono::Utc::now()).await.expect("prune"),
        1
    );
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM security_audit WHERE detail LIKE '%days old' ORDER BY detail",
    )
    .fetch_all(&env.db)
    .await
    .expect("left");
    assert_eq!(left, ["20 days old"]);
    let traces: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM security_audit WHERE kind = 'admin_action' \
         AND path = 'prune-security-audit'",
    )
    .fetch_one(&env.db)
    .await
    .expect("traces");
    assert_eq!(traces, 2, "every prune is recorded");
}
