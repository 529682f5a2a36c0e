//! Opaque pagination cursors: `hex("v1:<kind>:<key>")`.
//!
//! A cursor names the last item of a page (keyset pagination): the next page starts strictly
//! after it, so items inserted meanwhile never shift a page. The kind letter ties a cursor to
//! its listing, so a transactions cursor is refused by the accounts listing; the version
//! prefix lets the format change without breaking cursors already handed out.

use uuid::Uuid;

const PREFIX: &str = "v1:";
/// Longer inputs are refused before decoding.
const MAX_LEN: usize = 128;

/// A cursor that this code did not make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct CursorError;

/// After this account id (accounts listing, by account_id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountCursor(pub Uuid);

/// After this sequence (an account's ledger lines, by sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCursor(pub i64);

/// After this transfer id (an account's transfers, by transfer_id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferCursor(pub Uuid);

impl TransferCursor {
    pub fn encode(&self) -> String {
        encode_uuid('t', self.0)
    }

    pub fn decode(cursor: &str) -> Result<TransferCursor, CursorError> {
        decode_uuid(cursor, 't').map(TransferCursor)
    }
}

impl AccountCursor {
    pub fn encode(&self) -> String {
        encode_uuid('a', self.0)
    }

    pub fn decode(cursor: &str) -> Result<AccountCursor, CursorError> {
        decode_uuid(cursor, 'a').map(AccountCursor)
    }
}

/// A cursor after an id: the id in its 32-digit simple form.
fn encode_uuid(tag: char, id: Uuid) -> String {
    encode(tag, &id.simple().to_string())
}

/// The id of a cursor [`encode_uuid`] made with `tag`.
fn decode_uuid(cursor: &str, tag: char) -> Result<Uuid, CursorError> {
    let key = decode(cursor, tag)?;
    if key.len() != 32 {
        return Err(CursorError);
    }
    Uuid::try_parse(&key).map_err(|_| CursorError)
}

impl LineCursor {
    pub fn encode(&self) -> String {
        encode('s', &self.0.to_string())
    }

    pub fn decode(cursor: &str) -> Result<LineCursor, CursorError> {
        let key = decode(cursor, 's')?;
        let canonical = !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_digit())
            && (key == "0" || !key.starts_with('0'));
        if !canonical {
            return Err(CursorError);
        }
        key.parse().map(LineCursor).map_err(|_| CursorError)
    }
}

pub(crate) fn encode(kind: char, key: &str) -> String {
    hex::encode(format!("{PREFIX}{kind}:{key}"))
}

pub(crate) fn decode(cursor: &str, kind: char) -> Result<String, CursorError> {
    if cursor.len() > MAX_LEN {
        return Err(CursorError);
    }
    let bytes = hex::decode(cursor).map_err(|_| CursorError)?;
    let text = String::from_utf8(bytes).map_err(|_| CursorError)?;
    let rest = text.strip_prefix(PREFIX).ok_or(CursorError)?;
    let (found, key) = rest.split_once(':').ok_or(CursorError)?;
    let mut chars = found.chars();
    if chars.next() != Some(kind) || chars.next().is_some() {
        return Err(CursorError);
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod transfer_cursor_tests {
    use super::*;

    #[test]
    fn transfer_cursors_round_trip_and_are_tied_to_their_listing() {
        let id = Uuid::from_u128(0x0193_a5c2_7d1e_7c3a_9f00_0000_0000_00f1);
        let cursor = TransferCursor(id).encode();
        assert_eq!(TransferCursor::decode(&cursor), Ok(TransferCursor(id)));
        assert_eq!(AccountCursor::decode(&cursor), Err(CursorError));
        assert_eq!(
            TransferCursor::decode(&AccountCursor(id).encode()),
            Err(CursorError)
        );
        assert_eq!(TransferCursor::decode("zz"), Err(CursorError));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00ff);
        let cursor = AccountCursor(id).encode();
        assert!(cursor.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(AccountCursor::decode(&cursor), Ok(AccountCursor(id)));
        for sequence in [0, 1, 42, i64::MAX] {
            let cursor = LineCursor(sequence).encode();
            assert_eq!(LineCursor::decode(&cursor), Ok(LineCursor(sequence)));
        }
    }

    #[test]
    fn a_cursor_only_fits_its_listing() {
        let accounts = AccountCursor(Uuid::from_u128(1)).encode();
        let lines = LineCursor(7).encode();
        assert_eq!(LineCursor::decode(&accounts), Err(CursorError));
        assert_eq!(AccountCursor::decode(&lines), Err(CursorError));
    }

    #[test]
    fn garbage_is_refused() {
        let hex_of = |s: &str| hex::encode(s);
        for bad in [
            String::new(),
            "zz".into(),
            "abc".into(),
            hex_of("v2:s:1"),
            hex_of("v1:s:"),
            hex_of("v1:s:-1"),
            hex_of("v1:s:01"),
            hex_of("v1:s:99999999999999999999"),
            hex_of("v1:ss:1"),
            hex_of("v1:a:not-a-uuid"),
            hex_of("v1:a:00000000-0000-0000-0000-000000000001"),
            "a".repeat(200),
        ] {
            assert_eq!(LineCursor::decode(&bad).ok(), None, "{bad}");
            assert_eq!(AccountCursor::decode(&bad).ok(), None, "{bad}");
        }
    }
}
