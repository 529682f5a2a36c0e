//! `logbook restore`: writes a backup back into the configured topics.
//!
//! Per partition, in offset order, it checks each segment's SHA-256 and record count, checks
//! the hash chain of every event (one [`ChainVerifier`] over the whole events topic), and only
//! then produces the segment's records to the same partition with their key, headers and
//! timestamp. Target offsets are dense (the source's gaps of transaction markers and aborted
//! records are not reproduced), so a restored partition holding `n` records holds exactly the
//! backup's first `n`: a restore run again after an interruption checks that prefix (first and
//! last record) and continues after it. A partition holding anything else is refused unless
//! [`RestoreOptions::force`] is set, which appends the whole backup after what is there.
//! At the end the processors' and sagas' consumer groups are positioned ([`super::groups`]).

use std::path::PathBuf;

use logbook_events::topics::{TopicError, TopicLayout, ensure_topics};
use logbook_events::{ChainBreak, ChainVerifier, KafkaSettings, decode};

use super::groups::{OpenTransfers, position_groups};
use super::manifest::{Manifest, ManifestError, PartitionBackup, TopicBackup, TopicRole};
use super::progress::Progress;
use super::segment::{SegmentError, StoredRecord, read_segment};
use super::source::{PartitionSource, SourceError};
use super::target::{RestoreProducer, TargetError, TargetPartition, inspect};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub from: PathBuf,
    /// Append even to partitions that hold records that are not a prefix of this backup.
    pub force: bool,
    pub progress: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub records_written: u64,
    /// Records already in place from an earlier, interrupted run.
    pub records_skipped: u64,
    pub events_verified: u64,
    pub aggregates_verified: usize,
    /// Event records whose payload is not an envelope (restored as they are, not verified).
    pub undecodable_events: u64,
    /// Transfers debited but neither credited nor refunded: the sagas start at the first.
    pub open_transfers: usize,
}

/// How a partition's restore goes on: the first `skip` records are in place, and the backup's
/// record number `i` lands at target offset `base + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placement {
    skip: u64,
    base: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0} holds no backup (no manifest.json)")]
    NoBackup(PathBuf),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Topics(#[from] TopicError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{topic} has {found} partitions, the backup {expected}: restore into new topics")]
    Partitions {
        topic: String,
        found: i32,
        expected: i32,
    },
    #[error(
        "{topic} p{partition} is not empty (offsets {low}..{high}) and does not hold a prefix of this backup; pass --force to append anyway"
    )]
    NotEmpty {
        topic: String,
        partition: i32,
        low: i64,
        high: i64,
    },
    #[error("{0} stamps records with the append time: the backup's timestamps would be lost")]
    LogAppendTime(String),
    #[error("{file}: {reason}")]
    Inconsistent { file: String, reason: String },
    #[error("the backup's event log is broken, restore stopped before writing it: {0}")]
    Chain(#[from] ChainBreak),
}

/// Where a partition's restore starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The backup's first `n` records are in place: write from index `n`.
    After(u64),
    /// `--force` on a partition with other records: append the whole backup.
    Append,
}

/// Decides where a partition's restore starts from what the target holds. Pure.
pub fn start_of(
    target: &TargetPartition,
    backup_first: Option<&StoredRecord>,
    backup_at_high: Option<&StoredRecord>,
    backup_records: u64,
    force: bool,
) -> Option<Start> {
    if target.high <= target.low {
        return Some(Start::After(0));
    }
    let prefix = target.low == 0
        && (target.high as u64) <= backup_records
        && same(target.first.as_ref(), backup_first)
        && same(target.last.as_ref(), backup_at_high);
    match (prefix, force) {
        (true, _) => Some(Start::After(target.high as u64)),
        (false, true) => Some(Start::Append),
        (false, false) => None,
    }
}

/// Same key, headers, payload and timestamp (the offset and timestamp type may differ).
fn same(target: Option<&StoredRecord>, backup: Option<&StoredRecord>) -> bool {
    match (target, backup) {
        (Some(a), Some(b)) => {
            a.key == b.key
                && a.headers == b.headers
                && a.payload == b.payload
                && a.timestamp == b.timestamp
        }
        _ => false,
    }
}

