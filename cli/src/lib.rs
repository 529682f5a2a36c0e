//! The `logbook` binary's library: the command line and the wiring of the roles. It is thin on
//! purpose; the work is in the other crates.
//!
//! - [`cli`]: the subcommands and their flags: the roles (`serve`, `process`, `saga`, `project`,
//!   `all`), set-up (`topics`, `migrate`, `token`, `openapi`), maintenance (`rebuild`,
//!   `prune-security-audit`) and the operations on the log (`verify`, `export`, `replay`,
//!   `backup`, `restore`);
//! - [`cli_ops`]: settings in, the work of `logbook-ops` out, for the operations on the log;
//! - [`roles`]: running a set of roles (the HTTP API of `logbook-api`, the processors and sagas
//!   of `logbook-commands`, the projectors of `logbook-projections`) until a shutdown signal, and
//!   stopping them all when one fails or Kafka refuses the process.

pub mod cli;
pub mod cli_ops;
pub mod roles;
pub mod settings;
