//! Where the processors and the sagas start after a restore, and the unfinished transfers.
//!
//! Their consumer groups lived in the lost cluster. On a restored log, starting them at the
//! beginning would run every old command again and re-send every old transfer step, so a restore
//! commits their offsets itself: the processors at the end of the commands topic (every command
//! there was applied or answered: a client that got no answer retries with its
//! Idempotency-Key), the sagas at the end of the events and results topics. A transfer that was
//! not finished when the backup was taken (debited, but neither completed nor refunded on its
//! source) then gets its next step from the restore itself, exactly as the saga would send it
//! (same command id, derived from the debit event): the credit if the target was not credited
//! yet, the completion if it was. The saga takes it from there (a refused credit is refunded).
//! A finished transfer is not touched, so no credit already in the log is sent again. Blocking.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use logbook_commands::envelope::{CommandEnvelope, TransferStep};
use logbook_commands::saga::steps;
use logbook_events::{AccountEvent, EventEnvelope, KafkaSettings};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(30);

/// An unfinished transfer: its debit (and where it was read), and whether the target was
/// credited.
#[derive(Debug, Clone)]
struct Open {
    partition: i32,
    debit: EventEnvelope,
    credited: bool,
}

/// Transfers debited but neither completed nor refunded on their source.
#[derive(Debug, Default, Clone)]
pub struct OpenTransfers {
    open: HashMap<Uuid, Open>,
    /// Partitions are restored one after the other, so a credit or the end of a transfer (on
    /// another partition) may come before its debit.
    credited: std::collections::HashSet<Uuid>,
    finished: std::collections::HashSet<Uuid>,
}

impl OpenTransfers {
    /// Notes an event restored into events partition `partition`.
    pub fn note(&mut self, partition: i32, envelope: &EventEnvelope) {
        if !matches!(
            envelope.event_type.as_str(),
            "TransferDebited" | "TransferCredited" | "TransferCompleted" | "TransferRefunded"
        ) {
            return;
        }
        match envelope.decode_account() {
            Ok(AccountEvent::TransferDebited { transfer_id, .. })
                if !self.finished.contains(&transfer_id) =>
            {
                let credited = self.credited.contains(&transfer_id);
                let debit = envelope.clone();
                let open = Open {
                    partition,
                    debit,
                    credited,
                };
                self.open.insert(transfer_id, open);
            }
            Ok(AccountEvent::TransferCredited { transfer_id, .. }) => {
                self.credited.insert(transfer_id);
                if let Some(open) = self.open.get_mut(&transfer_id) {
                    open.credited = true;
                }
            }
            Ok(
                AccountEvent::TransferCompleted { transfer_id, .. }
                | AccountEvent::TransferRefunded { transfer_id, .. },
            ) => {
                self.open.remove(&transfer_id);
                self.finished.insert(transfer_id);
            }
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The next step of every unfinished transfer, as the saga sends it.
    fn next_steps(&self) -> Vec<CommandEnvelope> {
        let now = Utc::now();
        let mut commands = Vec::new();
        for open in self.open.values() {
            let Ok(Some(credit)) = steps::on_event(&open.debit, open.partition, now) else {
                continue;
            };
            if !open.credited {
                commands.push(credit);
            } else if let Some(context) = credit.transfer {
                commands.push(steps::step(
                    context,
                    TransferStep::Complete,
                    credit.command_id,
                    now,
                ));
            }
        }
        commands
    }
}

/// Commits the processors' and the sagas' start offsets, then sends the next step of every
/// unfinished transfer (see the module docs).
pub fn position_groups(
    kafka: &KafkaSettings,
    partitions: i32,
    open: &OpenTransfers,
) -> Result<(), KafkaError> {
    let (topics, groups) = (kafka.topics(), kafka.groups());
    let ends = |topic: &str| -> Result<Vec<(i32, i64)>, KafkaError> {
        let reader: BaseConsumer = kafka.client_config().create()?;
        (0..partitions)
            .map(|p| Ok((p, reader.fetch_watermarks(topic, p, TIMEOUT)?.1)))
            .collect()
    };
    commit(
        kafka,
        &groups.processors,
        &topics.commands,
        &ends(&topics.commands)?,
    )?;
    commit(kafka, &groups.sagas, &topics.events, &ends(&topics.events)?)?;
    commit(
        kafka,
        &groups.sagas,
        &topics.results,
        &ends(&topics.results)?,
    )?;
    send_steps(kafka, &open.next_steps())
}

fn send_steps(kafka: &KafkaSettings, commands: &[CommandEnvelope]) -> Result<(), KafkaError> {
    if commands.is_empty() {
        return Ok(());
    }
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .create()?;
    let topic = kafka.topics().commands;
    for command in commands {
        let (key, payload) = (command.aggregate_id.to_string(), command.encode());
        producer
            .send(BaseRecord::to(&topic).key(&key).payload(&payload))
            .map_err(|(error, _)| error)?;
    }
    producer.flush(TIMEOUT)?;
    let by_kind: BTreeMap<&str, usize> =
        commands
            .iter()
            .fold(BTreeMap::new(), |mut counts, command| {
                *counts.entry(command.command.name()).or_default() += 1;
                counts
            });
    tracing::info!(?by_kind, "unfinished transfers sent on");
    Ok(())
}

fn commit(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&list, CommitMode::Sync)?;
    tracing::info!(group, topic, ?offsets, "consumer group positioned");
    Ok(())
}

#[cfg(test)]
mod tests {
    use logbook_commands::domain::AccountCommand;
    use logbook_events::{Actor, Currency, DebitOrigin, EventMeta, ZERO_HASH};

