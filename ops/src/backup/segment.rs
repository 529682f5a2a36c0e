//! Segment files: a run of one partition's records, zstd-compressed, with a SHA-256 of the file.
//!
//! Uncompressed layout: the magic `LBSEG001`, then per record (integers little-endian)
//! `offset: i64`, `timestamp type: u8` (0 none, 1 create time, 2 log-append time),
//! `timestamp: i64`, `key: bytes?`, `header count: u32`, per header `name: bytes` and
//! `value: bytes?`, then `payload: bytes?`. `bytes` is a `u32` length and the bytes;
//! `bytes?` is an `i32` length (-1 for none) and the bytes. The whole stream is one zstd frame.
//! A segment is written under a temporary name, fsynced, then renamed into place, so a file
//! with the final name is always complete.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"LBSEG001";
const ZSTD_LEVEL: i32 = 3;

/// Which clock a record's timestamp comes from (Kafka's timestamp type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    None,
    CreateTime,
    LogAppendTime,
}

/// One Kafka record as backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: i64,
    pub timestamp_kind: TimestampKind,
    /// Milliseconds since the epoch (-1 when there is none).
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub payload: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("segment {path}: checksum mismatch (manifest {expected}, file {found})")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("segment {path}: malformed ({reason})")]
    Malformed { path: PathBuf, reason: &'static str },
}

/// What a finished segment file holds, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSegment {
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Hashes and counts every byte on its way to the file.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one segment: records in, then [`SegmentWriter::finish`] to make it durable.
pub struct SegmentWriter {
    encoder: zstd::Encoder<'static, HashingWriter<BufWriter<File>>>,
    temp: PathBuf,
    path: PathBuf,
    records: u64,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("path", &self.path)
            .field("records", &self.records)
            .finish()
    }
}

impl SegmentWriter {
    /// Starts a segment, written as `path.tmp` until finished.
    pub fn create(path: &Path) -> Result<SegmentWriter, SegmentError> {
        let io = |source| SegmentError::Io {
            path: path.to_owned(),
            source,
        };
        let temp = temp_name(path);
        let file = File::create(&temp).map_err(io)?;
        let sink = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut encoder = zstd::Encoder::new(sink, ZSTD_LEVEL).map_err(io)?;
        encoder.write_all(MAGIC).map_err(io)?;
        Ok(SegmentWriter {
            encoder,
            temp,
            path: path.to_owned(),
            records: 0,
            scratch: Vec::with_capacity(1024),
        })
    }

    pub fn push(&mut self, record: &StoredRecord) -> Result<(), SegmentError> {
        self.scratch.clear();
        encode_record(record, &mut self.scratch);
        self.records += 1;
        self.encoder
            .write_all(&self.scratch)
            .map_err(|source| SegmentError::Io {
                path: self.path.clone(),
                source,
            })
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Ends the zstd frame, fsyncs, renames the file to `path` and fsyncs the folder.
    pub fn finish(self, path: &Path) -> Result<WrittenSegment, SegmentError> {
        let io = |source| SegmentError::Io {
            path: path.to_owned(),
            source,
        };
        let mut sink = self.encoder.finish().map_err(io)?;
        sink.flush().map_err(io)?;
        let file = sink.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.temp, path).map_err(io)?;
        sync_parent(path).map_err(io)?;
        Ok(WrittenSegment {
            records: self.records,
            bytes: sink.bytes,
            sha256: hex::encode(sink.hasher.finalize()),
        })
    }
}

/// `name.tmp` beside `path`.
pub fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Fsyncs the folder holding `path`, so a rename in it survives a crash.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

/// Reads a whole segment, checking its SHA-256 against `sha256` before decoding.
pub fn read_segment(path: &Path, sha256: &str) -> Result<Vec<StoredRecord>, SegmentError> {
    let io = |source| SegmentError::Io {
        path: path.to_owned(),
        source,
    };
    let compressed = std::fs::read(path).map_err(io)?;
    let found = hex::encode(Sha256::digest(&compressed));
    if found != sha256 {
        return Err(SegmentError::Checksum {
            path: path.to_owned(),
            expected: sha256.to_owned(),
            found,
        });
    }
    let mut plain = Vec::with_capacity(compressed.len() * 4);
    zstd::Decoder::new(compressed.as_slice())
        .and_then(|mut decoder| decoder.read_to_end(&mut plain))
        .map_err(io)?;
    decode_records(&plain).map_err(|reason| SegmentError::Malformed {
        path: path.to_owned(),
        reason,
    })
}

