//! A generator of valid account histories for the read-side tests.

use chrono::Utc;
use logbook_events::{AccountEvent, Actor, Currency, EventEnvelope, EventMeta, ZERO_HASH};
use uuid::Uuid;

/// An event to append to a partition.
pub type Planned = (i32, EventEnvelope);

#[derive(Debug)]
struct Sim {
    id: Uuid,
    partition: i32,
    version: u64,
    balance: i64,
    hash: String,
    frozen: bool,
}

/// Generates valid histories: opens, deposits, withdrawals, transfers (credited or refunded),
/// freezes and unfreezes over a growing set of accounts, each account on one partition.
#[derive(Debug)]
pub struct Generator {
    accounts: Vec<Sim>,
    partitions: i32,
    state: u64,
}

impl Generator {
    pub fn new(partitions: i32, seed: u64) -> Self {
        Self {
            accounts: Vec::new(),
            partitions,
            state: seed.max(1),
        }
    }

    fn roll(&mut self, below: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % below.max(1)
    }

    /// The events of the next `commands` operations.
    pub fn events(&mut self, commands: usize) -> Vec<Planned> {
        let mut out = Vec::with_capacity(commands * 2);
        for _ in 0..commands {
            self.next(&mut out);
        }
        out
    }

    fn next(&mut self, out: &mut Vec<Planned>) {
        let roll = self.roll(100);
        if self.accounts.len() < 8 || roll < 4 {
            return self.open(out);
        }
        let a = self.roll(self.accounts.len() as u64) as usize;
        let amount = 1 + self.roll(1000) as i64;
        let (balance, frozen) = (self.accounts[a].balance, self.accounts[a].frozen);
        match roll {
            4..=44 => self.emit(
                a,
                |b| AccountEvent::FundsDeposited {
                    amount,
                    balance_after: b + amount,
                    reference: None,
                },
                out,
            ),
            45..=64 if balance >= amount && !frozen => self.emit(
                a,
                |b| AccountEvent::FundsWithdrawn {
                    amount,
                    balance_after: b - amount,
                    reference: Some("atm".into()),
                },
                out,
            ),
            65..=96 if balance >= amount && !frozen => self.transfer(a, amount, out),
            97..=99 => {
                let event = if frozen {
                    AccountEvent::AccountUnfrozen { reason: None }
                } else {
                    AccountEvent::AccountFrozen {
                        reason: Some("review".into()),
                    }
                };
                self.accounts[a].frozen = !frozen;
                self.emit(a, |_| event, out);
            }
            _ => self.emit(
                a,
                |b| AccountEvent::FundsDeposited {
                    amount,
                    balance_after: b + amount,
                    reference: None,
                },
                out,
            ),
        }
    }

    fn open(&mut self, out: &mut Vec<Planned>) {
        let id = Uuid::now_v7();
        let partition = (id.as_u128() % self.partitions as u128) as i32;
        self.accounts.push(Sim {
            id,
            partition,
            version: 0,
            balance: 0,
            hash: ZERO_HASH.to_owned(),
            frozen: false,
        });
        let owner = format!("owner-{}", self.roll(20));
        let currency = Currency::parse("EUR").expect("currency");
        self.emit(
            self.accounts.len() - 1,
            |_| AccountEvent::AccountOpened {
                owner_id: owner,
                currency,
                overdraft_limit: 0,
                holder: None,
            },
            out,
        );
    }

    fn transfer(&mut self, from: usize, amount: i64, out: &mut Vec<Planned>) {
        let to = self.roll(self.accounts.len() as u64) as usize;
        if to == from {
            return;
        }
        let transfer_id = Uuid::now_v7();
        let (from_id, to_id) = (self.accounts[from].id, self.accounts[to].id);
        let currency = Currency::parse("EUR").expect("currency");
        self.emit(
            from,
            |b| AccountEvent::TransferDebited {
                transfer_id,
                to_account_id: to_id,
                amount,
                currency,
                balance_after: b - amount,
                reference: None,
            },
            out,
        );
        if self.roll(10) == 0 {
            let reason = "credit refused".to_owned();
            self.emit(
                from,
                |b| AccountEvent::TransferRefunded {
                    transfer_id,
                    amount,
                    balance_after: b + amount,
                    reason,
                },
                out,
            );
        } else {
            self.emit(
                to,
                |b| AccountEvent::TransferCredited {
                    transfer_id,
                    from_account_id: from_id,
                    amount,
                    balance_after: b + amount,
                    reference: None,
                    // schema version 1, as logs written before version 2 hold
                    debit: None,
                },
                out,
            );
        }
    }

    /// Seals the event `make(balance)` as the account's next event.
    fn emit(
        &mut self,
        index: usize,
        make: impl FnOnce(i64) -> AccountEvent,
        out: &mut Vec<Planned>,
    ) {
        let sim = &mut self.accounts[index];
        let event = make(sim.balance);
        let meta = EventMeta {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
            actor: Actor {
                sub: "generator".into(),
                role: "service".into(),
            },
        };
        sim.version += 1;
        let envelope = EventEnvelope::new_sealed(meta, sim.id, sim.version, &sim.hash, &event);
        if let Some(balance) = balance_after(&event) {
            sim.balance = balance;
        }
        sim.hash = envelope.hash.clone();
        out.push((sim.partition, envelope));
    }
}

/// The balance a money event leaves (None for the other events).
pub(crate) fn balance_after(event: &AccountEvent) -> Option<i64> {
    match event {
        AccountEvent::FundsDeposited { balance_after, .. }
        | AccountEvent::FundsWithdrawn { balance_after, .. }
        | AccountEvent::TransferDebited { balance_after, .. }
        | AccountEvent::TransferCredited { balance_after, .. }
        | AccountEvent::TransferRefunded { balance_after, .. } => Some(*balance_after),
        _ => None,
    }
}