/// Restores every topic of the backup in `options.from`. Blocking.
pub fn run_restore(
    kafka: &KafkaSettings,
    layout: &TopicLayout,
    options: &RestoreOptions,
) -> Result<RestoreReport, RestoreError> {
    let manifest = Manifest::load(&options.from)?
        .ok_or_else(|| RestoreError::NoBackup(options.from.clone()))?;
    let events = manifest.topic(TopicRole::Events);
    let layout = TopicLayout {
        partitions: events.map_or(layout.partitions, |t| t.partitions),
        ..*layout
    };
    ensure_topics(kafka, &layout)?;
    let source = PartitionSource::new(kafka)?;
    let producer = RestoreProducer::new(kafka)?;
    let total: u64 = manifest.topics.iter().map(TopicBackup::records).sum();
    let progress = Progress::new(options.progress, "restore", total);
    let mut run = Run {
        kafka,
        options,
        source: &source,
        producer: &producer,
        progress: &progress,
        verifier: ChainVerifier::new(),
        open: OpenTransfers::default(),
        report: RestoreReport::default(),
    };
    // Every partition is checked before anything is written: a refusal leaves no trace.
    let mut plans = Vec::new();
    for topic in &manifest.topics {
        plans.push((topic, run.check_topic(topic)?));
    }
    for (topic, (name, placements)) in plans {
        for (partition, placement) in topic.partition_backups.iter().zip(placements) {
            run.partition(topic.role, &name, partition, placement)?;
        }
    }
    progress.finish();
    position_groups(kafka, layout.partitions, &run.open).map_err(TargetError::from)?;
    run.report.open_transfers = run.open.len();
    run.report.events_verified = run.verifier.events_checked();
    run.report.aggregates_verified = run.verifier.aggregates_checked();
    Ok(run.report)
}

struct Run<'a> {
    kafka: &'a KafkaSettings,
    options: &'a RestoreOptions,
    source: &'a PartitionSource,
    producer: &'a RestoreProducer,
    progress: &'a Progress,
    verifier: ChainVerifier,
    open: OpenTransfers,
    report: RestoreReport,
}

