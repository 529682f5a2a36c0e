//! Backup and restore of the event log: the log is the backup (docs/operations.md).
//!
//! PostgreSQL holds nothing that cannot be rebuilt from the events topic, so backing up Logbook
//! means copying that topic (and optionally the commands and results topics) record by record.
//!
//! - [`segment`]: zstd-compressed segment files of one partition's records, SHA-256 per file;
//! - [`manifest`]: the folder's `manifest.json` (partitions, segments, bookmarks, topic config);
//! - [`source`]: read_committed reading of a partition up to its stable end;
//! - [`backup`]: `logbook backup`, incremental and resumable;
//! - [`target`]: the idempotent, gapless producer and what target partitions hold;
//! - [`restore`]: `logbook restore`, verifying checksums and hash chains, resumable;
//! - [`groups`]: where the processors and sagas start on a restored log;
//! - [`progress`]: the progress bar on stderr.

#[allow(clippy::module_inception)]
pub mod backup;
pub mod groups;
pub mod manifest;
pub mod progress;
pub mod restore;
pub mod segment;
pub mod source;
pub mod target;

pub use backup::{BackupError, BackupOptions, BackupReport, run_backup};
pub use manifest::{MANIFEST_FILE, Manifest, TopicRole};
pub use restore::{RestoreError, RestoreOptions, RestoreReport, run_restore};
