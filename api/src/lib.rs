//! Logbook's HTTP API and the `logbook` binary's roles.
//!
//! - [`settings`]: typed settings from flags and `LOGBOOK_*` variables (`*_FILE` for secrets);
//! - [`cli`]: the subcommands (`serve`, `process`, `all`, `token`, `topics`, `migrate`);
//! - [`roles`]: running roles until a shutdown signal;
//! - [`app`]: the axum application (state, middleware, listener, graceful shutdown);
//! - [`routes`]: the endpoints; [`gateway`]: sending commands and awaiting their results;
//! - [`auth`]: bearer tokens; [`policy`]: the role matrix; [`problem`]: problem+json errors;
//! - [`ratelimit`]: token buckets per principal and per client IP;
//! - [`telemetry`]: logs and metrics.
pub mod app;
pub mod auth;
pub mod cli;
pub mod gateway;
pub mod policy;
pub mod problem;
pub mod ratelimit;
pub mod roles;
pub mod routes;
pub mod settings;
pub mod telemetry;
