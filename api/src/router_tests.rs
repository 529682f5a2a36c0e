//! The HTTP router without a broker: the whole middleware stack and the command routes over a
//! [`CommandBus`] that answers at once, called with `tower::ServiceExt::oneshot`. What reaches
//! the bus (and what must not) is checked per request.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, header};
use logbook_commands::domain::AccountCommand;
use logbook_commands::envelope::{CommandEnvelope, CommandResult, Outcome};
use logbook_events::{KafkaSettings, Secret};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use crate::auth::{JwtKeys, Role};
use crate::bus::CommandBus;
use crate::gateway::GatewayError;
use crate::readiness::{KafkaProbe, Readiness};
use crate::state::AppState;

/// Accepts every command (or none, when `unavailable`) and keeps what it was sent.
#[derive(Debug, Default)]
struct Recording {
    sent: Mutex<Vec<CommandEnvelope>>,
    unavailable: bool,
}

#[async_trait::async_trait]
impl CommandBus for Recording {
    async fn send(&self, command: &CommandEnvelope) -> Result<CommandResult, GatewayError> {
        if self.unavailable {
            return Err(GatewayError::Unavailable);
        }
        self.sent.lock().expect("lock").push(command.clone());
        Ok(CommandResult {
            command_id: command.command_id,
            aggregate_id: command.aggregate_id,
            outcome: Outcome::Accepted {
                version: 2,
                position: "0.7".into(),
                duplicate: false,
            },
            transfer: None,
        })
    }

    fn is_listening(&self) -> bool {
        true
    }
}

fn secret() -> Secret {
    Secret::new("router-test-secret-of-at-least-32-bytes")
}

fn state(bus: Arc<Recording>) -> AppState {
    // no broker is contacted: the probe's client is created, never asked
    let kafka = KafkaSettings::plaintext("127.0.0.1:9", "router-test");
    AppState {
        commands: bus,
        jwt: Arc::new(JwtKeys::hs256(&secret())),
        db: None,
        readiness: Arc::new(Readiness::new(KafkaProbe::new(&kafka).expect("probe"))),
        metrics: crate::telemetry::metrics_handle(),
        progress: None,
        kafka: Arc::new(kafka),
        rate_limiter: None,
        idempotency: None,
        security_trail: None,
        personal: None,
        rebuilds: crate::rebuilds::Rebuilds::new(),
    }
}

fn token(role: Role) -> String {
    JwtKeys::hs256(&secret())
        .mint("someone", role, 600, chrono::Utc::now())
        .expect("token")
}

/// POSTs `body` as `role` (no token for None); the status and the JSON body.
async fn post(bus: &Arc<Recording>, role: Option<Role>, path: &str, body: Value) -> (u16, Value) {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(role) = role {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", token(role)));
    }
    let request = request.body(Body::from(body.to_string())).expect("request");
    let response = crate::app::router(state(bus.clone()))
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn deposits(account: Uuid) -> String {
    format!("/v1/accounts/{account}/deposits")
}

#[tokio::test]
async fn a_valid_command_reaches_the_bus_once_with_its_actor() {
    let bus = Arc::new(Recording::default());
    let account = Uuid::new_v4();
    let (status, body) = post(
        &bus,
        Some(Role::Service),
        &deposits(account),
        json!({"amount": 250}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    let sent = bus.sent.lock().expect("lock");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].aggregate_id, account);
    assert_eq!(sent[0].actor.role, "service");
    assert!(matches!(
        sent[0].command,
        AccountCommand::Deposit { amount: 250, .. }
    ));
    assert_eq!(body["command_id"], json!(sent[0].command_id));
}

#[tokio::test]
async fn refused_requests_never_reach_the_bus() {
    let bus = Arc::new(Recording::default());
    let account = Uuid::new_v4();
    let cases = [
        (None, json!({"amount": 1}), 401, "unauthorized"),
        (Some(Role::Customer), json!({"amount": 1}), 403, "forbidden"),
        (Some(Role::Auditor), json!({"amount": 1}), 403, "forbidden"),
        (
            Some(Role::Service),
            json!({"amount": -5}),
            422,
            "validation",
        ),
        (
            Some(Role::Service),
            json!({"amount": 1, "x": 2}),
            422,
            "validation",
        ),
    ];
    for (role, body, status, problem) in cases {
        let (got, answer) = post(&bus, role, &deposits(account), body).await;
        assert_eq!(got, status, "{role:?}: {answer}");
        assert_eq!(
            answer["type"],
            format!("urn:logbook:problem:{problem}"),
            "{answer}"
        );
    }
    assert!(bus.sent.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_bus_that_cannot_take_commands_answers_503() {
    let bus = Arc::new(Recording {
        unavailable: true,
        ..Recording::default()
    });
    let (status, body) = post(
        &bus,
        Some(Role::Admin),
        &deposits(Uuid::new_v4()),
        json!({"amount": 1}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:logbook:problem:unavailable");
}