fn encode_record(record: &StoredRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(&record.offset.to_le_bytes());
    out.push(match record.timestamp_kind {
        TimestampKind::None => 0,
        TimestampKind::CreateTime => 1,
        TimestampKind::LogAppendTime => 2,
    });
    out.extend_from_slice(&record.timestamp.to_le_bytes());
    put_optional(record.key.as_deref(), out);
    out.extend_from_slice(&(record.headers.len() as u32).to_le_bytes());
    for (name, value) in &record.headers {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        put_optional(value.as_deref(), out);
    }
    put_optional(record.payload.as_deref(), out);
}

fn put_optional(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    match bytes {
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(bytes) => {
            out.extend_from_slice(&(bytes.len() as i32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

fn decode_records(plain: &[u8]) -> Result<Vec<StoredRecord>, &'static str> {
    let mut cursor = Cursor { rest: plain };
    if cursor.take(MAGIC.len())? != MAGIC {
        return Err("not a Logbook segment");
    }
    let mut records = Vec::new();
    while !cursor.rest.is_empty() {
        records.push(cursor.record()?);
    }
    Ok(records)
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.rest.len() < n {
            return Err("truncated record");
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?.try_into().map_err(|_| "truncated record")
    }

    fn optional(&mut self) -> Result<Option<Vec<u8>>, &'static str> {
        let len = i32::from_le_bytes(self.array()?);
        match len {
            -1 => Ok(None),
            n if n < 0 => Err("negative length"),
            n => Ok(Some(self.take(n as usize)?.to_vec())),
        }
    }

    fn record(&mut self) -> Result<StoredRecord, &'static str> {
        let offset = i64::from_le_bytes(self.array()?);
        let timestamp_kind = match self.array::<1>()?[0] {
            0 => TimestampKind::None,
            1 => TimestampKind::CreateTime,
            2 => TimestampKind::LogAppendTime,
            _ => return Err("unknown timestamp type"),
        };
        let timestamp = i64::from_le_bytes(self.array()?);
        let key = self.optional()?;
        let count = u32::from_le_bytes(self.array()?);
        let mut headers = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(self.array()?) as usize;
            let name = std::str::from_utf8(self.take(len)?).map_err(|_| "header name not UTF-8")?;
            headers.push((name.to_owned(), self.optional()?));
        }
        let payload = self.optional()?;
        Ok(StoredRecord {
            offset,
            timestamp_kind,
            timestamp,
            key,
            headers,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> StoredRecord {
        StoredRecord {
            offset,
            timestamp_kind: TimestampKind::CreateTime,
            timestamp: 1_700_000_000_000 + offset,
            key: Some(format!("key-{offset}").into_bytes()),
            headers: vec![
                ("event_type".into(), Some(b"FundsDeposited".to_vec())),
                ("empty".into(), None),
            ],
            payload: (offset % 3 != 0).then(|| vec![offset as u8; 40]),
        }
    }

    fn folder() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("segment-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp folder");
        dir
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let dir = folder();
        let path = dir.join("p0.seg.zst");
        let mut writer = SegmentWriter::create(&path).expect("create");
        let records: Vec<StoredRecord> = (0..500).map(|o| record(o * 2)).collect();
        for r in &records {
            writer.push(r).expect("push");
        }
        let written = writer.finish(&path).expect("finish");
        assert_eq!(written.records, 500);
        assert!(!temp_name(&path).exists(), "temp file renamed away");
        let back = read_segment(&path, &written.sha256).expect("read");
        assert_eq!(back, records);
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let dir = folder();
        let path = dir.join("p1.seg.zst");
        let mut writer = SegmentWriter::create(&path).expect("create");
        writer.push(&record(7)).expect("push");
        let written = writer.finish(&path).expect("finish");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        assert!(matches!(
            read_segment(&path, &written.sha256),
            Err(SegmentError::Checksum { .. })
        ));
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn truncated_data_is_malformed_not_a_panic() {
        let mut plain = MAGIC.to_vec();
        encode_record(&record(1), &mut plain);
        plain.truncate(plain.len() - 3);
        assert!(decode_records(&plain).is_err());
        assert!(decode_records(b"NOTMAGIC").is_err());
    }
}
