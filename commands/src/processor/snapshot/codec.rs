//! The bytes of a snapshot: a partition's state in a compact binary form (pure, no Kafka).
//!
//! Layout (integers little-endian), format 1:
//!
//! ```text
//! "LBSNAP" u16 format
//! i32 partition  i64 covers  [16] last event id  i64 last event at (µs; i64::MIN: none)
//! i64 dedupe floor  u32 n  n × ([16] command id, u64 version, i64 offset, u64 fingerprint,
//!                               i64 first attempt µs)
//! u32 m  m × account
//! account: [16] id, u8 status (0 not opened, 1 active, 2 frozen, 3 closed), [3] currency
//!          (zeros: none), u32 len + owner id, i64 balance, i64 overdraft limit, u64 version,
//!          [32] hash of the last event, u32 k + k × ([16] transfer id, i64 amount),
//!          u32 j + j × (i32 partition, i64 µs)
//! ```
//!
//! A snapshot holds the state as of `covers`: every committed event of the partition before that
//! offset is in it, none after. Decoding checks the magic, the format, every length and that no
//! byte is left over; the checksum over the whole is the chunks' business.

use chrono::{DateTime, Utc};
use logbook_events::Currency;
use uuid::Uuid;

use super::super::state::{Applied, PartitionState, Slot};
use crate::domain::{Account, AccountParts, AccountStatus};

const MAGIC: &[u8; 6] = b"LBSNAP";
/// Bytes of one remembered command id.
const DEDUPE_ENTRY: usize = 16 + 8 + 8 + 8 + 8;
/// Bytes of the smallest account: an empty owner id and no transfers.
const ACCOUNT_MIN: usize = 16 + 1 + 3 + 4 + 8 + 8 + 8 + 32 + 4 + 4;
/// The format this build writes and reads.
pub const FORMAT: u16 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("not a snapshot (bad magic)")]
    Magic,
    #[error("snapshot format {0} is not one this build reads ({FORMAT})")]
    Format(u16),
    #[error("snapshot ends early at byte {0}")]
    Truncated(usize),
    #[error("snapshot has {0} bytes left over")]
    Trailing(usize),
    #[error("snapshot holds an invalid {0}")]
    Invalid(&'static str),
}

/// A decoded snapshot: the state and where in the events partition it stands.
#[derive(Debug)]
pub struct Decoded {
    pub partition: i32,
    pub covers: i64,
    pub state: PartitionState,
}

