//! Rate limits over HTTP: per principal by role quota, and per client IP before authentication.

use logbook_api::auth::Role;
use logbook_api::ratelimit::{Quota, Quotas};
use logbook_api::roles::Roles;
use logbook_tests::TestEnv;
use serde_json::Value;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_over_their_quota_get_429_with_retry_after() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    let tight = Quota {
        per_second: 0.5,
        burst: 3.0,
    };
    let roomy = Quota {
        per_second: 100.0,
        burst: 100.0,
    };
    let mut quotas = Quotas::parse(roomy, tight, "").expect("quotas");
    quotas.by_role.insert(Role::Customer, tight);
    settings.rate_limits = Some(quotas);
    let app = env
        .spawn_with(
            settings,
            Roles {
                http: true,
                projector: true,
                ..Roles::NONE
            },
        )
        .await;
    let path = format!("/v1/accounts/{}", Uuid::new_v4());
    let get = |token: Option<String>| {
        let mut request = app.client.get(app.url(&path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("request") }
    };

    let alice = env.token(Role::Customer, "alice");
    for _ in 0..3 {
        let response = get(Some(alice.clone())).await;
        assert_eq!(response.status(), 404);
        assert!(response.headers().contains_key("ratelimit-remaining"));
    }
    let limited = get(Some(alice.clone())).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = limited.json().await.expect("json");
    assert_eq!(problem["type"], "urn:logbook:problem:rate_limited");

    // another principal has its own bucket
    assert_eq!(
        get(Some(env.token(Role::Customer, "bob"))).await.status(),
        404
    );
    // without a token the client IP's bucket applies, and health checks are never limited
    let statuses: Vec<u16> = futures::future::join_all((0..4).map(|_| get(None)))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("request");
    assert_eq!(live.status(), 200);
    app.stop().await.expect("clean stop");
}
