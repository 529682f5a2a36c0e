//! Reading the events topic straight from Kafka, `isolation.level=read_committed`, between a
//! start and the end the log had when reading began (a consistent snapshot: records appended
//! meanwhile are left for the next run).
//!
//! Per partition the reader starts at a cursor's next offset or at the first record whose
//! Kafka timestamp is at or after an instant (minus a margin: records are stamped when they
//! are sent, just after their events' `occurred_at`; callers filter on `occurred_at`), and
//! stops at the high watermark seen at the start, or at a `to` cursor. A partition is done at
//! its last offset or at the end-of-partition event (a trailing transaction marker or aborted
//! records have no message of their own).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use logbook_events::kafka::Reporting;
use logbook_events::{KafkaSettings, LogCursor};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{Bound, ToolError};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How far before a `--from` instant the seek by Kafka timestamp starts.
const SEEK_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// With no record and no end for this long, reading fails instead of hanging.
const STALL: Duration = Duration::from_secs(120);

/// One committed record of the events topic.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// A blocking reader of the events topic between bounds.
pub struct LogReader {
    consumer: BaseConsumer<Reporting>,
    /// Per partition: (first offset to read, offset to stop before).
    ranges: BTreeMap<i32, (i64, i64)>,
    open: HashSet<i32>,
    last_progress: Instant,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("ranges", &self.ranges)
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// Opens the events topic of `kafka` from `from` (the start of the log when None) up to
    /// `to` when it is a cursor, else up to the current end.
    pub fn open(
        kafka: &KafkaSettings,
        from: Option<&Bound>,
        to: Option<&Bound>,
    ) -> Result<LogReader, ToolError> {
        let topic = kafka.topics().events;
        let consumer: BaseConsumer<Reporting> = kafka
            .client_config()
            .set(
                "group.id",
                format!("logbook-tools-{}", uuid::Uuid::now_v7()),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create_with_context(Reporting)?;
        let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let starts = start_offsets(&consumer, &topic, &partitions, from)?;
        let mut ranges = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, *partition, TIMEOUT)?;
            let start = starts.get(partition).copied().unwrap_or(0).max(low);
            let end = match to {
                Some(Bound::Cursor(cursor)) => high.min(cursor.next_offset(*partition)),
                _ => high,
            };
            ranges.insert(*partition, (start, end));
            if start < end {
                assignment.add_partition_offset(&topic, *partition, Offset::Offset(start))?;
            }
        }
        let open: HashSet<i32> = ranges
            .iter()
            .filter(|(_, (start, end))| start < end)
            .map(|(p, _)| *p)
            .collect();
        if !open.is_empty() {
            consumer.assign(&assignment)?;
        }
        Ok(LogReader {
            consumer,
            ranges,
            open,
            last_progress: Instant::now(),
        })
    }

    /// How many offsets lie between the starts and the ends (an upper bound of the records).
    pub fn span(&self) -> u64 {
        self.ranges
            .values()
            .map(|(start, end)| u64::try_from(end - start).unwrap_or(0))
            .sum()
    }

    /// The cursor before the first record read: the start offset of every partition.
    pub fn start_cursor(&self) -> LogCursor {
        LogCursor::from_offsets(self.ranges.iter().map(|(p, (start, _))| (*p, *start)))
    }

    /// The next committed record, or None once every partition is done.
    pub fn next_record(&mut self) -> Result<Option<LogRecord>, ToolError> {
        while !self.open.is_empty() {
            if self.last_progress.elapsed() > STALL {
                return Err(ToolError::Stalled(STALL.as_secs()));
            }
            let Some(polled) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            self.last_progress = Instant::now();
            let message = match polled {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.open.remove(&partition);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let (partition, offset) = (message.partition(), message.offset());
            let end = self.ranges.get(&partition).map_or(0, |(_, end)| *end);
            if !self.open.contains(&partition) || offset >= end {
                self.open.remove(&partition);
                continue;
            }
            if offset + 1 >= end {
                self.open.remove(&partition);
            }
            return Ok(Some(LogRecord {
                partition,
                offset,
                payload: message.payload().unwrap_or_default().to_vec(),
            }));
        }
        Ok(None)
    }
}

/// Where each partition starts for a `from` bound.
fn start_offsets(
    consumer: &BaseConsumer<Reporting>,
    topic: &str,
    partitions: &[i32],
    from: Option<&Bound>,
) -> Result<BTreeMap<i32, i64>, ToolError> {
    match from {
        None => Ok(BTreeMap::new()),
        Some(Bound::Cursor(cursor)) => Ok(partitions
            .iter()
            .map(|p| (*p, cursor.next_offset(*p)))
            .collect()),
        Some(Bound::Time(at)) => {
            let millis = (*at - SEEK_MARGIN).timestamp_millis();
            let mut query = TopicPartitionList::new();
            for partition in partitions {
                query.add_partition_offset(topic, *partition, Offset::Offset(millis))?;
            }
            let found = consumer.offsets_for_times(query, TIMEOUT)?;
            Ok(found
                .elements()
                .iter()
                .map(|e| {
                    let start = match e.offset() {
                        Offset::Offset(offset) => offset,
                        // no record at or after the instant
                        _ => i64::MAX,
                    };
                    (e.partition(), start)
                })
                .collect())
        }
    }
}
