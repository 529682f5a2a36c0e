//! The Kafka records of one processor transaction: each planned event with its headers, one
//! result per command (with the position of its last event), and the wait for the events'
//! delivery reports, whose offsets those positions name.

use std::collections::HashMap;
use std::time::Duration;

use logbook_events::{HEADER_TRACEPARENT, Position, event_headers};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use super::batch::{Plan, PlannedEvent, PlannedOutcome, PositionRef};
use super::delivery::{DeliveryContext, UNTRACKED};
use crate::envelope::{CommandResult, Outcome};
use crate::txn::{KafkaTxnClient, TxnError, send};

type Client = KafkaTxnClient<DeliveryContext>;

/// Waits for the delivery reports of the `count` events: their offsets by index.
pub(super) fn acknowledged(
    client: &Client,
    count: usize,
    timeout: Duration,
) -> Result<HashMap<usize, i64>, TxnError> {
    let context = client.producer().context();
    if !context.wait_settled(count, timeout) {
        return Err(TxnError::abort("events not acknowledged in time"));
    }
    context.take().map_err(|failure| {
        tracing::warn!(%failure, "an event was not delivered");
        TxnError::abort(format!("an event was not delivered: {failure}"))
    })
}

/// Sends one result per command, with the position of its last event (`offsets` by event
/// index).
pub(super) fn send_results(
    client: &Client,
    topic: &str,
    plan: &Plan,
    offsets: &[i64],
    timeout: Duration,
) -> Result<(), TxnError> {
    for result in &plan.results {
        let outcome = match &result.outcome {
            PlannedOutcome::Accepted {
                version,
                position,
                duplicate,
            } => {
                let position = match *position {
                    PositionRef::Known(position) => position,
                    PositionRef::Pending(index) => Position::new(result.partition, offsets[index]),
                };
                Outcome::Accepted {
                    version: *version,
                    position: position.to_token(),
                    duplicate: *duplicate,
                }
            }
            PlannedOutcome::Rejected {
                kind,
                code,
                message,
            } => Outcome::Rejected {
                kind: *kind,
                code: (*code).to_string(),
                message: message.clone(),
            },
        };
        let record = CommandResult {
            command_id: result.command_id,
            aggregate_id: result.aggregate_id,
            outcome,
            transfer: result.transfer,
        };
        let (key, payload) = (result.command_id.to_string(), record.encode());
        let mut record = BaseRecord::with_opaque_to(topic, UNTRACKED)
            .key(&key)
            .payload(&payload);
        if let Some(partition) = result.reply_partition {
            record = record.partition(partition);
        }
        send(client.producer(), record, timeout)?;
    }
    Ok(())
}

/// The Kafka record of a planned event; `index` comes back with its delivery report.
pub(super) fn event_record<'a>(
    topic: &'a str,
    index: usize,
    event: &PlannedEvent,
    key: &'a String,
    payload: &'a Vec<u8>,
) -> BaseRecord<'a, String, Vec<u8>, usize> {
    let mut headers = OwnedHeaders::new();
    for (name, value) in event_headers(&event.envelope) {
        headers = headers.insert(Header {
            key: name,
            value: Some(&value),
        });
    }
    if let Some(traceparent) = &event.traceparent {
        headers = headers.insert(Header {
            key: HEADER_TRACEPARENT,
            value: Some(traceparent),
        });
    }
    BaseRecord::with_opaque_to(topic, index)
        .partition(event.partition)
        .key(key)
        .payload(payload)
        .headers(headers)
}
