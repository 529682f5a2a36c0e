//! What the log holds about transfers that did not settle: their events, the saga's step
//! commands and the processors' results, each with its partition and offset, and where the
//! saga and processor groups stand. A failed settle prints it, so that a chaos failure in CI
//! says which step went missing.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use logbook_commands::envelope::{CommandEnvelope, CommandResult};
use logbook_events::{AccountEvent, EventEnvelope, KafkaSettings};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

use super::{Record, read_committed};

/// The transfers debited but not both credited (or refunded) and completed (or refunded).
pub fn unsettled(log: &[(Record, EventEnvelope)]) -> Vec<Uuid> {
    let mut debited = Vec::new();
    let mut credited = HashSet::new();
    let mut closed = HashSet::new();
    for (_, envelope) in log {
        match envelope.decode_account() {
            Ok(AccountEvent::TransferDebited { transfer_id, .. }) => debited.push(transfer_id),
            Ok(AccountEvent::TransferCredited { transfer_id, .. }) => {
                credited.insert(transfer_id);
            }
            Ok(AccountEvent::TransferCompleted { transfer_id, .. }) => {
                closed.insert(transfer_id);
            }
            Ok(AccountEvent::TransferRefunded { transfer_id, .. }) => {
                credited.insert(transfer_id);
                closed.insert(transfer_id);
            }
            _ => {}
        }
    }
    debited.retain(|t| !(credited.contains(t) && closed.contains(t)));
    debited
}

/// A readable account of `transfers` in the log, and of both groups' positions. Blocking.
pub fn describe(
    kafka: &KafkaSettings,
    log: &[(Record, EventEnvelope)],
    transfers: &[Uuid],
) -> String {
    let wanted: HashSet<Uuid> = transfers.iter().copied().collect();
    let topics = kafka.topics();
    let mut out = String::new();
    for (record, envelope) in log {
        let transfer = match envelope.decode_account() {
            Ok(
                AccountEvent::TransferDebited { transfer_id, .. }
                | AccountEvent::TransferCredited { transfer_id, .. }
                | AccountEvent::TransferCompleted { transfer_id, .. }
                | AccountEvent::TransferRefunded { transfer_id, .. },
            ) => transfer_id,
            _ => continue,
        };
        if wanted.contains(&transfer) {
            let _ = writeln!(
                out,
                "  event {transfer} {} at events[{}]@{} account {} v{} event_id {} command {} {}",
                envelope.event_type,
                record.partition,
                record.offset,
                envelope.aggregate_id,
                envelope.sequence,
                envelope.event_id,
                envelope.command_id,
                envelope.occurred_at,
            );
        }
    }
    for record in read_committed(kafka, &topics.commands) {
        let Ok(command) = CommandEnvelope::decode(&record.payload) else {
            continue;
        };
        let Some(context) = command.transfer.filter(|c| wanted.contains(&c.transfer_id)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "  command {} {:?} at commands[{}]@{} id {} issued {}",
            context.transfer_id,
            context.step,
            record.partition,
            record.offset,
            command.command_id,
            command.issued_at,
        );
    }
    for record in read_committed(kafka, &topics.results) {
        let Ok(result) = CommandResult::decode(&record.payload) else {
            continue;
        };
        let Some(context) = result.transfer.filter(|c| wanted.contains(&c.transfer_id)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "  result {} {:?} at results[{}]@{} id {} {:?}",
            context.transfer_id,
            context.step,
            record.partition,
            record.offset,
            result.command_id,
            result.outcome,
        );
    }
    let groups = kafka.groups();
    for (group, topic) in [
        (&groups.sagas, &topics.events),
        (&groups.sagas, &topics.results),
        (&groups.processors, &topics.commands),
    ] {
        let _ = writeln!(out, "  {}", positions(kafka, group, topic));
    }
    out
}

/// `group` on `topic`: committed offset / log end, per partition.
fn positions(kafka: &KafkaSettings, group: &str, topic: &str) -> String {
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = match kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
    {
        Ok(consumer) => consumer,
        Err(error) => return format!("{group} on {topic}: {error}"),
    };
    let partitions: Vec<i32> = match consumer.fetch_metadata(Some(topic), timeout) {
        Ok(metadata) => metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect(),
        Err(error) => return format!("{group} on {topic}: {error}"),
    };
    let mut list = TopicPartitionList::new();
    for partition in &partitions {
        list.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(list, timeout);
    // the same question without read_committed answers the high watermark, not the last stable
    // offset: a transaction left open shows as a difference
    let uncommitted: Option<BaseConsumer> = kafka
        .client_config()
        .set("isolation.level", "read_uncommitted")
        .create()
        .ok();
    let mut out = format!("{group} on {topic} (committed/stable end/high watermark):");
    for partition in partitions {
        let at = committed
            .as_ref()
            .ok()
            .and_then(|c| c.find_partition(topic, partition))
            .map(|e| match e.offset() {
                Offset::Offset(o) => o.to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|| "?".into());
        let end = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map(|(_, high)| high.to_string())
            .unwrap_or_else(|_| "?".into());
        let high = uncommitted
            .as_ref()
            .and_then(|c| c.fetch_watermarks(topic, partition, timeout).ok())
            .map_or_else(|| "?".into(), |(_, high)| high.to_string());
        let _ = write!(out, " [{partition}] {at}/{end}/{high}");
    }
    out
}
