//! Readiness probes of Kafka and PostgreSQL, run at most once a second whatever the request
//! rate: [`Readiness`] keeps the last answer for a second, and concurrent callers wait for the
//! one probe in progress. [`KafkaProbe`] is the small client that asks Kafka.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_events::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// A small client used only to see whether Kafka answers.
pub struct KafkaProbe {
    consumer: BaseConsumer,
    topic: String,
}

impl KafkaProbe {
    pub fn new(kafka: &KafkaSettings) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            consumer: kafka.client_config().create()?,
            // the topic the API writes (its Kafka identity may read nothing else but results)
            topic: kafka.topics().commands,
        })
    }

    /// Blocking: metadata of the commands topic within `timeout`.
    pub fn check(&self, timeout: Duration) -> bool {
        self.consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .map(|m| m.topics().iter().all(|t| t.error().is_none()))
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for KafkaProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProbe")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// What the last probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    pub kafka: bool,
    pub database: bool,
}

/// The readiness probes of Kafka and PostgreSQL, run at most once per [`Readiness::FRESH`].
#[derive(Debug)]
pub struct Readiness {
    kafka: Arc<KafkaProbe>,
    last: tokio::sync::Mutex<Option<(Instant, Checks)>>,
}

impl Readiness {
    /// How long a probe's answer is served.
    pub const FRESH: Duration = Duration::from_secs(1);

    pub fn new(kafka: KafkaProbe) -> Self {
        Self {
            kafka: Arc::new(kafka),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The last answer if fresh, else a new probe (one at a time).
    pub async fn checks(&self, db: Option<&sqlx::PgPool>) -> Checks {
        let mut last = self.last.lock().await;
        if let Some((at, checks)) = *last
            && at.elapsed() < Self::FRESH
        {
            return checks;
        }
        metrics::counter!("logbook_readiness_probes_total").increment(1);
        let kafka = self.kafka.clone();
        let kafka_ok = tokio::task::spawn_blocking(move || kafka.check(Duration::from_secs(2)))
            .await
            .unwrap_or(false);
        let database_ok = match db {
            Some(pool) => logbook_projections::db::ping(pool).await,
            None => true,
        };
        let checks = Checks {
            kafka: kafka_ok,
            database: database_ok,
        };
        *last = Some((Instant::now(), checks));
        checks
    }
}
