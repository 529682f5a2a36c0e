//! The backup manifest (`manifest.json`): which topics and partitions a backup folder holds,
//! the segments of each partition in offset order (offset range, record count, SHA-256), where
//! the next incremental run starts, and each topic's configuration when it was backed up.
//!
//! The manifest is replaced atomically (temp file, fsync, rename, fsync of the folder) after
//! every finished segment: whatever the manifest names is on disk and complete.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::segment::{sync_parent, temp_name};

/// The manifest's file name inside a backup folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Version of the manifest and segment formats.
pub const FORMAT_VERSION: u32 = 1;

/// Which of Logbook's topics a backed-up topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicRole {
    Events,
    Commands,
    Results,
}

impl TopicRole {
    /// The topic's name under a prefix.
    pub fn topic_name(self, topics: &logbook_events::Topics) -> &str {
        match self {
            TopicRole::Events => &topics.events,
            TopicRole::Commands => &topics.commands,
            TopicRole::Results => &topics.results,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The topic prefix of the installation backed up into this folder.
    pub topic_prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub topics: Vec<TopicBackup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicBackup {
    pub role: TopicRole,
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configuration as last seen (explicit settings and the durability-relevant ones).
    pub config: BTreeMap<String, String>,
    pub partition_backups: Vec<PartitionBackup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionBackup {
    pub partition: i32,
    /// The offset the next incremental run reads from. Offsets of transaction markers and
    /// aborted records are gaps, so this is not `records` and not always `last offset + 1`.
    pub next_offset: i64,
    /// Records backed up so far (the index the next record gets).
    pub records: u64,
    pub segments: Vec<SegmentInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Path relative to the backup folder.
    pub file: String,
    /// Index (0-based, per partition) of the segment's first record.
    pub first_index: u64,
    pub records: u64,
    pub first_offset: i64,
    pub last_offset: i64,
    /// Where reading went on after this segment.
    pub next_offset: i64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("manifest {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest format {0} is not supported (this binary reads {FORMAT_VERSION})")]
    Format(u32),
    #[error("manifest names {0:?}, which is not a segment file inside the backup folder")]
    OutsidePath(String),
}

/// Whether a segment path of a manifest stays inside its folder: relative, without `..`, `.`
/// or a root, and named like a segment file. A manifest is data read from disk: it must not be
/// able to make a restore read (or a backup delete) anything else.
pub fn inside(file: &str) -> bool {
    file.ends_with(".seg.zst")
        && !file.contains('\\')
        && file
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && Path::new(file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

impl Manifest {
    pub fn new(topic_prefix: &str, now: chrono::DateTime<chrono::Utc>) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            topic_prefix: topic_prefix.to_owned(),
            created_at: now,
            updated_at: now,
            topics: Vec::new(),
        }
    }

    /// The manifest of `dir`, or None when the folder holds no backup yet.
    pub fn load(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ManifestError::Io { path, source }),
        };
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|source| ManifestError::Parse {
                path: path.clone(),
                source,
            })?;
        if manifest.format != FORMAT_VERSION {
            return Err(ManifestError::Format(manifest.format));
        }
        if let Some(bad) = manifest.files().find(|file| !inside(file)) {
            return Err(ManifestError::OutsidePath(bad.to_owned()));
        }
        Ok(Some(manifest))
    }

    /// Replaces `dir/manifest.json` atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let io = |source| ManifestError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| ManifestError::Parse {
            path: path.clone(),
            source,
        })?;
        let temp = temp_name(&path);
        let mut file = std::fs::File::create(&temp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&temp, &path).map_err(io)?;
        sync_parent(&path).map_err(io)
    }

    pub fn topic(&self, role: TopicRole) -> Option<&TopicBackup> {
        self.topics.iter().find(|t| t.role == role)
    }

    pub fn topic_mut(&mut self, role: TopicRole) -> Option<&mut TopicBackup> {
        self.topics.iter_mut().find(|t| t.role == role)
    }

    /// Every segment file the manifest names (relative paths).
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.topics
            .iter()
            .flat_map(|t| &t.partition_backups)
            .flat_map(|p| &p.segments)
            .map(|s| s.file.as_str())
    }
}

