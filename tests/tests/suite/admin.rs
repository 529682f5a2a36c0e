//! Admin endpoints: projection status per partition, and a rebuild started over HTTP that swaps
//! in while the account stays readable.

use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_tests::TestEnv;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sees_projection_status_and_can_rebuild() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let (service, admin) = (
        env.token(Role::Service, "svc"),
        env.token(Role::Admin, "root"),
    );
    let account = Uuid::new_v4();
    let opened = app
        .post(
            "/v1/accounts",
            &service,
            &json!({"owner_id": "o", "currency": "EUR", "account_id": account}),
        )
        .await;
    assert_eq!(opened.status(), 201);
    let opened: Value = opened.json().await.expect("json");
    let position = opened["position"].as_str().expect("position").to_string();
    let deposit = app
        .post(
            &format!("/v1/accounts/{account}/deposits"),
            &service,
            &json!({"amount": 9}),
        )
        .await;
    assert_eq!(deposit.status(), 200);

    let get = |token: String, path: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(token);
        async move { request.send().await.expect("request") }
    };
    assert_eq!(
        get(service.clone(), "/v1/admin/projections".into())
            .await
            .status(),
        403
    );
    let status: Value = get(admin.clone(), "/v1/admin/projections".into())
        .await
        .json()
        .await
        .expect("json");
    let rows = status["partitions"].as_array().expect("partitions");
    for name in ["ledger", "archive"] {
        assert!(
            rows.iter()
                .any(|r| r["projection"] == name && r["partition"].is_i64()),
            "{status}"
        );
    }

    let started = app
        .post("/v1/admin/projections/ledger/rebuild", &admin, &json!({}))
        .await;
    assert_eq!(started.status(), 202);
    let unknown = app
        .post("/v1/admin/projections/nope/rebuild", &admin, &json!({}))
        .await;
    assert_eq!(unknown.status(), 422);
    // the account answers throughout, and the rebuilt ledger ends with the same balance
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("/v1/accounts/{account}?min_position={position}");
        let view = get(service.clone(), path).await;
        assert_eq!(view.status(), 200);
        let view: Value = view.json().await.expect("json");
        let status: Value = get(admin.clone(), "/v1/admin/projections".into())
            .await
            .json()
            .await
            .expect("json");
        let rebuilding = status["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .any(|r| {
                r["projection"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("__rebuild"))
            });
        if !rebuilding
            && view["balance"] == 9
            && Instant::now() > deadline - Duration::from_secs(55)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rebuild did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await.expect("clean stop");
}

/// `logbook rebuild all` replays both projections side by side through the binary, and the
/// swapped-in tables have every index the migrations define (the replay defers the secondary
/// ones and builds them before the swap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_rebuilds_every_projection_with_its_indexes() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let service = env.token(Role::Service, "svc");
    let account = Uuid::new_v4();
    let opened = app
        .post(
            "/v1/accounts",
            &service,
            &json!({"owner_id": "o", "currency": "EUR", "account_id": account}),
        )
        .await;
    assert_eq!(opened.status(), 201);
    let mut position = String::new();
    for amount in [5, 7] {
        let deposit = app
            .post(
                &format!("/v1/accounts/{account}/deposits"),
                &service,
                &json!({"amount": amount}),
            )
            .await;
        assert_eq!(deposit.status(), 200);
        let body: Value = deposit.json().await.expect("json");
        position = body["position"].as_str().expect("position").to_string();
    }
    let seen = app
        .client
        .get(app.url(&format!("/v1/accounts/{account}?min_position={position}")))
        .bearer_auth(&service)
        .send()
        .await
        .expect("request");
    assert_eq!(seen.status(), 200);
    let indexes = |db: sqlx::PgPool| async move {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename IN ('accounts', 'account_transactions', 'transfers', 'event_archive') \
             ORDER BY 1",
        )
        .fetch_all(&db)
        .await
        .expect("indexes");
        names
    };
    let before = indexes(env.db.clone()).await;

    let mut rebuild = tokio::process::Command::from(env.logbook_command());
    let status = rebuild
        .args(["rebuild", "all"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(120), status)
        .await
        .expect("rebuild finished in time")
        .expect("run logbook rebuild");
    assert!(status.success(), "logbook rebuild all: {status}");

    assert_eq!(indexes(env.db.clone()).await, before);
    let shadows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename LIKE '%\\_\\_rebuild'",
    )
    .fetch_one(&env.db)
    .await
    .expect("shadow tables");
    assert_eq!(shadows, 0);
    let (balance, lines, archived): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT balance FROM accounts WHERE account_id = $1), \
                (SELECT count(*) FROM account_transactions WHERE account_id = $1), \
                (SELECT count(*) FROM event_archive WHERE aggregate_id = $1)",
    )
    .bind(account)
    .fetch_one(&env.db)
    .await
    .expect("rebuilt rows");
    assert_eq!((balance, lines, archived), (12, 2, 3));
    app.stop().await.expect("clean stop");
}
