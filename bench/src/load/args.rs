//! Options of the load generator and the operation mix.

use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;

use crate::procstat::Watched;

/// `logbook-bench load`: drive the HTTP API at a constant arrival rate.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Base URL of the API under test, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "LOGBOOK_BENCH_URL")]
    pub url: String,
    /// File holding the bearer token for commands and reads (role service).
    #[arg(long, env = "LOGBOOK_BENCH_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// File holding an admin token: samples GET /v1/admin/projections for the projector lag.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Label of the system under test in the report (logbook, plain-pg, ...).
    #[arg(long, default_value = "logbook")]
    pub label: String,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Arrival rate: commands per second, whatever the answers take (open loop).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Concurrent connections (most requests in flight).
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// Operation mix in percent.
    #[arg(long, default_value = "deposit=50,withdraw=30,transfer=20")]
    pub mix: Mix,
    /// Accounts the load is spread over (opened, and funded, before the run).
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Every n-th successful deposit or withdrawal is followed by a read with its position.
    #[arg(long, default_value_t = 20)]
    pub freshness_every: u64,
    /// Process trees to sample from /proc, as name=pid (repeatable).
    #[arg(long = "proc")]
    pub procs: Vec<Watched>,
    /// Where to write the JSON result.
    #[arg(long)]
    pub out: PathBuf,
}

/// One kind of request the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Deposit,
    Withdraw,
    Transfer,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Deposit, Op::Withdraw, Op::Transfer];

    pub fn name(self) -> &'static str {
        match self {
            Op::Deposit => "deposit",
            Op::Withdraw => "withdraw",
            Op::Transfer => "transfer",
        }
    }
}

/// Weights of the operations (percent, or any positive weights).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: Vec<(Op, u32)>,
    total: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error("expected op=weight with op deposit, withdraw or transfer, got {0:?}")]
    Entry(String),
    #[error("the weights add up to zero")]
    Empty,
}

impl FromStr for Mix {
    type Err = MixError;
    fn from_str(text: &str) -> Result<Self, MixError> {
        let mut weights = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || MixError::Entry(entry.to_owned());
            let (name, weight) = entry.split_once('=').ok_or_else(bad)?;
            let op = Op::ALL
                .into_iter()
                .find(|op| op.name() == name.trim())
                .ok_or_else(bad)?;
            let weight: u32 = weight.trim().parse().map_err(|_| bad())?;
            weights.push((op, weight));
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err(MixError::Empty);
        }
        Ok(Self { weights, total })
    }
}

impl Mix {
    /// The operation for a uniformly drawn number.
    pub fn pick(&self, draw: u64) -> Op {
        let mut point = (draw % u64::from(self.total)) as u32;
        for &(op, weight) in &self.weights {
            if point < weight {
                return op;
            }
            point -= weight;
        }
        Op::Deposit
    }

    /// The mix as written on the command line.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(op, w)| format!("{}={w}", op.name()))
            .collect();
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_in_proportion() {
        let mix: Mix = "deposit=50,withdraw=30,transfer=20".parse().expect("mix");
        let mut counts = [0u32; 3];
        for draw in 0..100 {
            counts[Op::ALL
                .iter()
                .position(|&o| o == mix.pick(draw))
                .expect("op")] += 1;
        }
        assert_eq!(counts, [50, 30, 20]);
        assert_eq!(mix.describe(), "deposit=50,withdraw=30,transfer=20");
        assert!("deposit=0".parse::<Mix>().is_err());
        assert!("steal=5".parse::<Mix>().is_err());
        assert!("deposit".parse::<Mix>().is_err());
    }
}
