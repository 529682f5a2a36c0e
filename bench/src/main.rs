//! `logbook-bench`: the load generator and the baselines behind `scripts/dev bench`.
//!
//! - `load`: open-loop HTTP load against Logbook or the plain PostgreSQL baseline;
//! - `produce`: raw Kafka produce of same-size events, with or without transactions;
//! - `copy`: raw COPY of the projectors' rows into PostgreSQL;
//! - `plain-pg`: the plain PostgreSQL ledger (`SELECT … FOR UPDATE`) behind the same HTTP shape;
//! - `cqrs-es`: the same domain on the cqrs-es + postgres-es crates behind that shape.
//!
//! Each writes a JSON result; `bench/report.py` turns the results of a run into the report.

mod baseline;
mod load;
mod procstat;
mod summary;
mod synth;
mod wait;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "logbook-bench", about = "Logbook load generator and baselines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open-loop load on the HTTP API.
    Load(load::args::LoadArgs),
    /// Raw Kafka produce of same-size events (baselines a and b).
    Produce(baseline::kafka::ProduceArgs),
    /// Raw COPY of the projectors' rows (baseline c).
    Copy(baseline::copy::CopyArgs),
    /// The plain PostgreSQL ledger behind the same HTTP shape (baseline d).
    PlainPg(baseline::plainpg::PlainPgArgs),
    /// The same domain on cqrs-es + postgres-es behind the same HTTP shape (baseline e).
    CqrsEs(baseline::plainpg::PlainPgArgs),
    /// Waits until a projection has applied a number of events (one connection).
    WaitProjected(wait::WaitArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Produce(args) = cli.command {
        // librdkafka's transaction calls block: no async runtime needed.
        return Ok(baseline::kafka::run(args)?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Load(args) => load::run(args).await?,
            Command::Copy(args) => baseline::copy::run(args).await?,
            Command::PlainPg(args) => baseline::plainpg::run(args).await?,
            Command::CqrsEs(args) => baseline::cqrses::run(args).await?,
            Command::WaitProjected(args) => wait::run(args).await?,
            Command::Produce(_) => {}
        }
        Ok(())
    })
}
