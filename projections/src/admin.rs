//! Projection status for operators (`GET /v1/admin/projections`, rebuild progress): per
//! projection and partition, the stored offset, the log end, the lag and the state.
//!
//! The stored offsets and errors come from `projection_offsets` (so every instance answers the
//! same), the log ends from the broker. Kafka being unreachable leaves `log_end` and `lag`
//! empty rather than failing the whole answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use logbook_events::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use sqlx::PgPool;

use crate::offsets::{self, OffsetRow};
use crate::projection::Projection;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

/// One projection partition as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartitionStatus {
    /// Projection name, or `<name>__rebuild` for a rebuild in progress.
    pub projection: String,
    pub partition: i32,
    pub next_offset: i64,
    pub log_end: Option<i64>,
    pub lag: Option<i64>,
    /// `running`, `stopped` (on a poison event, see `error`) or `pending` (nothing stored yet).
    pub state: &'static str,
    pub error: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The status of every projection (and running rebuild) on every events partition.
pub async fn status(
    pool: &PgPool,
    kafka: &KafkaSettings,
) -> Result<Vec<PartitionStatus>, sqlx::Error> {
    let rows = offsets::all(pool).await?;
    let settings = kafka.clone();
    let ends = tokio::task::spawn_blocking(move || log_ends(&settings))
        .await
        .unwrap_or_default();
    Ok(combine(rows, &ends))
}

/// Stored rows and log ends merged into one status per projection and partition.
pub fn combine(rows: Vec<OffsetRow>, ends: &BTreeMap<i32, i64>) -> Vec<PartitionStatus> {
    let mut keys: BTreeSet<String> = Projection::ALL
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    keys.extend(rows.iter().map(|r| r.projection.clone()));
    let mut stored: BTreeMap<(String, i32), OffsetRow> = rows
        .into_iter()
        .map(|r| ((r.projection.clone(), r.partition), r))
        .collect();
    let partitions: BTreeSet<i32> = ends
        .keys()
        .copied()
        .chain(stored.keys().map(|(_, p)| *p))
        .collect();
    let mut out = Vec::new();
    for key in keys {
        for partition in &partitions {
            let row = stored.remove(&(key.clone(), *partition));
            let log_end = ends.get(partition).copied();
            let next_offset = row.as_ref().map_or(0, |r| r.next_offset);
            let state = match &row {
                None => "pending",
                Some(r) if r.error.is_some() => "stopped",
                Some(_) => "running",
            };
            out.push(PartitionStatus {
                projection: key.clone(),
                partition: *partition,
                next_offset,
                log_end,
                lag: log_end.map(|end| (end - next_offset).max(0)),
                state,
                error: row.as_ref().and_then(|r| r.error.clone()),
                updated_at: row.map(|r| r.updated_at),
            });
        }
    }
    out
}

/// High watermark of every events partition (empty when Kafka does not answer). Blocking.
fn log_ends(kafka: &KafkaSettings) -> BTreeMap<i32, i64> {
    let Ok(consumer) = kafka.client_config().create::<BaseConsumer>() else {
        return BTreeMap::new();
    };
    let topic = kafka.topics().events;
    let Ok(metadata) = consumer.fetch_metadata(Some(&topic), KAFKA_TIMEOUT) else {
        return BTreeMap::new();
    };
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .filter_map(|p| {
            let (_, high) = consumer.fetch_watermarks(&topic, p, KAFKA_TIMEOUT).ok()?;
            Some((p, high))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(projection: &str, partition: i32, next: i64, error: Option<&str>) -> OffsetRow {
        OffsetRow {
            projection: projection.into(),
            partition,
            next_offset: next,
            error: error.map(str::to_owned),
            updated_at: DateTime::from_timestamp(0, 0).expect("time"),
        }
    }

    #[test]
    fn every_projection_and_partition_is_reported() {
        let rows = vec![
            row("ledger", 0, 10, None),
            row("ledger", 1, 3, Some("undecodable record")),
            row("ledger__rebuild", 0, 4, None),
        ];
        let ends = BTreeMap::from([(0, 12), (1, 9)]);
        let status = combine(rows, &ends);
        assert_eq!(
            status.len(),
            6,
            "archive, ledger and the rebuild × 2 partitions"
        );
        let find = |p: &str, n: i32| {
            status
                .iter()
                .find(|s| s.projection == p && s.partition == n)
                .expect("present")
        };
        assert_eq!(
            (find("ledger", 0).lag, find("ledger", 0).state),
            (Some(2), "running")
        );
        assert_eq!(find("ledger", 1).state, "stopped");
        assert_eq!(
            (find("archive", 1).state, find("archive", 1).lag),
            ("pending", Some(9))
        );
        assert_eq!(find("ledger__rebuild", 0).lag, Some(8));
    }
}