/// The bytes of `state` for `partition`, standing at `covers` (the offset after its last
/// event). `None` when the partition has no event yet (nothing to snapshot).
pub fn encode(partition: i32, state: &PartitionState) -> Option<Vec<u8>> {
    let (last_offset, last_event_id) = (state.last_offset?, state.last_event_id?);
    let (dedupe, floor) = state.dedupe.entries();
    let mut out = Vec::with_capacity(64 + dedupe.len() * 48 + state.accounts.len() * 112);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&partition.to_le_bytes());
    out.extend_from_slice(&(last_offset + 1).to_le_bytes());
    out.extend_from_slice(last_event_id.as_bytes());
    let at = state
        .last_event_at
        .map_or(i64::MIN, |t| t.timestamp_micros());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&floor.to_le_bytes());
    put_len(&mut out, dedupe.len());
    for (id, applied, issued) in &dedupe {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&applied.version.to_le_bytes());
        out.extend_from_slice(&applied.offset.to_le_bytes());
        out.extend_from_slice(&applied.fingerprint.to_le_bytes());
        out.extend_from_slice(&issued.to_le_bytes());
    }
    put_len(&mut out, state.accounts.len());
    for slot in state.accounts.iter() {
        put_account(&mut out, &slot.account.to_parts(), &slot.last_hash);
    }
    Some(out)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // a partition of 2^32 accounts or remembered ids is far beyond any processor's memory
    let len = u32::try_from(len).expect("fewer than 2^32 entries");
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_account(out: &mut Vec<u8>, parts: &AccountParts, last_hash: &[u8; 32]) {
    out.extend_from_slice(parts.id.as_bytes());
    out.push(match parts.status {
        None => 0,
        Some(AccountStatus::Active) => 1,
        Some(AccountStatus::Frozen) => 2,
        Some(AccountStatus::Closed) => 3,
    });
    let mut currency = [0u8; 3];
    if let Some(code) = parts.currency {
        currency.copy_from_slice(code.as_str().as_bytes());
    }
    out.extend_from_slice(&currency);
    put_len(out, parts.owner_id.len());
    out.extend_from_slice(parts.owner_id.as_bytes());
    out.extend_from_slice(&parts.balance.to_le_bytes());
    out.extend_from_slice(&parts.overdraft_limit.to_le_bytes());
    out.extend_from_slice(&parts.version.to_le_bytes());
    out.extend_from_slice(last_hash);
    put_len(out, parts.in_flight.len());
    for (transfer, amount) in &parts.in_flight {
        out.extend_from_slice(transfer.as_bytes());
        out.extend_from_slice(&amount.to_le_bytes());
    }
    put_len(out, parts.credited.len());
    for (partition, at) in &parts.credited {
        out.extend_from_slice(&partition.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
    }
}

/// Reads a snapshot back into a partition state with the given dedupe horizon and cap.
pub fn decode(
    bytes: &[u8],
    dedupe_horizon: std::time::Duration,
    dedupe_capacity: usize,
) -> Result<Decoded, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(CodecError::Magic);
    }
    let format = u16::from_le_bytes(r.array()?);
    if format != FORMAT {
        return Err(CodecError::Format(format));
    }
    let partition = r.i32()?;
    let covers = r.i64()?;
    let last_event_id = r.uuid()?;
    let last_event_at = match r.i64()? {
        i64::MIN => None,
        micros => Some(
            DateTime::<Utc>::from_timestamp_micros(micros)
                .ok_or(CodecError::Invalid("last event time"))?,
        ),
    };
    if covers < 1 {
        return Err(CodecError::Invalid("covered offset"));
    }
    let mut state = PartitionState::new(dedupe_horizon, dedupe_capacity);
    let floor = r.i64()?;
    let count = r.len(DEDUPE_ENTRY)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.uuid()?;
        let applied = Applied {
            version: r.u64()?,
            offset: r.i64()?,
            fingerprint: r.u64()?,
        };
        entries.push((id, applied, r.i64()?));
    }
    state.dedupe.restore(entries, floor);
    let accounts = r.len(ACCOUNT_MIN)?;
    for _ in 0..accounts {
        let (parts, last_hash) = read_account(&mut r)?;
        if state.accounts.get(&parts.id).is_some() {
            return Err(CodecError::Invalid("duplicate account"));
        }
        state.accounts.insert(Slot {
            account: Account::from_parts(parts),
            last_hash,
        });
    }
    if r.at != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - r.at));
    }
    state.accounts.shrink_to_fit();
    state.last_offset = Some(covers - 1);
    state.last_event_id = Some(last_event_id);
    state.last_event_at = last_event_at;
    Ok(Decoded {
        partition,
        covers,
        state,
    })
}

fn read_account(r: &mut Reader<'_>) -> Result<(AccountParts, [u8; 32]), CodecError> {
    let id = r.uuid()?;
    let status = match r.array::<1>()?[0] {
        0 => None,
        1 => Some(AccountStatus::Active),
        2 => Some(AccountStatus::Frozen),
        3 => Some(AccountStatus::Closed),
        _ => return Err(CodecError::Invalid("account status")),
    };
    let currency = match r.array::<3>()? {
        [0, 0, 0] => None,
        code => {
            let code = std::str::from_utf8(&code).map_err(|_| CodecError::Invalid("currency"))?;
            Some(Currency::parse(code).map_err(|_| CodecError::Invalid("currency"))?)
        }
    };
    let owner_len = r.len(1)?;
    let owner_id = std::str::from_utf8(r.take(owner_len)?)
        .map_err(|_| CodecError::Invalid("owner id"))?
        .to_owned();
    let (balance, overdraft_limit, version) = (r.i64()?, r.i64()?, r.u64()?);
    let last_hash = r.array::<32>()?;
    let count = r.len(24)?;
    let mut in_flight = Vec::with_capacity(count);
    for _ in 0..count {
        in_flight.push((r.uuid()?, r.i64()?));
    }
    let count = r.len(12)?;
    let mut credited = Vec::with_capacity(count);
    for _ in 0..count {
        credited.push((r.i32()?, r.i64()?));
    }
    let parts = AccountParts {
        id,
        status,
        currency,
        owner_id,
        balance,
        overdraft_limit,
        version,
        in_flight,
        credited,
    };
    Ok((parts, last_hash))
}

/// A bounds-checked cursor over the bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(CodecError::Truncated(self.at))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn uuid(&mut self) -> Result<Uuid, CodecError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    /// A count of entries of at least `min_size` bytes each (the exact minimum: a larger one
    /// would refuse valid snapshots), refused when the bytes left cannot hold them (so a corrupt
    /// count never allocates).
    fn len(&mut self, min_size: usize) -> Result<usize, CodecError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len.saturating_mul(min_size) > self.bytes.len() - self.at {
            return Err(CodecError::Truncated(self.at));
        }
        Ok(len)
    }
}