impl Run<'_> {
    /// The target topic's name and, per backed-up partition, how many records are in place.
    fn check_topic(
        &mut self,
        backup: &TopicBackup,
    ) -> Result<(String, Vec<Placement>), RestoreError> {
        let topics = self.kafka.topics();
        let name = backup.role.topic_name(&topics).to_owned();
        let described = logbook_events::durability::describe_topics(self.kafka, &[&name])?;
        let found = described.first().map_or(0, |t| t.partitions);
        let stamping = described
            .first()
            .and_then(|t| t.config.get("message.timestamp.type"));
        if stamping.is_some_and(|v| v == "LogAppendTime") {
            return Err(RestoreError::LogAppendTime(name));
        }
        if found != backup.partitions {
            return Err(RestoreError::Partitions {
                topic: name,
                found,
                expected: backup.partitions,
            });
        }
        let skips = backup
            .partition_backups
            .iter()
            .map(|partition| self.records_in_place(&name, partition))
            .collect::<Result<Vec<Placement>, RestoreError>>()?;
        Ok((name, skips))
    }

    /// How many of the backup's records the target partition holds already (see [`start_of`]).
    fn records_in_place(
        &self,
        topic: &str,
        backup: &PartitionBackup,
    ) -> Result<Placement, RestoreError> {
        let target = inspect(self.kafka, self.source, topic, backup.partition)?;
        let first = self.record_at(backup, 0)?;
        let at_high = match u64::try_from(target.high - 1) {
            Ok(index) => self.record_at(backup, index)?,
            Err(_) => None,
        };
        let start = start_of(
            &target,
            first.as_ref(),
            at_high.as_ref(),
            backup.records,
            self.options.force,
        )
        .ok_or_else(|| RestoreError::NotEmpty {
            topic: topic.to_owned(),
            partition: backup.partition,
            low: target.low,
            high: target.high,
        })?;
        Ok(match start {
            Start::After(skip) => Placement { skip, base: 0 },
            Start::Append => {
                tracing::warn!(
                    topic,
                    partition = backup.partition,
                    "appending to a non-empty partition (--force)"
                );
                Placement {
                    skip: 0,
                    base: target.high,
                }
            }
        })
    }

    /// Verifies and writes a partition's segments, skipping the first `skip` records.
    fn partition(
        &mut self,
        role: TopicRole,
        topic: &str,
        backup: &PartitionBackup,
        placement: Placement,
    ) -> Result<(), RestoreError> {
        for segment in &backup.segments {
            let records = self.load(segment)?;
            if role == TopicRole::Events {
                self.verify(&records, backup.partition)?;
            }
            for (index, record) in (segment.first_index..).zip(&records) {
                if index < placement.skip {
                    self.report.records_skipped += 1;
                } else {
                    self.producer.send(topic, backup.partition, record)?;
                    self.report.records_written += 1;
                }
            }
            self.producer.flush()?;
            self.progress.advance(segment.records);
        }
        Ok(())
    }

    /// A segment's records, after its checksum and its manifest entry are checked.
    fn load(
        &self,
        segment: &super::manifest::SegmentInfo,
    ) -> Result<Vec<StoredRecord>, RestoreError> {
        let records = read_segment(&self.options.from.join(&segment.file), &segment.sha256)?;
        let inconsistent = |reason: String| RestoreError::Inconsistent {
            file: segment.file.clone(),
            reason,
        };
        if records.len() as u64 != segment.records {
            return Err(inconsistent(format!(
                "{} records, the manifest says {}",
                records.len(),
                segment.records
            )));
        }
        let offsets = records
            .first()
            .map(|r| r.offset)
            .zip(records.last().map(|r| r.offset));
        if offsets != Some((segment.first_offset, segment.last_offset))
            || records.windows(2).any(|w| w[0].offset >= w[1].offset)
        {
            return Err(inconsistent(format!(
                "offsets {offsets:?} do not match the manifest"
            )));
        }
        Ok(records)
    }

    /// The backup's record number `index` of a partition (reads the segment holding it).
    fn record_at(
        &self,
        backup: &PartitionBackup,
        index: u64,
    ) -> Result<Option<StoredRecord>, RestoreError> {
        let Some(segment) = backup
            .segments
            .iter()
            .find(|s| (s.first_index..s.first_index + s.records).contains(&index))
        else {
            return Ok(None);
        };
        let records = self.load(segment)?;
        Ok(records
            .into_iter()
            .nth((index - segment.first_index) as usize))
    }

    /// Checks the hash chains; notes unfinished transfers.
    fn verify(&mut self, records: &[StoredRecord], partition: i32) -> Result<(), RestoreError> {
        for record in records {
            match record.payload.as_deref().map(decode) {
                Some(Ok(envelope)) => {
                    self.verifier.check(&envelope)?;
                    self.open.note(partition, &envelope);
                }
                Some(Err(_)) | None => {
                    self.report.undecodable_events += 1;
                    tracing::warn!(
                        offset = record.offset,
                        "event record is not an envelope; restored unverified"
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::segment::TimestampKind;

    fn record(n: u8) -> StoredRecord {
        StoredRecord {
            offset: i64::from(n) * 2,
            timestamp_kind: TimestampKind::CreateTime,
            timestamp: 1_000 + i64::from(n),
            key: Some(vec![n]),
            headers: vec![("h".into(), Some(vec![n]))],
            payload: Some(vec![n; 8]),
        }
    }

    fn target(low: i64, high: i64, first: Option<u8>, last: Option<u8>) -> TargetPartition {
        let restored = |n: u8| StoredRecord {
            offset: 0,
            timestamp_kind: TimestampKind::CreateTime,
            ..record(n)
        };
        TargetPartition {
            low,
            high,
            first: first.map(restored),
            last: last.map(restored),
        }
    }

    #[test]
    fn an_empty_partition_starts_at_zero() {
        let empty = target(0, 0, None, None);
        assert_eq!(
            start_of(&empty, Some(&record(0)), None, 10, false),
            Some(Start::After(0))
        );
        let truncated = target(5, 5, None, None);
        assert_eq!(
            start_of(&truncated, None, None, 0, false),
            Some(Start::After(0))
        );
    }

    #[test]
    fn a_prefix_of_the_backup_is_continued_not_duplicated() {
        let half = target(0, 4, Some(0), Some(3));
        assert_eq!(
            start_of(&half, Some(&record(0)), Some(&record(3)), 10, false),
            Some(Start::After(4))
        );
        let all = target(0, 10, Some(0), Some(9));
        assert_eq!(
            start_of(&all, Some(&record(0)), Some(&record(9)), 10, false),
            Some(Start::After(10))
        );
    }

    #[test]
    fn other_content_is_refused_unless_forced() {
        let other = target(0, 4, Some(0), Some(7));
        assert_eq!(
            start_of(&other, Some(&record(0)), Some(&record(3)), 10, false),
            None
        );
        assert_eq!(
            start_of(&other, Some(&record(0)), Some(&record(3)), 10, true),
            Some(Start::Append)
        );
        let longer = target(0, 11, Some(0), Some(9));
        assert_eq!(start_of(&longer, Some(&record(0)), None, 10, false), None);
        let trimmed = target(2, 4, Some(0), Some(3));
        assert_eq!(
            start_of(&trimmed, Some(&record(0)), Some(&record(3)), 10, false),
            None
        );
    }
}
