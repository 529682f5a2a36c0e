//! Deciding a batch of commands on in-memory state: the processor's logic without Kafka.
//!
//! [`plan_batch`] turns the commands of a batch into the events and results to write in one
//! transaction. It changes nothing: the accounts it touched are returned as an overlay that the
//! worker merges into the partition state only after the transaction commits.
//!
//! Per command, in order: the key must belong to the partition it came from; a command id
//! applied before answers with its earlier outcome (if it asks for the same thing); a command
//! first issued longer ago than the dedupe horizon is refused as expired; then ownership and the
//! pure `decide`. A saga step whose effect is already in the account's state is answered as a
//! duplicate; saga steps never expire.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use logbook_events::partitioner::partition_of;
use logbook_events::{Actor, EventEnvelope, EventMeta, Position};
use uuid::Uuid;

use super::state::{PartitionState, Slot};
use crate::domain::intent::fingerprint;
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
    /// The results partition to write to (the gateway's), when the command named a valid one.
    pub reply_partition: Option<i32>,
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
    /// `occurred_at` of the last event planned per partition.
    pub last_event_at: HashMap<i32, DateTime<Utc>>,
    /// What the accepted commands applied.
    pub applied: Vec<AppliedCommand>,
}

/// An accepted command of the plan (it goes into the dedupe memory once committed).
#[derive(Debug, Clone, Copy)]
pub struct AppliedCommand {
    pub partition: i32,
    pub command_id: Uuid,
    pub fingerprint: u64,
    /// When the command was first attempted.
    pub issued_at: DateTime<Utc>,
    /// The index of its last event in [`Plan::events`].
    pub index: usize,
}

/// What a batch is decided with besides the commands and the state.
pub struct PlanInputs<'a> {
    /// The instant the processor decides at (events are stamped at or after it).
    pub now: DateTime<Utc>,
    /// The partition count the topics were created with (every key's partition follows it).
    pub partitions: i32,
    /// Makes event ids (UUID v7 in production).
    pub new_id: &'a mut dyn FnMut() -> Uuid,
}

impl std::fmt::Debug for PlanInputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanInputs")
            .field("now", &self.now)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// An earlier application of a command id, found in this batch or in the partition's memory.
struct Earlier {
    version: u64,
    position: PositionRef,
    fingerprint: u64,
}

