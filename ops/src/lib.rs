//! Logbook's operations on the log that need no HTTP: what operators, auditors and analysts run
//! from the command line (`logbook backup`, `restore`, `verify`, `export`, `replay`), and what
//! the HTTP API reuses from them (the NDJSON line format of `GET /v1/events`).
//!
//! - [`backup`]: the log is the backup: segment files of the events topic (and optionally the
//!   commands and results topics), incremental, resumable; the restore into fresh topics verifies
//!   checksums and hash chains and positions the consumer groups.
//! - [`tools`]: reading the events topic between bounds ([`tools::log`]), recomputing the hash
//!   chains ([`tools::verify`]), exports to NDJSON or CSV ([`tools::export`]), folding the log
//!   into a separate PostgreSQL schema ([`tools::replay`]) and the NDJSON line format
//!   ([`tools::lines`]).
//!
//! The crate depends on the log (`logbook-events`), the command envelope (`logbook-commands`)
//! and the read models (`logbook-projections`), never on the HTTP API; the `logbook` binary
//! turns settings into calls of this crate.

pub mod backup;
pub mod tools;