    use super::*;

    fn sealed(aggregate: Uuid, event: &AccountEvent) -> EventEnvelope {
        let meta = EventMeta {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
            actor: Actor {
                sub: "s".into(),
                role: "service".into(),
            },
        };
        EventEnvelope::new_sealed(meta, aggregate, 2, ZERO_HASH, event)
    }

    fn transfer(id: Uuid) -> (EventEnvelope, EventEnvelope, EventEnvelope) {
        let (from, to) = (Uuid::now_v7(), Uuid::now_v7());
        let debit = sealed(
            from,
            &AccountEvent::TransferDebited {
                transfer_id: id,
                to_account_id: to,
                amount: 5,
                currency: Currency::parse("EUR").expect("EUR"),
                balance_after: 0,
                reference: None,
            },
        );
        let credit = sealed(
            to,
            &AccountEvent::TransferCredited {
                transfer_id: id,
                from_account_id: from,
                amount: 5,
                balance_after: 5,
                reference: None,
                debit: Some(DebitOrigin {
                    partition: 1,
                    at: debit.occurred_at,
                }),
            },
        );
        let completed = sealed(
            from,
            &AccountEvent::TransferCompleted {
                transfer_id: id,
                to_account_id: to,
                amount: 5,
            },
        );
        (debit, credit, completed)
    }

    #[test]
    fn unfinished_transfers_get_their_next_step_and_finished_ones_nothing() {
        let (only_debited, credited, finished) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut open = OpenTransfers::default();
        let (debit, _, _) = transfer(only_debited);
        open.note(1, &debit);
        // the credit's partition may be restored before the debit's
        let (debit, credit, _) = transfer(credited);
        open.note(2, &credit);
        open.note(1, &debit);
        let (debit, credit, completed) = transfer(finished);
        open.note(1, &debit);
        open.note(2, &credit);
        open.note(1, &completed);
        assert_eq!(open.len(), 2);
        let steps = open.next_steps();
        let kinds: std::collections::BTreeSet<&str> =
            steps.iter().map(|c| c.command.name()).collect();
        assert_eq!(
            kinds,
            ["complete_transfer", "credit_for_transfer"]
                .into_iter()
                .collect()
        );
        for step in &steps {
            if let AccountCommand::CreditForTransfer { debit, .. } = &step.command {
                assert_eq!(debit.partition, 1);
            }
        }
    }
}
