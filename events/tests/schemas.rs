//! The published event catalogue (`schemas/events/*.json`) against the code.
//!
//! Every event type the code writes, with and without optional fields and at the
//! edges of its ranges, must validate against `envelope.json` and `<Type>.json`;
//! every type has exactly one schema; malformed data must fail validation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use jsonschema::Validator;
use logbook_events::{
    ALL_EVENT_TYPES, AccountEvent, Actor, Currency, DebitOrigin, EventEnvelope, EventMeta,
    ZERO_HASH, current_schema_version, encode, schema_name,
};
use serde_json::{Value, json};
use uuid::Uuid;

const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events")
}

fn load(name: &str) -> Value {
    let path = schema_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("schema file readable");
    serde_json::from_str(&text).expect("schema file is JSON")
}

fn validator(name: &str) -> Validator {
    let schema = load(name);
    jsonschema::draft202012::meta::validate(&schema).expect("schema is valid 2020-12");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn assert_valid(validator: &Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {instance} -> {errors:?}");
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("valid")
}

fn envelope(sequence: u64, event: &AccountEvent) -> EventEnvelope {
    let meta = EventMeta {
        event_id: Uuid::now_v7(),
        occurred_at: DateTime::parse_from_rfc3339("2026-11-23T10:15:30.123456789Z")
            .expect("valid time")
            .with_timezone(&Utc),
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        actor: Actor {
            sub: "user-1".into(),
            role: "customer".into(),
        },
    };
    EventEnvelope::new_sealed(meta, Uuid::new_v4(), sequence, ZERO_HASH, event)
}

/// Representative events of every type: optional fields absent and present,
/// amounts and limits at both ends of their ranges, negative balances.
/// A sealed value of the shape the gateway writes (`enc1.<key id>.<base64url>`).
fn sealed() -> String {
    format!("enc1.{}.{}", Uuid::new_v4(), "Ab9_-".repeat(12))
}

fn representative_events() -> Vec<AccountEvent> {
    let long = |n: usize| Some("é".repeat(n));
    let (t, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    vec![
        AccountEvent::AccountOpened {
            owner_id: "u".into(),
            currency: eur(),
            overdraft_limit: 0,
            holder: None,
        },
        AccountEvent::AccountOpened {
            owner_id: "o".repeat(128),
            currency: Currency::parse("JPY").expect("valid"),
            overdraft_limit: MAX_AMOUNT,
            holder: None,
        },
        AccountEvent::FundsDeposited {
            amount: 1,
            balance_after: 1,
            reference: None,
        },
        AccountEvent::FundsDeposited {
            amount: MAX_AMOUNT,
            balance_after: i64::MAX,
            reference: long(140),
        },
        AccountEvent::FundsWithdrawn {
            amount: 1,
            balance_after: 0,
            reference: None,
        },
        AccountEvent::FundsWithdrawn {
            amount: MAX_AMOUNT,
            balance_after: -MAX_AMOUNT,
            reference: long(1),
        },
        AccountEvent::TransferDebited {
            transfer_id: t,
            to_account_id: a,
            amount: 10,
            currency: eur(),
            balance_after: -5,
            reference: None,
        },
        AccountEvent::TransferDebited {
            transfer_id: t,
            to_account_id: a,
            amount: 10,
            currency: eur(),
            balance_after: 5,
            reference: long(140),
        },
        AccountEvent::TransferCredited {
            transfer_id: t,
            from_account_id: b,
            amount: 10,
            balance_after: 10,
            reference: None,
            debit: None,
        },
        AccountEvent::TransferCredited {
            transfer_id: t,
            from_account_id: b,
            amount: 10,
            balance_after: 10,
            reference: long(3),
            debit: Some(DebitOrigin {
                partition: 11,
                at: DateTime::parse_from_rfc3339("2026-11-23T10:15:30.5Z")
                    .expect("valid time")
                    .with_timezone(&Utc),
            }),
        },
        AccountEvent::TransferCompleted {
            transfer_id: t,
            to_account_id: a,
            amount: MAX_AMOUNT,
        },
        AccountEvent::TransferRefunded {
            transfer_id: t,
            amount: 10,
            balance_after: 0,
            reason: "x".into(),
        },
        AccountEvent::TransferRefunded {
            transfer_id: t,
            amount: 10,
            balance_after: 0,
            reason: "r".repeat(500),
        },
        AccountEvent::AccountFrozen { reason: None },
        AccountEvent::AccountFrozen { reason: long(500) },
        AccountEvent::AccountUnfrozen { reason: None },
        AccountEvent::AccountUnfrozen {
            reason: Some("cleared".into()),
        },
        AccountEvent::AccountClosed { reason: None },
        AccountEvent::AccountClosed {
            reason: Some("customer request".into()),
        },
        AccountEvent::OverdraftLimitChanged { overdraft_limit: 0 },
        AccountEvent::OverdraftLimitChanged {
            overdraft_limit: MAX_AMOUNT,
        },
        AccountEvent::AccountOpened {
            owner_id: "c-1".into(),
            currency: eur(),
            overdraft_limit: 0,
            holder: Some(logbook_events::SealedHolder {
                name: Some(sealed()),
                email: Some(sealed()),
                address: Some(sealed()),
                birth_date: Some(sealed()),
            }),
        },
        AccountEvent::HolderChanged {
            holder: logbook_events::SealedHolder {
                address: Some(sealed()),
                ..Default::default()
            },
        },
    ]
}

#[test]
fn every_event_type_has_a_schema_and_no_schema_is_orphaned() {
    let files: BTreeSet<String> = std::fs::read_dir(schema_dir())
        .expect("schema dir")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .filter(|name| name != "envelope")
        .collect();
    // every type's current schema, plus one file per older version
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for event_type in ALL_EVENT_TYPES {
        for version in 1..=current_schema_version(event_type) {
            expected.insert(schema_name(event_type, version));
        }
    }
    assert_eq!(files, expected);
    let types: BTreeSet<String> = ALL_EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    let envelope_types: BTreeSet<String> = load("envelope")["properties"]["event_type"]["enum"]
        .as_array()
        .expect("event_type enum")
        .iter()
        .map(|t| t.as_str().expect("string").to_owned())
        .collect();
    assert_eq!(envelope_types, types, "envelope.json lists every type");
}

#[test]
fn schemas_document_themselves() {
    let mut names: Vec<String> = vec!["envelope".into()];
    for event_type in ALL_EVENT_TYPES {
        for version in 1..=current_schema_version(event_type) {
            names.push(schema_name(event_type, version));
        }
    }
    for name in &names {
        let schema = load(name);
        let id = schema["$id"].as_str().expect("$id");
        assert!(id.ends_with(&format!("/{name}.json")), "{name}: $id {id}");
        assert!(
            schema["title"].is_string() && schema["description"].is_string(),
            "{name}"
        );
        assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        for (field, spec) in schema["properties"].as_object().expect("properties") {
            assert!(
                spec["description"].is_string(),
                "{name}.{field} has a description"
            );
        }
    }
}

#[test]
fn every_written_event_validates() {
    let envelope_schema = validator("envelope");
    let events = representative_events();
    for name in ALL_EVENT_TYPES {
        assert!(
            events.iter().any(|e| e.event_type() == *name),
            "{name} covered"
        );
    }
    for (i, event) in events.iter().enumerate() {
        let sealed = envelope(i as u64 + 1, event);
        let written: Value = serde_json::from_slice(&encode(&sealed)).expect("JSON");
        assert_valid(&envelope_schema, &written, "envelope");
        assert_valid(
            &validator(&schema_name(event.event_type(), event.schema_version())),
            &written["data"],
            event.event_type(),
        );
    }
}

#[test]
fn invalid_data_fails_validation() {
    let cases: &[(&str, Value)] = &[
        ("FundsDeposited", json!({"amount": 0, "balance_after": 0})),
        ("FundsDeposited", json!({"amount": -5, "balance_after": 0})),
        (
            "FundsDeposited",
            json!({"amount": MAX_AMOUNT + 1, "balance_after": 0}),
        ),
        ("FundsDeposited", json!({"amount": 1.5, "balance_after": 0})),
        ("FundsDeposited", json!({"amount": "5", "balance_after": 0})),
        ("FundsDeposited", json!({"amount": 5})),
        (
            "FundsDeposited",
            json!({"amount": 5, "balance_after": 5, "extra": 1}),
        ),
        (
            "FundsDeposited",
            json!({"amount": 5, "balance_after": 5, "reference": "r".repeat(141)}),
        ),
        (
            "FundsDeposited",
            json!({"amount": 5, "balance_after": 5, "reference": null}),
        ),
        ("FundsWithdrawn", json!({"amount": 0, "balance_after": 0})),
        (
            "AccountOpened",
            json!({"owner_id": "o", "currency": "eur", "overdraft_limit": 0}),
        ),
        (
            "AccountOpened",
            json!({"owner_id": "o", "currency": "EURO", "overdraft_limit": 0}),
        ),
        (
            "AccountOpened",
            json!({"owner_id": "o", "currency": "EUR", "overdraft_limit": -1}),
        ),
        (
            "AccountOpened",
            json!({"owner_id": "", "currency": "EUR", "overdraft_limit": 0}),
        ),
        (
            "AccountOpened",
            json!({"owner_id": "o".repeat(129), "currency": "EUR", "overdraft_limit": 0}),
        ),
        (
            "AccountOpened",
            json!({"currency": "EUR", "overdraft_limit": 0}),
        ),
        (
            "TransferDebited",
            json!({
                "transfer_id": "not-a-uuid", "to_account_id": Uuid::new_v4(), "amount": 1,
                "currency": "EUR", "balance_after": 0
            }),
        ),
        (
            "TransferDebited",
            json!({
                "transfer_id": Uuid::new_v4().to_string().to_uppercase(), "to_account_id": Uuid::new_v4(),
                "amount": 1, "currency": "EUR", "balance_after": 0
            }),
        ),
        (
            "TransferCredited",
            json!({
                "transfer_id": Uuid::new_v4(), "amount": 1, "balance_after": 0
            }),
        ),
        (
            "TransferCredited",
            json!({
                "transfer_id": Uuid::new_v4(), "from_account_id": Uuid::new_v4(), "amount": 1,
                "balance_after": 1, "debit_partition": 0
            }),
        ),
        (
            "TransferCredited",
            json!({
                "transfer_id": Uuid::new_v4(), "from_account_id": Uuid::new_v4(), "amount": 1,
                "balance_after": 1, "debit_partition": -1, "debited_at": "2026-11-23T10:15:30.000000Z"
            }),
        ),
        (
            "TransferCredited.v1",
            json!({
                "transfer_id": Uuid::new_v4(), "from_account_id": Uuid::new_v4(), "amount": 1,
                "balance_after": 1, "debit_partition": 0, "debited_at": "2026-11-23T10:15:30.000000Z"
            }),
        ),
        (
            "TransferCompleted",
            json!({"transfer_id": Uuid::new_v4(), "amount": 1}),
        ),
        (
            "TransferRefunded",
            json!({
                "transfer_id": Uuid::new_v4(), "amount": 1, "balance_after": 0, "reason": ""
            }),
        ),
        ("AccountFrozen", json!({"reason": "r".repeat(501)})),
        ("AccountClosed", json!({"why": "because"})),
        ("AccountUnfrozen", json!("not an object")),
    ];
    for (name, data) in cases {
        assert!(!validator(name).is_valid(data), "{name} must reject {data}");
    }
}

#[test]
fn invalid_envelopes_fail_validation() {
    let schema = validator("envelope");
    let good = serde_json::to_value(envelope(1, &AccountEvent::AccountClosed { reason: None }))
        .expect("to value");
    assert_valid(&schema, &good, "baseline");
    let mutations: Vec<(&str, Value)> = vec![
        ("event_id", json!(Uuid::new_v4())),
        ("aggregate_type", json!("transfer")),
        ("sequence", json!(0)),
        ("event_type", json!("FundsStolen")),
        ("schema_version", json!(0)),
        ("occurred_at", json!("2026-11-23T10:15:30Z")),
        ("occurred_at", json!("2026-11-23T10:15:30.123456+00:00")),
        ("occurred_at", json!("2026-13-23T10:15:30.123456Z")),
        ("actor", json!({"sub": "u"})),
        ("actor", json!({"sub": "u", "role": "r", "extra": 1})),
        ("prev_hash", json!("0".repeat(63))),
        ("hash", json!("A".repeat(64))),
        ("data", json!([])),
    ];
    for (field, value) in mutations {
        let mut bad = good.clone();
        bad[field] = value.clone();
        assert!(!schema.is_valid(&bad), "{field} = {value} must be rejected");
    }
    for field in ["hash", "command_id", "data"] {
        let mut bad = good.clone();
        bad.as_object_mut().expect("object").remove(field);
        assert!(!schema.is_valid(&bad), "missing {field} must be rejected");
    }
    let mut extra = good;
    extra["extra"] = json!(1);
    assert!(!schema.is_valid(&extra));
}
