//! The hash chain: golden canonical bytes and hash, sealing, and [`ChainVerifier`]
//! on interleaved aggregates, including every kind of break.

use chrono::{TimeZone, Utc};
use logbook_events::{
    AccountEvent, Actor, BreakKind, ChainVerifier, EventEnvelope, EventMeta, ZERO_HASH,
    canonical_bytes, compute_hash,
};
use serde_json::json;
use uuid::Uuid;

fn meta(n: u128) -> EventMeta {
    EventMeta {
        event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n),
        occurred_at: Utc
            .timestamp_opt(1_795_000_000 + n as i64, 123_456_789)
            .single()
            .expect("time"),
        command_id: Uuid::from_u128(1_000 + n),
        correlation_id: Uuid::from_u128(2_000 + n),
        causation_id: Uuid::from_u128(3_000 + n),
        actor: Actor {
            sub: "svc".into(),
            role: "service".into(),
        },
    }
}

fn deposit(amount: i64) -> AccountEvent {
    AccountEvent::FundsDeposited {
        amount,
        balance_after: amount,
        reference: None,
    }
}

/// `count` chained events of one aggregate.
fn chain(aggregate: Uuid, count: u64) -> Vec<EventEnvelope> {
    let mut prev = ZERO_HASH.to_owned();
    (1..=count)
        .map(|seq| {
            let env = EventEnvelope::new_sealed(
                meta(seq.into()),
                aggregate,
                seq,
                &prev,
                &deposit(seq as i64),
            );
            prev = env.hash.clone();
            env
        })
        .collect()
}

/// Golden value, cross-checked with an independent implementation (Python's
/// `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` and
/// `hashlib.sha256`). If this test fails, every stored hash would stop verifying.
const GOLDEN_CANONICAL: &str = concat!(
    r#"{"actor":{"role":"service","sub":"svc"},"#,
    r#""aggregate_id":"00000000-0000-0000-0000-000000000007","aggregate_type":"account","#,
    r#""causation_id":"00000000-0000-0000-0000-000000000bb9","#,
    r#""command_id":"00000000-0000-0000-0000-0000000003e9","#,
    r#""correlation_id":"00000000-0000-0000-0000-0000000007d1","#,
    r#""data":{"a":{"b":"q\"\\\n\u0001é","y":[true,null,-2,1.5]},"z":1},"#,
    r#""event_id":"01900000-0000-7000-8000-000000000001","event_type":"FundsDeposited","#,
    r#""occurred_at":"2026-11-18T11:06:41.123456Z","#,
    r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
    r#""schema_version":1,"sequence":1}"#,
);
const GOLDEN_HASH: &str = "a8f54e976ea506c5b927639617de2e6bc129894f7c69557235870f90891ed8b7";

#[test]
fn canonical_bytes_and_hash_match_the_golden_values() {
    let mut env = chain(Uuid::from_u128(7), 1).remove(0);
    env.data = json!({"z": 1, "a": {"y": [true, null, -2, 1.5], "b": "q\"\\\n\u{1}é"}});
    let text = String::from_utf8(canonical_bytes(&env)).expect("utf8");
    assert_eq!(text, GOLDEN_CANONICAL);
    assert_eq!(compute_hash(&env), GOLDEN_HASH);
}

#[test]
fn hash_covers_prev_hash_and_content() {
    let env = chain(Uuid::from_u128(7), 1).remove(0);
    assert_eq!(env.hash, compute_hash(&env));
    assert!(env.hash_is_valid());
    assert_eq!(env.hash.len(), 64);
    assert!(
        env.hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let mut tampered = env.clone();
    tampered.data["amount"] = json!(2);
    assert!(!tampered.hash_is_valid());
    tampered.seal();
    assert!(tampered.hash_is_valid());
    assert_ne!(tampered.hash, env.hash);
}

#[test]
fn verifier_accepts_interleaved_chains() {
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let (ca, cb) = (chain(a, 5), chain(b, 3));
    let mut verifier = ChainVerifier::new();
    for (i, env) in ca.iter().enumerate() {
        verifier.check(env).expect("a valid");
        if let Some(env) = cb.get(i) {
            verifier.check(env).expect("b valid");
        }
    }
    assert_eq!(verifier.aggregates_checked(), 2);
    assert_eq!(verifier.events_checked(), 8);
}

fn first_break(events: &[EventEnvelope]) -> Option<(u64, BreakKind)> {
    let mut verifier = ChainVerifier::new();
    events
        .iter()
        .find_map(|env| verifier.check(env).err())
        .map(|b| (b.sequence, b.kind))
}

#[test]
fn verifier_reports_each_kind_of_break() {
    let id = Uuid::from_u128(1);
    let good = chain(id, 4);
    assert_eq!(first_break(&good), None);

    let mut edited = good.clone();
    edited[1].data["amount"] = json!(999);
    assert!(
        matches!(first_break(&edited), Some((2, BreakKind::BadHash { found, .. })) if found == good[1].hash)
    );

    let mut resealed = edited.clone();
    resealed[1].seal();
    assert!(matches!(
        first_break(&resealed),
        Some((3, BreakKind::PrevHashMismatch { expected, found })) if expected == resealed[1].hash && found == good[1].hash
    ));

    let gap = [&good[..1], &good[2..]].concat();
    assert_eq!(
        first_break(&gap),
        Some((
            3,
            BreakKind::SequenceGap {
                expected: 2,
                found: 3
            }
        ))
    );

    let dup = [&good[..2], &good[1..]].concat();
    assert_eq!(
        first_break(&dup),
        Some((
            2,
            BreakKind::SequenceDuplicate {
                expected: 3,
                found: 2
            }
        ))
    );

    let mut bad_start = good.clone();
    bad_start[0].prev_hash = "1".repeat(64);
    bad_start[0].seal();
    assert!(matches!(
        first_break(&bad_start),
        Some((1, BreakKind::PrevHashMismatch { .. }))
    ));

    assert_eq!(
        first_break(&good[1..]),
        Some((
            2,
            BreakKind::SequenceGap {
                expected: 1,
                found: 2
            }
        ))
    );
}

#[test]
fn verifier_reanchors_after_a_break_and_can_start_mid_log() {
    let id = Uuid::from_u128(1);
    let mut events = chain(id, 4);
    events[1].data["amount"] = json!(999);
    let mut verifier = ChainVerifier::new();
    let results: Vec<bool> = events.iter().map(|e| verifier.check(e).is_ok()).collect();
    assert_eq!(
        results,
        [true, false, true, true],
        "one tampered event, one report"
    );

    let good = chain(id, 4);
    let mut verifier = ChainVerifier::new();
    assert!(verifier.anchor(id, 2, &good[1].hash));
    assert!(!verifier.anchor(id, 2, "nope"));
    verifier.check(&good[2]).expect("continues after anchor");
    verifier.check(&good[3]).expect("continues after anchor");
}

#[test]
fn break_serializes_for_the_audit_api() {
    let good = chain(Uuid::from_u128(1), 2);
    let break_ = first_break(&good[1..]).expect("gap");
    let mut verifier = ChainVerifier::new();
    let err = verifier.check(&good[1]).expect_err("gap");
    assert_eq!(err.kind, break_.1);
    let json = serde_json::to_value(&err).expect("ser");
    assert_eq!(json["kind"], "sequence_gap");
    assert_eq!(json["expected"], 1);
    assert_eq!(json["found"], 2);
    assert_eq!(json["sequence"], 2);
    assert!(err.to_string().contains("sequence gap"));
}
