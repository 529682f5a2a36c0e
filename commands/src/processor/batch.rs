//! Deciding a batch of commands on in-memory state: the processor's logic without Kafka.
//!
//! [`plan_batch`] turns the commands of a batch into the events and results to write in one
//! transaction. It changes nothing: the accounts it touched are returned as an overlay that the
//! worker merges into the partition state only after the transaction commits.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use logbook_events::{Actor, EventEnvelope, EventMeta, Position};
use uuid::Uuid;

use super::state::{PartitionState, Slot};
use crate::domain::{Account, RejectionKind, apply, decide};
use crate::envelope::CommandEnvelope;

/// A command record as consumed.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// An event to produce to the events partition of the same number.
#[derive(Debug, Clone)]
pub struct PlannedEvent {
    pub partition: i32,
    pub envelope: EventEnvelope,
    pub traceparent: Option<String>,
}

/// Where an accepted command's last event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionRef {
    /// Already in the log (a duplicate of an earlier command).
    Known(Position),
    /// Index into [`Plan::events`]: known once the broker has acknowledged it.
    Pending(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedOutcome {
    Accepted {
        version: u64,
        position: PositionRef,
        duplicate: bool,
    },
    Rejected {
        kind: RejectionKind,
        code: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct PlannedResult {
    pub partition: i32,
    pub transfer: Option<crate::envelope::TransferContext>,
    pub command_id: Uuid,
    pub aggregate_id: Uuid,
    pub outcome: PlannedOutcome,
}

/// Everything one transaction writes, plus the state it leads to.
#[derive(Debug, Default)]
pub struct Plan {
    pub events: Vec<PlannedEvent>,
    pub results: Vec<PlannedResult>,
    /// Accounts changed by the batch, by partition.
    pub overlay: HashMap<(i32, Uuid), Slot>,
    /// Next offset to consume per commands partition (what the transaction commits).
    pub next_offsets: BTreeMap<i32, i64>,
    /// Command records that could not be decoded (skipped, counted, logged).
    pub malformed: usize,
}

/// Decides every command of `batch` against `states` (which must hold every partition of the
/// batch). `now` stamps the events; `new_id` makes event ids (UUID v7 in production).
pub fn plan_batch(
    states: &HashMap<i32, &PartitionState>,
    batch: &[Incoming],
    now: DateTime<Utc>,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Plan {
    let mut plan = Plan::default();
    // command ids applied earlier in this batch
    let mut in_batch: HashMap<Uuid, (u64, usize)> = HashMap::new();
    for message in batch {
        let next = plan.next_offsets.entry(message.partition).or_insert(0);
        *next = (*next).max(message.offset + 1);
        let Some(state) = states.get(&message.partition) else {
            continue;
        };
        let command = match CommandEnvelope::decode(&message.payload) {
            Ok(command) => command,
            Err(error) => {
                tracing::error!(
                    partition = message.partition,
                    offset = message.offset,
                    %error,
                    "undecodable command record skipped"
                );
                plan.malformed += 1;
                continue;
            }
        };
        let outcome = if let Some(&(version, index)) = in_batch.get(&command.command_id) {
            PlannedOutcome::Accepted {
                version,
                position: PositionRef::Pending(index),
                duplicate: true,
            }
        } else if let Some(applied) = state.dedupe.get(&command.command_id) {
            PlannedOutcome::Accepted {
                version: applied.version,
                position: PositionRef::Known(Position::new(message.partition, applied.offset)),
                duplicate: true,
            }
        } else {
            let key = (message.partition, command.aggregate_id);
            let mut slot = plan
                .overlay
                .get(&key)
                .or_else(|| state.accounts.get(&command.aggregate_id))
                .cloned()
                .unwrap_or_else(|| Slot::new(command.aggregate_id));
            match decide_one(&slot.account, &command) {
                Err(rejection) => rejection,
                Ok(events) => {
                    let meta = |id: Uuid| EventMeta {
                        event_id: id,
                        occurred_at: now,
                        command_id: command.command_id,
                        correlation_id: command.correlation_id,
                        causation_id: command.causation_id.unwrap_or(command.command_id),
                        actor: command.actor.clone(),
                    };
                    for event in &events {
                        let envelope = EventEnvelope::new_sealed(
                            meta(new_id()),
                            command.aggregate_id,
                            slot.account.version() + 1,
                            &slot.last_hash_hex(),
                            event,
                        );
                        apply(&mut slot.account, event);
                        let _ = hex::decode_to_slice(&envelope.hash, &mut slot.last_hash);
                        plan.events.push(PlannedEvent {
                            partition: message.partition,
                            envelope,
                            traceparent: command.traceparent.clone(),
                        });
                    }
                    let version = slot.account.version();
                    let index = plan.events.len() - 1;
                    in_batch.insert(command.command_id, (version, index));
                    plan.overlay.insert(key, slot);
                    PlannedOutcome::Accepted {
                        version,
                        position: PositionRef::Pending(index),
                        duplicate: false,
                    }
                }
            }
        };
        plan.results.push(PlannedResult {
            partition: message.partition,
            transfer: command.transfer,
            command_id: command.command_id,
            aggregate_id: command.aggregate_id,
            outcome,
        });
    }
    plan
}

/// Ownership, then the pure domain decision. A customer may only touch accounts it owns, and
/// learns nothing about the others: they look like unknown accounts.
fn decide_one(
    account: &Account,
    command: &CommandEnvelope,
) -> Result<Vec<logbook_events::AccountEvent>, PlannedOutcome> {
    if !may_act_on(&command.actor, account) {
        return Err(PlannedOutcome::Rejected {
            kind: RejectionKind::NotFound,
            code: "account_not_found",
            message: "account not found".to_string(),
        });
    }
    let events = decide(account, &command.command).map_err(|error| PlannedOutcome::Rejected {
        kind: error.kind(),
        code: error.code(),
        message: error.to_string(),
    })?;
    if events.is_empty() {
        return Err(PlannedOutcome::Rejected {
            kind: RejectionKind::Conflict,
            code: "no_change",
            message: "the command changes nothing".to_string(),
        });
    }
    Ok(events)
}

/// The ownership rule that needs the account's state (the rest of the role matrix is checked
/// at the gateway, before a command is sent).
pub fn may_act_on(actor: &Actor, account: &Account) -> bool {
    actor.role != "customer" || !account.is_open() || account.owner_id() == Some(actor.sub.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::CommandEnvelope;
    use logbook_events::{Actor, Currency};

    fn command(aggregate_id: Uuid, command_id: Uuid, command: AccountCommand) -> Incoming {
        let envelope = CommandEnvelope {
            command_id,
            aggregate_id,
            correlation_id: command_id,
            causation_id: None,
            actor: Actor {
                sub: "svc".into(),
                role: "service".into(),
            },
            issued_at: Utc::now(),
            traceparent: None,
            command,
            transfer: None,
        };
        Incoming {
            partition: 0,
            offset: 0,
            payload: envelope.encode(),
        }
    }

    fn plan(state: &PartitionState, batch: &mut [Incoming]) -> Plan {
        for (offset, message) in batch.iter_mut().enumerate() {
            message.offset = offset as i64 + 10;
        }
        let states = HashMap::from([(0, state)]);
        plan_batch(&states, batch, Utc::now(), &mut Uuid::now_v7)
    }

    use crate::domain::AccountCommand;

    #[test]
    fn a_batch_decides_in_order_on_its_own_changes_and_dedupes_inside_itself() {
        let state = PartitionState::new(100);
        let account = Uuid::new_v4();
        let deposit_id = Uuid::new_v4();
        let eur = Currency::parse("EUR").expect("EUR");
        let mut batch = vec![
            command(
                account,
                Uuid::new_v4(),
                AccountCommand::Open {
                    owner_id: "o".into(),
                    currency: eur,
                    overdraft_limit: 0,
                },
            ),
            command(
                account,
                deposit_id,
                AccountCommand::Deposit {
                    amount: 50,
                    reference: None,
                },
            ),
            command(
                account,
                deposit_id,
                AccountCommand::Deposit {
                    amount: 50,
                    reference: None,
                },
            ),
            command(
                account,
                Uuid::new_v4(),
                AccountCommand::Withdraw {
                    amount: 80,
                    reference: None,
                },
            ),
            Incoming {
                partition: 0,
                offset: 0,
                payload: b"not json".to_vec(),
            },
        ];
        let plan = plan(&state, &mut batch);
        assert_eq!(plan.events.len(), 2, "open and one deposit");
        assert_eq!(plan.events[0].envelope.sequence, 1);
        assert_eq!(plan.events[1].envelope.sequence, 2);
        assert_eq!(
            plan.events[1].envelope.prev_hash,
            plan.events[0].envelope.hash
        );
        assert_eq!(
            plan.results.len(),
            4,
            "the undecodable record has no result"
        );
        assert_eq!(plan.malformed, 1);
        assert!(matches!(
            plan.results[2].outcome,
            PlannedOutcome::Accepted {
                duplicate: true,
                version: 2,
                ..
            }
        ));
        assert!(matches!(
            plan.results[3].outcome,
            PlannedOutcome::Rejected {
                code: "insufficient_funds",
                ..
            }
        ));
        assert_eq!(
            plan.next_offsets[&0], 15,
            "every consumed record is committed"
        );
        assert_eq!(plan.overlay[&(0, account)].account.balance(), 50);
        assert_eq!(state.accounts.len(), 0, "planning changes nothing");
    }

    #[test]
    fn a_customer_cannot_act_on_an_account_it_does_not_own() {
        let mut state = PartitionState::new(100);
        let account = Uuid::new_v4();
        let eur = Currency::parse("EUR").expect("EUR");
        let open = AccountCommand::Open {
            owner_id: "alice".into(),
            currency: eur,
            overdraft_limit: 0,
        };
        let planned = plan(&state, &mut [command(account, Uuid::new_v4(), open)]);
        for ((partition, id), slot) in planned.overlay {
            assert_eq!(partition, 0);
            state.accounts.insert(id, slot);
        }
        let mut deposit = command(
            account,
            Uuid::new_v4(),
            AccountCommand::Deposit {
                amount: 5,
                reference: None,
            },
        );
        let mut envelope = CommandEnvelope::decode(&deposit.payload).expect("decodes");
        envelope.actor = Actor {
            sub: "mallory".into(),
            role: "customer".into(),
        };
        deposit.payload = envelope.encode();
        let planned = plan(&state, &mut [deposit]);
        assert!(planned.events.is_empty());
        assert!(matches!(
            planned.results[0].outcome,
            PlannedOutcome::Rejected {
                kind: RejectionKind::NotFound,
                ..
            }
        ));
    }
}
