//! The `logbook` binary: parses the command line and runs it.
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = logbook_cli::cli::Cli::parse();
    match logbook_cli::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "logbook failed");
            eprintln!("logbook: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
