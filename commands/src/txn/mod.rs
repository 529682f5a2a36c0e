//! The Kafka transactional loop shared by the command processor and the transfer saga:
//! consume a batch, decide, write it and the consumed offsets in ONE transaction, and rewind
//! when the transaction does not commit.
//!
//! - [`group`]: group membership (read_committed, manual offsets), where partitions start
//!   (refusing partitions whose committed offsets are lost), rewinding;
//! - [`epochs`]: ownership epochs per partition, so nothing fetched under an earlier
//!   ownership is used;
//! - [`transactor`]: one transaction and its failure handling (retry what librdkafka says to
//!   retry, abort what cannot commit, and never take an unclear commit for an abort);
//! - [`producer`]: the transactional producer with an id stable for the process instance;
//! - [`deliveries`]: counting its records and delivery reports, to sleep until the last one.
//!
//! Waiting out an unavailable broker (backoff, one log line per outage) is
//! `logbook_events::retry`, shared with the projector, which keeps its offsets in PostgreSQL
//! and has its own loop in `logbook-projections`.

pub mod deliveries;
pub mod epochs;
pub mod group;
pub mod producer;
pub mod transactor;

pub use deliveries::{Counting, CountsDeliveries, Deliveries};
pub use epochs::RebalanceContext;
pub use group::{GroupError, GroupSettings, MissingOffsets};
pub use logbook_events::retry::{Backoff, Outage};
pub use producer::{KafkaTxnClient, TxnOffsets, send, settle, transactional_id};
pub use transactor::{Outcome, Transactor, TxnClient, TxnError, TxnErrorKind};
