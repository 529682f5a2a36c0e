//! The fault stage: tests that start private Kafka and PostgreSQL servers of their own and pause,
//! kill or lock them down. Every test here is `#[ignore]`d so the main run skips it; the fault
//! stage of `scripts/dev test` runs them one at a time:
//! `cargo test -p logbook-tests --test fault_stage -- --ignored --test-threads=1`.
//!
//! - [`faults`]: SIGSTOP and SIGKILL of the broker, the database and the roles under load.
//! - [`chaos`]: a three-broker cluster, two instances of every role and a nemesis under load
//!   (the reduced run; `scripts/dev chaos` runs it longer and plots it).
//! - [`secure`]: TLS, SCRAM users, ACLs and database roles (`scripts/dev services --secure`).
//! - [`lost_ack`]: a record written but never acknowledged, then an abort, through a TCP relay
//!   the test cuts.

mod chaos;
mod faults;
mod lost_ack;
mod secure;
