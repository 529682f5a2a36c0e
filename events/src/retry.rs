//! Waiting out an unavailable Kafka (or PostgreSQL), for every role: capped exponential backoff
//! with jitter, and an [`Outage`] that logs once when a dependency goes away and once when it is
//! back, and counts the retries in between.

use std::time::{Duration, Instant};

/// Capped exponential backoff with ±50% jitter: 50 ms, 100 ms, … up to `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_secs(5))
    }
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            next: first,
            first,
            cap,
        }
    }

    /// The next pause (jittered), doubling the one after it up to the cap.
    pub fn next_pause(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        // jitter from a fresh random UUID: no extra dependency, good enough to spread retries
        let random = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        base / 2 + base * random / 1000
    }

    /// Sleeps the next pause.
    pub fn sleep(&mut self) {
        std::thread::sleep(self.next_pause());
    }

    /// Back to the first pause (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Whether a role's dependency is reachable, logged once per change of state and counted per
/// retry (`logbook_dependency_retries_total`, gauge `logbook_dependency_up`).
#[derive(Debug)]
pub struct Outage {
    role: &'static str,
    dependency: &'static str,
    since: Option<Instant>,
}

impl Outage {
    pub fn new(role: &'static str, dependency: &'static str) -> Self {
        metrics::gauge!("logbook_dependency_up", "role" => role, "dependency" => dependency)
            .set(1.0);
        Self {
            role,
            dependency,
            since: None,
        }
    }

    /// A call failed and will be retried: warns on the first failure of an outage only.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) {
        metrics::counter!(
            "logbook_dependency_retries_total",
            "role" => self.role,
            "dependency" => self.dependency
        )
        .increment(1);
        if self.since.is_none() {
            self.since = Some(Instant::now());
            metrics::gauge!("logbook_dependency_up", "role" => self.role, "dependency" => self.dependency)
                .set(0.0);
            tracing::warn!(
                role = self.role,
                dependency = self.dependency,
                %error,
                "dependency unavailable: waiting for it (retrying with backoff)"
            );
        }
    }

    /// A call succeeded: logs the end of an outage, with its length.
    pub fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            metrics::gauge!("logbook_dependency_up", "role" => self.role, "dependency" => self.dependency)
                .set(1.0);
            tracing::info!(
                role = self.role,
                dependency = self.dependency,
                down_ms = since.elapsed().as_millis() as u64,
                "dependency available again"
            );
        }
    }

    pub fn is_down(&self) -> bool {
        self.since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let pauses: Vec<Duration> = (0..5).map(|_| backoff.next_pause()).collect();
        let bases = [100, 200, 400, 400, 400];
        for (pause, base) in pauses.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(
                *pause >= base / 2 && *pause <= base * 3 / 2,
                "{pause:?} for {base:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_pause() <= Duration::from_millis(150));
    }

    #[test]
    fn an_outage_is_reported_once_until_it_ends() {
        let mut outage = Outage::new("test", "kafka");
        assert!(!outage.is_down());
        outage.failed(&"down");
        outage.failed(&"still down");
        assert!(outage.is_down());
        outage.recovered();
        assert!(!outage.is_down());
    }
}
