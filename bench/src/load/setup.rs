//! Before and around the run: opening the accounts, and the server's own counters.

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
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServerCounters {
    pub transactions_committed: f64,
    pub transactions_aborted: f64,
    pub commands: f64,
    pub events: f64,
}

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
                _ => {}
            }
        }
        counters
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            transactions_committed: self.transactions_committed - before.transactions_committed,
            transactions_aborted: self.transactions_aborted - before.transactions_aborted,
            commands: self.commands - before.commands,
            events: self.events - before.events,
        }
    }
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
}
