//! The main integration suite, one test binary (the whole stack is linked once), one module per
//! area. Every test runs against the shared Kafka and PostgreSQL of `scripts/dev services` with
//! topics and a database of its own, so the tests run in parallel. Tests that pause, kill or
//! reconfigure a service are in `tests/tests/fault_stage` instead.
//!
//! One binary means one process: the in-process apps share the metrics registry, so a test that
//! counts a process-wide metric runs its server as a child process (`TestEnv::serve_child`).
//!
//! Run one area with a filter: `cargo test -p logbook-tests --test suite -- exactly_once::`.

mod abuse;
mod admin;
mod analyst_docs;
mod api_contract;
mod audit;
mod broker;
mod console;
mod disaster;
mod edge;
mod exactly_once;
mod exactly_once_topology;
mod failover;
mod personal_data;
mod read_side;
mod results_routing;
mod security;
mod security_matrix;
mod snapshots;
mod transfers;
mod transfers_failover;
mod write_side;
