//! `logbook export --from <time|cursor> --to <time|cursor> [--type T]… --format ndjson|csv
//! --out FILE`: writes a range of the log, read straight from Kafka (read_committed), with a
//! progress bar on stderr.
//!
//! NDJSON lines carry the Kafka record value verbatim as `event` (see [`super::lines`]), so
//! `logbook replay --from-file` re-imports them exactly. Time bounds compare `occurred_at`
//! (`from` inclusive, `to` exclusive); cursor bounds are log positions per partition. CSV has
//! one row per event with the envelope's fields and `data` as a JSON text column.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use logbook_events::{EventEnvelope, KafkaSettings, Position, decode};

use super::lines::write_line;
use super::log::LogReader;
use super::{Bound, ToolError, progress_bar};

/// File format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Ndjson,
    Csv,
}

/// Arguments of `logbook export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Start: an RFC 3339 time (events that occurred at or after) or a cursor (c1…).
    #[arg(long)]
    pub from: Option<Bound>,
    /// End: an RFC 3339 time (events that occurred before) or a cursor (c1…). Default: the
    /// end of the log when the export starts.
    #[arg(long)]
    pub to: Option<Bound>,
    /// Only these event types (repeatable).
    #[arg(long = "type")]
    pub types: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    pub read: u64,
    pub written: u64,
}

/// Writes the export file. Blocking.
pub fn export(
    kafka: &KafkaSettings,
    args: &ExportArgs,
    show_progress: bool,
) -> Result<ExportSummary, ToolError> {
    let mut reader = LogReader::open(kafka, args.from.as_ref(), args.to.as_ref())?;
    let bar = show_progress.then(|| progress_bar(reader.span(), "export"));
    let mut cursor = reader.start_cursor();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&args.out)?);
    if args.format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    }
    let mut line = Vec::with_capacity(1024);
    let mut summary = ExportSummary {
        read: 0,
        written: 0,
    };
    while let Some(record) = reader.next_record()? {
        summary.read += 1;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let position = Position::new(record.partition, record.offset);
        cursor.advance(record.partition, record.offset);
        let envelope = decode(&record.payload)
            .map_err(|source| ToolError::Undecodable { position, source })?;
        if !wanted(args, &envelope) {
            continue;
        }
        line.clear();
        match args.format {
            Format::Ndjson => write_line(&mut line, &cursor, position, &record.payload),
            Format::Csv => csv_row(&mut line, position, &envelope),
        }
        out.write_all(&line)?;
        summary.written += 1;
    }
    out.flush()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
}

fn wanted(args: &ExportArgs, envelope: &EventEnvelope) -> bool {
    let after_from = match &args.from {
        Some(Bound::Time(from)) => envelope.occurred_at >= *from,
        _ => true,
    };
    let before_to = match &args.to {
        Some(Bound::Time(to)) => envelope.occurred_at < *to,
        _ => true,
    };
    let typed = args.types.is_empty() || args.types.contains(&envelope.event_type);
    after_from && before_to && typed
}

/// The CSV columns.
pub const CSV_HEADER: &str = "position,event_id,aggregate_type,aggregate_id,sequence,event_type,\
schema_version,occurred_at,command_id,correlation_id,causation_id,actor_sub,actor_role,\
prev_hash,hash,data\n";

/// One CSV row (RFC 4180 quoting where needed).
fn csv_row(out: &mut Vec<u8>, position: Position, e: &EventEnvelope) {
    let occurred = serde_json::to_value(e)
        .ok()
        .and_then(|v| v["occurred_at"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let fields = [
        position.to_token(),
        e.event_id.to_string(),
        e.aggregate_type.clone(),
        e.aggregate_id.to_string(),
        e.sequence.to_string(),
        e.event_type.clone(),
        e.schema_version.to_string(),
        occurred,
        e.command_id.to_string(),
        e.correlation_id.to_string(),
        e.causation_id.to_string(),
        e.actor.sub.clone(),
        e.actor.role.clone(),
        e.prev_hash.clone(),
        e.hash.clone(),
        e.data.to_string(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, field);
    }
    out.push(b'\n');
}

fn csv_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        csv_field(&mut out, "plain");
        out.push(b'|');
        csv_field(&mut out, "{\"a\":1,\"b\":\"x\"}");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "plain|\"{\"\"a\"\":1,\"\"b\"\":\"\"x\"\"}\""
        );
    }
}
