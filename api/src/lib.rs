//! Logbook's HTTP API and the `logbook` binary's roles.
//!
//! - [`settings`]: typed settings from flags and `LOGBOOK_*` variables (`*_FILE` for secrets);
//!   [`processing`]: the processors' and sagas' part of them;
//! - [`cli`]: the subcommands: the roles (`serve`, `process`, `saga`, `project`, `all`),
//!   set-up (`topics`, `migrate`, `token`, `openapi`), maintenance (`rebuild`,
//!   `prune-security-audit`) and the operations on the log (`verify`, `export`, `replay`,
//!   `backup`, `restore`), whose work is in the `logbook-ops` crate ([`cli_ops`] calls it);
//! - [`roles`]: running roles until a shutdown signal;
//! - [`app`]: the axum application (state, middleware, graceful shutdown); [`server`]: the
//!   listener with its connection limits and timeouts;
//! - [`routes`]: the endpoints; [`bus`]: what they need to send a command; [`gateway`]: the
//!   Kafka implementation (sending commands and awaiting their results);
//! - [`auth`]: bearer tokens; [`policy`]: the role matrix; [`problem`]: problem+json errors;
//! - [`ratelimit`]: token buckets per principal and per client IP;
//! - [`security`]: TLS, security headers and CORS, the security audit trail;
//! - [`telemetry`]: logs and metrics;
//! - [`openapi`]: the generated OpenAPI document and `/docs`; [`validation`]: command bodies
//!   against `schemas/commands`; [`idempotency`]: the Idempotency-Key store; [`reservations`]:
//!   transfer ids claimed for ever; [`limits`]: sizes,
//!   timeouts and the problem+json answers at the edges.
pub mod app;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod cli_ops;
pub mod gateway;
pub mod idempotency;
pub mod limits;
pub mod openapi;
pub mod policy;
pub mod problem;
pub mod processing;
pub mod ratelimit;
pub mod readiness;
pub mod reservations;
pub mod roles;
pub mod routes;
pub mod security;
pub mod server;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod validation;

#[cfg(test)]
mod router_tests;
