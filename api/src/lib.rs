//! Logbook's HTTP API (axum): the command gateway, the queries, the auditors', analysts' and
//! admins' endpoints, and everything at the edge. The `logbook` binary (crate `logbook-cli`)
//! builds it with [`app::Application::build`] from typed [`settings`].
//!
//! - [`settings`]: the HTTP API's typed settings from flags and `LOGBOOK_*` variables (`*_FILE`
//!   for secrets);
//! - [`app`]: the application (router, middleware, graceful shutdown); [`state`]: what the
//!   handlers share; [`server`]: the listener with its connection limits and timeouts;
//! - [`routes`]: the endpoints; [`bus`]: what they need to send a command; [`gateway`]: the
//!   Kafka implementation (sending commands and awaiting their results); [`readiness`]: the
//!   probes behind `/health/ready`; [`rebuilds`]: the rebuilds this process started;
//! - [`auth`]: bearer tokens, verified once per request; [`policy`]: the roles and the role
//!   matrix; [`problem`]: problem+json errors;
//! - [`ratelimit`]: buckets per principal and per client address;
//! - [`security`]: TLS, security headers and CORS, the security audit trail;
//! - [`telemetry`]: logs and metrics;
//! - [`console`]: the web console at `/console` (assets in the binary, a client of `/v1`);
//! - [`openapi`]: the generated OpenAPI document and `/docs`; [`validation`]: command bodies
//!   against `schemas/commands`; [`idempotency`]: the Idempotency-Key store; [`reservations`]:
//!   transfer ids claimed for ever; [`limits`]: sizes, timeouts and the problem+json answers at
//!   the edges.

pub mod app;
pub mod auth;
pub mod bus;
pub mod console;
pub mod gateway;
pub mod idempotency;
pub mod limits;
pub mod openapi;
pub mod personal;
pub mod policy;
pub mod problem;
pub mod ratelimit;
pub mod readiness;
pub mod rebuilds;
pub mod reservations;
pub mod routes;
pub mod security;
pub mod server;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod validation;

#[cfg(test)]
mod router_tests;
