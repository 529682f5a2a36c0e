//! Auditors and analysts, against the real broker and server: history and as-of state equal a
//! direct fold of the Kafka log (also inside one transaction batch), tampering with an archived
//! row and with a re-produced record is caught, and the NDJSON stream, export and replay give
//! back exactly the log and the live balances.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_commands::domain::{Account, apply};
use logbook_events::topics::{TopicLayout, ensure_topics};
use logbook_events::{EventEnvelope, KafkaSettings, encode};
use logbook_ops::tools::export::{ExportArgs, Format, export};
use logbook_ops::tools::lines::parse_line;
use logbook_ops::tools::replay::{ReplayArgs, replay};
use logbook_ops::tools::verify::verify_kafka;
use logbook_tests::TestEnv;
use logbook_tests::client::get;
use logbook_tests::log::Record;
use logbook_tests::read::{Generator, Running, committed_log, produce_async};
use serde_json::json;
use uuid::Uuid;

/// Waits until the archive holds every committed event of the log; returns the log.
async fn archived_log(env: &TestEnv) -> Vec<(Record, EventEnvelope)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = committed_log(&env.kafka).await;
        let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM event_archive")
            .fetch_one(&env.db)
            .await
            .expect("count");
        if archived == log.len() as i64 {
            return log;
        }
        assert!(Instant::now() < deadline, "archive did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The state a direct fold of the log gives at `at`: (sequence, balance, status).
fn fold_at(events: &[&EventEnvelope], id: Uuid, at: DateTime<Utc>) -> Option<(u64, i64, String)> {
    let mut account = Account::new(id);
    for envelope in events.iter().take_while(|e| e.occurred_at <= at) {
        apply(
            &mut account,
            &envelope.decode_account().expect("account event"),
        );
    }
    let status = account.status()?.as_str().to_owned();
    Some((account.version(), account.balance(), status))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_as_of_state_equal_a_fold_of_the_log() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    // a long linger gathers concurrent commands into one transaction batch
    settings.processing.linger = Duration::from_millis(300);
    let app = env.spawn_with(settings, Roles::ALL).await;
    let (service, auditor) = (
        env.token(Role::Service, "svc"),
        env.token(Role::Auditor, "aud"),
    );
    let account = Uuid::new_v4();
    let open = json!({"owner_id": "o", "currency": "EUR", "account_id": account});
    assert_eq!(
        app.post("/v1/accounts", &service, &open).await.status(),
        201
    );
    let deposits = (1..=4).map(|n| {
        let path = format!("/v1/accounts/{account}/deposits");
        let (app, service) = (&app, &service);
        async move { app.post(&path, service, &json!({"amount": n * 100})).await }
    });
    for response in futures::future::join_all(deposits).await {
        assert_eq!(response.status(), 200);
    }
    let withdraw = json!({"amount": 150, "reference": "atm"});
    let path = format!("/v1/accounts/{account}/withdrawals");
    assert_eq!(app.post(&path, &service, &withdraw).await.status(), 200);
    let path = format!("/v1/accounts/{account}/freeze");
    assert_eq!(app.post(&path, &service, &json!({})).await.status(), 200);

    let log = archived_log(&env).await;
    let mine: Vec<&EventEnvelope> = log
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.aggregate_id == account)
        .collect();
    assert_eq!(mine.len(), 7);

    // history: the archived envelopes, page by page, equal the log's
    let mut seen: Vec<EventEnvelope> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/audit/accounts/{account}/events?limit=3");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(&app, &auditor, &path).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().expect("items") {
            let mut item = item.clone();
            let position = item
                .as_object_mut()
                .and_then(|o| o.remove("position"))
                .expect("position");
            let envelope: EventEnvelope = serde_json::from_value(item).expect("envelope");
            let (record, _) = log
                .iter()
                .find(|(_, e)| e.event_id == envelope.event_id)
                .expect("in log");
            assert_eq!(
                position,
                format!("v1.{}.{}", record.partition, record.offset)
            );
            seen.push(envelope);
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<EventEnvelope> = mine.iter().map(|e| (*e).clone()).collect();
    assert_eq!(seen, expected);
    let (_, deposits) = get(
        &app,
        &auditor,
        &format!("/v1/audit/accounts/{account}/events?type=FundsDeposited"),
    )
    .await;
    assert_eq!(deposits["items"].as_array().map(Vec::len), Some(4));
    let first = rfc3339(mine[0].occurred_at + TimeDelta::microseconds(1));
    let (_, later) = get(
        &app,
        &auditor,
        &format!("/v1/audit/accounts/{account}/events?from={first}"),
    )
    .await;
    let later_count = mine
        .iter()
        .filter(|e| e.occurred_at >= mine[0].occurred_at + TimeDelta::microseconds(1))
        .count();
    assert_eq!(later["items"].as_array().map(Vec::len), Some(later_count));

    // as-of: at, just before and just after every event's instant
    let mut instants: Vec<DateTime<Utc>> = Vec::new();
    for e in &mine {
        for delta in [-1, 0, 1] {
            instants.push(e.occurred_at + TimeDelta::microseconds(delta));
        }
    }
    for at in instants {
        let path = format!(
            "/v1/audit/accounts/{account}/state?as_of={}",
            rfc3339(at).replace('+', "%2B")
        );
        let (status, state) = get(&app, &auditor, &path).await;
        match fold_at(&mine, account, at) {
            None => assert_eq!(status, 404, "{at}: {state}"),
            Some((sequence, balance, status_text)) => {
                assert_eq!(status, 200, "{at}: {state}");
                assert_eq!(state["sequence"], sequence, "{at}");
                assert_eq!(state["balance"], balance, "{at}");
                assert_eq!(state["status"], status_text.as_str(), "{at}");
            }
        }
    }

    // a partition's clock never repeats: the events of one transaction batch are a microsecond
    // apart, so each event has an instant of its own and as_of can tell them apart
    assert!(mine.windows(2).all(|w| w[0].occurred_at < w[1].occurred_at));
    let batch = mine
        .windows(2)
        .find(|w| w[1].occurred_at - w[0].occurred_at == TimeDelta::microseconds(1))
        .expect("concurrent deposits share a transaction batch");
    for event in batch {
        let path = format!(
            "/v1/audit/accounts/{account}/state?as_of={}",
            rfc3339(event.occurred_at)
        );
        let (_, state) = get(&app, &auditor, &path).await;
        assert_eq!(state["sequence"].as_u64(), Some(event.sequence));
    }
    let before = rfc3339(batch[0].occurred_at - TimeDelta::microseconds(1));
    let path = format!("/v1/audit/accounts/{account}/state?as_of={before}");
    let (_, state) = get(&app, &auditor, &path).await;
    assert_eq!(state["sequence"].as_u64(), Some(batch[0].sequence - 1));

    // roles and input
    let analyst = env.token(Role::Analyst, "ana");
    let path = format!("/v1/audit/accounts/{account}/events");
    assert_eq!(get(&app, &analyst, &path).await.0, 403);
    assert_eq!(get(&app, &service, &path).await.0, 403);
    let path = format!("/v1/audit/accounts/{account}/state?as_of=yesterday");
    assert_eq!(get(&app, &auditor, &path).await.0, 422);
    let path = format!("/v1/audit/accounts/{}/events", Uuid::new_v4());
    assert_eq!(get(&app, &auditor, &path).await.0, 404);
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_archive_row_and_a_reproduced_record_are_caught() {
    let env = TestEnv::new().await;
    let events = Generator::new(env.partitions, 7).events(60);
    produce_async(&env.kafka, events, 20, 0).await;
    let app = env
        .spawn(Roles {
            http: true,
            projector: true,
            ..Roles::NONE
        })
        .await;
    let auditor = env.token(Role::Auditor, "aud");
    let log = archived_log(&env).await;

    let (status, report) = get(&app, &auditor, "/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(report["status"], "intact", "{report}");
    assert_eq!(report["events"], log.len());
    let kafka = env.kafka.clone();
    let report = tokio::task::spawn_blocking(move || verify_kafka(&kafka, None, false))
        .await
        .expect("join")
        .expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events, log.len() as u64);

    // 1. an archived row edited in PostgreSQL
    let (_, victim) = log
        .iter()
        .find(|(_, e)| e.event_type == "FundsDeposited" && e.sequence > 1)
        .expect("a deposit");
    sqlx::query(
        "UPDATE event_archive \
         SET envelope = jsonb_set(envelope::jsonb, '{data,amount}', '999999')::text \
         WHERE event_id = $1",
    )
    .bind(victim.event_id)
    .execute(&env.db)
    .await
    .expect("tamper");
    for path in [
        "/v1/audit/verify".to_owned(),
        format!("/v1/audit/verify?account_id={}", victim.aggregate_id),
    ] {
        let (status, report) = get(&app, &auditor, &path).await;
        assert_eq!(status, 200);
        assert_eq!(report["status"], "broken", "{report}");
        let first = &report["first_break"];
        assert_eq!(first["aggregate_id"], victim.aggregate_id.to_string());
        assert_eq!(first["sequence"], victim.sequence);
        assert_eq!(first["kind"], "bad_hash");
        assert_eq!(first["found"], victim.hash.as_str());
        assert_ne!(first["expected"], first["found"]);
    }
    app.stop().await.expect("clean stop");

    // 2. a modified copy of the log re-produced to a fresh topic
    let copy = KafkaSettings::plaintext(
        env.kafka.brokers.clone(),
        format!("{}-copy", env.kafka.topic_prefix),
    );
    let layout = TopicLayout {
        partitions: env.partitions,
        replication_factor: 1,
        min_insync_replicas: None,
    };
    let topics = copy.clone();
    tokio::task::spawn_blocking(move || ensure_topics(&topics, &layout))
        .await
        .expect("join")
        .expect("topics");
    let planned: Vec<(i32, EventEnvelope)> = log
        .iter()
        .map(|(record, envelope)| {
            let mut envelope = envelope.clone();
            if envelope.event_id == victim.event_id {
                envelope.data["amount"] = json!(999_999);
            }
            (record.partition, envelope)
        })
        .collect();
    produce_async(&copy, planned, 50, 0).await;
    let report = tokio::task::spawn_blocking(move || verify_kafka(&copy, None, false))
        .await
        .expect("join")
        .expect("verify");
    assert!(!report.is_intact());
    assert_eq!(report.breaks, 1);
    let first = report.first_break.expect("first break");
    assert_eq!(
        (first.aggregate_id, first.sequence),
        (victim.aggregate_id, victim.sequence)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_export_and_replay_give_back_the_log_and_the_live_balances() {
    let env = TestEnv::new().await;
    let events = Generator::new(env.partitions, 11).events(250);
    produce_async(&env.kafka, events, 40, 3).await;
    let projector = Running::start(&env);
    let log = archived_log(&env).await;
    assert!(log.len() >= 250, "{}", log.len());
    let app = env
        .spawn(Roles {
            http: true,
            ..Roles::NONE
        })
        .await;
    let analyst = env.token(Role::Analyst, "ana");

    // the NDJSON stream, resumed from the last cursor of a first short response
    let mut lines = Vec::new();
    let mut after = String::from("c1");
    for limit in [100, 1_000_000] {
        let response = app
            .client
            .get(app.url(&format!("/v1/events?after={after}&limit={limit}")))
            .bearer_auth(&analyst)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().ok(),
            Some("application/x-ndjson")
        );
        let body = response.text().await.expect("body");
        let page: Vec<_> = body.lines().map(|l| parse_line(l).expect("line")).collect();
        if let Some(last) = page.last() {
            after = last.cursor.to_token();
        }
        lines.extend(page);
    }
    assert_eq!(lines.len(), log.len());
    let mut streamed: BTreeMap<(i32, i64), Vec<u8>> = BTreeMap::new();
    for line in &lines {
        streamed.insert(
            (line.position.partition, line.position.offset),
            line.raw.clone(),
        );
    }
    for (record, envelope) in &log {
        assert_eq!(
            streamed.get(&(record.partition, record.offset)),
            Some(&encode(envelope))
        );
    }
    let (status, _) = get(&app, &env.token(Role::Customer, "c"), "/v1/events").await;
    assert_eq!(status, 403);
    let typed = app
        .client
        .get(app.url("/v1/events?type=AccountOpened"))
        .bearer_auth(&analyst)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let opened = log
        .iter()
        .filter(|(_, e)| e.event_type == "AccountOpened")
        .count();
    assert_eq!(typed.lines().count(), opened);

    // export from Kafka: the record values byte for byte
    let dir = std::env::temp_dir().join(format!("{}-export", env.kafka.topic_prefix));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("events.ndjson");
    let args = ExportArgs {
        from: None,
        to: None,
        types: Vec::new(),
        format: Format::Ndjson,
        out: file.clone(),
    };
    let kafka = env.kafka.clone();
    let summary = tokio::task::spawn_blocking(move || export(&kafka, &args, false))
        .await
        .expect("join")
        .expect("export");
    assert_eq!(summary.written, log.len() as u64);
    let text = std::fs::read_to_string(&file).expect("read export");
    let payloads: BTreeMap<(i32, i64), &Vec<u8>> = log
        .iter()
        .map(|(r, _)| ((r.partition, r.offset), &r.payload))
        .collect();
    let exported: Vec<_> = text.lines().map(|l| parse_line(l).expect("line")).collect();
    assert_eq!(exported.len(), log.len());
    for line in &exported {
        let key = (line.position.partition, line.position.offset);
        assert_eq!(payloads.get(&key), Some(&&line.raw), "{key:?}");
    }
    let csv = dir.join("events.csv");
    let args = ExportArgs {
        from: None,
        to: None,
        types: vec!["FundsDeposited".into()],
        format: Format::Csv,
        out: csv.clone(),
    };
    let kafka = env.kafka.clone();
    tokio::task::spawn_blocking(move || export(&kafka, &args, false))
        .await
        .expect("join")
        .expect("csv export");
    let deposits = log
        .iter()
        .filter(|(_, e)| e.event_type == "FundsDeposited")
        .count();
    let csv_text = std::fs::read_to_string(&csv).expect("csv");
    assert_eq!(csv_text.lines().count(), deposits + 1);

    // replay the file into a schema: the same balances as the live read models
    let args = ReplayArgs {
        into: "analysis".into(),
        until: None,
        from_file: Some(file),
        replace: false,
    };
    let summary = replay(env.db_options.clone(), &env.kafka, &args, false)
        .await
        .expect("replay");
    assert_eq!(summary.events, log.len() as u64);
    projector.stop().await;
    let balances = |schema: &'static str| {
        let sql = format!(
            "SELECT account_id, balance, version, status FROM {schema}.accounts ORDER BY account_id"
        );
        let db = env.db.clone();
        async move {
            sqlx::query_as::<_, (Uuid, i64, i64, String)>(&sql)
                .fetch_all(&db)
                .await
                .expect("accounts")
        }
    };
    let live = balances("public").await;
    assert!(!live.is_empty());
    assert_eq!(balances("analysis").await, live);

    // replay from Kafka up to an instant: a prefix of every account's history
    let middle = log[log.len() / 2].1.occurred_at;
    let args = ReplayArgs {
        into: "upto".into(),
        until: Some(middle),
        from_file: None,
        replace: false,
    };
    replay(env.db_options.clone(), &env.kafka, &args, false)
        .await
        .expect("replay until");
    let upto = balances("upto").await;
    let expected_count = log
        .iter()
        .filter(|(_, e)| e.sequence == 1 && e.occurred_at <= middle)
        .count();
    assert_eq!(upto.len(), expected_count);
    let again = replay(env.db_options.clone(), &env.kafka, &args, false).await;
    assert!(
        again.is_err(),
        "an existing schema is refused without --replace"
    );
    app.stop().await.expect("clean stop");
}

/// Throughput of `verify` (Kafka), `export` and `replay --from-file` over a big log:
/// `LOGBOOK_AUDIT_EVENTS` events (default 1 000 000). Run on purpose:
/// `cargo test -p logbook-tests --test suite -- --ignored --nocapture audit::big_log`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads a million events: a measurement, not a check of the default suite"]
async fn big_log_throughput_of_verify_export_and_replay() {
    let wanted: usize = std::env::var("LOGBOOK_AUDIT_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 3);
    let started = Instant::now();
    let mut produced = 0;
    while produced < wanted {
        let events = generator.events(5_000);
        produced += events.len();
        produce_async(&env.kafka, events, 2_000, 0).await;
    }
    eprintln!("loaded {produced} events in {:?}", started.elapsed());

    let kafka = env.kafka.clone();
    let report = tokio::task::spawn_blocking(move || verify_kafka(&kafka, None, false))
        .await
        .expect("join")
        .expect("verify");
    assert!(report.is_intact());
    assert_eq!(report.events, produced as u64);
    eprintln!(
        "verify: {} events, {} accounts in {} ms = {:.0} events/s",
        report.events,
        report.aggregates,
        report.took_ms,
        report.events as f64 * 1000.0 / report.took_ms.max(1) as f64
    );

    let file = std::env::temp_dir().join(format!("{}-big.ndjson", env.kafka.topic_prefix));
    let args = ExportArgs {
        from: None,
        to: None,
        types: Vec::new(),
        format: Format::Ndjson,
        out: file.clone(),
    };
    let kafka = env.kafka.clone();
    let started = Instant::now();
    let summary = tokio::task::spawn_blocking(move || export(&kafka, &args, false))
        .await
        .expect("join")
        .expect("export");
    let took = started.elapsed();
    assert_eq!(summary.written, produced as u64);
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "export: {} events, {} MB in {took:?} = {:.0} events/s",
        summary.written,
        bytes / 1_000_000,
        summary.written as f64 / took.as_secs_f64()
    );

    let args = ReplayArgs {
        into: "big".into(),
        until: None,
        from_file: Some(file.clone()),
        replace: false,
    };
    let summary = replay(env.db_options.clone(), &env.kafka, &args, false)
        .await
        .expect("replay");
    assert_eq!(summary.events, produced as u64);
    eprintln!(
        "replay from file: {} events in {} ms = {:.0} events/s",
        summary.events,
        summary.millis,
        summary.events as f64 * 1000.0 / summary.millis.max(1) as f64
    );
    let _ = std::fs::remove_file(file);
}
