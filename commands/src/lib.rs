//! Logbook's write side.
//!
//! - [`domain`]: the pure account aggregate (`decide` and `apply`), no I/O.
pub mod domain;
