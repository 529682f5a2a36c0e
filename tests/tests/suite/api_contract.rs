//! The HTTP contract end to end: problem+json for every kind of error, JSON Schema validation
//! with a pointer per field, limits, unknown routes and methods, the served OpenAPI document,
//! and Idempotency-Key replay (also across a gateway restart), reuse (422) and in-flight (409).

use std::time::Duration;

use logbook_api::auth::Role;
use logbook_api::idempotency::{Claim, IdempotencyStore, KeyRef, StoredAnswer};
use logbook_cli::roles::Roles;
use logbook_tests::{TestApp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

const HTTP_ONLY: Roles = Roles::SERVE;
const WRITE_SIDE: Roles = Roles {
    http: true,
    processor: true,
    ..Roles::NONE
};

/// Status, content type and JSON body of a response.
async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Asserts an RFC 9457 problem of `code` with `status`; returns its body.
async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, content_type, body) = answer(response).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(
        body["type"],
        format!("urn:logbook:problem:{code}"),
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

async fn post_raw(app: &TestApp, path: &str, token: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_invalid_body_is_a_422_problem_pointing_at_the_field() {
    let env = TestEnv::new().await;
    let app = env.spawn(HTTP_ONLY).await;
    let token = env.token(Role::Admin, "ops");
    let account = format!("/v1/accounts/{}/deposits", Uuid::new_v4());
    let cases: [(&str, &str, &str); 9] = [
        (account.as_str(), r#"{"amount": 0}"#, "/amount"),
        (
            account.as_str(),
            r#"{"amount": 1000000000000000001}"#,
            "/amount",
        ),
        (account.as_str(), r#"{"amount": "10"}"#, "/amount"),
        (account.as_str(), r#"{"reference": "x"}"#, "/amount"),
        (
            account.as_str(),
            r#"{"amount": 1, "colour": "red"}"#,
            "/colour",
        ),
        (
            account.as_str(),
            &format!(r#"{{"amount": 1, "reference": "{}"}}"#, "r".repeat(141)),
            "/reference",
        ),
        (
            "/v1/accounts",
            r#"{"owner_id": "alice", "currency": "euro"}"#,
            "/currency",
        ),
        (
            "/v1/accounts",
            r#"{"owner_id": "", "currency": "EUR"}"#,
            "/owner_id",
        ),
        (
            "/v1/transfers",
            r#"{"from_account_id": "x", "to_account_id": "0193a5c2-7d1e-7c3a-9f00-000000000002", "amount": 1}"#,
            "/from_account_id",
        ),
    ];
    for (path, body, pointer) in cases {
        let response = post_raw(&app, path, &token, body).await;
        let problem = problem(response, 422, "validation").await;
        let errors = problem["errors"].as_array().expect("errors");
        assert!(
            errors
                .iter()
                .any(|e| e["pointer"] == pointer && e["message"].is_string()),
            "{path} {body}: {problem}"
        );
    }
    let malformed = post_raw(&app, &account, &token, r#"{"amount": 1"#).await;
    problem(malformed, 422, "invalid_json").await;
    let bad_path = post_raw(
        &app,
        "/v1/accounts/not-a-uuid/deposits",
        &token,
        r#"{"amount": 1}"#,
    )
    .await;
    let body = problem(bad_path, 422, "validation").await;
    assert_eq!(body["errors"][0]["pointer"], "/path/id");
    let bad_key = app
        .client
        .post(app.url(&account))
        .bearer_auth(&token)
        .header("Idempotency-Key", "has space")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("request");
    let body = problem(bad_key, 422, "validation").await;
    assert_eq!(body["errors"][0]["pointer"], "/header/Idempotency-Key");
    let anonymous = app
        .client
        .get(app.url("/v1/accounts"))
        .send()
        .await
        .expect("request");
    problem(anonymous, 401, "unauthorized").await;
    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_methods_and_oversized_requests_are_problems() {
    let env = TestEnv::new().await;
    let app = env.spawn(HTTP_ONLY).await;
    let token = env.token(Role::Admin, "ops");
    let response = app
        .client
        .get(app.url("/v1/nothing/here"))
        .send()
        .await
        .expect("request");
    problem(response, 404, "no_route").await;
    let response = app
        .client
        .delete(app.url("/v1/accounts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    let allow = response.headers().get("allow").cloned();
    problem(response, 405, "method_not_allowed").await;
    let allow = allow.expect("Allow header");
    assert!(allow.to_str().expect("ascii").contains("POST"), "{allow:?}");
    let big = format!(
        r#"{{"amount": 1, "reference": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    // the server may close a connection whose request it refused unread: no reuse here
    let unpooled = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let response = unpooled
        .post(app.url("/v1/accounts/0193a5c2-7d1e-7c3a-9f00-000000000001/deposits"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("request");
    problem(response, 413, "payload_too_large").await;
    let long = format!("/v1/accounts?owner_id={}", "o".repeat(9 * 1024));
    let response = unpooled
        .get(app.url(&long))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    problem(response, 414, "uri_too_long").await;
    let response = unpooled
        .get(app.url("/v1/accounts"))
        .bearer_auth(&token)
        .header("x-padding", "p".repeat(17 * 1024))
        .send()
        .await
        .expect("request");
    problem(response, 431, "headers_too_large").await;
    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_is_the_checked_in_one_and_docs_are_served() {
    let env = TestEnv::new().await;
    let app = env.spawn(HTTP_ONLY).await;
    let served: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/openapi.json");
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schemas/openapi.json"))
            .expect("json");
    assert!(
        served == checked_in,
        "schemas/openapi.json drifted from the served document: regenerate it with \
         UPDATE_OPENAPI=1 cargo test -p logbook-api openapi"
    );
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["paths"]["/v1/transfers"]["post"].is_object());
    let docs = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("request");
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    app.stop().await.expect("stop");
}

async fn post_with_key(
    app: &TestApp,
    token: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, Option<String>, String) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ascii").to_string());
    (status, location, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_first_answers_across_restarts_and_refuse_other_bodies() {
    let env = TestEnv::new().await;
    let app = env.spawn(WRITE_SIDE).await;
    let token = env.token(Role::Service, "shop");
    let open = json!({"owner_id": "alice", "currency": "EUR"});
    let first = post_with_key(&app, &token, "/v1/accounts", "open-1", &open).await;
    assert_eq!(first.0, 201, "{first:?}");
    let account: Value = serde_json::from_str(&first.2).expect("json");
    let account_id = account["account_id"].as_str().expect("id").to_string();
    assert_eq!(
        post_with_key(&app, &token, "/v1/accounts", "open-1", &open).await,
        first
    );

    let deposits = format!("/v1/accounts/{account_id}/deposits");
    let withdrawals = format!("/v1/accounts/{account_id}/withdrawals");
    let deposit = post_with_key(&app, &token, &deposits, "dep-1", &json!({"amount": 100})).await;
    assert_eq!(deposit.0, 200, "{deposit:?}");
    let rejected = post_with_key(&app, &token, &withdrawals, "wd-1", &json!({"amount": 500})).await;
    assert_eq!(rejected.0, 409, "{rejected:?}");

    // same key, other body (or other endpoint): 422, and nothing applied
    let other = app
        .client
        .post(app.url(&deposits))
        .bearer_auth(&token)
        .header("Idempotency-Key", "dep-1")
        .json(&json!({"amount": 999}))
        .send()
        .await
        .expect("request");
    problem(other, 422, "idempotency_key_reused").await;
    // another principal's key of the same name is its own
    let other_caller = env.token(Role::Service, "bank");
    let theirs = post_with_key(
        &app,
        &other_caller,
        &deposits,
        "dep-1",
        &json!({"amount": 1}),
    )
    .await;
    assert_eq!(theirs.0, 200, "{theirs:?}");

    app.stop().await.expect("stop");
    let restarted = env.spawn(WRITE_SIDE).await;
    assert_eq!(
        post_with_key(&restarted, &token, "/v1/accounts", "open-1", &open).await,
        first
    );
    assert_eq!(
        post_with_key(
            &restarted,
            &token,
            &deposits,
            "dep-1",
            &json!({"amount": 100})
        )
        .await,
        deposit
    );
    assert_eq!(
        post_with_key(
            &restarted,
            &token,
            &withdrawals,
            "wd-1",
            &json!({"amount": 500})
        )
        .await,
        rejected
    );
    // applied once each: open (1), deposit 100 (2), bank's deposit 1 (3); the next is 4
    let next = post_with_key(
        &restarted,
        &token,
        &deposits,
        "dep-2",
        &json!({"amount": 1}),
    )
    .await;
    let next: Value = serde_json::from_str(&next.2).expect("json");
    assert_eq!(next["version"], 4, "{next}");
    restarted.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_flight_gets_409_and_a_timed_out_attempt_is_not_final() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).command_timeout = Duration::from_secs(2);
    // no processor: the command's result never comes, the first attempt stays in flight
    let app = env.spawn_with(settings, HTTP_ONLY).await;
    let token = env.token(Role::Service, "shop");
    let path = format!("/v1/accounts/{}/deposits", Uuid::new_v4());
    let body = json!({"amount": 5});
    let first = post_with_key(&app, &token, &path, "slow-1", &body);
    let second = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        app.client
            .post(app.url(&path))
            .bearer_auth(&token)
            .header("Idempotency-Key", "slow-1")
            .json(&body)
            .send()
            .await
            .expect("request")
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(second.headers()["retry-after"], "1");
    problem(second, 409, "idempotency_in_flight").await;
    assert_eq!(first.0, 504, "{first:?}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE status IS NOT NULL")
            .fetch_one(&env.db)
            .await
            .expect("count");
    assert_eq!(stored, 0, "a 504 must not be stored as the final answer");
    // the key is released with its intent: a retry sends the same command again
    let released: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys WHERE NOT in_flight AND command_id = $1",
    )
    .bind(
        serde_json::from_str::<Value>(&first.2).expect("problem")["command_id"]
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok()),
    )
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(released, 1, "released, keeping the command id of the 504");
    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_keys_are_taken_over_and_expired_keys_purged() {
    let env = TestEnv::new().await;
    let key = KeyRef {
        principal: "shop".into(),
        key: "k".into(),
        fingerprint: vec![1, 2, 3],
    };
    let patient = IdempotencyStore::start(
        env.db.clone(),
        Duration::from_secs(60),
        Duration::from_secs(60),
        1024,
    );
    let Claim::Owner { token, .. } = patient.claim(&key).await.expect("claim") else {
        panic!("a new key is owned");
    };
    assert_eq!(patient.claim(&key).await.expect("claim"), Claim::InFlight);
    let other = KeyRef {
        fingerprint: vec![9],
        ..key.clone()
    };
    assert_eq!(patient.claim(&other).await.expect("claim"), Claim::Mismatch);
    // an owner presumed dead (older than the in-flight timeout) is replaced
    let impatient = IdempotencyStore::start(
        env.db.clone(),
        Duration::from_secs(60),
        Duration::ZERO,
        1024,
    );
    let Claim::Owner {
        token: new_token, ..
    } = impatient.claim(&key).await.expect("claim")
    else {
        panic!("a stale in-flight key is taken over");
    };
    let late = StoredAnswer {
        status: 200,
        headers: Default::default(),
        body: b"late".to_vec(),
    };
    patient
        .complete(&key, token, &late)
        .await
        .expect("complete");
    let answer = StoredAnswer {
        status: 201,
        headers: Default::default(),
        body: b"{}".to_vec(),
    };
    impatient
        .complete(&key, new_token, &answer)
        .await
        .expect("complete");
    assert_eq!(
        patient.claim(&key).await.expect("claim"),
        Claim::Replay(answer)
    );
    // expiry
    let short = IdempotencyStore::start(
        env.db.clone(),
        Duration::from_millis(1),
        Duration::from_secs(60),
        1024,
    );
    let fleeting = KeyRef {
        key: "fleeting".into(),
        ..key.clone()
    };
    assert!(matches!(
        short.claim(&fleeting).await.expect("claim"),
        Claim::Owner { .. }
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(short.purge().await.expect("purge"), 1);
}
