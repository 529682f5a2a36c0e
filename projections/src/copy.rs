//! Bulk writes with `COPY … FROM STDIN (FORMAT binary)`, for the shadow tables of a rebuild:
//! they have a single writer whose batches never repeat a row (the stored offsets are checked
//! in the same transaction and accounts move forward by version), so the conflict checks of
//! the projector's upserts buy nothing there.
//!
//! The live tables take rows by `COPY` too, but inside a savepoint ([`CopyRows::send_new`]): in
//! the rare case that a row is already there (a replay the offsets did not prevent), the
//! savepoint is rolled back and the caller writes the batch with its conflict-checked insert,
//! so a replay stays harmless.
//!
//! [`CopyRows`] builds PostgreSQL's binary copy format: a signature and two zero words, then per
//! row its column count and each column as a length (-1 for NULL) and the value in the type's
//! binary form (big-endian integers, 16 uuid bytes, UTF-8 text, timestamptz as microseconds
//! since 2000-01-01 UTC), then -1 as the trailer. Nothing needs escaping or parsing.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The signature, flags and header extension length that open a binary copy.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The data of a binary `COPY … FROM STDIN`, row by row.
#[derive(Debug)]
pub struct CopyRows {
    buffer: Vec<u8>,
    /// Where the current row's column count goes, and the count so far.
    row_start: Option<usize>,
    columns: i16,
    rows: u64,
}

impl Default for CopyRows {
    fn default() -> Self {
        Self::new()
    }
}

impl CopyRows {
    pub fn new() -> Self {
        Self {
            buffer: HEADER.to_vec(),
            row_start: None,
            columns: 0,
            rows: 0,
        }
    }

    /// Starts a column of `length` bytes (-1: NULL), and the row if it is the first.
    fn column(&mut self, length: i32) {
        if self.row_start.is_none() {
            self.row_start = Some(self.buffer.len());
            self.buffer.extend_from_slice(&0i16.to_be_bytes());
        }
        self.columns += 1;
        self.buffer.extend_from_slice(&length.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        // a column longer than i32::MAX bytes cannot be stored; PostgreSQL refuses it anyway
        self.column(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
        self.buffer.extend_from_slice(bytes);
        self
    }

    /// An `int8` column.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    /// An `int4` column.
    pub fn int4(&mut self, value: i32) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    pub fn uuid(&mut self, value: Uuid) -> &mut Self {
        self.field(value.as_bytes())
    }

    /// A `timestamptz` column.
    pub fn time(&mut self, value: DateTime<Utc>) -> &mut Self {
        let micros = value.timestamp_micros() - PG_EPOCH_MICROS;
        self.field(&micros.to_be_bytes())
    }

    /// A `text` column.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.field(value.as_bytes())
    }

    pub fn null(&mut self) -> &mut Self {
        self.column(-1);
        self
    }

    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    pub fn opt_uuid(&mut self, value: Option<Uuid>) -> &mut Self {
        match value {
            Some(value) => self.uuid(value),
            None => self.null(),
        }
    }

    pub fn end_row(&mut self) {
        if let Some(at) = self.row_start.take() {
            self.buffer[at..at + 2].copy_from_slice(&self.columns.to_be_bytes());
        }
        self.columns = 0;
        self.rows += 1;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Sends the rows with `statement` (a `COPY <table> (<columns>) FROM STDIN (FORMAT
    /// binary)`); returns the rows PostgreSQL stored.
    pub async fn send(
        mut self,
        conn: &mut PgConnection,
        statement: &str,
    ) -> Result<u64, sqlx::Error> {
        if self.rows == 0 {
            return Ok(0);
        }
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = conn.copy_in_raw(statement).await?;
        if let Err(error) = copy.send(self.buffer).await {
            let _ = copy.abort("the rows could not be sent").await;
            return Err(error);
        }
        copy.finish().await
    }

    /// [`CopyRows::send`] in a savepoint of the caller's transaction. `None` when a row was
    /// already there (unique violation): nothing was written and the transaction goes on.
    pub async fn send_new(
        self,
        conn: &mut PgConnection,
        statement: &str,
    ) -> Result<Option<u64>, sqlx::Error> {
        if self.rows == 0 {
            return Ok(Some(0));
        }
        sqlx::query("SAVEPOINT logbook_copy")
            .execute(&mut *conn)
            .await?;
        match self.send(&mut *conn, statement).await {
            Ok(rows) => {
                sqlx::query("RELEASE SAVEPOINT logbook_copy")
                    .execute(&mut *conn)
                    .await?;
                Ok(Some(rows))
            }
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                sqlx::query("ROLLBACK TO SAVEPOINT logbook_copy")
                    .execute(&mut *conn)
                    .await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn rows_are_counted_columns_with_lengths() {
        let mut rows = CopyRows::new();
        rows.int(-2).text("a\tb").null().int4(7).end_row();
        rows.uuid(Uuid::from_u128(1)).end_row();
        assert_eq!(rows.rows(), 2);
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        expected.extend_from_slice(&[0, 0, 0, 3, b'a', b'\t', b'b']);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 1, 0, 0, 0, 16]);
        expected.extend_from_slice(&[0; 15]);
        expected.push(1);
        assert_eq!(rows.buffer, expected);
    }

    #[test]
    fn times_are_microseconds_since_2000() {
        let at =
            Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 1).unwrap() + chrono::Duration::microseconds(42);
        let mut rows = CopyRows::new();
        rows.time(at).end_row();
        assert_eq!(
            &rows.buffer[HEADER.len() + 6..],
            &1_000_042i64.to_be_bytes()
        );
        assert_eq!(HEADER.len(), 19);
    }
}
