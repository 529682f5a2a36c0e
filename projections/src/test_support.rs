//! Fixtures for the unit tests of this crate: sealed envelopes, records and slices.

use chrono::{DateTime, Utc};
use logbook_events::{
    AccountEvent, Actor, Currency, EventEnvelope, EventMeta, ZERO_HASH, decode_raw, encode,
};
use uuid::Uuid;

use crate::batch::{Decoded, Record, Slice};

/// The account most fixtures use.
pub const ACCOUNT: Uuid = Uuid::from_u128(0xA);

pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + seconds, 0).expect("valid time")
}

pub fn eur() -> Currency {
    Currency::parse("EUR").expect("currency")
}

/// A sealed envelope of `event` as event `sequence` of `account`.
pub fn envelope(account: Uuid, sequence: u64, event: AccountEvent) -> EventEnvelope {
    let meta = EventMeta {
        event_id: Uuid::from_u128((account.as_u128() << 16) + u128::from(sequence)),
        occurred_at: at(sequence as i64),
        command_id: Uuid::from_u128(u128::from(sequence)),
        correlation_id: Uuid::from_u128(1),
        causation_id: Uuid::from_u128(1),
        actor: Actor {
            sub: "tester".into(),
            role: "service".into(),
        },
    };
    EventEnvelope::new_sealed(meta, account, sequence, ZERO_HASH, &event)
}

pub fn opened(owner: &str) -> AccountEvent {
    AccountEvent::AccountOpened {
        owner_id: owner.into(),
        currency: eur(),
        overdraft_limit: 0,
        holder: None,
    }
}

pub fn deposited(amount: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::FundsDeposited {
        amount,
        balance_after,
        reference: None,
    }
}

pub fn withdrawn(amount: i64, balance_after: i64) -> AccountEvent {
    AccountEvent::FundsWithdrawn {
        amount,
        balance_after,
        reference: Some("atm".into()),
    }
}

/// A deposit of 1 on [`ACCOUNT`] as event `sequence` (balance after = sequence).
pub fn deposit_envelope(sequence: u64) -> EventEnvelope {
    envelope(ACCOUNT, sequence, deposited(1, sequence as i64))
}

pub fn record(partition: i32, offset: i64, envelope: &EventEnvelope) -> Record {
    Record {
        partition,
        offset,
        payload: Some(encode(envelope)),
    }
}

/// A slice of `partition` holding `events` at offsets 0, 1, 2, …
pub fn slice_of(partition: i32, events: Vec<EventEnvelope>) -> Slice {
    let decoded: Vec<Decoded> = events
        .into_iter()
        .enumerate()
        .map(|(offset, envelope)| {
            let raw = encode(&envelope);
            Decoded {
                offset: offset as i64,
                envelope: decode_raw(&raw).expect("a sealed envelope decodes"),
                raw,
            }
        })
        .collect();
    Slice {
        partition,
        from: 0,
        to: decoded.len() as i64,
        events: decoded,
        poison: None,
    }
}
