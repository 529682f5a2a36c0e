//! Admin endpoints: projection status per partition, and a rebuild started over HTTP that swaps
//! in while the account stays readable.

use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_api::roles::Roles;
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
