//! Synthetic account histories for the baselines: valid, hash-chained envelopes of the
//! same shape and size as the ones Logbook writes (an `AccountOpened`, then deposits and
//! withdrawals with a reference), built with the events crate.

use chrono::Utc;
use logbook_events::{AccountEvent, Actor, Currency, EventEnvelope, EventMeta, ZERO_HASH, codec};
use uuid::Uuid;

/// One event ready for Kafka (key and value) and for the COPY baseline (ledger columns).
#[derive(Debug)]
pub struct SynthEvent {
    pub envelope: EventEnvelope,
    pub bytes: Vec<u8>,
    /// Ledger line: kind, signed amount, balance after; `None` for `AccountOpened`.
    pub line: Option<(&'static str, i64, i64)>,
}

#[derive(Debug, Clone)]
struct AccountState {
    id: Uuid,
    sequence: u64,
    balance: i64,
    prev_hash: String,
}

/// Round-robin over `accounts` accounts: event `i` belongs to account `i % accounts`.
#[derive(Debug)]
pub struct Synth {
    accounts: Vec<AccountState>,
    next: u64,
    currency: Currency,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("at least one account is needed")]
    NoAccounts,
    #[error("currency: {0}")]
    Currency(#[from] logbook_events::CurrencyError),
}

impl Synth {
    pub fn new(accounts: usize) -> Result<Self, SynthError> {
        if accounts == 0 {
            return Err(SynthError::NoAccounts);
        }
        let accounts = (0..accounts)
            .map(|_| AccountState {
                id: Uuid::now_v7(),
                sequence: 0,
                balance: 0,
                prev_hash: ZERO_HASH.to_owned(),
            })
            .collect();
        Ok(Self {
            accounts,
            next: 0,
            currency: Currency::parse("EUR")?,
        })
    }

    /// The next event of the stream.
    pub fn next_event(&mut self) -> SynthEvent {
        let index = (self.next % self.accounts.len() as u64) as usize;
        let n = self.next;
        self.next += 1;
        let currency = self.currency;
        let account = &mut self.accounts[index];
        let amount = 1 + (n % 97) as i64;
        let (event, line) = if account.sequence == 0 {
            let event = AccountEvent::AccountOpened {
                owner_id: "bench".to_owned(),
                currency,
                overdraft_limit: 0,
                holder: None,
            };
            (event, None)
        } else if account.balance >= amount && n.is_multiple_of(3) {
            account.balance -= amount;
            let event = AccountEvent::FundsWithdrawn {
                amount,
                balance_after: account.balance,
                reference: Some(format!("bench-{n}")),
            };
            (event, Some(("withdrawal", -amount, account.balance)))
        } else {
            account.balance += amount;
            let event = AccountEvent::FundsDeposited {
                amount,
                balance_after: account.balance,
                reference: Some(format!("bench-{n}")),
            };
            (event, Some(("deposit", amount, account.balance)))
        };
        account.sequence += 1;
        let command_id = Uuid::now_v7();
        let meta = EventMeta {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            command_id,
            correlation_id: command_id,
            causation_id: command_id,
            actor: Actor {
                sub: "bench".to_owned(),
                role: "service".to_owned(),
            },
        };
        let envelope = EventEnvelope::new_sealed(
            meta,
            account.id,
            account.sequence,
            &account.prev_hash,
            &event,
        );
        account.prev_hash.clone_from(&envelope.hash);
        let bytes = codec::encode(&envelope);
        SynthEvent {
            envelope,
            bytes,
            line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_events::ChainVerifier;

    #[test]
    fn histories_are_valid_hash_chains() {
        let mut synth = Synth::new(3).expect("synth");
        let events: Vec<SynthEvent> = (0..30).map(|_| synth.next_event()).collect();
        assert_eq!(events[0].envelope.event_type, "AccountOpened");
        assert!(events[0].line.is_none());
        let mut verifier = ChainVerifier::new();
        for event in &events {
            let decoded = codec::decode(&event.bytes).expect("decodes");
            decoded.decode_account().expect("valid data");
            assert!(verifier.check(&decoded).is_ok(), "{:?}", event.envelope);
        }
        assert!(
            events
                .iter()
                .all(|e| e.line.is_none_or(|(_, _, after)| after >= 0))
        );
        assert!(Synth::new(0).is_err());
    }
}
