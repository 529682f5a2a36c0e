//! Logbook's read side: PostgreSQL read models folded from the event log, exactly once.
//!
//! - [`db`]: connecting to PostgreSQL and running the migrations (one folder, `migrations/`);
//! - [`projection`]: the projections (`ledger`, `archive`), their tables, live or shadow;
//! - [`projector`]: the runtime: consumer groups, one transaction per batch, stored offsets;
//! - [`batch`]: consumed records → per-partition slices (pure);
//! - [`ledger`], [`archive`]: each projection's fold and set-based writes;
//! - [`copy`]: `COPY` rows for the single-writer shadow tables of a rebuild;
//! - [`apply`]: one batch = one transaction; [`offsets`]: `projection_offsets` and NOTIFY;
//! - [`progress`]: the API side of read-your-writes ([`progress::ProgressWatcher`]);
//! - [`queries`]: the query functions and cursors the HTTP API serves;
//! - [`rebuild`]: replaying a projection into shadow tables, then swapping them in;
//! - [`replay`]: folding the log (or an export) into a separate schema for analysts;
//! - [`admin`]: per projection and partition: stored offset, log end, lag, state;
//! - [`metrics`]: the read side's Prometheus metrics.
pub mod admin;
pub mod apply;
pub mod archive;
pub mod batch;
pub mod copy;
pub mod db;
pub mod ledger;
pub mod metrics;
pub mod offsets;
pub mod progress;
pub mod projection;
pub mod projector;
pub mod queries;
pub mod rebuild;
pub mod replay;

pub use progress::ProgressWatcher;
pub use projection::{Projection, Sink};
pub use projector::{ProjectorError, ProjectorSettings, run_until};

#[cfg(test)]
mod test_support;
