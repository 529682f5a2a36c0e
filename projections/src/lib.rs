//! Logbook's read side: PostgreSQL read models folded from the event log.
//!
//! - [`db`]: connecting to PostgreSQL and running the migrations (one folder, `migrations/`).
pub mod db;
