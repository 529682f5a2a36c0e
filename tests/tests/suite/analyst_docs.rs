//! The analysts' documentation stays true: `docs/events.md` is generated from
//! `schemas/events/*.json` (this test regenerates it and fails on drift; run with
//! `LOGBOOK_UPDATE_DOCS=1` to rewrite it), and `docs/examples/deposits_per_day.py` runs with the
//! confluent-kafka client (in the virtualenv `scripts/python-venv.sh` makes) against a fresh
//! topic written by the real server, and prints the deposits per day it must.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_tests::TestEnv;
use logbook_tests::read::committed_log;
use serde_json::{Value, json};
use uuid::Uuid;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The catalogue: one section per event type, its description and a table of its fields.
fn catalogue() -> String {
    let dir = root().join("schemas/events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("schemas/events")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "envelope.json")
        .collect();
    names.sort();
    let mut out = String::from(
        "# Event catalogue\n\n\
         Generated from `schemas/events/*.json` by `tests/tests/suite/analyst_docs.rs` \
         (`LOGBOOK_UPDATE_DOCS=1 cargo test -p logbook-tests --test suite analyst_docs` rewrites it). \
         Do not edit by hand.\n\n\
         Every record of `<prefix>.events` is an envelope (`schemas/events/envelope.json`, \
         described below); its `data` object has the shape of its `event_type` and \
         `schema_version`. Amounts are integer minor units (never floats).\n\n",
    );
    out.push_str(&section("Envelope", &schema(&dir.join("envelope.json"))));
    for name in names {
        let title = name.trim_end_matches(".json").to_owned();
        out.push_str(&section(&title, &schema(&dir.join(&name))));
    }
    out
}

fn schema(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("json")
}

fn section(title: &str, schema: &Value) -> String {
    let mut out = format!("## {title}\n\n");
    if let Some(version) = schema["title"].as_str() {
        out.push_str(&format!("*{version}*\n\n"));
    }
    if let Some(description) = schema["description"].as_str() {
        out.push_str(&format!("{description}\n\n"));
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| field | type | required | description |\n| --- | --- | --- | --- |\n");
    if let Some(properties) = schema["properties"].as_object() {
        for (field, spec) in properties {
            let kind = spec["type"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| spec["enum"].as_array().map(|_| "enum".to_owned()))
                .unwrap_or_else(|| "object".to_owned());
            let description = spec["description"]
                .as_str()
                .unwrap_or("")
                .replace('|', "\\|")
                .replace('\n', " ");
            let required = if required.contains(&field.as_str()) {
                "yes"
            } else {
                "no"
            };
            out.push_str(&format!(
                "| `{field}` | {kind} | {required} | {description} |\n"
            ));
        }
    }
    out.push('\n');
    out
}

#[test]
fn the_event_catalogue_is_generated_from_the_schemas() {
    let path = root().join("docs/events.md");
    let generated = catalogue();
    if std::env::var_os("LOGBOOK_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/events.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/events.md is stale: run LOGBOOK_UPDATE_DOCS=1 cargo test -p logbook-tests --test suite analyst_docs"
    );
    for name in logbook_events::ALL_EVENT_TYPES {
        assert!(
            generated.contains(&format!("## {name}\n")),
            "{name} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_totals_deposits_per_day() {
    let venv = tokio::process::Command::new(root().join("scripts/python-venv.sh"))
        .output()
        .await
        .expect("run scripts/python-venv.sh");
    assert!(
        venv.status.success(),
        "{}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let python = String::from_utf8(venv.stdout)
        .expect("utf8")
        .trim()
        .to_owned();

    let env = TestEnv::new().await;
    let app = env
        .spawn(Roles {
            http: true,
            processor: true,
            ..Roles::NONE
        })
        .await;
    let service = env.token(Role::Service, "svc");
    let mut expected_amounts: BTreeMap<&str, i64> = BTreeMap::new();
    for (currency, amounts) in [("EUR", [100, 250, 5]), ("USD", [7, 1_000, 33])] {
        let account = Uuid::new_v4();
        let open = json!({"owner_id": "o", "currency": currency, "account_id": account});
        assert_eq!(
            app.post("/v1/accounts", &service, &open).await.status(),
            201
        );
        for amount in amounts {
            let path = format!("/v1/accounts/{account}/deposits");
            let response = app.post(&path, &service, &json!({"amount": amount})).await;
            assert_eq!(response.status(), 200);
            *expected_amounts.entry(currency).or_default() += amount;
        }
        let path = format!("/v1/accounts/{account}/withdrawals");
        let response = app.post(&path, &service, &json!({"amount": 1})).await;
        assert_eq!(response.status(), 200);
    }
    app.stop().await.expect("clean stop");

    // what the example must print, from the committed log itself
    let log = committed_log(&env.kafka).await;
    let mut currency_of = BTreeMap::new();
    let mut expected: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (_, envelope) in &log {
        match envelope.event_type.as_str() {
            "AccountOpened" => {
                currency_of.insert(envelope.aggregate_id, envelope.data["currency"].clone());
            }
            "FundsDeposited" => {
                let day = envelope.occurred_at.format("%Y-%m-%d").to_string();
                let currency = currency_of[&envelope.aggregate_id]
                    .as_str()
                    .expect("currency");
                *expected
                    .entry(day)
                    .or_default()
                    .entry(currency.to_owned())
                    .or_default() += envelope.data["amount"].as_i64().expect("amount");
            }
            _ => {}
        }
    }
    let totals: i64 = expected.values().flat_map(|d| d.values()).sum();
    assert_eq!(totals, expected_amounts.values().sum::<i64>());

    let output = tokio::process::Command::new(&python)
        .arg(root().join("docs/examples/deposits_per_day.py"))
        .args(["--brokers", &env.kafka.brokers])
        .args(["--topic", &env.kafka.topics().events])
        .output()
        .await
        .expect("run the example");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: BTreeMap<String, BTreeMap<String, i64>> =
        serde_json::from_slice(&output.stdout).expect("the example prints JSON");
    assert_eq!(printed, expected);
}
