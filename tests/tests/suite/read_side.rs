//! The read side end to end against the real broker and database: exactly-once projection
//! across SIGKILLs, failing batches and poison events, a rebuild during a stream, and the query
//! API with read-your-writes, pagination and the role rules.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_events::{EventEnvelope, KafkaSettings, Secret, decode};
use logbook_projections::apply::{ApplyError, apply};
use logbook_projections::batch::{Record as BatchRecord, slice};
use logbook_projections::rebuild::rebuild;
use logbook_projections::{Projection, ProjectorSettings, Sink, db, queries, run_until};
use logbook_tests::client::get;
use logbook_tests::log::{self, Record};
use logbook_tests::read::{
    Generator, Planned, Running, assert_equal_to_fresh_fold, assert_prefix_consistent, expected,
    log_ends, offsets, produce, produce_async, produce_raw, stored, wait_caught_up,
};
use logbook_tests::{TestApp, TestEnv};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

const CATCH_UP: Duration = Duration::from_secs(120);

fn spawn_child(env: &TestEnv) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "read_side::child_projector",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env("LOGBOOK_CHILD_PREFIX", &env.kafka.topic_prefix)
        .env("LOGBOOK_CHILD_DATABASE", &env.database_name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("child projector")
}

/// Runs a projector until killed, for the SIGKILL test (does nothing when run directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of projector_is_exactly_once_across_sigkills"]
async fn child_projector() {
    let (Ok(prefix), Ok(database)) = (
        std::env::var("LOGBOOK_CHILD_PREFIX"),
        std::env::var("LOGBOOK_CHILD_DATABASE"),
    ) else {
        return;
    };
    let vars = logbook_tests::service_vars();
    let password = vars.get("LOGBOOK_DATABASE_PASSWORD_FILE").map(|path| {
        Secret::new(
            std::fs::read_to_string(path)
                .expect("password file")
                .trim_end(),
        )
    });
    let url = vars.get("LOGBOOK_DATABASE_URL").expect("database url");
    let options = db::options(url, password.as_ref())
        .expect("options")
        .database(&database);
    let brokers = vars.get("LOGBOOK_KAFKA_BROKERS").expect("brokers");
    let mut settings = ProjectorSettings::new(KafkaSettings::plaintext(brokers.clone(), prefix));
    settings.batch_max = 200;
    settings.session_timeout = Duration::from_secs(6);
    run_until(settings, db::pool(options, 4), std::future::pending())
        .await
        .expect("projector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_is_exactly_once_across_sigkills() {
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 11);
    produce_async(&env.kafka, generator.events(8_000), 500, 4).await;
    let later: Vec<Vec<Planned>> = (0..12).map(|_| generator.events(800)).collect();
    let kafka = env.kafka.clone();
    let stream = tokio::task::spawn_blocking(move || {
        for chunk in later {
            produce(&kafka, &chunk, 200, 3);
            std::thread::sleep(Duration::from_millis(800));
        }
    });
    for round in 0..3u64 {
        let before: i64 = offsets(&env.db, "ledger").await.values().sum();
        let mut child = spawn_child(&env);
        let started = Instant::now();
        while offsets(&env.db, "ledger").await.values().sum::<i64>() <= before {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "child projector made no progress"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(150 + 200 * round)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let after: i64 = offsets(&env.db, "ledger").await.values().sum();
        tracing::info!(round, before, after, "projector killed mid-stream");
        assert_prefix_consistent(&env).await;
    }
    stream.await.expect("producer");
    let projector = Running::start(&env);
    wait_caught_up(&env.db, &env.kafka, env.partitions, "ledger", CATCH_UP).await;
    wait_caught_up(&env.db, &env.kafka, env.partitions, "archive", CATCH_UP).await;
    projector.stop().await;
    assert_equal_to_fresh_fold(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_writers_and_lying_offsets_never_apply_anything_twice() {
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 41);
    let events = generator.events(400);
    // A writer that lost its partitions (a zombie) retries a batch another writer committed.
    let records: Vec<BatchRecord> = events
        .iter()
        .enumerate()
        .map(|(offset, (_, envelope))| BatchRecord {
            partition: 0,
            offset: offset as i64,
            payload: Some(logbook_events::encode(envelope)),
        })
        .collect();
    let from = HashMap::from([(0, 0)]);
    let sink = Sink::live(Projection::Archive);
    let mut first = slice(records.clone(), &from, &HashMap::new());
    apply(&env.db, &sink, &mut first, None)
        .await
        .expect("first writer");
    let mut zombie = slice(records, &from, &HashMap::new());
    match apply(&env.db, &sink, &mut zombie, None).await {
        Err(ApplyError::Moved(stored)) => assert_eq!(stored, vec![(0, events.len() as i64)]),
        other => panic!("a stale writer applied its batch: {other:?}"),
    }
    sqlx::raw_sql("TRUNCATE event_archive; DELETE FROM projection_offsets")
        .execute(&env.db)
        .await
        .expect("reset");

    // Offsets wound back to 0 behind the projector's back: the replay changes nothing.
    produce_async(&env.kafka, events, 200, 0).await;
    let projector = Running::start(&env);
    for projection in ["ledger", "archive"] {
        wait_caught_up(&env.db, &env.kafka, env.partitions, projection, CATCH_UP).await;
    }
    projector.stop().await;
    sqlx::query("UPDATE projection_offsets SET next_offset = 0")
        .execute(&env.db)
        .await
        .expect("rewind");
    let projector = Running::start(&env);
    for projection in ["ledger", "archive"] {
        wait_caught_up(&env.db, &env.kafka, env.partitions, projection, CATCH_UP).await;
    }
    projector.stop().await;
    assert_equal_to_fresh_fold(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_rolls_back_whole_and_is_retried() {
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 23);
    produce_async(&env.kafka, generator.events(3_000), 500, 0).await;
    for statement in [
        "CREATE SEQUENCE chaos_seq",
        "CREATE FUNCTION chaos() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF nextval('chaos_seq') <= 3 THEN RAISE EXCEPTION 'injected failure'; END IF; \
         RETURN NULL; END $$",
        "CREATE TRIGGER chaos AFTER INSERT ON account_transactions \
         FOR EACH STATEMENT EXECUTE FUNCTION chaos()",
    ] {
        sqlx::query(statement)
            .execute(&env.db)
            .await
            .expect("chaos setup");
    }
    let projector = Running::start(&env);
    wait_caught_up(&env.db, &env.kafka, env.partitions, "ledger", CATCH_UP).await;
    wait_caught_up(&env.db, &env.kafka, env.partitions, "archive", CATCH_UP).await;
    projector.stop().await;
    let calls: i64 = sqlx::query_scalar("SELECT last_value FROM chaos_seq")
        .fetch_one(&env.db)
        .await
        .expect("seq");
    assert!(calls > 3, "the injected failures did not happen ({calls})");
    assert_equal_to_fresh_fold(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_stops_its_partition_and_nothing_else() {
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 5);
    produce_async(&env.kafka, generator.events(1_500), 500, 0).await;
    let kafka = env.kafka.clone();
    tokio::task::spawn_blocking(move || produce_raw(&kafka, 1, b"{\"not\": \"an envelope\"}"))
        .await
        .expect("join");
    produce_async(&env.kafka, generator.events(1_500), 500, 0).await;
    let kafka = env.kafka.clone();
    let records =
        tokio::task::spawn_blocking(move || log::read_committed(&kafka, &kafka.topics().events))
            .await
            .expect("join");
    let poison = records
        .iter()
        .find(|r| decode(&r.payload).is_err())
        .expect("poison record")
        .offset;
    let log: Vec<(Record, EventEnvelope)> = records
        .into_iter()
        .filter_map(|r| decode(&r.payload).ok().map(|e| (r, e)))
        .collect();

    let projector = Running::start(&env);
    let kafka = env.kafka.clone();
    let ends = tokio::task::spawn_blocking(move || log_ends(&kafka, 4))
        .await
        .expect("join");
    let mut target = ends.clone();
    target.insert(1, poison);
    let started = Instant::now();
    while offsets(&env.db, "ledger").await != target || offsets(&env.db, "archive").await != target
    {
        assert!(
            started.elapsed() < CATCH_UP,
            "projections did not stop at the poison: {target:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    projector.stop().await;
    assert_eq!(
        offsets(&env.db, "ledger").await,
        target,
        "the poison event was skipped"
    );
    let errors: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT projection, partition, error FROM projection_offsets WHERE error IS NOT NULL ORDER BY projection",
    )
    .fetch_all(&env.db)
    .await
    .expect("errors");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|(_, p, e)| *p == 1 && e.contains("undecodable")),
        "{errors:?}"
    );
    let models = stored(&env.db).await;
    let fold = expected(&log, Some(&target));
    assert_eq!(models.accounts, fold.accounts);
    assert_eq!(models.lines, fold.lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_during_a_stream_swaps_in_a_fresh_fold_while_queries_answer() {
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 3);
    produce_async(&env.kafka, generator.events(10_000), 1_000, 0).await;
    let projector = Running::start(&env);
    wait_caught_up(&env.db, &env.kafka, env.partitions, "ledger", CATCH_UP).await;
    let later: Vec<Vec<Planned>> = (0..10).map(|_| generator.events(300)).collect();
    let kafka = env.kafka.clone();
    let stream = tokio::task::spawn_blocking(move || {
        for chunk in later {
            produce(&kafka, &chunk, 100, 0);
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let (stop_queries, mut queries_stopped) = oneshot::channel::<()>();
    let pool = env.db.clone();
    let reader = tokio::spawn(async move {
        let mut answered = 0u32;
        let filter = queries::AccountFilter {
            limit: 20,
            ..Default::default()
        };
        while queries_stopped.try_recv().is_err() {
            let page = queries::accounts(&pool, &filter)
                .await
                .expect("query during rebuild");
            assert!(!page.items.is_empty());
            answered += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        answered
    });
    rebuild_each(&env, |settings| {
        settings.session_timeout = Duration::from_secs(6);
    })
    .await;
    stream.await.expect("producer");
    let _ = stop_queries.send(());
    let answered = reader.await.expect("queries kept answering");
    assert!(
        answered > 10,
        "only {answered} queries answered during the rebuild"
    );
    wait_caught_up(&env.db, &env.kafka, env.partitions, "ledger", CATCH_UP).await;
    wait_caught_up(&env.db, &env.kafka, env.partitions, "archive", CATCH_UP).await;
    projector.stop().await;
    assert_equal_to_fresh_fold(&env).await;
    // every index and primary key is back under its canonical name, including the keys of
    // the tables the replay only appended to (built after it, see rebuild::indexes)
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename IN \
         ('accounts', 'account_transactions', 'event_archive') ORDER BY 1",
    )
    .fetch_all(&env.db)
    .await
    .expect("indexes");
    assert_eq!(
        indexes,
        vec![
            "account_transactions_pkey",
            "account_transactions_transfer_idx",
            "accounts_owner_idx",
            "accounts_pkey",
            "accounts_status_idx",
            "event_archive_aggregate_idx",
            "event_archive_pkey",
        ]
    );
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE contype = 'p' AND conrelid IN \
         ('account_transactions'::regclass, 'event_archive'::regclass) ORDER BY 1",
    )
    .fetch_all(&env.db)
    .await
    .expect("primary keys");
    assert_eq!(
        keys,
        vec!["account_transactions_pkey", "event_archive_pkey"]
    );
}

/// A rebuild writes its lines and archive rows with COPY and keeps accounts and transfers in
/// memory, writing them once (here with a cap so small that it writes and forgets them many
/// times): every row of every table comes out exactly as the live projector wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_writes_every_row_as_the_live_projector_did() {
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 11);
    produce_async(&env.kafka, generator.events(3_000), 250, 0).await;
    let projector = Running::start(&env);
    wait_caught_up(&env.db, &env.kafka, env.partitions, "ledger", CATCH_UP).await;
    wait_caught_up(&env.db, &env.kafka, env.partitions, "archive", CATCH_UP).await;
    projector.stop().await;
    let live = table_digests(&env.db).await;
    assert!(live.iter().all(|(_, rows, _)| *rows > 0), "{live:?}");
    rebuild_each(&env, |settings| {
        settings.batch_max = 300;
        settings.rebuild_staged_rows = 25;
    })
    .await;
    assert_eq!(table_digests(&env.db).await, live);
}

/// Rebuilds the ledger, then the archive, with the settings `tune` makes of the defaults;
/// returns the seconds each took.
async fn rebuild_each(
    env: &TestEnv,
    tune: impl Fn(&mut ProjectorSettings),
) -> HashMap<&'static str, f64> {
    let mut took = HashMap::new();
    for projection in [Projection::Ledger, Projection::Archive] {
        let mut settings = ProjectorSettings::new(env.kafka.clone());
        tune(&mut settings);
        let report = rebuild(
            settings,
            env.db.clone(),
            projection,
            None,
            std::future::pending(),
        )
        .await
        .expect("rebuild");
        tracing::info!(
            ?projection,
            ms = report.took.as_millis() as u64,
            "rebuild swapped in"
        );
        took.insert(projection.name(), report.took.as_secs_f64());
    }
    took
}

/// Per read-model table: its name, rows and a digest of every column of every row.
async fn table_digests(db: &sqlx::PgPool) -> Vec<(String, i64, String)> {
    let tables = [
        ("accounts", "account_id"),
        ("account_transactions", "account_id, sequence"),
        ("transfers", "transfer_id"),
        ("event_archive", "partition, \"offset\""),
    ];
    let mut digests = Vec::new();
    for (table, order) in tables {
        let (rows, digest): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY {order})), '') \
             FROM {table} t"
        ))
        .fetch_one(db)
        .await
        .expect("digest");
        digests.push((table.to_owned(), rows, digest));
    }
    digests
}

