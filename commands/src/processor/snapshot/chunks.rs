//! Snapshots as Kafka records: cut into chunks that stay under the broker's message size
//! limit, each chunk saying which snapshot it belongs to in its headers, and put back together
//! (pure, no Kafka).
//!
//! Chunk `i` of the snapshot of partition `p` is keyed `p/i` on the compacted snapshots topic,
//! so compaction keeps the newest chunk of every index. Its headers name the format, the events
//! offset the snapshot covers, `i/n` and the SHA-256 of the whole snapshot. A reader groups the
//! chunks it sees by (covers, checksum) and trusts a snapshot only when all `n` chunks are
//! there and the checksum of their concatenation matches.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Bytes of snapshot per record: half of librdkafka's and the broker's default limit of 1 MB.
pub const CHUNK_BYTES: usize = 512 * 1024;

pub const HEADER_FORMAT: &str = "logbook-snapshot-format";
pub const HEADER_COVERS: &str = "logbook-snapshot-covers";
pub const HEADER_CHUNK: &str = "logbook-snapshot-chunk";
pub const HEADER_SHA256: &str = "logbook-snapshot-sha256";

/// What one chunk record says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub format: u16,
    pub covers: i64,
    pub index: u32,
    pub count: u32,
    pub sha256: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("chunk header {0} missing or malformed")]
    Header(&'static str),
    #[error("snapshot at {covers}: checksum mismatch")]
    Checksum { covers: i64 },
}

impl ChunkHeader {
    /// The record headers, as (name, value).
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_FORMAT, self.format.to_string()),
            (HEADER_COVERS, self.covers.to_string()),
            (HEADER_CHUNK, format!("{}/{}", self.index, self.count)),
            (HEADER_SHA256, hex::encode(self.sha256)),
        ]
    }

    /// Reads the headers back; `header` finds a header's value by name.
    pub fn parse<'a>(header: impl Fn(&str) -> Option<&'a [u8]>) -> Result<Self, ChunkError> {
        let text = |name: &'static str| {
            header(name)
                .and_then(|value| std::str::from_utf8(value).ok())
                .ok_or(ChunkError::Header(name))
        };
        let format = text(HEADER_FORMAT)?
            .parse()
            .map_err(|_| ChunkError::Header(HEADER_FORMAT))?;
        let covers = text(HEADER_COVERS)?
            .parse()
            .map_err(|_| ChunkError::Header(HEADER_COVERS))?;
        let (index, count) = text(HEADER_CHUNK)?
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)))
            .filter(|(i, n): &(u32, u32)| i < n)
            .ok_or(ChunkError::Header(HEADER_CHUNK))?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(text(HEADER_SHA256)?, &mut sha256)
            .map_err(|_| ChunkError::Header(HEADER_SHA256))?;
        Ok(Self {
            format,
            covers,
            index,
            count,
            sha256,
        })
    }
}

/// The record key of chunk `index` of partition `partition`'s snapshot.
pub fn key(partition: i32, index: u32) -> String {
    format!("{partition}/{index}")
}

/// The chunks of `body` with their headers.
pub fn split(body: &[u8], format: u16, covers: i64) -> Vec<(ChunkHeader, &[u8])> {
    let sha256: [u8; 32] = Sha256::digest(body).into();
    let pieces: Vec<&[u8]> = body.chunks(CHUNK_BYTES).collect();
    let count = u32::try_from(pieces.len()).expect("a snapshot of fewer than 2^32 chunks");
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, piece)| {
            let header = ChunkHeader {
                format,
                covers,
                index: index as u32,
                count,
                sha256,
            };
            (header, piece)
        })
        .collect()
}

/// Most bytes of chunks an [`Assembly`] holds: past it the oldest snapshots are dropped (a
/// reader wants the newest).
pub const ASSEMBLY_BYTES: usize = 256 << 20;

/// The chunks read so far, by snapshot.
#[derive(Debug, Default)]
pub struct Assembly {
    snapshots: BTreeMap<(i64, [u8; 32]), Pieces>,
    bytes: usize,
}

#[derive(Debug)]
struct Pieces {
    format: u16,
    pieces: Vec<Option<Vec<u8>>>,
}

/// A snapshot whose chunks are all there.
#[derive(Debug, PartialEq, Eq)]
pub struct Whole {
    pub format: u16,
    pub covers: i64,
    pub body: Result<Vec<u8>, ChunkError>,
}

