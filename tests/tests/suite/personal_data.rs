//! Personal data of account holders (docs/security.md, "Personal data"): sealed before it
//! reaches Kafka, shown by role, erasable by destroying the owner's key, and still readable
//! after the key-encryption key is rotated.

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_tests::TestEnv;
use logbook_tests::child::{free_port, wait_ready};
use serde_json::{Value, json};
use uuid::Uuid;

/// Distinctive personal data of one test, and every piece of it that must never be found in
/// plain text.
struct Person {
    name: String,
    email: String,
    city: String,
    street: String,
}

impl Person {
    fn new() -> Person {
        let tag = &Uuid::new_v4().simple().to_string()[..10];
        Person {
            name: format!("Zoe Quillfeather {tag}"),
            email: format!("zq.{tag}@example.org"),
            city: format!("Brightwater{tag}"),
            street: format!("7 Lantern Row {tag}"),
        }
    }

    fn holder(&self) -> Value {
        json!({
            "name": self.name, "email": self.email, "birth_date": "1984-06-02",
            "address": {"lines": [self.street], "postal_code": "BW1 2ZQ", "city": self.city, "country": "GB"}
        })
    }

    /// The first piece of personal data found in `haystack`, if any.
    fn found_in(&self, haystack: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(haystack);
        [&self.name, &self.email, &self.city, &self.street]
            .into_iter()
            .find(|needle| text.contains(needle.as_str()))
            .cloned()
    }
}

/// A small client of one base URL.
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, token, path, None).await
    }

    async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, token, path, Some(body))
            .await
    }

    async fn patch(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, token, path, Some(body))
            .await
    }

    async fn raw(&self, token: &str, path: &str) -> Vec<u8> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.expect("body").to_vec()
    }
}

/// Every row of every table of the test's database, as text.
async fn database_text(env: &TestEnv) -> Vec<(String, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&env.db)
    .await
    .expect("tables");
    let mut out = Vec::new();
    for table in tables {
        let text: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t"
        ))
        .fetch_one(&env.db)
        .await
        .expect("rows");
        out.push((table, text.unwrap_or_default()));
    }
    out
}

