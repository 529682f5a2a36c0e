//! Rate limits over HTTP: per principal by role quota, and per client IP before authentication.

use logbook_api::auth::Role;
use logbook_api::ratelimit::{Quota, Quotas};
use logbook_cli::roles::Roles;
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
    logbook_tests::http(&mut settings).rate_limits = Some(quotas);
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

/// HTTPS with a certificate generated now (no key material in the repository): the API answers
/// over TLS with HSTS and the other security headers, and plain HTTP gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_when_a_certificate_is_configured() {
    let env = TestEnv::new().await;
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).tls = Some(logbook_api::settings::security::TlsSettings {
        cert_pem: generated.cert.pem(),
        key_pem: logbook_events::Secret::new(generated.signing_key.serialize_pem()),
    });
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
    let address = app.address.expect("HTTP role");
    let tls = TlsClient::trusting(&generated.cert.pem());

    let live = tls.get(address, "/health/live", None).await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let headers = live.to_ascii_lowercase();
    assert!(
        headers.contains("\r\nstrict-transport-security: max-age="),
        "{live}"
    );
    assert!(
        headers.contains("\r\nx-content-type-options: nosniff"),
        "{live}"
    );

    let token = env.token(Role::Auditor, "auditor");
    let path = format!("/v1/accounts/{}", Uuid::new_v4());
    let account = tls.get(address, &path, Some(&token)).await;
    assert!(account.starts_with("HTTP/1.1 404"), "{account}");
    assert!(
        account
            .to_ascii_lowercase()
            .contains("\r\ncache-control: no-store")
    );

    let plain = reqwest::Client::new()
        .get(format!("http://{address}/health/live"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP answered on the TLS port"
    );
    app.stop().await.expect("clean stop");
}

/// Just enough of an HTTPS client: rustls trusting one certificate, one HTTP/1.1 GET per
/// connection, the raw answer back.
struct TlsClient {
    connector: tokio_rustls::TlsConnector,
}

impl TlsClient {
    fn trusting(cert_pem: &str) -> Self {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
            roots.add(cert.expect("pem")).expect("root");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        }
    }

    async fn get(&self, address: std::net::SocketAddr, path: &str, token: Option<&str>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut stream = self
            .connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }
}

/// CORS answers only the configured origins; without configuration no origin gets access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_origins_are_configured() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    logbook_tests::http(&mut settings).cors_origins = vec!["https://app.example".into()];
    let http = Roles {
        http: true,
        ..Roles::NONE
    };
    let configured = env.spawn_with(settings, http).await;
    let unconfigured = env.spawn(http).await;
    let preflight = |app: &logbook_tests::TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/accounts"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight(&configured, "https://app.example")
        .await
        .expect("preflight");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    for (app, origin) in [
        (&configured, "https://evil.example"),
        (&unconfigured, "https://app.example"),
    ] {
        let answer = preflight(app, origin).await.expect("preflight");
        assert!(
            !answer.headers().contains_key("access-control-allow-origin"),
            "{origin} got CORS access"
        );
    }
    configured.stop().await.expect("clean stop");
    unconfigured.stop().await.expect("clean stop");
}