impl TopicBackup {
    pub fn partition_mut(&mut self, partition: i32) -> &mut PartitionBackup {
        let index = match self
            .partition_backups
            .iter()
            .position(|p| p.partition == partition)
        {
            Some(index) => index,
            None => {
                self.partition_backups.push(PartitionBackup {
                    partition,
                    next_offset: 0,
                    records: 0,
                    segments: Vec::new(),
                });
                self.partition_backups.sort_by_key(|p| p.partition);
                self.partition_backups
                    .iter()
                    .position(|p| p.partition == partition)
                    .unwrap_or_default()
            }
        };
        &mut self.partition_backups[index]
    }

    pub fn records(&self) -> u64 {
        self.partition_backups.iter().map(|p| p.records).sum()
    }
}

impl PartitionBackup {
    /// Appends a finished segment and moves the partition's bookmark past it.
    pub fn add(&mut self, segment: SegmentInfo) {
        self.next_offset = segment.next_offset;
        self.records = segment.first_index + segment.records;
        self.segments.push(segment);
    }
}

/// `<topic>/p<partition>/<first>-<next>.seg.zst`: sortable, unique per offset range.
pub fn segment_file(topic: &str, partition: i32, first_offset: i64, next_offset: i64) -> String {
    format!("{topic}/p{partition:04}/{first_offset:020}-{next_offset:020}.seg.zst")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_is_identity_and_atomic() {
        let dir = std::env::temp_dir().join(format!("manifest-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("folder");
        assert_eq!(Manifest::load(&dir).expect("load"), None);
        let mut manifest = Manifest::new("logbook", chrono::Utc::now());
        manifest.topics.push(TopicBackup {
            role: TopicRole::Events,
            name: "logbook.events".into(),
            partitions: 2,
            replication_factor: 3,
            config: BTreeMap::from([("retention.ms".into(), "-1".into())]),
            partition_backups: Vec::new(),
        });
        let topic = manifest.topic_mut(TopicRole::Events).expect("topic");
        topic.partition_mut(1).add(SegmentInfo {
            file: segment_file("logbook.events", 1, 0, 12),
            first_index: 0,
            records: 10,
            first_offset: 0,
            last_offset: 10,
            next_offset: 12,
            bytes: 100,
            sha256: "ab".repeat(32),
        });
        manifest.save(&dir).expect("save");
        assert!(!dir.join("manifest.json.tmp").exists());
        let back = Manifest::load(&dir).expect("load").expect("some");
        assert_eq!(back, manifest);
        let partition = &back.topics[0].partition_backups[0];
        assert_eq!((partition.next_offset, partition.records), (12, 10));
        assert_eq!(
            back.files().collect::<Vec<_>>(),
            vec!["logbook.events/p0001/00000000000000000000-00000000000000000012.seg.zst"]
        );
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn a_manifest_cannot_name_files_outside_its_folder() {
        let dir = std::env::temp_dir().join(format!("manifest-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("folder");
        for bad in [
            "../../etc/passwd.seg.zst",
            "/etc/shadow.seg.zst",
            "logbook.events/p0000/./x.seg.zst",
            "logbook.events/p0000/notes.txt",
        ] {
            let mut manifest = Manifest::new("logbook", chrono::Utc::now());
            manifest.topics.push(TopicBackup {
                role: TopicRole::Events,
                name: "logbook.events".into(),
                partitions: 1,
                replication_factor: 1,
                config: BTreeMap::new(),
                partition_backups: Vec::new(),
            });
            let topic = manifest.topic_mut(TopicRole::Events).expect("topic");
            topic.partition_mut(0).add(SegmentInfo {
                file: bad.into(),
                first_index: 0,
                records: 1,
                first_offset: 0,
                last_offset: 0,
                next_offset: 1,
                bytes: 1,
                sha256: "ab".repeat(32),
            });
            manifest.save(&dir).expect("save");
            assert!(
                matches!(Manifest::load(&dir), Err(ManifestError::OutsidePath(_))),
                "{bad} accepted"
            );
        }
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
