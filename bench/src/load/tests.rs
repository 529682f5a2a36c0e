//! The generator against a small in-process server with a known service time: the open loop
//! must charge queueing to latency (no coordinated omission) and count what it sends.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use super::args::LoadArgs;

const SERVICE: Duration = Duration::from_millis(30);

async fn server() -> String {
    let app = Router::new()
        .route(
            "/v1/accounts",
            post(|| async {
                let id = uuid::Uuid::now_v7();
                (StatusCode::CREATED, axum::Json(json!({ "account_id": id })))
            }),
        )
        .route(
            "/v1/accounts/{id}/deposits",
            post(|| async {
                tokio::time::sleep(SERVICE).await;
                axum::Json(json!({ "version": 2 }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn args(url: String, clients: usize, dir: &std::path::Path) -> LoadArgs {
    let token_file = dir.join("token");
    std::fs::write(&token_file, "not-checked").expect("token file");
    LoadArgs {
        url,
        token_file,
        admin_token_file: None,
        label: "test".into(),
        duration: 1,
        warmup: 0,
        rate: 100.0,
        clients,
        mix: "deposit=1".parse().expect("mix"),
        accounts: 4,
        freshness_every: 1000,
        procs: Vec::new(),
        out: dir.join("out.json"),
    }
}

async fn run(clients: usize) -> Value {
    let dir = std::env::temp_dir().join(format!("logbook-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let args = args(server().await, clients, &dir);
    let out = args.out.clone();
    super::run(args).await.expect("load run");
    let result = serde_json::from_slice(&std::fs::read(out).expect("result")).expect("json");
    let _ = std::fs::remove_dir_all(dir);
    result
}

#[tokio::test]
async fn a_generator_that_falls_behind_shows_it_in_the_latency() {
    // One connection serves 1/30 ms = 33 requests/s of the 100/s asked for: request i waits
    // for the ones before it, so latency from the schedule grows far past the service time.
    let result = run(1).await;
    assert_eq!(result["statuses"]["200"], 100, "{result}");
    let latency = result["latency"]["p99_ms"].as_f64().expect("p99");
    let service = result["service_time"]["p99_ms"]
        .as_f64()
        .expect("service p99");
    assert!((30.0..200.0).contains(&service), "service p99 {service}");
    assert!(
        latency > 1000.0,
        "latency p99 {latency} should include ~2 s of queueing"
    );
}

#[tokio::test]
async fn enough_connections_keep_latency_at_the_service_time() {
    let result = run(16).await;
    assert_eq!(result["ok"], 100, "{result}");
    let latency = result["latency"]["p99_ms"].as_f64().expect("p99");
    assert!((30.0..200.0).contains(&latency), "latency p99 {latency}");
    let throughput = result["throughput_ok_per_s"].as_f64().expect("throughput");
    assert!(
        (90.0..=100.0).contains(&throughput),
        "throughput {throughput}"
    );
}
