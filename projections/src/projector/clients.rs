//! The Kafka consumer configuration of a projector.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use super::ProjectorSettings;
use super::context::ProjectorContext;

/// A member of `group_id` on the events topic: read_committed, no offsets kept in Kafka (the
/// stored offsets in PostgreSQL are the truth), an error rather than a silent jump when a
/// stored offset is out of range, end-of-partition events (they move the stored offsets past
/// transaction markers), statistics for the lag gauge, incremental rebalances.
pub fn consumer(
    settings: &ProjectorSettings,
    group_id: &str,
    context: ProjectorContext,
) -> Result<BaseConsumer<ProjectorContext>, KafkaError> {
    let consumer: BaseConsumer<ProjectorContext> = settings
        .kafka
        .client_config()
        .set("group.id", group_id)
        .set("client.id", format!("logbook-{}", context.key()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout.as_millis() / 6).to_string(),
        )
        .set("statistics.interval.ms", "5000")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create_with_context(context)?;
    consumer.subscribe(&[&settings.kafka.topics().events])?;
    Ok(consumer)
}
