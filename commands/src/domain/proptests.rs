//! Property tests of the aggregate over random command sequences: the overdraft
//! invariant, replay equivalence, versions, determinism and no events on rejection.

use logbook_events::{AccountEvent, Currency};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

const ME: Uuid = Uuid::from_u128(0xA);

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![4 => Just("EUR"), 1 => Just("USD")].prop_map(|c| Currency::parse(c).expect("valid"))
}

/// Mostly small amounts (to reach the limits often), sometimes out of range.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 1i64..300,
        1 => Just(MAX_AMOUNT),
        1 => prop_oneof![Just(0), Just(-1), Just(MAX_AMOUNT + 1), Just(i64::MIN)],
    ]
}

fn account_id() -> impl Strategy<Value = Uuid> {
    prop_oneof![6 => Just(Uuid::from_u128(0xB)), 1 => Just(ME), 1 => Just(Uuid::nil())]
}

/// Optional text, sometimes exactly at the limit, sometimes one past it.
fn text(max: usize) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        8 => "[a-z ]{0,8}",
        1 => Just("x".repeat(max)),
        1 => Just("x".repeat(max + 1)),
    ])
}

fn command() -> impl Strategy<Value = AccountCommand> {
    let transfer_id = prop_oneof![9 => Just(Uuid::from_u128(7)), 1 => Just(Uuid::nil())];
    prop_oneof![
        2 => ("[a-z]{0,3}", currency(), prop_oneof![0i64..200, Just(-1), Just(MAX_AMOUNT)]).prop_map(
            |(owner_id, currency, overdraft_limit)| AccountCommand::Open { owner_id, currency, overdraft_limit, holder: None }
        ),
        6 => (amount(), text(140)).prop_map(|(amount, reference)| AccountCommand::Deposit { amount, reference }),
        6 => (amount(), text(140)).prop_map(|(amount, reference)| AccountCommand::Withdraw { amount, reference }),
        4 => (transfer_id.clone(), account_id(), amount(), text(140)).prop_map(
            |(transfer_id, to_account_id, amount, reference)| AccountCommand::DebitForTransfer {
                transfer_id, to_account_id, amount, reference,
            }
        ),
        4 => (transfer_id.clone(), account_id(), amount(), currency(), text(140), origin()).prop_map(
            |(transfer_id, from_account_id, amount, currency, reference, debit)| AccountCommand::CreditForTransfer {
                transfer_id, from_account_id, amount, currency, reference, debit,
            }
        ),
        2 => (transfer_id.clone(), amount(), prop_oneof!["[a-z]{0,5}", "z{499,501}"]).prop_map(
            |(transfer_id, amount, reason)| AccountCommand::RefundTransfer { transfer_id, amount, reason }
        ),
        2 => (transfer_id, account_id(), amount()).prop_map(
            |(transfer_id, to_account_id, amount)| AccountCommand::CompleteTransfer { transfer_id, to_account_id, amount }
        ),
        1 => text(500).prop_map(|reason| AccountCommand::Freeze { reason }),
        1 => text(500).prop_map(|reason| AccountCommand::Unfreeze { reason }),
        1 => text(500).prop_map(|reason| AccountCommand::Close { reason }),
        1 => prop_oneof![0i64..300, Just(-1), Just(MAX_AMOUNT + 1)]
            .prop_map(|overdraft_limit| AccountCommand::SetOverdraftLimit { overdraft_limit }),
    ]
}

fn origin() -> impl Strategy<Value = logbook_events::DebitOrigin> {
    (0i32..2, 0i64..5).prop_map(|(partition, seconds)| logbook_events::DebitOrigin {
        partition,
        at: chrono::DateTime::from_timestamp(1_790_000_000 + seconds, 0).expect("instant"),
    })
}

fn replay(events: &[AccountEvent]) -> Account {
    let mut state = Account::new(ME);
    for event in events {
        apply(&mut state, event);
    }
    state
}

/// The money an event moves into (+) or out of (-) the account, if any.
fn delta(event: &AccountEvent) -> Option<(i64, i64)> {
    match event {
        AccountEvent::FundsDeposited {
            amount,
            balance_after,
            ..
        }
        | AccountEvent::TransferCredited {
            amount,
            balance_after,
            ..
        }
        | AccountEvent::TransferRefunded {
            amount,
            balance_after,
            ..
        } => Some((*amount, *balance_after)),
        AccountEvent::FundsWithdrawn {
            amount,
            balance_after,
            ..
        }
        | AccountEvent::TransferDebited {
            amount,
            balance_after,
            ..
        } => Some((-*amount, *balance_after)),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_command_sequences_keep_every_invariant(
        open_first in any::<bool>(),
        commands in proptest::collection::vec(command(), 0..60),
    ) {
        let mut state = Account::new(ME);
        let mut log: Vec<AccountEvent> = Vec::new();
        let opening = AccountCommand::Open {
            owner_id: "o".into(),
            currency: Currency::parse("EUR").expect("valid"),
            overdraft_limit: 100,
            holder: None,
        };
        for command in open_first.then_some(opening).into_iter().chain(commands) {
            let result = decide(&state, &command);
            prop_assert_eq!(&decide(&state, &command), &result, "decide is deterministic");
            match result {
                Ok(events) => {
                    prop_assert!(
                        !events.is_empty() || command.is_saga_step(),
                        "an accepted command writes events, unless a saga step applied already"
                    );
                    for event in &events {
                        if let Some((moved, balance_after)) = delta(event) {
                            prop_assert_eq!(state.balance().checked_add(moved), Some(balance_after));
                        }
                        let data = event.to_data();
                        let read = AccountEvent::decode(event.event_type(), event.schema_version(), &data);
                        prop_assert_eq!(read.as_ref().ok(), Some(event), "events survive the log");
                        apply(&mut state, event);
                        log.push(event.clone());
                    }
                    if command.is_saga_step() && !events.is_empty() {
                        prop_assert_eq!(decide(&state, &command), Ok(Vec::new()), "a step applies once");
                    }
                }
                Err(error) => {
                    // `decide` only reads the state; the processor writes nothing.
                    prop_assert!(!error.code().is_empty());
                    prop_assert_eq!(error.field().is_some(), error.kind() == RejectionKind::Invalid);
                }
            }
            if state.is_open() {
                prop_assert!(state.balance() >= -state.overdraft_limit(), "{:?}", state);
                prop_assert!(state.balance() + state.in_flight_total() <= MAX_BALANCE);
                if let Some(amount) = state.in_flight(Uuid::from_u128(7)) {
                    let refund = AccountCommand::RefundTransfer {
                        transfer_id: Uuid::from_u128(7), amount, reason: "r".into(),
                    };
                    prop_assert!(
                        decide(&state, &refund).is_ok_and(|events| !events.is_empty()),
                        "a refund in flight always applies"
                    );
                }
                prop_assert!((0..=MAX_AMOUNT).contains(&state.overdraft_limit()));
            } else {
                prop_assert!(log.is_empty());
            }
            prop_assert_eq!(state.version(), log.len() as u64);
            prop_assert_eq!(&replay(&log), &state, "replaying the log rebuilds the state");
        }
    }
}