/// A benchmark: `LOGBOOK_BENCH_EVENTS` (default 200 000) events of backlog, then the time the
/// projectors take to catch up and the time of a full rebuild of each projection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p logbook-tests --release --test suite -- --ignored read_side::projector_throughput --nocapture"]
async fn projector_throughput() {
    let total: usize = std::env::var("LOGBOOK_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let env = TestEnv::new().await;
    let mut generator = Generator::new(env.partitions, 99);
    let started = Instant::now();
    let mut produced = 0;
    while produced < total {
        let events = generator.events(20_000.min(total - produced));
        produced += events.len();
        produce_async(&env.kafka, events, 5_000, 0).await;
    }
    let produce_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let projector = Running::start(&env);
    let mut took = HashMap::new();
    for projection in ["ledger", "archive"] {
        wait_caught_up(
            &env.db,
            &env.kafka,
            env.partitions,
            projection,
            Duration::from_secs(3_600),
        )
        .await;
        took.insert(projection, started.elapsed().as_secs_f64());
    }
    let rebuilt = rebuild_each(&env, |_| {}).await;
    projector.stop().await;
    eprintln!("backlog: {produced} events produced in {produce_secs:.1} s");
    for projection in ["ledger", "archive"] {
        let (caught_up, rebuild) = (took[projection], rebuilt[projection]);
        eprintln!(
            "{projection}: caught up in {caught_up:.1} s ({:.0} events/s, both projections sharing 2 cores); rebuild alone {rebuild:.1} s ({:.0} events/s)",
            produced as f64 / caught_up,
            produced as f64 / rebuild
        );
    }
}

// ---- the HTTP query API (needs the projector role and the query routes wired in) ----

async fn open(app: &TestApp, token: &str, owner: &str) -> (Uuid, String) {
    let id = Uuid::now_v7();
    let response = app
        .post(
            "/v1/accounts",
            token,
            &json!({"owner_id": owner, "currency": "EUR", "account_id": id}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    (id, body["position"].as_str().expect("position").to_owned())
}

/// Opens an account and reads it back with its position (read-your-writes).
async fn open_visible(app: &TestApp, token: &str, owner: &str) -> Uuid {
    let (id, position) = open(app, token, owner).await;
    let (status, body) = get(
        app,
        token,
        &format!("/v1/accounts/{id}?min_position={position}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_with_min_position_always_sees_the_command() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let token = env.token(Role::Service, "svc");
    let (account, position) = open(&app, &token, "ryw").await;
    let (status, body) = get(
        &app,
        &token,
        &format!("/v1/accounts/{account}?min_position={position}"),
    )
    .await;
    assert_eq!((status, body["balance"].as_i64()), (200, Some(0)), "{body}");
    let (mut commands, mut reads) = (Duration::ZERO, Duration::ZERO);
    for n in 1..=200i64 {
        let started = Instant::now();
        let path = format!("/v1/accounts/{account}/deposits");
        let response = app.post(&path, &token, &json!({"amount": 1})).await;
        assert_eq!(response.status(), 200);
        let accepted: Value = response.json().await.expect("json");
        let position = accepted["position"].as_str().expect("position");
        commands += started.elapsed();
        let started = Instant::now();
        let path = format!("/v1/accounts/{account}?min_position={position}");
        let (status, body) = get(&app, &token, &path).await;
        reads += started.elapsed();
        assert_eq!(status, 200, "{body}");
        let seen = (body["balance"].as_i64(), body["version"].as_i64());
        assert_eq!(seen, (Some(n), Some(n + 1)), "{body}");
    }
    let (command_ms, read_ms) = (commands.as_millis() / 200, reads.as_millis() / 200);
    tracing::info!(
        command_ms,
        read_ms,
        "mean latency: command, then read-your-writes query"
    );
    let started = Instant::now();
    let (status, body) = get(
        &app,
        &token,
        &format!("/v1/accounts/{account}?min_position=v1.0.999999999"),
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:logbook:problem:projection_behind");
    assert!(
        waited >= Duration::from_millis(4_900) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    let (status, body) = get(
        &app,
        &token,
        &format!("/v1/accounts/{account}?min_position=nope"),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "/query/min_position");
    app.stop().await.expect("clean stop");
}

/// Walks every page of `path` (which has a `?`), returning the ids of all items.
async fn walk(app: &TestApp, path: &str, token: &str, key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut next = path.to_owned();
    loop {
        let (status, body) = get(app, token, &next).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 4);
        ids.extend(items.iter().map(|i| i[key].to_string()));
        match body["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}&cursor={cursor}"),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_visit_every_item_once_and_roles_see_what_they_may() {
    let env = TestEnv::new().await;
    let app = env.spawn(Roles::ALL).await;
    let service = env.token(Role::Service, "svc");
    let mut anns = HashSet::new();
    for _ in 0..23 {
        anns.insert(format!("\"{}\"", open_visible(&app, &service, "ann").await));
    }
    let bobs = open_visible(&app, &service, "bob").await;
    let mut position = String::new();
    for _ in 0..9 {
        let response = app
            .post(
                &format!("/v1/accounts/{bobs}/deposits"),
                &service,
                &json!({"amount": 5}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        position = body["position"].as_str().expect("position").to_owned();
    }
    let twice = format!("/v1/accounts/{bobs}?min_position={position}&min_position={position}");
    assert_eq!(
        get(&app, &service, &twice).await.0,
        422,
        "a repeated parameter is refused"
    );
    assert_eq!(
        get(
            &app,
            &service,
            &format!("/v1/accounts/{bobs}?min_position={position}")
        )
        .await
        .0,
        200
    );
    // accounts opened while walking must not make the walk skip or repeat anything
    let (client, url, token) = (app.client.clone(), app.url("/v1/accounts"), service.clone());
    let writer = tokio::spawn(async move {
        for _ in 0..10 {
            let body = json!({"owner_id": "ann", "currency": "EUR"});
            let response = client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("post");
            assert_eq!(response.status(), 201);
        }
    });
    let seen = walk(
        &app,
        "/v1/accounts?owner_id=ann&limit=4",
        &service,
        "account_id",
    )
    .await;
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an account was listed twice");
    assert!(
        anns.iter().all(|id| unique.contains(id)),
        "an account was skipped"
    );
    writer.await.expect("writer");

    let ann = env.token(Role::Customer, "ann");
    let (status, body) = get(&app, &ann, "/v1/accounts?limit=500").await;
    assert_eq!(status, 200);
    assert!(
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|a| a["owner_id"] == "ann")
    );
    assert_eq!(get(&app, &ann, "/v1/accounts?owner_id=bob").await.0, 403);
    assert_eq!(
        get(&app, &ann, &format!("/v1/accounts/{bobs}")).await.0,
        404
    );
    assert_eq!(
        get(&app, &ann, &format!("/v1/accounts/{bobs}/transactions"))
            .await
            .0,
        404
    );
    let support = env.token(Role::Support, "helpdesk");
    let (status, body) = get(&app, &support, &format!("/v1/accounts/{bobs}")).await;
    assert_eq!(status, 200);
    let keys: HashSet<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["account_id", "status", "currency"]),
        "{body}"
    );
    assert_eq!(
        get(&app, &support, &format!("/v1/accounts/{bobs}/transactions"))
            .await
            .0,
        403
    );
    assert_eq!(get(&app, &service, "/v1/accounts?limit=0").await.0, 422);

    let lines = walk(
        &app,
        &format!("/v1/accounts/{bobs}/transactions?limit=4"),
        &service,
        "sequence",
    )
    .await;
    assert_eq!(lines, (2..=10).map(|s| s.to_string()).collect::<Vec<_>>());
    app.stop().await.expect("clean stop");
}
