//! `wait-projected`: returns once a projection's stored offsets add up to a number of events
//! (the finish line of the backlog phase's catch-up), polling on one connection.
//!
//! The phase used to poll with a new `psql` process every 100 ms: a process, a connection and
//! a backend each time, about a fifth of this 2-core machine's CPU during the very catch-up it
//! timed (perf, bench run 20261130T182632Z: `psql` 12 % of all samples besides the backends).

use std::time::{Duration, Instant};

use clap::Args;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::baseline::copy::DbArgs;

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The projection (`ledger`, `archive`).
    #[arg(long)]
    pub projection: String,
    /// The sum of its partitions' next offsets to wait for.
    #[arg(long)]
    pub events: i64,
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
}

pub async fn run(args: WaitArgs) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&args.db.options()?).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(next_offset), 0)::int8 FROM projection_offsets \
             WHERE projection = $1",
        )
        .bind(&args.projection)
        .fetch_one(&mut conn)
        .await?;
        if done >= args.events {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "projection {} did not catch up within {} s ({done} of {} events)",
            args.projection,
            args.timeout_s,
            args.events
        );
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    }
}
