//! The processor producer's delivery reports: [`DeliveryContext`] collects the offsets the
//! broker gave to the records of the open transaction (they become the `position` tokens), and
//! counts every record's report for the commit's wait ([`crate::txn::deliveries`]).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Message};

use crate::txn::{CountsDeliveries, Deliveries};

/// Opaque of a record whose offset is not tracked (the command results: the commit waits for
/// their reports and fails if one is not delivered).
pub const UNTRACKED: usize = usize::MAX;

/// Offsets of the records produced in the open transaction, by the index given at send time.
///
/// The producer's own polling thread (a `ThreadedProducer`) calls [`ProducerContext::delivery`];
/// the processor thread sleeps in [`DeliveryContext::wait_settled`] until the reports it needs
/// are in, so nothing spins while the broker acknowledges.
#[derive(Debug, Default)]
pub struct DeliveryContext {
    deliveries: Mutex<Tracked>,
    settled: Condvar,
    counts: Deliveries,
}

#[derive(Debug, Default)]
struct Tracked {
    offsets: HashMap<usize, i64>,
    failures: Vec<String>,
    /// Tracked records reported (delivered or failed) since the last reset.
    reported: usize,
}

impl DeliveryContext {
    /// Forgets the previous transaction's deliveries.
    pub fn reset(&self) {
        if let Ok(mut deliveries) = self.deliveries.lock() {
            deliveries.offsets.clear();
            deliveries.failures.clear();
            deliveries.reported = 0;
        }
    }

    /// Waits until `count` tracked records sent since the last reset have a delivery report;
    /// `false` when `timeout` passes first.
    pub fn wait_settled(&self, count: usize, timeout: Duration) -> bool {
        let Ok(deliveries) = self.deliveries.lock() else {
            return false;
        };
        self.settled
            .wait_timeout_while(deliveries, timeout, |d| d.reported < count)
            .map(|(_, waited)| !waited.timed_out())
            .unwrap_or(false)
    }

    /// Offsets by record index, or the first delivery failure.
    pub fn take(&self) -> Result<HashMap<usize, i64>, String> {
        let mut deliveries = self.deliveries.lock().map_err(|_| "poisoned".to_string())?;
        if let Some(failure) = deliveries.failures.first() {
            return Err(failure.clone());
        }
        Ok(std::mem::take(&mut deliveries.offsets))
    }
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        logbook_events::kafka::client_error(&error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        self.counts.reported(result.is_ok());
        if index == UNTRACKED {
            return;
        }
        let Ok(mut deliveries) = self.deliveries.lock() else {
            return;
        };
        match result {
            Ok(message) => {
                deliveries.offsets.insert(index, message.offset());
            }
            Err((error, _)) => deliveries.failures.push(error.to_string()),
        }
        deliveries.reported += 1;
        self.settled.notify_all();
    }
}

impl CountsDeliveries for DeliveryContext {
    fn deliveries(&self) -> &Deliveries {
        &self.counts
    }
}
