//! The role matrix over HTTP: every endpoint × every role, plus no token, an expired token, a
//! wrong signature, `alg: none` and a token for another audience, each cell with its exact
//! status. Then the security audit trail must hold every denial the walk caused.
//!
//! The README's "Who may do what" table is this test's [`MATRIX`].

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use logbook_api::auth::JwtOptions;
use logbook_api::auth::{JwtKeys, Role};
use logbook_cli::roles::Roles;
use logbook_events::Secret;
use logbook_tests::{TestApp, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// Columns: customer (owner), support, auditor, analyst, service, admin. Every endpoint answers
/// 401 to the five bad-credential callers.
#[rustfmt::skip]
const MATRIX: &[(&str, [u16; 6])] = &[
    ("POST /v1/accounts",                       [201, 403, 403, 403, 201, 201]),
    // credit and chosen ids are the bank's business, not the customer's
    ("POST /v1/accounts?with=overdraft_limit",  [403, 403, 403, 403, 201, 201]),
    ("POST /v1/accounts?with=account_id",       [403, 403, 403, 403, 201, 201]),
    // money enters from outside rails, through a service
    ("POST /v1/accounts/{A}/deposits",          [403, 403, 403, 403, 200, 200]),
    ("PUT /v1/accounts/{A}/overdraft-limit",    [403, 403, 403, 403, 200, 200]),
    ("POST /v1/accounts/{A}/withdrawals",       [200, 403, 403, 403, 200, 200]),
    ("POST /v1/transfers",                      [202, 403, 403, 403, 202, 202]),
    ("POST /v1/accounts/{F}/freeze",            [403, 200, 403, 403, 200, 200]),
    ("POST /v1/accounts/{F}/unfreeze",          [403, 200, 403, 403, 200, 200]),
    ("POST /v1/accounts/{C}/close",             [200, 403, 403, 403, 200, 200]),
    // the holder's personal data: changed by the owner and the bank, erased by admins only
    ("PATCH /v1/accounts/{A}/holder",           [200, 403, 403, 403, 200, 200]),
    ("POST /v1/owners/nobody/erasure",          [403, 403, 403, 403, 403, 200]),
    ("GET /v1/accounts/{A}",                    [200, 200, 200, 403, 200, 200]),
    ("GET /v1/accounts?owner_id=alice",         [200, 200, 200, 403, 200, 200]),
    ("GET /v1/accounts/{A}/transactions",       [200, 403, 200, 403, 200, 200]),
    ("GET /v1/transfers/{T}",                   [200, 403, 200, 403, 200, 200]),
    ("GET /v1/accounts/{A}/transfers",          [200, 403, 200, 403, 200, 200]),
    ("GET /v1/admin/projections",               [403, 403, 403, 403, 403, 200]),
    // an unknown projection, so the walk starts no rebuild: 422 for the one role allowed
    ("POST /v1/admin/projections/none/rebuild", [403, 403, 403, 403, 403, 422]),
    ("GET /v1/admin/rebuilds",                  [403, 403, 403, 403, 403, 200]),
    ("GET /v1/audit/security",                  [403, 403, 200, 403, 403, 200]),
    ("GET /v1/audit/security?sub=alice&kind=permission_denied", [403, 403, 200, 403, 403, 200]),
    ("GET /v1/audit/accounts/{A}/events",       [403, 403, 200, 403, 403, 200]),
    ("GET /v1/audit/accounts/{A}/state?as_of={NOW}", [403, 403, 200, 403, 403, 200]),
    ("GET /v1/audit/verify?account_id={A}",     [403, 403, 200, 403, 403, 200]),
    ("GET /v1/events?limit=1",                  [403, 403, 200, 200, 403, 200]),
];

/// A customer on an account it does not own: 404, so existence is not revealed (403 where the
/// request itself names another owner).
const NOT_OWNER: &[(&str, u16)] = &[
    ("POST /v1/accounts/{A}/deposits", 403),
    ("POST /v1/accounts/{A}/withdrawals", 404),
    ("POST /v1/transfers", 404),
    ("POST /v1/accounts/{C}/close", 404),
    ("PATCH /v1/accounts/{A}/holder", 404),
    ("GET /v1/accounts/{A}", 404),
    ("GET /v1/accounts/{A}/transactions", 404),
    ("GET /v1/transfers/{T}", 404),
    ("GET /v1/accounts/{A}/transfers", 404),
    ("GET /v1/accounts?owner_id=alice", 403),
    ("POST /v1/accounts", 403),
];

const BAD_CREDENTIALS: [&str; 5] = [
    "no token",
    "expired",
    "wrong signature",
    "alg none",
    "other audience",
];

/// Accounts of the walk: A (alice's, funded), B (bob's), per caller one account F to freeze and
/// unfreeze and one C to close (all alice's), and a transfer T from A.
struct Fixture {
    a: Uuid,
    b: Uuid,
    freezable: HashMap<String, Uuid>,
    closable: HashMap<String, Uuid>,
    t: Uuid,
}

fn options(audience: &str) -> JwtOptions {
    JwtOptions {
        issuer: Some("https://idp.logbook.test".into()),
        audience: Some(audience.into()),
        ..JwtOptions::default()
    }
}

fn alg_none_token() -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let claims = json!({"sub": "mallory", "role": "admin", "exp": Utc::now().timestamp() + 600,
        "iss": "https://idp.logbook.test", "aud": "logbook-matrix"});
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// (caller name, token) for the six roles and the five bad credentials.
fn callers(secret: &Secret) -> Vec<(String, Option<String>)> {
    let keys = JwtKeys::from_settings(Some(secret), &options("logbook-matrix")).expect("keys");
    let now = Utc::now();
    let mint = |keys: &JwtKeys, sub: &str, role: Role, at| keys.mint(sub, role, 3600, at).ok();
    let mut callers: Vec<(String, Option<String>)> = Role::ALL
        .iter()
        .map(|role| {
            let sub = if *role == Role::Customer {
                "alice"
            } else {
                role.as_str()
            };
            (role.as_str().to_string(), mint(&keys, sub, *role, now))
        })
        .collect();
    let foreign = JwtKeys::from_settings(
        Some(&Secret::new("not-the-key-but-just-as-long-as-one")),
        &options("logbook-matrix"),
    )
    .expect("keys");
    let elsewhere = JwtKeys::from_settings(Some(secret), &options("another-api")).expect("keys");
    let expired = now - chrono::Duration::hours(2);
    callers.push(("no token".into(), None));
    callers.push(("expired".into(), mint(&keys, "admin", Role::Admin, expired)));
    callers.push((
        "wrong signature".into(),
        mint(&foreign, "admin", Role::Admin, now),
    ));
    callers.push(("alg none".into(), Some(alg_none_token())));
    callers.push((
        "other audience".into(),
        mint(&elsewhere, "admin", Role::Admin, now),
    ));
    callers
}

async fn call(
    app: &TestApp,
    fixture: &Fixture,
    endpoint: &str,
    caller: &str,
    token: Option<&str>,
) -> u16 {
    let (method, template) = endpoint.split_once(' ').expect("method and path");
    let own = |accounts: &HashMap<String, Uuid>| accounts.get(caller).copied().unwrap_or(fixture.a);
    let path = template
        .replace("{A}", &fixture.a.to_string())
        .replace("{F}", &own(&fixture.freezable).to_string())
        .replace("{C}", &own(&fixture.closable).to_string())
        .replace("{T}", &fixture.t.to_string())
        .replace(
            "{NOW}",
            &Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        );
    let owner = token.map_or("x", |_| caller_sub(caller));
    let body = match template {
        "/v1/accounts" => json!({"owner_id": owner, "currency": "EUR"}),
        "/v1/accounts?with=overdraft_limit" => {
            json!({"owner_id": owner, "currency": "EUR", "overdraft_limit": 100})
        }
        "/v1/accounts?with=account_id" => {
            json!({"owner_id": owner, "currency": "EUR", "account_id": Uuid::new_v4()})
        }
        p if p.ends_with("/overdraft-limit") => json!({"limit": 100}),
        "/v1/transfers" => {
            json!({"from_account_id": fixture.a, "to_account_id": fixture.b, "amount": 1})
        }
        p if p.ends_with("/deposits") || p.ends_with("/withdrawals") => json!({"amount": 1}),
        p if p.ends_with("/holder") => json!({"name": "Alice Example"}),
        _ => json!({}),
    };
    let mut request = match method {
        "GET" => app.client.get(app.url(&path)),
        "PUT" => app.client.put(app.url(&path)).json(&body),
        "PATCH" => app.client.patch(app.url(&path)).json(&body),
        _ => app.client.post(app.url(&path)).json(&body),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request").status().as_u16()
}

/// The `owner_id` a caller opens an account for: its own `sub`, except for the customer who
/// owns nothing here (mallory), who tries to open one for alice.
fn caller_sub(caller: &str) -> &str {
    match caller {
        "customer" | "mallory" => "alice",
        other => other,
    }
}

async fn fixture(app: &TestApp, keys: &JwtKeys) -> Fixture {
    let mint = |role| keys.mint("setup", role, 3600, Utc::now()).expect("token");
    let service = mint(Role::Service);
    let open = |owner: &'static str| {
        let service = service.clone();
        async move {
            let (status, body) = app
                .post_until_answered(
                    &service,
                    "/v1/accounts",
                    &json!({"owner_id": owner, "currency": "EUR"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["account_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("account id")
        }
    };
    let (a, b) = (open("alice").await, open("bob").await);
    let (mut freezable, mut closable) = (HashMap::new(), HashMap::new());
    for caller in [
        "customer", "support", "auditor", "analyst", "service", "admin", "mallory",
    ] {
        freezable.insert(caller.to_string(), open("alice").await);
        closable.insert(caller.to_string(), open("alice").await);
    }
    let path = format!("/v1/accounts/{a}/deposits");
    let (status, _) = app
        .post_until_answered(&service, &path, &json!({"amount": 1000}))
        .await;
    assert_eq!(status, 200);
    let transfer = json!({"from_account_id": a, "to_account_id": b, "amount": 5});
    let (status, body) = app
        .post_until_answered(&service, "/v1/transfers", &transfer)
        .await;
    assert_eq!(status, 202, "{body}");
    let t: Uuid = body["transfer_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("transfer id");
    // queries answer from the read models: wait until they show the fixture
    let admin = mint(Role::Admin);
    for path in [
        format!("/v1/transfers/{t}"),
        format!("/v1/accounts/{}", closable["mallory"]),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while app
            .client
            .get(app.url(&path))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("get")
            .status()
            != 200
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never projected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Fixture {
        a,
        b,
        freezable,
        closable,
        t,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_caller_as_the_matrix_says_and_denials_are_audited() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).jwt.options = options("logbook-matrix");
    let app = env.spawn_with(settings, Roles::ALL).await;
    let started = Utc::now();
    let setup_keys =
        JwtKeys::from_settings(Some(&env.jwt_secret), &options("logbook-matrix")).expect("keys");
    // the fixture is made with tokens of the configured issuer and audience
    let fixture = fixture(&app, &setup_keys).await;

    let callers = callers(&env.jwt_secret);
    let mut wrong = Vec::new();
    let (mut denied, mut unauthenticated) = (0, 0);
    for (endpoint, expected) in MATRIX {
        for (column, (caller, token)) in callers.iter().enumerate() {
            let want = expected.get(column).copied().unwrap_or(401);
            let got = call(&app, &fixture, endpoint, caller, token.as_deref()).await;
            if got != want {
                wrong.push(format!("{endpoint} as {caller}: {got}, expected {want}"));
            }
            denied += usize::from(want == 403);
            unauthenticated += usize::from(want == 401);
        }
    }
    let mallory = setup_keys
        .mint("mallory", Role::Customer, 3600, Utc::now())
        .expect("token");
    for (endpoint, want) in NOT_OWNER {
        let got = call(&app, &fixture, endpoint, "mallory", Some(&mallory)).await;
        if got != *want {
            wrong.push(format!(
                "{endpoint} as a customer not owning it: {got}, expected {want}"
            ));
        }
        denied += usize::from(*want == 403);
    }
    assert!(
        wrong.is_empty(),
        "cells off the matrix:\n{}",
        wrong.join("\n")
    );
    assert_eq!(unauthenticated, MATRIX.len() * BAD_CREDENTIALS.len());

    let auditor = setup_keys
        .mint("auditor", Role::Auditor, 3600, Utc::now())
        .expect("token");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let trail = security_trail(&app, &auditor, started).await;
        let count = |kind: &str| trail.iter().filter(|e| e["kind"] == kind).count();
        let (d, u) = (count("permission_denied"), count("authentication_failed"));
        // denials by a known principal are one row each; unauthenticated ones are written at
        // once for the first of each source and reason, and counted per minute after that
        if d >= denied && u >= BAD_CREDENTIALS.len() {
            assert_eq!(d, denied, "more denials recorded than caused");
            // why each bad credential failed is recorded (never the token itself)
            let details: std::collections::BTreeSet<&str> =
                trail.iter().filter_map(|e| e["detail"].as_str()).collect();
            for reason in [
                "missing bearer token",
                "expired",
                "bad signature",
                "wrong audience",
                "unsupported algorithm",
            ] {
                assert!(
                    details.iter().any(|d| d.contains(reason)),
                    "{reason} not in {details:?}"
                );
            }
            assert!(trail.iter().all(|e| e["client_ip"] == "127.0.0.1"));
            assert!(
                trail
                    .iter()
                    .filter(|e| e["kind"] == "permission_denied")
                    .all(|e| e["sub"].is_string())
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "trail holds {d} denials and {u} authentication failure rows, expected {denied} and at least {}",
            BAD_CREDENTIALS.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // an admin action is recorded with who did it
    let admin = setup_keys
        .mint("root", Role::Admin, 3600, Utc::now())
        .expect("token");
    let rebuild = app
        .client
        .post(app.url("/v1/admin/projections/archive/rebuild"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("rebuild");
    assert_eq!(rebuild.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !security_trail(&app, &auditor, started)
        .await
        .iter()
        .any(|e| e["kind"] == "admin_action" && e["sub"] == "root" && e["role"] == "admin")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "admin action not recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await.expect("clean stop");
    // stopping writes the counted rest: every 401 is accounted for
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(count), 0) FROM security_audit WHERE kind = 'authentication_failed'",
    )
    .fetch_one(&env.db)
    .await
    .expect("sum");
    assert_eq!(counted as usize, unauthenticated);
}

/// Every entry of the security trail since `since`, following the cursor.
async fn security_trail(app: &TestApp, token: &str, since: chrono::DateTime<Utc>) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!(
            "/v1/audit/security?limit=50&since={}",
            since.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        );
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = app
            .client
            .get(app.url(&url))
            .bearer_auth(token)
            .send()
            .await
            .expect("trail");
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        entries.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return entries,
        }
    }
}
