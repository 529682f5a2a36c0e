//! Before and around the run: opening the accounts, and the server's own counters.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use uuid::Uuid;

use super::client::{Api, ClientError};

/// Money paid into every account before the run, so withdrawals rarely hit a zero balance.
pub const FUNDING: i64 = 1_000_000_000;

/// How the accounts were opened.
#[derive(Debug, Serialize)]
pub struct Setup {
    pub accounts: usize,
    pub seconds: f64,
    /// Opens plus funding deposits per second, with `concurrency` requests in flight.
    pub commands_per_second: f64,
    pub concurrency: usize,
}

/// Opens and funds `count` accounts with `concurrency` requests in flight.
pub async fn open_accounts(
    api: &Api,
    count: usize,
    concurrency: usize,
) -> Result<(Vec<Uuid>, Setup), ClientError> {
    let started = Instant::now();
    let ids: Vec<Uuid> = stream::iter(0..count)
        .map(|_| api.open_funded(FUNDING))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let setup = Setup {
        accounts: ids.len(),
        seconds,
        commands_per_second: (2 * ids.len()) as f64 / seconds.max(1e-9),
        concurrency,
    };
    Ok((ids, setup))
}

/// The processor's counters from the Prometheus text (absent in systems without them).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerCounters {
    pub transactions_committed: f64,
    pub transactions_aborted: f64,
    pub commands: f64,
    pub events: f64,
    /// Time spent in each step of the Kafka transactions (`logbook_transaction_phase_seconds`),
    /// by `role/phase` (e.g. `processor/check`), and in each projector batch committed
    /// (`logbook_projection_batch_seconds`), by `projection/<name>`: seconds summed and how many.
    pub phases: BTreeMap<String, PhaseTime>,
}

/// Seconds spent in one transaction phase, over `count` transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PhaseTime {
    pub seconds: f64,
    pub count: f64,
}

const PHASE_METRIC: &str = "logbook_transaction_phase_seconds";
const BATCH_METRIC: &str = "logbook_projection_batch_seconds";

impl ServerCounters {
    pub fn parse(text: &str) -> Self {
        let mut counters = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            match name {
                "logbook_processor_transactions_total{outcome=\"committed\"}" => {
                    counters.transactions_committed = value
                }
                "logbook_processor_transactions_total{outcome=\"aborted\"}" => {
                    counters.transactions_aborted = value
                }
                "logbook_processor_commands_total" => counters.commands = value,
                "logbook_events_appended_total" => counters.events = value,
                _ => counters.phase(name, value),
            }
        }
        counters
    }

    /// A `_sum` or `_count` line of the transaction phase or projector batch histogram.
    fn phase(&mut self, name: &str, value: f64) {
        let (rest, projector) = match (
            name.strip_prefix(PHASE_METRIC),
            name.strip_prefix(BATCH_METRIC),
        ) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return,
        };
        let (is_sum, labels) = match (rest.strip_prefix("_sum"), rest.strip_prefix("_count")) {
            (Some(labels), _) => (true, labels),
            (_, Some(labels)) => (false, labels),
            _ => return,
        };
        let key = if projector {
            label(labels, "projection").map(|name| format!("projection/{name}"))
        } else {
            label(labels, "role")
                .zip(label(labels, "phase"))
                .map(|(role, phase)| format!("{role}/{phase}"))
        };
        let Some(key) = key else {
            return;
        };
        let entry = self.phases.entry(key).or_default();
        if is_sum {
            entry.seconds = value;
        } else {
            entry.count = value;
        }
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        let phases = self
            .phases
            .iter()
            .map(|(key, now)| {
                let then = before.phases.get(key).copied().unwrap_or_default();
                let delta = PhaseTime {
                    seconds: now.seconds - then.seconds,
                    count: now.count - then.count,
                };
                (key.clone(), delta)
            })
            .collect();
        Self {
            transactions_committed: self.transactions_committed - before.transactions_committed,
            transactions_aborted: self.transactions_aborted - before.transactions_aborted,
            commands: self.commands - before.commands,
            events: self.events - before.events,
            phases,
        }
    }
}

/// The value of label `name` in a Prometheus label set such as `{role="saga",phase="commit"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let inner = labels.strip_prefix('{')?.strip_suffix('}')?;
    inner.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_prometheus_text() {
        let text = "# TYPE x counter\n\
            logbook_processor_transactions_total{outcome=\"committed\"} 10\n\
            logbook_processor_commands_total 340\n\
            logbook_events_appended_total 400\n\
            logbook_other 5\n";
        let now = ServerCounters::parse(text);
        assert_eq!(now.transactions_committed, 10.0);
        assert_eq!(now.commands, 340.0);
        let diff = now.since(&ServerCounters {
            commands: 40.0,
            ..Default::default()
        });
        assert_eq!(diff.commands, 300.0);
        assert_eq!(diff.events, 400.0);
    }

    #[test]
    fn transaction_phases_are_read_by_role_and_phase() {
        let before = ServerCounters::parse(
            "logbook_transaction_phase_seconds_sum{role=\"processor\",phase=\"check\"} 1.5\n\
             logbook_transaction_phase_seconds_count{role=\"processor\",phase=\"check\"} 100\n",
        );
        let after = ServerCounters::parse(
            "logbook_transaction_phase_seconds_bucket{role=\"processor\",phase=\"check\",le=\"0.005\"} 90\n\
             logbook_transaction_phase_seconds_sum{role=\"processor\",phase=\"check\"} 2.5\n\
             logbook_transaction_phase_seconds_count{role=\"processor\",phase=\"check\"} 300\n\
             logbook_transaction_phase_seconds_sum{role=\"saga\",phase=\"commit\"} 0.7\n\
             logbook_transaction_phase_seconds_count{role=\"saga\",phase=\"commit\"} 70\n",
        );
        let diff = after.since(&before);
        assert_eq!(diff.phases.len(), 2);
        let check = diff.phases["processor/check"];
        assert_eq!((check.seconds, check.count), (1.0, 200.0));
        let commit = diff.phases["saga/commit"];
        assert_eq!((commit.seconds, commit.count), (0.7, 70.0));
    }

    #[test]
    fn projector_batches_are_read_by_projection() {
        let now = ServerCounters::parse(
            "logbook_projection_batch_seconds_bucket{projection=\"ledger\",le=\"0.01\"} 4\n\
             logbook_projection_batch_seconds_sum{projection=\"ledger\"} 0.25\n\
             logbook_projection_batch_seconds_count{projection=\"ledger\"} 50\n\
             logbook_projection_batch_seconds_sum{other=\"x\"} 9\n",
        );
        assert_eq!(now.phases.len(), 1);
        let ledger = now.phases["projection/ledger"];
        assert_eq!((ledger.seconds, ledger.count), (0.25, 50.0));
    }
}
