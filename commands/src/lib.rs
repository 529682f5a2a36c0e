//! Logbook's write side.
//!
//! - [`domain`]: the pure account aggregate (`decide` and `apply`), no I/O;
//! - [`envelope`]: the command and result records on Kafka;
//! - [`processor`]: the exactly-once command processor (Kafka transactions, one writer per
//!   partition);
//! - [`saga`]: the transfer process manager (credit after debit, refund after a rejected credit);
//! - [`txn`]: the Kafka transactional loop both are built on (groups, epochs, the transaction
//!   and its failure handling, backoff);
//! - [`metrics`]: the write side's Prometheus metrics.
pub mod domain;
pub mod envelope;
pub mod metrics;
#[cfg(feature = "kafka")]
pub mod processor;
#[cfg(feature = "kafka")]
pub mod saga;
#[cfg(feature = "kafka")]
pub mod txn;
