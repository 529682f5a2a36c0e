//! `logbook backup`: copies the log into segment files, incrementally and resumably.
//!
//! Per partition it reads committed records from the manifest's bookmark up to the stable end
//! seen at the start, writes segments of at most [`BackupOptions::segment_records`] records and
//! saves the manifest after each finished segment. An interrupted run leaves at most one
//! unfinished `*.tmp` file, which the next run deletes before it continues from the bookmark.

use std::path::{Path, PathBuf};

use logbook_events::KafkaSettings;
use logbook_events::durability::{TopicDescription, describe_topics};
use logbook_events::topics::TopicError;

use super::manifest::{
    Manifest, ManifestError, PartitionBackup, SegmentInfo, TopicBackup, TopicRole, segment_file,
};
use super::progress::Progress;
use super::segment::{SegmentError, SegmentWriter};
use super::source::{PartitionSource, SourceError};

/// Configuration entries kept in the manifest besides the explicitly set ones.
const KEPT_CONFIG: [&str; 6] = [
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "message.timestamp.type",
];

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub out: PathBuf,
    /// Also back up the commands and command-results topics.
    pub include_commands_and_results: bool,
    pub segment_records: u64,
    pub progress: bool,
}

/// What a run added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    pub records_added: u64,
    pub segments_added: u64,
    pub bytes_added: u64,
    /// Records in the backup after the run (all topics).
    pub records_total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Topics(#[from] TopicError),
    #[error("backup folder {path}: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the folder holds a backup of prefix {found:?}, not {configured:?}: use a new folder")]
    OtherPrefix { found: String, configured: String },
    #[error(
        "{0} is not empty and holds no backup (no manifest.json): refusing to write into it; \
         give an empty or new folder"
    )]
    NotABackup(PathBuf),
    #[error("topic {0} does not exist")]
    MissingTopic(String),
    #[error(
        "{topic} p{partition} ends at {end} but the backup already reached {next}: the topic was recreated; use a new folder"
    )]
    Recreated {
        topic: String,
        partition: i32,
        end: i64,
        next: i64,
    },
}

/// Runs one backup into `options.out`. Blocking.
pub fn run_backup(
    kafka: &KafkaSettings,
    options: &BackupOptions,
) -> Result<BackupReport, BackupError> {
    let dir = options.out.as_path();
    std::fs::create_dir_all(dir).map_err(|source| folder(dir, source))?;
    let mut manifest = match Manifest::load(dir)? {
        Some(found) if found.topic_prefix != kafka.topic_prefix => {
            return Err(BackupError::OtherPrefix {
                found: found.topic_prefix,
                configured: kafka.topic_prefix.clone(),
            });
        }
        Some(found) => found,
        None if !is_empty(dir)? => return Err(BackupError::NotABackup(dir.to_path_buf())),
        None => Manifest::new(&kafka.topic_prefix, chrono::Utc::now()),
    };
    remove_leftovers(dir, &manifest)?;
    let roles = selected_roles(options.include_commands_and_results);
    let topics = kafka.topics();
    let names: Vec<&str> = roles.iter().map(|r| r.topic_name(&topics)).collect();
    let described = describe_topics(kafka, &names)?;
    let source = PartitionSource::new(kafka)?;
    let mut plan = Vec::new();
    for role in roles {
        let name = role.topic_name(&topics);
        let description = described
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| BackupError::MissingTopic(name.to_owned()))?;
        record_topic(&mut manifest, role, description);
        for partition in 0..description.partitions {
            let bounds = source.bounds(name, partition)?;
            let state = partition_state(&manifest, role, partition);
            if bounds.stable_end < state.next_offset {
                return Err(BackupError::Recreated {
                    topic: name.to_owned(),
                    partition,
                    end: bounds.stable_end,
                    next: state.next_offset,
                });
            }
            let from = state.next_offset.max(bounds.low);
            plan.push((role, name.to_owned(), partition, from, bounds.stable_end));
        }
    }
    manifest.save(dir)?;
    let total: i64 = plan.iter().map(|(.., from, end)| end - from).sum();
    let progress = Progress::new(options.progress, "backup", total.max(0) as u64);
    let mut report = BackupReport::default();
    for (role, name, partition, from, end) in plan {
        let mut job = PartitionJob {
            dir,
            manifest: &mut manifest,
            role,
            topic: &name,
            partition,
            options,
            report: &mut report,
        };
        job.copy(&source, from, end, &progress)?;
    }
    progress.finish();
    report.records_total = manifest.topics.iter().map(TopicBackup::records).sum();
    Ok(report)
}

