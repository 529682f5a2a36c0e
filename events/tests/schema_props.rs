//! Property test of the event catalogue: any in-range event the code can write
//! (random amounts, balances, ids, currencies and texts up to their limits)
//! validates against its `schemas/events/<Type>.json`.

use std::path::Path;

use jsonschema::Validator;
use logbook_events::{AccountEvent, Currency};
use proptest::prelude::*;
use uuid::Uuid;

const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

fn validator(name: &str) -> Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../schemas/events/{name}.json"));
    let text = std::fs::read_to_string(path).expect("schema file readable");
    let schema = serde_json::from_str(&text).expect("schema file is JSON");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn arb_event() -> impl Strategy<Value = AccountEvent> {
    let amount = 1..=MAX_AMOUNT;
    let balance = any::<i64>();
    let text = |max: usize| {
        proptest::option::of(proptest::collection::vec(any::<char>(), 0..=max))
            .prop_map(|chars| chars.map(|c| c.into_iter().collect::<String>()))
    };
    let currency = "[A-Z]{3}".prop_map(|c| Currency::parse(&c).expect("valid"));
    let uuid = any::<u128>().prop_map(Uuid::from_u128);
    prop_oneof![
        ("[a-z0-9-]{1,128}", currency.clone(), 0..=MAX_AMOUNT).prop_map(|(o, c, l)| {
            AccountEvent::AccountOpened {
                owner_id: o,
                currency: c,
                overdraft_limit: l,
                holder: None,
            }
        }),
        (amount.clone(), balance, text(140)).prop_map(|(amount, balance_after, reference)| {
            AccountEvent::FundsDeposited {
                amount,
                balance_after,
                reference,
            }
        }),
        (amount.clone(), balance, text(140)).prop_map(|(amount, balance_after, reference)| {
            AccountEvent::FundsWithdrawn {
                amount,
                balance_after,
                reference,
            }
        }),
        (
            uuid.clone(),
            uuid.clone(),
            amount.clone(),
            currency,
            balance,
            text(140)
        )
            .prop_map(
                |(transfer_id, to_account_id, amount, currency, balance_after, reference)| {
                    AccountEvent::TransferDebited {
                        transfer_id,
                        to_account_id,
                        amount,
                        currency,
                        balance_after,
                        reference,
                    }
                }
            ),
        (
            uuid.clone(),
            uuid.clone(),
            amount.clone(),
            balance,
            text(140)
        )
            .prop_map(
                |(transfer_id, from_account_id, amount, balance_after, reference)| {
                    AccountEvent::TransferCredited {
                        transfer_id,
                        from_account_id,
                        amount,
                        balance_after,
                        reference,
                        debit: None,
                    }
                }
            ),
        (
            uuid.clone(),
            uuid.clone(),
            amount.clone(),
            balance,
            0..1000i32,
            0..4_000_000_000i64
        )
            .prop_map(
                |(transfer_id, from_account_id, amount, balance_after, partition, seconds)| {
                    AccountEvent::TransferCredited {
                        transfer_id,
                        from_account_id,
                        amount,
                        balance_after,
                        reference: None,
                        debit: Some(logbook_events::DebitOrigin {
                            partition,
                            at: chrono::DateTime::from_timestamp(seconds, 0).expect("instant"),
                        }),
                    }
                }
            ),
        (uuid.clone(), uuid.clone(), amount.clone()).prop_map(
            |(transfer_id, to_account_id, amount)| {
                AccountEvent::TransferCompleted {
                    transfer_id,
                    to_account_id,
                    amount,
                }
            }
        ),
        (uuid, amount, balance, "[^\u{0}]{1,50}").prop_map(
            |(transfer_id, amount, balance_after, reason)| {
                AccountEvent::TransferRefunded {
                    transfer_id,
                    amount,
                    balance_after,
                    reason,
                }
            }
        ),
        text(500).prop_map(|reason| AccountEvent::AccountFrozen { reason }),
        text(500).prop_map(|reason| AccountEvent::AccountUnfrozen { reason }),
        text(500).prop_map(|reason| AccountEvent::AccountClosed { reason }),
        (0..=MAX_AMOUNT)
            .prop_map(|overdraft_limit| AccountEvent::OverdraftLimitChanged { overdraft_limit }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any in-range event the code can write validates against its schema.
    #[test]
    fn arbitrary_valid_events_validate(event in arb_event()) {
        let data = event.to_data();
        let errors: Vec<String> =
            validator(&logbook_events::schema_name(event.event_type(), event.schema_version()))
                .iter_errors(&data).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{}: {} -> {:?}", event.event_type(), data, errors);
    }
}