/// Decides every command of `batch` against `states` (which must hold every partition of the
/// batch).
pub fn plan_batch(
    states: &HashMap<i32, &PartitionState>,
    batch: &[Incoming],
    inputs: PlanInputs<'_>,
) -> Plan {
    let PlanInputs {
        now,
        partitions,
        new_id,
    } = inputs;
    let mut plan = Plan::default();
    // command ids applied earlier in this batch
    let mut in_batch: HashMap<Uuid, Earlier> = HashMap::new();
    for message in batch {
        // a partition without state is not decided, and its offsets are not counted: the
        // commit must never move past a command that was not decided (the worker restores or
        // rewinds every partition of a batch first, so this is a guard, not a path)
        let Some(state) = states.get(&message.partition) else {
            tracing::error!(
                partition = message.partition,
                offset = message.offset,
                "a command of a partition without state: not decided, its offset not committed"
            );
            continue;
        };
        let next = plan.next_offsets.entry(message.partition).or_insert(0);
        *next = (*next).max(message.offset + 1);
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
        let wanted = fingerprint(command.aggregate_id, &command.command);
        let earlier = in_batch
            .get(&command.command_id)
            .map(|e| (e.version, e.position, e.fingerprint))
            .or_else(|| {
                state.dedupe.get(&command.command_id).map(|applied| {
                    let position = Position::new(message.partition, applied.offset);
                    (
                        applied.version,
                        PositionRef::Known(position),
                        applied.fingerprint,
                    )
                })
            });
        let outcome = if partition_of(command.aggregate_id, partitions) != message.partition {
            rejected(
                RejectionKind::Conflict,
                "wrong_partition",
                "the command's key does not belong to the partition it was read from".into(),
            )
        } else if let Some((version, position, applied)) = earlier {
            if applied == wanted {
                PlannedOutcome::Accepted {
                    version,
                    position,
                    duplicate: true,
                }
            } else {
                rejected(
                    RejectionKind::Conflict,
                    "command_id_conflict",
                    "this command id was applied to another request".into(),
                )
            }
        } else if !command.command.is_saga_step() && state.dedupe.expired(command.issued_at, now) {
            rejected(
                RejectionKind::Conflict,
                "command_expired",
                expired_message(&command),
            )
        } else if command.issued_at > now + skew_allowance() {
            rejected(
                RejectionKind::Conflict,
                "clock_skew",
                "the command was first sent later than the processor's clock allows: the clocks \
                 of gateway and processor differ by more than a minute"
                    .into(),
            )
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
                Ok(events) if events.is_empty() => {
                    // a saga step whose effect is in the state: at or before the last event.
                    // Its id is not remembered (that is answered above), which within the
                    // dedupe horizon means the step was applied under another id or the state
                    // is not the log's: worth a line for whoever investigates
                    tracing::warn!(
                        partition = message.partition,
                        offset = message.offset,
                        command_id = %command.command_id,
                        account = %command.aggregate_id,
                        transfer = ?command.transfer.map(|t| t.transfer_id),
                        step = command.command.name(),
                        "a transfer step without effect: the account's state already shows it"
                    );
                    let position = match last_index(&plan.events, message.partition) {
                        Some(index) => PositionRef::Pending(index),
                        None => PositionRef::Known(Position::new(
                            message.partition,
                            state.last_offset.unwrap_or(0),
                        )),
                    };
                    PlannedOutcome::Accepted {
                        version: slot.account.version(),
                        position,
                        duplicate: true,
                    }
                }
                Ok(events) => {
                    let mut at = plan
                        .last_event_at
                        .get(&message.partition)
                        .copied()
                        .or(state.last_event_at);
                    for event in &events {
                        let occurred_at = next_instant(at, now);
                        at = Some(occurred_at);
                        let meta = EventMeta {
                            event_id: new_id(),
                            occurred_at,
                            command_id: command.command_id,
                            correlation_id: command.correlation_id,
                            causation_id: command.causation_id.unwrap_or(command.command_id),
                            actor: command.actor.clone(),
                        };
                        let envelope = EventEnvelope::new_sealed(
                            meta,
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
                    if let Some(at) = at {
                        plan.last_event_at.insert(message.partition, at);
                    }
                    let version = slot.account.version();
                    let index = plan.events.len() - 1;
                    in_batch.insert(
                        command.command_id,
                        Earlier {
                            version,
                            position: PositionRef::Pending(index),
                            fingerprint: wanted,
                        },
                    );
                    plan.applied.push(AppliedCommand {
                        partition: message.partition,
                        command_id: command.command_id,
                        fingerprint: wanted,
                        issued_at: command.issued_at,
                        index,
                    });
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
            // the results topic has as many partitions as the commands topic
            reply_partition: command
                .reply_partition
                .filter(|p| (0..partitions).contains(p)),
            transfer: command.transfer,
            command_id: command.command_id,
            aggregate_id: command.aggregate_id,
            outcome,
        });
    }
    plan
}

fn skew_allowance() -> chrono::Duration {
    chrono::Duration::from_std(super::state::CLOCK_SKEW_ALLOWANCE).unwrap_or_default()
}

fn rejected(kind: RejectionKind, code: &'static str, message: String) -> PlannedOutcome {
    PlannedOutcome::Rejected {
        kind,
        code,
        message,
    }
}

fn expired_message(command: &CommandEnvelope) -> String {
    format!(
        "command {} was first sent at {}, longer ago than the processor remembers applied \
         commands: this attempt did nothing. Whether the first attempt was applied shows in \
         the account's history (GET /v1/audit/accounts/{}/events, by command_id) or its ledger",
        command.command_id,
        command.issued_at.to_rfc3339(),
        command.aggregate_id
    )
}

/// The instant of the next event of a partition: now, or just after its last event.
fn next_instant(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    match last {
        Some(last) if last >= now => last + chrono::Duration::microseconds(1),
        _ => now,
    }
}

/// The index of the last event planned for `partition`.
fn last_index(events: &[PlannedEvent], partition: i32) -> Option<usize> {
    events.iter().rposition(|e| e.partition == partition)
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
    decide(account, &command.command).map_err(|error| PlannedOutcome::Rejected {
        kind: error.kind(),
        code: error.code(),
        message: error.to_string(),
    })
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
        replying(aggregate_id, command_id, command, None)
    }

    /// A command whose gateway reads results partition `reply_partition`.
    fn replying(
        aggregate_id: Uuid,
        command_id: Uuid,
        command: AccountCommand,
        reply_partition: Option<i32>,
    ) -> Incoming {
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
            reply_partition,
        };
        Incoming {
            partition: 0,
            offset: 0,
            payload: envelope.encode(),
        }
    }

    #[test]
    fn a_result_goes_to_the_reply_partition_only_when_it_exists() {
        let state = PartitionState::new(std::time::Duration::from_secs(900), 100);
        let states = HashMap::from([(0, &state)]);
        let open = |reply| {
            let command = AccountCommand::Open {
                owner_id: "o".into(),
                currency: Currency::parse("EUR").expect("EUR"),
                overdraft_limit: 0,
                holder: None,
            };
            replying(Uuid::new_v4(), Uuid::new_v4(), command, reply)
        };
        let mut batch = vec![open(Some(3)), open(Some(4)), open(Some(-1)), open(None)];
        for (offset, message) in batch.iter_mut().enumerate() {
            message.offset = offset as i64;
        }
        let inputs = PlanInputs {
            now: Utc::now(),
            partitions: 4,
            new_id: &mut Uuid::now_v7,
        };
        let plan = plan_batch(&states, &batch, inputs);
        let replies: Vec<Option<i32>> = plan.results.iter().map(|r| r.reply_partition).collect();
        // partition 4 of 4 does not exist: producing there would fail every transaction
        assert_eq!(replies, [Some(3), None, None, None]);
    }

    #[test]
    fn a_partition_without_state_is_neither_decided_nor_counted_for_the_commit() {
        let state = PartitionState::new(std::time::Duration::from_secs(900), 100);
        let states = HashMap::from([(0, &state)]);
        let deposit = AccountCommand::Deposit {
            amount: 5,
            reference: None,
        };
        let mut stray = command(Uuid::new_v4(), Uuid::new_v4(), deposit);
        (stray.partition, stray.offset) = (1, 7);
        let inputs = PlanInputs {
            now: Utc::now(),
            partitions: 2,
            new_id: &mut Uuid::now_v7,
        };
        let plan = plan_batch(&states, &[stray], inputs);
        assert!(plan.results.is_empty() && plan.events.is_empty());
        assert!(
            !plan.next_offsets.contains_key(&1),
            "{:?}",
            plan.next_offsets
        );
    }

    fn plan(state: &PartitionState, batch: &mut [Incoming]) -> Plan {
        for (offset, message) in batch.iter_mut().enumerate() {
            message.offset = offset as i64 + 10;
        }
        let states = HashMap::from([(0, state)]);
        let inputs = PlanInputs {
            now: Utc::now(),
            partitions: 1,
            new_id: &mut Uuid::now_v7,
        };
        plan_batch(&states, batch, inputs)
    }

    use crate::domain::AccountCommand;

    #[test]
    fn a_batch_decides_in_order_on_its_own_changes_and_dedupes_inside_itself() {
        let state = PartitionState::new(std::time::Duration::from_secs(900), 100);
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
                    holder: None,
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
        let mut state = PartitionState::new(std::time::Duration::from_secs(900), 100);
        let account = Uuid::new_v4();
        let eur = Currency::parse("EUR").expect("EUR");
        let open = AccountCommand::Open {
            owner_id: "alice".into(),
            currency: eur,
            overdraft_limit: 0,
            holder: None,
        };
        let planned = plan(&state, &mut [command(account, Uuid::new_v4(), open)]);
        for ((partition, id), slot) in planned.overlay {
            assert_eq!((partition, slot.account.id()), (0, id));
            state.accounts.insert(slot);
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
