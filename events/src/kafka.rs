//! Kafka connection settings and the topic names Logbook uses.
//!
//! Every Kafka client in Logbook (gateway, processors, projectors, tools) starts from
//! [`KafkaSettings::client_config`], so security options (TLS, SASL) are set in one place.

use rdkafka::ClientConfig;

use crate::secret::Secret;

/// How to reach the Kafka cluster. Built from the process settings (flags and `LOGBOOK_*`).
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `bootstrap.servers`, comma separated.
    pub brokers: String,
    /// `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl.
    pub security_protocol: Option<String>,
    /// `sasl.mechanisms`, e.g. SCRAM-SHA-512 or PLAIN.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    /// `ssl.ca.location`: CA bundle that signed the brokers' certificates.
    pub ssl_ca_location: Option<String>,
    /// Prefix of the three topic names (`<prefix>.commands`, …).
    pub topic_prefix: String,
}

impl KafkaSettings {
    /// Plaintext settings for a broker list, default topic prefix. For tests and tools.
    pub fn plaintext(brokers: impl Into<String>, topic_prefix: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            topic_prefix: topic_prefix.into(),
        }
    }

    /// The topic names under the configured prefix.
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }

    /// The consumer group names under the configured prefix.
    pub fn groups(&self) -> Groups {
        Groups::with_prefix(&self.topic_prefix)
    }

    /// A client configuration with the connection and security options set; callers add the
    /// options of their role (transactional id, group id, isolation level …).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("client.dns.lookup", "use_all_dns_ips");
        if let Some(protocol) = &self.security_protocol {
            config.set("security.protocol", protocol);
        }
        if let Some(mechanism) = &self.sasl_mechanism {
            config.set("sasl.mechanisms", mechanism);
        }
        if let Some(username) = &self.sasl_username {
            config.set("sasl.username", username);
        }
        if let Some(password) = &self.sasl_password {
            config.set("sasl.password", password.expose());
        }
        if let Some(ca) = &self.ssl_ca_location {
            config.set("ssl.ca.location", ca);
        }
        config
    }

    /// A consumer's settings for reading assigned partitions up to their end, committed records
    /// only: it never joins `group_id` (librdkafka wants one) nor commits, and the first empty
    /// fetch ends the read (the broker's default 500 ms wait for data would be added to it).
    pub fn end_reader_config(&self, group_id: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10");
        config
    }
}

/// The topics of one Logbook installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Commands from the gateway and the sagas, keyed by aggregate id.
    pub commands: String,
    /// The event log: same partition count and key as `commands`.
    pub events: String,
    /// One result record per command, keyed by command id.
    pub results: String,
    /// One compacted record: the partition count the topics were created with.
    pub layout: String,
    /// Compacted: the processors' snapshots of each partition's state (same partition count as
    /// `events`); derived data, rebuilt from the log when missing.
    pub snapshots: String,
}

impl Topics {
    /// `<prefix>.commands`, `<prefix>.events`, `<prefix>.command-results`, `<prefix>.layout`,
    /// `<prefix>.snapshots`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            commands: format!("{prefix}.commands"),
            events: format!("{prefix}.events"),
            results: format!("{prefix}.command-results"),
            layout: format!("{prefix}.layout"),
            snapshots: format!("{prefix}.snapshots"),
        }
    }

    /// Every topic of the installation.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.commands,
            &self.events,
            &self.results,
            &self.layout,
            &self.snapshots,
        ]
    }
}

/// The consumer groups whose offsets live in Kafka (the projectors keep theirs in PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups {
    /// The command processors, on the commands topic.
    pub processors: String,
    /// The transfer sagas, on the events and results topics.
    pub sagas: String,
}

impl Groups {
    /// `<prefix>.processors`, `<prefix>.sagas`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            processors: format!("{prefix}.processors"),
            sagas: format!("{prefix}.sagas"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_timeout_is_whole_milliseconds_rounded_up() {
        use std::time::Duration;
        assert_eq!(poll_timeout(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            poll_timeout(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            poll_timeout(Duration::from_micros(1_700)),
            Duration::from_millis(2)
        );
        assert_eq!(
            poll_timeout(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn topic_names_follow_the_prefix() {
        let topics = Topics::with_prefix("logbook");
        assert_eq!(topics.commands, "logbook.commands");
        assert_eq!(topics.events, "logbook.events");
        assert_eq!(topics.results, "logbook.command-results");
        assert_eq!(topics.layout, "logbook.layout");
        assert_eq!(topics.snapshots, "logbook.snapshots");
        let groups = Groups::with_prefix("logbook");
        assert_eq!(groups.processors, "logbook.processors");
        assert_eq!(groups.sagas, "logbook.sagas");
    }

    #[test]
    fn sasl_password_is_passed_but_never_debug_printed() {
        let mut settings = KafkaSettings::plaintext("127.0.0.1:1", "t");
        settings.sasl_password = Some(Secret::new("kafka-pass-123"));
        let config = settings.client_config();
        assert_eq!(config.get("sasl.password"), Some("kafka-pass-123"));
        assert!(!format!("{settings:?}").contains("kafka-pass-123"));
    }
}

/// The client context of Logbook's clients that need nothing special: client errors are logged
/// (except the end of a partition, which readers that read to the end expect) and refusals are
/// noted ([`crate::refusal`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Reporting;

impl rdkafka::ClientContext for Reporting {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

/// The timeout to give a consumer's `poll` for the `left` of a deadline, rounded up to whole
/// milliseconds. librdkafka counts its timeouts in milliseconds and rdkafka turns a shorter one
/// into zero and calls again until the time has passed, so polling out the sub-millisecond
/// remainder of a linger spins a core (at 50 commands/s, most of the CPU a `logbook all` used).
/// Rounding up ends the wait up to a millisecond late instead.
pub fn poll_timeout(left: std::time::Duration) -> std::time::Duration {
    let millis = left.as_micros().div_ceil(1000);
    std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// The error callback of every Logbook client context: notes refusals ([`crate::refusal`]),
/// logs the rest (the end of a partition, expected by readers that read to the end, is not
/// logged).
pub fn client_error(error: &rdkafka::error::KafkaError, reason: &str) {
    if crate::refusal::note(error, reason) || is_end_of_partition(error) {
        return;
    }
    tracing::error!(%error, reason, "kafka client error");
}

/// Whether a client error only says that a reader reached the end of a partition.
pub fn is_end_of_partition(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;
    matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    )
}

impl rdkafka::consumer::ConsumerContext for Reporting {}

impl rdkafka::producer::ProducerContext for Reporting {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}