fn selected_roles(all: bool) -> Vec<TopicRole> {
    if all {
        vec![TopicRole::Events, TopicRole::Commands, TopicRole::Results]
    } else {
        vec![TopicRole::Events]
    }
}

fn folder(path: &Path, source: std::io::Error) -> BackupError {
    BackupError::Folder {
        path: path.to_owned(),
        source,
    }
}

fn record_topic(manifest: &mut Manifest, role: TopicRole, description: &TopicDescription) {
    let config = description
        .config
        .iter()
        .filter(|(key, _)| KEPT_CONFIG.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match manifest.topic_mut(role) {
        Some(topic) => {
            topic.partitions = description.partitions;
            topic.replication_factor = description.replication_factor;
            topic.config = config;
        }
        None => manifest.topics.push(TopicBackup {
            role,
            name: description.name.clone(),
            partitions: description.partitions,
            replication_factor: description.replication_factor,
            config,
            partition_backups: Vec::new(),
        }),
    }
}

fn partition_state(manifest: &Manifest, role: TopicRole, partition: i32) -> PartitionBackup {
    manifest
        .topic(role)
        .and_then(|t| {
            t.partition_backups
                .iter()
                .find(|p| p.partition == partition)
        })
        .cloned()
        .unwrap_or(PartitionBackup {
            partition,
            next_offset: 0,
            records: 0,
            segments: Vec::new(),
        })
}

fn is_empty(dir: &Path) -> Result<bool, BackupError> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| folder(dir, e))?
        .next()
        .is_none())
}

/// Deletes unfinished `*.tmp` files and finished segments the manifest never got to name: only
/// files named like segments, in the folders of the manifest's topics.
fn remove_leftovers(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let known: std::collections::HashSet<PathBuf> = manifest.files().map(|f| dir.join(f)).collect();
    let topics: std::collections::HashSet<&str> =
        manifest.topics.iter().map(|t| t.name.as_str()).collect();
    for topic in std::fs::read_dir(dir).map_err(|e| folder(dir, e))? {
        let topic = topic.map_err(|e| folder(dir, e))?.path();
        let ours = topic
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| topics.contains(n));
        if !topic.is_dir() || !ours {
            continue;
        }
        for partition in std::fs::read_dir(&topic).map_err(|e| folder(&topic, e))? {
            let partition = partition.map_err(|e| folder(&topic, e))?.path();
            if !partition.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&partition).map_err(|e| folder(&partition, e))? {
                let file = file.map_err(|e| folder(&partition, e))?.path();
                let segment_like = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".seg.zst") || n.ends_with(".seg.zst.tmp"));
                if file.is_file() && segment_like && !known.contains(&file) {
                    tracing::info!(file = %file.display(), "removing a leftover of an interrupted backup");
                    std::fs::remove_file(&file).map_err(|e| folder(&file, e))?;
                }
            }
        }
    }
    Ok(())
}

/// Copying one partition's new records into segments.
struct PartitionJob<'a> {
    dir: &'a Path,
    manifest: &'a mut Manifest,
    role: TopicRole,
    topic: &'a str,
    partition: i32,
    options: &'a BackupOptions,
    report: &'a mut BackupReport,
}

/// The segment being written and the offsets it covers.
struct Open {
    writer: SegmentWriter,
    first_offset: i64,
    last_offset: i64,
}