/// `logbook backup --all-topics`, then every file of the backup (segments decompressed).
fn assert_backup_is_sealed(env: &TestEnv, person: &Person) {
    let dir = logbook_tests::disaster::backup_folder(env);
    let status = env
        .logbook_command()
        .args(["backup", "--all-topics", "--out"])
        .arg(&dir)
        .status()
        .expect("logbook backup");
    assert!(status.success());
    let mut files = vec![dir.clone()];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
            continue;
        }
        let bytes = std::fs::read(&path).expect("file");
        let plain = zstd::decode_all(bytes.as_slice()).unwrap_or_default();
        for content in [&bytes, &plain] {
            assert_eq!(
                person.found_in(content),
                None,
                "in backup file {}",
                path.display()
            );
        }
        scanned += usize::from(!plain.is_empty());
    }
    assert!(scanned > 0, "the backup has segments");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_sealed_everywhere_shown_by_role_and_erasable() {
    let env = TestEnv::new().await;
    // `logbook all` as a child process, so that its log (at debug level) can be searched too
    let port = free_port();
    let server = env.spawn_child_with(
        "all",
        "personal",
        &[
            ("LOGBOOK_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("LOGBOOK_RATE_LIMIT_PER_SECOND", "0".into()),
            (
                "RUST_LOG",
                "debug,librdkafka=warn,rdkafka=info,h2=info,hyper=info".into(),
            ),
        ],
    );
    let http = Http {
        client: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&http.base).await;
    let person = Person::new();
    let owner = format!("c-{}", Uuid::new_v4().simple());
    let customer = env.token(Role::Customer, &owner);
    let (service, admin) = (
        env.token(Role::Service, "svc"),
        env.token(Role::Admin, "root"),
    );
    let (support, auditor) = (
        env.token(Role::Support, "help"),
        env.token(Role::Auditor, "aud"),
    );
    let analyst = env.token(Role::Analyst, "ana");

    // an owner id that looks like an email address is refused: ids are opaque
    let (status, problem) = http
        .post(
            &service,
            "/v1/accounts",
            &json!({"owner_id": person.email, "currency": "EUR"}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    // a customer opens its own account with its holder data
    let (status, opened) = http
        .post(
            &customer,
            "/v1/accounts",
            &json!({"owner_id": owner, "currency": "EUR", "holder": person.holder()}),
        )
        .await;
    assert_eq!(status, 201, "{opened}");
    let account = opened["account_id"].as_str().expect("id").to_owned();
    let position = opened["position"].as_str().expect("position").to_owned();
    let (status, _) = http
        .post(
            &service,
            &format!("/v1/accounts/{account}/deposits"),
            &json!({"amount": 700}),
        )
        .await;
    assert_eq!(status, 200);
    let path = format!("/v1/accounts/{account}?min_position={position}");

    // who sees what
    let (status, mine) = http.get(&customer, &path).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["holder"]["name"], person.name.as_str(), "{mine}");
    assert_eq!(mine["holder"]["email"], person.email.as_str());
    assert_eq!(mine["holder"]["address"]["city"], person.city.as_str());
    assert_eq!(mine["holder"]["birth_date"], "1984-06-02");
    for token in [&service, &admin, &auditor] {
        let (_, seen) = http.get(token, &path).await;
        assert_eq!(seen["holder"], mine["holder"], "{seen}");
    }
    let (_, seen) = http.get(&support, &path).await;
    assert_eq!(seen["holder"], json!({"name": person.name}), "{seen}");
    assert!(seen.get("balance").is_none(), "{seen}");
    assert_eq!(http.get(&analyst, &path).await.0, 403);
    let stranger = env.token(Role::Customer, "c-stranger");
    assert_eq!(http.get(&stranger, &path).await.0, 404);

    // changing the holder: the owner may, support may not; fields not given stay
    let holder_path = format!("/v1/accounts/{account}/holder");
    let new_email = format!("new.{}", person.email);
    assert_eq!(
        http.patch(&support, &holder_path, &json!({"email": new_email}))
            .await
            .0,
        403
    );
    assert_eq!(http.patch(&customer, &holder_path, &json!({})).await.0, 422);
    assert_eq!(
        http.patch(
            &customer,
            &holder_path,
            &json!({"birth_date": "2999-01-01"})
        )
        .await
        .0,
        422
    );
    let (status, changed) = http
        .patch(&customer, &holder_path, &json!({"email": new_email}))
        .await;
    assert_eq!(status, 200, "{changed}");
    let changed_at = changed["position"].as_str().expect("position");
    let (_, seen) = http
        .get(
            &customer,
            &format!("/v1/accounts/{account}?min_position={changed_at}"),
        )
        .await;
    assert_eq!(seen["holder"]["email"], new_email.as_str(), "{seen}");
    assert_eq!(seen["holder"]["name"], person.name.as_str());
    assert_eq!(seen["balance"], 700);

    // no plain text in Kafka (commands, events, results), the database, the export or the log
    let topics = logbook_tests::disaster::all_topics(&env).await;
    for (partition, record) in topics.iter().flatten() {
        let mut bytes = record.key.clone().unwrap_or_default();
        bytes.extend(record.payload.clone().unwrap_or_default());
        for (name, value) in &record.headers {
            bytes.extend(name.as_bytes());
            bytes.extend(value.clone().unwrap_or_default());
        }
        assert_eq!(
            person.found_in(&bytes),
            None,
            "in a record of partition {partition}"
        );
    }
    let events = topics[1].len();
    assert!(
        events >= 3,
        "AccountOpened, FundsDeposited and HolderChanged were written"
    );
    for (table, text) in database_text(&env).await {
        assert_eq!(person.found_in(text.as_bytes()), None, "in table {table}");
    }
    let export = http.raw(&analyst, "/v1/events?limit=1000").await;
    assert!(
        String::from_utf8_lossy(&export).contains("enc1."),
        "the export carries the sealed holder"
    );
    assert_eq!(person.found_in(&export), None, "in the analysts' export");
    assert_backup_is_sealed(&env, &person);
    let history = http
        .raw(&auditor, &format!("/v1/audit/accounts/{account}/events"))
        .await;
    assert_eq!(person.found_in(&history), None, "in the audit history");

    // erasure: admin only, recorded, and from then on nobody reads the holder
    let erasure = format!("/v1/owners/{owner}/erasure");
    assert_eq!(http.post(&service, &erasure, &json!({})).await.0, 403);
    let key_row: (Uuid, String, String, Vec<u8>, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT key_id, owner_id, kek_id, wrapped_key, created_at FROM owner_keys WHERE owner_id = $1",
    )
    .bind(&owner)
    .fetch_one(&env.db)
    .await
    .expect("the owner's key");
    let (status, erased) = http.post(&admin, &erasure, &json!({})).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["key_destroyed"], true);
    for token in [&customer, &service, &admin, &auditor] {
        let (status, seen) = http.get(token, &path).await;
        assert_eq!(status, 200);
        assert_eq!(seen["holder"], json!({"erased": true}), "{seen}");
        assert_eq!(seen["balance"], 700, "balances survive erasure");
    }
    let (_, seen) = http.get(&support, &path).await;
    assert_eq!(seen["holder"], json!({"erased": true}), "{seen}");
    // a restore of an older dump of the keys does not bring the erased key back
    sqlx::query(
        "INSERT INTO owner_keys (key_id, owner_id, kek_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key_row.0)
    .bind(&key_row.1)
    .bind(&key_row.2)
    .bind(&key_row.3)
    .bind(key_row.4)
    .execute(&env.db)
    .await
    .expect("insert");
    let (_, seen) = http.get(&admin, &path).await;
    assert_eq!(seen["holder"], json!({"erased": true}), "{seen}");
    // the ledger and its hash chains are intact
    let (status, verify) = http
        .get(&auditor, &format!("/v1/audit/verify?account_id={account}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(verify["status"], "intact", "{verify}");
    let (_, trail) = http.get(&auditor, "/v1/audit/security?limit=100").await;
    let recorded = trail["items"].as_array().expect("items").iter().any(|row| {
        row["kind"] == "admin_action"
            && row["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/erasure"))
    });
    assert!(recorded, "{trail}");

    drop(server);
    let log = std::fs::read(env.child_log("personal")).expect("the child's log");
    assert!(log.len() > 1000, "the child logged at debug level");
    assert_eq!(person.found_in(&log), None, "in the log of logbook all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_stay_readable_after_the_kek_is_rotated() {
    let env = TestEnv::new().await;
    let person = Person::new();
    let app = env.spawn(Roles::ALL).await;
    let service = env.token(Role::Service, "svc");
    let opened = app
        .post(
            "/v1/accounts",
            &service,
            &json!({"owner_id": "c-rot", "currency": "EUR", "holder": person.holder()}),
        )
        .await;
    assert_eq!(opened.status(), 201);
    let opened: Value = opened.json().await.expect("json");
    let path = format!(
        "/v1/accounts/{}?min_position={}",
        opened["account_id"].as_str().expect("id"),
        opened["position"].as_str().expect("position")
    );
    let http = Http {
        client: reqwest::Client::new(),
        base: app.url(""),
    };
    let (_, before) = http.get(&service, &path).await;
    assert_eq!(before["holder"]["name"], person.name.as_str(), "{before}");
    app.stop().await.expect("stops");

    // rotate: a new current key, the old one given as previous
    let new_kek = [42u8; 32];
    use base64::Engine as _;
    let new_text = base64::engine::general_purpose::STANDARD.encode(new_kek);
    let status = env
        .logbook_command()
        .arg("rotate-kek")
        .env("LOGBOOK_KEK", &new_text)
        .env("LOGBOOK_KEK_PREVIOUS", env.kek_base64())
        .status()
        .expect("logbook rotate-kek");
    assert!(status.success());

    // the new key alone opens the holder: the data key was rewrapped, the events untouched
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).kek = Some(logbook_api::settings::security::KekSettings {
        keys: vec![new_kek],
    });
    let rotated = env.spawn_with(settings, Roles::SERVE).await;
    let http = Http {
        client: reqwest::Client::new(),
        base: rotated.url(""),
    };
    let (_, after) = http.get(&service, &path).await;
    assert_eq!(after["holder"], before["holder"], "{after}");
    rotated.stop().await.expect("stops");

    // the old key alone no longer does: the holder reads as unavailable, never as erased
    let old_only = env.spawn(Roles::SERVE).await;
    let http = Http {
        client: reqwest::Client::new(),
        base: old_only.url(""),
    };
    let (status, locked) = http.get(&service, &path).await;
    assert_eq!(status, 200, "{locked}");
    assert_eq!(locked["holder"], json!({"unavailable": true}), "{locked}");
}
