//! Counting a transactional producer's records and their delivery reports, so that waiting
//! for the last report before the commit sleeps until it arrives instead of polling.
//!
//! [`send`](super::send) counts each record librdkafka accepted; the producer's context counts
//! each delivery report (delivered, failed or purged) as the polling thread serves it and wakes
//! the waiter. Both counts only grow, for the life of the context (a replaced producer gets a new
//! one), so the order in which a record's two counts arrive does not matter.
//!
//! The failed reports are counted too: [`Deliveries::all_delivered`] tells whether every record
//! sent is acknowledged, which decides how a transaction may be aborted
//! ([`super::transactor`]).

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// Records sent and delivery reports served, and a condition variable for the last report.
#[derive(Debug, Default)]
pub struct Deliveries {
    counts: Mutex<Counts>,
    reported: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sent: u64,
    reported: u64,
    /// Reports of records not delivered (failed, timed out or purged).
    failed: u64,
}

impl Deliveries {
    /// One more record accepted by librdkafka.
    pub fn sent(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.sent += 1;
        }
    }

    /// One more delivery report served (call it from `ProducerContext::delivery` for every
    /// record, whatever its outcome; `delivered`: the broker acknowledged it).
    pub fn reported(&self, delivered: bool) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.reported += 1;
            counts.failed += u64::from(!delivered);
            if counts.reported >= counts.sent {
                self.reported.notify_all();
            }
        }
    }

    /// Whether every record sent so far is acknowledged by the broker: none is waiting for its
    /// report, and no report was a failure.
    pub fn all_delivered(&self) -> bool {
        self.counts
            .lock()
            .map(|c| c.reported >= c.sent && c.failed == 0)
            .unwrap_or(false)
    }

    /// Sleeps until every record sent so far has its report; `false` when `deadline` passes
    /// first.
    pub fn wait_all_reported(&self, deadline: Instant) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        while counts.reported < counts.sent {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            counts = match self.reported.wait_timeout(counts, left) {
                Ok((counts, _)) => counts,
                Err(_) => return false,
            };
        }
        true
    }
}

/// A producer context that counts its deliveries (what [`super::KafkaTxnClient`] needs).
pub trait CountsDeliveries: ProducerContext + 'static {
    fn deliveries(&self) -> &Deliveries;
}

/// The context of a transactional producer that needs nothing but the counts: client errors
/// are reported like every Logbook client's ([`logbook_events::kafka::client_error`]).
#[derive(Debug, Default)]
pub struct Counting {
    deliveries: Deliveries,
}

impl ClientContext for Counting {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        logbook_events::kafka::client_error(&error, reason);
    }
}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.deliveries.reported(result.is_ok());
    }
}

impl CountsDeliveries for Counting {
    fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_wait_ends_with_the_last_report_in_whatever_order_the_counts_arrive() {
        let deliveries = Arc::new(Deliveries::default());
        deliveries.reported(true);
        deliveries.sent();
        deliveries.sent();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!deliveries.wait_all_reported(soon), "one report is missing");

        let reporter = Arc::clone(&deliveries);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            reporter.reported(true);
        });
        let started = Instant::now();
        assert!(deliveries.wait_all_reported(started + Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
        thread.join().expect("reporter");
        assert!(deliveries.wait_all_reported(Instant::now()));
    }

    #[test]
    fn all_delivered_needs_every_report_and_no_failure() {
        let deliveries = Deliveries::default();
        assert!(deliveries.all_delivered());
        deliveries.sent();
        assert!(!deliveries.all_delivered(), "a record without its report");
        deliveries.reported(true);
        assert!(deliveries.all_delivered());
        deliveries.sent();
        deliveries.reported(false);
        assert!(!deliveries.all_delivered(), "a failed record");
    }
}
