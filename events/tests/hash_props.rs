//! Hash-chain properties: canonical bytes are stable under JSON round trips (typed
//! and untyped), and a change of any one envelope field changes the hash.

use chrono::DateTime;
use logbook_events::{
    AccountEvent, Actor, Currency, EventEnvelope, EventMeta, canonical_bytes, compute_hash, decode,
    encode,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

fn arb_envelope() -> impl Strategy<Value = EventEnvelope> {
    (
        any::<[u128; 5]>(),
        0i64..4_102_444_800,
        0u32..1_000_000_000,
        1u64..u64::MAX,
        ("\\PC{0,20}", "[a-z]{1,10}"),
        (
            1i64..=1_000_000_000_000_000,
            any::<i64>(),
            proptest::option::of("\\PC{0,40}"),
        ),
        "[A-Z]{3}",
    )
        .prop_map(
            |(ids, secs, nanos, sequence, (sub, role), (amount, balance_after, reference), cur)| {
                let meta = EventMeta {
                    event_id: Uuid::from_u128(ids[0]),
                    occurred_at: DateTime::from_timestamp(secs, nanos).expect("in range"),
                    command_id: Uuid::from_u128(ids[1]),
                    correlation_id: Uuid::from_u128(ids[2]),
                    causation_id: Uuid::from_u128(ids[3]),
                    actor: Actor { sub, role },
                };
                let event = if reference.as_deref() == Some("") {
                    AccountEvent::AccountOpened {
                        owner_id: "o".into(),
                        currency: Currency::parse(&cur).expect("valid"),
                        overdraft_limit: amount,
                        holder: None,
                    }
                } else {
                    AccountEvent::FundsWithdrawn {
                        amount,
                        balance_after,
                        reference,
                    }
                };
                let prev = format!("{:064x}", ids[4]);
                EventEnvelope::new_sealed(meta, Uuid::from_u128(ids[4]), sequence, &prev, &event)
            },
        )
}

/// Every way to change one field of an envelope (other than `hash`).
fn mutate(env: &mut EventEnvelope, which: u8) {
    let flip = |u: Uuid| Uuid::from_u128(u.as_u128() ^ 1);
    match which % 14 {
        0 => env.event_id = flip(env.event_id),
        1 => env.aggregate_type.push('x'),
        2 => env.aggregate_id = flip(env.aggregate_id),
        3 => env.sequence ^= 1,
        4 => env.event_type.push('x'),
        5 => env.schema_version ^= 1,
        6 => env.occurred_at += chrono::Duration::microseconds(1),
        7 => env.command_id = flip(env.command_id),
        8 => env.correlation_id = flip(env.correlation_id),
        9 => env.causation_id = flip(env.causation_id),
        10 => env.actor.sub.push('x'),
        11 => env.actor.role.push('x'),
        12 => {
            env.prev_hash = format!(
                "{:064x}",
                u128::from_str_radix(&env.prev_hash[32..], 16).expect("hex") ^ 1
            )
        }
        _ => {
            let data = env.data.as_object_mut().expect("object");
            let (key, value) = data.iter_mut().next().expect("a field");
            let _ = key;
            *value = match value.take() {
                Value::Number(n) => json!(n.as_i64().expect("int").wrapping_add(1)),
                Value::String(s) => json!(format!("{s}x")),
                other => json!([other]),
            };
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_bytes_survive_json_round_trip(env in arb_envelope()) {
        let back = decode(&encode(&env)).expect("decodes");
        prop_assert_eq!(&back, &env);
        prop_assert_eq!(canonical_bytes(&back), canonical_bytes(&env));
        prop_assert!(back.hash_is_valid());
        // Also through an untyped Value, as a generic JSON consumer would hold it.
        let value: Value = serde_json::from_slice(&encode(&env)).expect("json");
        let again: EventEnvelope = serde_json::from_value(value).expect("envelope");
        prop_assert_eq!(canonical_bytes(&again), canonical_bytes(&env));
    }

    #[test]
    fn any_field_change_changes_the_hash(env in arb_envelope(), which in any::<u8>()) {
        let mut changed = env.clone();
        mutate(&mut changed, which);
        prop_assert_ne!(&changed, &env);
        prop_assert!(!changed.hash_is_valid());
        prop_assert_ne!(compute_hash(&changed), env.hash.clone());
    }
}