impl PartitionJob<'_> {
    fn copy(
        &mut self,
        source: &PartitionSource,
        from: i64,
        end: i64,
        progress: &Progress,
    ) -> Result<(), BackupError> {
        let mut open: Option<Open> = None;
        let mut position = from;
        source.read(self.topic, self.partition, from, end, |record| {
            let offset = record.offset;
            if open.is_none() {
                open = Some(self.start(offset)?);
            }
            if let Some(segment) = open.as_mut() {
                segment.writer.push(&record)?;
                segment.last_offset = offset;
            }
            progress.advance((offset + 1 - position).max(0) as u64);
            position = offset + 1;
            let full = open
                .as_ref()
                .is_some_and(|s| s.writer.records() >= self.options.segment_records);
            if full && let Some(segment) = open.take() {
                self.finish(segment, offset + 1)?;
            }
            Ok::<(), BackupError>(())
        })?;
        progress.advance((end - position).max(0) as u64);
        match open {
            Some(segment) => self.finish(segment, end),
            None => self.move_bookmark(end),
        }
    }

    fn start(&self, first_offset: i64) -> Result<Open, BackupError> {
        // The final name holds the next offset, known only at the end: `finish` names it.
        let file = segment_file(self.topic, self.partition, first_offset, first_offset);
        let path = self.dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| folder(parent, e))?;
        }
        Ok(Open {
            writer: SegmentWriter::create(&path)?,
            first_offset,
            last_offset: first_offset,
        })
    }

    fn finish(&mut self, segment: Open, next_offset: i64) -> Result<(), BackupError> {
        let file = segment_file(
            self.topic,
            self.partition,
            segment.first_offset,
            next_offset,
        );
        let written = segment.writer.finish(&self.dir.join(&file))?;
        let number = self.partition;
        let topic = self.topic_backup();
        let partition = topic.partition_mut(number);
        partition.add(SegmentInfo {
            file,
            first_index: partition.records,
            records: written.records,
            first_offset: segment.first_offset,
            last_offset: segment.last_offset,
            next_offset,
            bytes: written.bytes,
            sha256: written.sha256,
        });
        self.report.records_added += written.records;
        self.report.segments_added += 1;
        self.report.bytes_added += written.bytes;
        self.save()
    }

    /// Nothing new but markers or aborted records: only the bookmark moves.
    fn move_bookmark(&mut self, next_offset: i64) -> Result<(), BackupError> {
        let partition = self.partition;
        let state = self.topic_backup().partition_mut(partition);
        if state.next_offset == next_offset {
            return Ok(());
        }
        state.next_offset = next_offset;
        self.save()
    }

    fn topic_backup(&mut self) -> &mut TopicBackup {
        let role = self.role;
        let index = self
            .manifest
            .topics
            .iter()
            .position(|t| t.role == role)
            .unwrap_or_default();
        &mut self.manifest.topics[index]
    }

    fn save(&mut self) -> Result<(), BackupError> {
        self.manifest.updated_at = chrono::Utc::now();
        Ok(self.manifest.save(self.dir)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_that_is_not_a_backup_is_refused_and_left_alone() {
        let dir = std::env::temp_dir().join(format!("not-a-backup-{}", uuid::Uuid::new_v4()));
        let precious = dir.join("logbook.events/p0000/thesis.seg.zst");
        std::fs::create_dir_all(precious.parent().expect("parent")).expect("folders");
        std::fs::write(&precious, b"years of work").expect("file");
        let options = BackupOptions {
            out: dir.clone(),
            include_commands_and_results: false,
            segment_records: 10,
            progress: false,
        };
        // refused before any connection to Kafka is made
        let kafka = KafkaSettings::plaintext("127.0.0.1:1", "logbook");
        let refused = run_backup(&kafka, &options);
        assert!(
            matches!(refused, Err(BackupError::NotABackup(_))),
            "{refused:?}"
        );
        assert_eq!(
            std::fs::read(&precious).expect("still there"),
            b"years of work"
        );
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
