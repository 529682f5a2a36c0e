//! The typed account events against their JSON `data`: round trips, optional
//! fields, and rejection of unknown types, versions and malformed payloads.

use logbook_events::{
    ALL_EVENT_TYPES, AccountEvent, CodecError, Currency, DebitOrigin, SealedHolder,
};
use serde_json::json;
use uuid::Uuid;

/// A well-formed sealed value (the events crate checks shapes, not cryptography).
const SEALED: &str = "enc1.0193a5c2-7d1e-7c3a-9f00-000000000001.AAAAAAAAAAAAAAAAAAAAAAAA";

/// One event of every type, with and without optional fields.
fn samples() -> Vec<AccountEvent> {
    let eur = Currency::parse("EUR").expect("valid");
    let id = Uuid::from_u128;
    vec![
        AccountEvent::AccountOpened {
            owner_id: "o-1".into(),
            currency: eur,
            overdraft_limit: 0,
            holder: None,
        },
        AccountEvent::FundsDeposited {
            amount: 5,
            balance_after: 5,
            reference: None,
        },
        AccountEvent::FundsDeposited {
            amount: 5,
            balance_after: 10,
            reference: Some("r".into()),
        },
        AccountEvent::FundsWithdrawn {
            amount: 3,
            balance_after: -2,
            reference: None,
        },
        AccountEvent::TransferDebited {
            transfer_id: id(1),
            to_account_id: id(2),
            amount: 4,
            currency: eur,
            balance_after: 1,
            reference: Some("rent".into()),
        },
        AccountEvent::TransferCredited {
            transfer_id: id(1),
            from_account_id: id(3),
            amount: 4,
            balance_after: 9,
            reference: None,
            debit: None,
        },
        AccountEvent::TransferCredited {
            transfer_id: id(1),
            from_account_id: id(3),
            amount: 4,
            balance_after: 13,
            reference: None,
            debit: Some(DebitOrigin {
                partition: 3,
                at: chrono::DateTime::from_timestamp(1_790_000_000, 123_456_000).expect("instant"),
            }),
        },
        AccountEvent::TransferCompleted {
            transfer_id: id(1),
            to_account_id: id(2),
            amount: 4,
        },
        AccountEvent::TransferRefunded {
            transfer_id: id(1),
            amount: 4,
            balance_after: 5,
            reason: "target closed".into(),
        },
        AccountEvent::AccountFrozen {
            reason: Some("fraud check".into()),
        },
        AccountEvent::AccountUnfrozen { reason: None },
        AccountEvent::AccountClosed { reason: None },
        AccountEvent::OverdraftLimitChanged {
            overdraft_limit: 500,
        },
        AccountEvent::AccountOpened {
            owner_id: "o-2".into(),
            currency: eur,
            overdraft_limit: 0,
            holder: Some(SealedHolder {
                name: Some(SEALED.into()),
                ..SealedHolder::default()
            }),
        },
        AccountEvent::HolderChanged {
            holder: SealedHolder {
                email: Some(SEALED.into()),
                birth_date: Some(SEALED.into()),
                ..SealedHolder::default()
            },
        },
    ]
}

#[test]
fn every_type_round_trips_through_data() {
    let events = samples();
    for name in ALL_EVENT_TYPES {
        assert!(
            events.iter().any(|e| e.event_type() == *name),
            "{name} has a sample"
        );
    }
    for event in events {
        // TransferCredited is written at version 2 when it knows its debit's origin, and
        // AccountOpened when it carries a holder
        let expected = match &event {
            AccountEvent::TransferCredited { debit: Some(_), .. } => 2,
            AccountEvent::AccountOpened {
                holder: Some(_), ..
            } => 2,
            _ => 1,
        };
        assert_eq!(event.schema_version(), expected);
        let data = event.to_data();
        let back = AccountEvent::decode(event.event_type(), event.schema_version(), &data)
            .expect("decodes");
        assert_eq!(back, event);
        let text = text(&data);
        let back = AccountEvent::decode(event.event_type(), event.schema_version(), &text)
            .expect("decodes from the text as written");
        assert_eq!(back, event);
    }
}

/// `data` as the JSON text a [`logbook_events::RawEnvelope`] keeps.
fn text(data: &serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(data).expect("raw JSON")
}

#[test]
fn none_is_absent_and_null_is_accepted() {
    let event = AccountEvent::FundsDeposited {
        amount: 1,
        balance_after: 1,
        reference: None,
    };
    assert_eq!(event.to_data(), json!({"amount": 1, "balance_after": 1}));
    let with_null = json!({"amount": 1, "balance_after": 1, "reference": null});
    let back = AccountEvent::decode("FundsDeposited", 1, &with_null).expect("decodes");
    assert_eq!(back, event);
    let frozen = AccountEvent::decode("AccountFrozen", 1, &json!({"reason": null}));
    assert_eq!(
        frozen.expect("decodes"),
        AccountEvent::AccountFrozen { reason: None }
    );
    assert!(AccountEvent::decode("AccountClosed", 1, &json!({})).is_ok());
}

#[test]
fn data_uses_snake_case_fields_and_plain_values() {
    let event = AccountEvent::TransferDebited {
        transfer_id: Uuid::from_u128(1),
        to_account_id: Uuid::from_u128(2),
        amount: 4,
        currency: Currency::parse("EUR").expect("valid"),
        balance_after: -1,
        reference: None,
    };
    assert_eq!(
        event.to_data(),
        json!({
            "transfer_id": "00000000-0000-0000-0000-000000000001",
            "to_account_id": "00000000-0000-0000-0000-000000000002",
            "amount": 4,
            "currency": "EUR",
            "balance_after": -1
        })
    );
}

#[test]
fn rejects_unknown_types_and_versions() {
    let data = json!({"amount": 1, "balance_after": 1});
    assert!(matches!(
        AccountEvent::decode("FundsStolen", 1, &data),
        Err(CodecError::UnknownEventType(t)) if t == "FundsStolen"
    ));
    for version in [0, 2, u32::MAX] {
        assert!(matches!(
            AccountEvent::decode("FundsDeposited", version, &data),
            Err(CodecError::UnsupportedSchemaVersion { schema_version, .. }) if schema_version == version
        ));
    }
}

#[test]
fn rejects_malformed_data() {
    for bad in [
        json!({"amount": 1}),
        json!({"amount": 1, "balance_after": 1, "extra": true}),
        json!({"amount": "1", "balance_after": 1}),
        json!({"amount": 1.5, "balance_after": 1}),
        json!({"amount": 1, "balance_after": 1, "reference": 7}),
        json!([1, 1]),
        json!(null),
    ] {
        for read in [
            AccountEvent::decode("FundsDeposited", 1, &bad),
            AccountEvent::decode("FundsDeposited", 1, &text(&bad)),
        ] {
            assert!(
                matches!(
                    read,
                    Err(CodecError::InvalidData {
                        event_type: "FundsDeposited",
                        schema_version: 1,
                        ..
                    })
                ),
                "{bad} must be rejected"
            );
        }
    }
    let bad_currency = json!({"owner_id": "o", "currency": "eur", "overdraft_limit": 0});
    assert!(AccountEvent::decode("AccountOpened", 1, &bad_currency).is_err());
    let bad_uuid = json!({"transfer_id": "nope", "amount": 1, "balance_after": 1, "reason": "x"});
    assert!(AccountEvent::decode("TransferRefunded", 1, &bad_uuid).is_err());
}
