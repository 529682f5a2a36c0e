//! How durable the log's topics are, read from the cluster, and what is too weak for production.
//!
//! The event log is Logbook's only system of record, so in production its topics must survive a
//! broker loss without losing an acknowledged write: replication factor 3 or more,
//! `min.insync.replicas` 2 or more (with the producers' `acks=all`), and
//! `unclean.leader.election.enable=false`. [`durability_warnings`] is the pure check;
//! [`describe_topics`] reads what the check needs (and the topic configuration that backups
//! record) with the admin API.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::kafka::KafkaSettings;
use crate::topics::TopicError;

/// Replication factor production needs: one broker may fail and one may be in maintenance.
pub const REQUIRED_REPLICATION_FACTOR: i32 = 3;
/// `min.insync.replicas` production needs: an acknowledged write is on two brokers.
pub const REQUIRED_MIN_INSYNC_REPLICAS: i32 = 2;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A topic as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub partitions: i32,
    /// The smallest replica count of any partition.
    pub replication_factor: i32,
    /// Every configuration entry that has a value (effective values, defaults included).
    pub config: BTreeMap<String, String>,
}

/// One way a topic is less durable than production needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityWarning {
    #[error(
        "topic {topic}: replication factor {found} < {REQUIRED_REPLICATION_FACTOR}: a broker loss can lose the log"
    )]
    ReplicationFactor { topic: String, found: i32 },
    #[error(
        "topic {topic}: min.insync.replicas {found} < {REQUIRED_MIN_INSYNC_REPLICAS}: an acknowledged write may live on one broker only"
    )]
    MinInsyncReplicas { topic: String, found: i32 },
    #[error("topic {topic}: min.insync.replicas is unknown (not readable)")]
    MinInsyncReplicasUnknown { topic: String },
    #[error(
        "topic {topic}: unclean.leader.election.enable is {found}: an out-of-sync replica may become leader and drop acknowledged writes"
    )]
    UncleanLeaderElection { topic: String, found: String },
}

/// The durability problems of a topic (empty when it meets the production settings).
pub fn durability_warnings(topic: &TopicDescription) -> Vec<DurabilityWarning> {
    let name = || topic.name.clone();
    let mut warnings = Vec::new();
    if topic.replication_factor < REQUIRED_REPLICATION_FACTOR {
        warnings.push(DurabilityWarning::ReplicationFactor {
            topic: name(),
            found: topic.replication_factor,
        });
    }
    match topic
        .config
        .get("min.insync.replicas")
        .map(|v| v.parse::<i32>())
    {
        Some(Ok(found)) if found >= REQUIRED_MIN_INSYNC_REPLICAS => {}
        Some(Ok(found)) => warnings.push(DurabilityWarning::MinInsyncReplicas {
            topic: name(),
            found,
        }),
        Some(Err(_)) | None => {
            warnings.push(DurabilityWarning::MinInsyncReplicasUnknown { topic: name() })
        }
    }
    // Kafka's default is false; only an explicit true (or anything unexpected) is a problem.
    match topic.config.get("unclean.leader.election.enable") {
        None => {}
        Some(value) if value == "false" => {}
        Some(value) => warnings.push(DurabilityWarning::UncleanLeaderElection {
            topic: name(),
            found: value.clone(),
        }),
    }
    warnings
}

/// Partitions, replication and configuration of each named topic that exists. Blocking.
pub fn describe_topics(
    settings: &KafkaSettings,
    names: &[&str],
) -> Result<Vec<TopicDescription>, TopicError> {
    let consumer: BaseConsumer = settings.client_config().create()?;
    let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
    let mut found: Vec<TopicDescription> = metadata
        .topics()
        .iter()
        .filter(|t| names.contains(&t.name()) && t.error().is_none())
        .filter(|t| !t.partitions().is_empty())
        .map(|t| TopicDescription {
            name: t.name().to_owned(),
            partitions: t.partitions().len() as i32,
            replication_factor: t
                .partitions()
                .iter()
                .map(|p| p.replicas().len() as i32)
                .min()
                .unwrap_or(0),
            config: BTreeMap::new(),
        })
        .collect();
    if found.is_empty() {
        return Ok(found);
    }
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let specifiers: Vec<ResourceSpecifier<'_>> = found
        .iter()
        .map(|t| ResourceSpecifier::Topic(&t.name))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let results = futures::executor::block_on(admin.describe_configs(&specifiers, &options))?;
    for (topic, result) in found.iter_mut().zip(results) {
        let resource = result.map_err(|code| TopicError::Describe {
            topic: topic.name.clone(),
            code,
        })?;
        topic.config = resource
            .entries
            .into_iter()
            .filter(|e| !e.is_sensitive)
            .filter_map(|e| e.value.map(|v| (e.name, v)))
            .collect();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(rf: i32, config: &[(&str, &str)]) -> TopicDescription {
        TopicDescription {
            name: "logbook.events".into(),
            partitions: 12,
            replication_factor: rf,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn production_settings_give_no_warning() {
        let good = topic(
            3,
            &[
                ("min.insync.replicas", "2"),
                ("unclean.leader.election.enable", "false"),
            ],
        );
        assert_eq!(durability_warnings(&good), vec![]);
    }

    #[test]
    fn each_weak_setting_is_reported() {
        let weak = topic(
            1,
            &[
                ("min.insync.replicas", "1"),
                ("unclean.leader.election.enable", "true"),
            ],
        );
        let warnings = durability_warnings(&weak);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(matches!(
            warnings[0],
            DurabilityWarning::ReplicationFactor { found: 1, .. }
        ));
        assert!(matches!(
            warnings[1],
            DurabilityWarning::MinInsyncReplicas { found: 1, .. }
        ));
        assert!(matches!(
            &warnings[2],
            DurabilityWarning::UncleanLeaderElection { found, .. } if found == "true"
        ));
        assert!(warnings[0].to_string().contains("logbook.events"));
    }

    #[test]
    fn unknown_min_isr_is_a_warning_and_missing_unclean_is_the_safe_default() {
        let warnings = durability_warnings(&topic(3, &[]));
        assert_eq!(
            warnings,
            vec![DurabilityWarning::MinInsyncReplicasUnknown {
                topic: "logbook.events".into()
            }]
        );
        let warnings = durability_warnings(&topic(4, &[("min.insync.replicas", "3")]));
        assert!(warnings.is_empty());
    }
}
