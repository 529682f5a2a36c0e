//! The baselines the Logbook figures are divided by, run by the same `scripts/dev bench`:
//! raw Kafka produce with and without transactions, raw COPY into PostgreSQL, and a plain
//! PostgreSQL ledger and the cqrs-es + postgres-es ledger behind the same HTTP shape.

pub(crate) mod bodies;
pub mod copy;
pub mod cqrses;
pub mod kafka;
pub mod plainpg;
