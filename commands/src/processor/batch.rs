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
                position: PositionRef::Known(applied.position),
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