impl Assembly {
    /// Keeps one chunk (a later chunk of the same index and snapshot replaces it).
    pub fn add(&mut self, header: ChunkHeader, bytes: Vec<u8>) {
        let pieces = self
            .snapshots
            .entry((header.covers, header.sha256))
            .or_insert_with(|| Pieces {
                format: header.format,
                pieces: vec![None; header.count as usize],
            });
        if let Some(slot) = pieces.pieces.get_mut(header.index as usize) {
            self.bytes += bytes.len();
            if let Some(replaced) = slot.replace(bytes) {
                self.bytes -= replaced.len();
            }
        }
        while self.bytes > ASSEMBLY_BYTES && self.snapshots.len() > 1 {
            if let Some((_, oldest)) = self.snapshots.pop_first() {
                self.bytes -= oldest.pieces.iter().flatten().map(Vec::len).sum::<usize>();
            }
        }
    }

    /// The complete snapshots covering at most `end`, newest first, each put together and
    /// checked against its checksum only when the iterator reaches it.
    pub fn complete(&self, end: i64) -> impl Iterator<Item = Whole> + '_ {
        self.snapshots
            .iter()
            .rev()
            .filter(move |((covers, _), pieces)| {
                *covers <= end && pieces.pieces.iter().all(Option::is_some)
            })
            .map(|((covers, sha256), pieces)| {
                let body: Vec<u8> = pieces.pieces.iter().flatten().flatten().copied().collect();
                let matches = <[u8; 32]>::from(Sha256::digest(&body)) == *sha256;
                Whole {
                    format: pieces.format,
                    covers: *covers,
                    body: if matches {
                        Ok(body)
                    } else {
                        Err(ChunkError::Checksum { covers: *covers })
                    },
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(chunks: &[(ChunkHeader, &[u8])]) -> Assembly {
        let mut assembly = Assembly::default();
        for (header, piece) in chunks {
            let headers = header.headers();
            let parsed = ChunkHeader::parse(|name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_bytes())
            })
            .expect("headers read back");
            assert_eq!(parsed, *header);
            assembly.add(parsed, piece.to_vec());
        }
        assembly
    }

    #[test]
    fn a_large_snapshot_is_cut_and_put_back_together() {
        let body: Vec<u8> = (0..CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
        let chunks = split(&body, 1, 42);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|(_, piece)| piece.len() <= CHUNK_BYTES));
        let wholes: Vec<Whole> = reassemble(&chunks).complete(42).collect();
        assert_eq!(wholes.len(), 1);
        assert_eq!(wholes[0].covers, 42);
        assert_eq!(wholes[0].body.as_deref(), Ok(&body[..]));
    }

    #[test]
    fn incomplete_corrupt_or_later_snapshots_are_not_trusted() {
        let old = vec![1u8; 10];
        let new: Vec<u8> = vec![2u8; CHUNK_BYTES + 1];
        let mut chunks = split(&old, 1, 10);
        let newer = split(&new, 1, 20);
        chunks.push(newer[0]); // its second chunk never arrived
        let assembly = reassemble(&chunks);
        let wholes: Vec<Whole> = assembly.complete(100).collect();
        assert_eq!(wholes.len(), 1, "only the complete one");
        assert_eq!(wholes[0].covers, 10);
        assert!(
            assembly.complete(9).next().is_none(),
            "past the events' end"
        );

        let mut assembly = reassemble(&split(&old, 1, 10));
        let (mut header, _) = split(&old, 1, 30)[0];
        header.sha256 = split(&old, 1, 30)[0].0.sha256;
        assembly.add(header, vec![9u8; 10]); // same checksum, other bytes
        let wholes: Vec<Whole> = assembly.complete(100).collect();
        assert_eq!(wholes[0].body, Err(ChunkError::Checksum { covers: 30 }));
        assert_eq!(
            wholes[1].body.as_deref(),
            Ok(&old[..]),
            "the older one still is"
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let missing = ChunkHeader::parse(|_| None);
        assert_eq!(missing, Err(ChunkError::Header(HEADER_FORMAT)));
        let index_past_count = ChunkHeader::parse(|name| match name {
            HEADER_CHUNK => Some(b"3/3".as_slice()),
            _ => Some(b"1".as_slice()),
        });
        assert_eq!(index_past_count, Err(ChunkError::Header(HEADER_CHUNK)));
    }
}
