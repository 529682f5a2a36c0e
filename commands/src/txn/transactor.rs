//! One Kafka transaction and everything that can go wrong with it.
//!
//! [`Transactor::run`] begins a transaction, lets the caller write its records, adds the
//! consumed offsets, lets the caller check what it wrote (delivery reports) and commits. Each failure is classified ([`TxnError`]) and recovered by the
//! one rule that is safe for it:
//!
//! - librdkafka marks an error *retriable*: the same call again (with backoff, for a bounded
//!   time; what still fails then is treated as unclear);
//! - a failure before the commit was sent, or an *abortable* one: abort, and the caller redoes
//!   the batch on the state it decided it on ([`Outcome::Aborted`]). When a record of the
//!   transaction is not acknowledged (no delivery report yet, or a failed one), the abort is done
//!   by replacing the client instead of `abort_transaction` (see [`TxnClient::in_doubt`]);
//! - anything else at the commit (timed out for good, coordinator gone, fatal after EndTxn was
//!   sent) leaves the outcome unknown: the transaction may have committed. Then the client is
//!   replaced by one with the same `transactional.id`, whose `init_transactions` fences the old
//!   producer and waits until its open transaction is committed or aborted, and the caller must
//!   read the truth back from the log (restore its partitions, rewind to the committed offsets)
//!   before deciding anything again ([`Outcome::Unclear`]). An unclear commit is never treated
//!   as an abort. A fatal error before the commit takes the same path (the client is unusable).
//!
//! The Kafka calls are behind [`TxnClient`], so this logic is unit-tested with injected errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

use logbook_events::retry::{Backoff, Outage};

/// How a failed transactional call may be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnErrorKind {
    /// librdkafka asks for the same call again.
    Retriable,
    /// The transaction must be aborted (it cannot commit).
    Abortable,
    /// The client is unusable.
    Fatal,
    /// None of the above (a timeout, a broker error, a failed delivery).
    Other,
}

/// A failed transactional call, classified.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TxnError {
    pub kind: TxnErrorKind,
    pub message: String,
}

impl TxnError {
    pub fn new(kind: TxnErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A condition of the caller's own that makes the transaction worthless (e.g. an event that
    /// was not delivered): abort it.
    pub fn abort(message: impl Into<String>) -> Self {
        Self::new(TxnErrorKind::Abortable, message)
    }

    fn retriable(&self) -> bool {
        self.kind == TxnErrorKind::Retriable
    }
}

impl From<KafkaError> for TxnError {
    fn from(error: KafkaError) -> Self {
        let kind = match &error {
            KafkaError::Transaction(rd) if rd.is_fatal() => TxnErrorKind::Fatal,
            KafkaError::Transaction(rd) if rd.is_retriable() => TxnErrorKind::Retriable,
            KafkaError::Transaction(rd) if rd.txn_requires_abort() => TxnErrorKind::Abortable,
            KafkaError::Transaction(_) => TxnErrorKind::Other,
            // rdkafka's commit flushes first; a flush that fails never sent EndTxn
            KafkaError::Flush(_) => TxnErrorKind::Abortable,
            _ => TxnErrorKind::Other,
        };
        Self::new(kind, error.to_string())
    }
}

/// The transactional calls of a Kafka producer.
pub trait TxnClient {
    /// What `send_offsets` needs (the consumed offsets and the group's metadata).
    type Offsets: ?Sized;

    fn begin(&self) -> Result<(), TxnError>;
    fn send_offsets(&self, offsets: &Self::Offsets, timeout: Duration) -> Result<(), TxnError>;
    /// Waits for every record to be delivered, then commits.
    fn commit(&self, timeout: Duration) -> Result<(), TxnError>;
    fn abort(&self, timeout: Duration) -> Result<(), TxnError>;
    /// Whether a record written by this client may be in the log without being acknowledged:
    /// its delivery report is missing or failed. librdkafka's `abort_transaction` purges such a
    /// record and gives its sequence number to the next record of its partition (2.12,
    /// `rd_kafka_toppar_purge_queues`); when the broker did write it (a lost acknowledgement,
    /// then a retry that never got through), the broker takes the next record, from a later
    /// transaction, for a duplicate and drops it while the producer reports it delivered. A
    /// new producer epoch starts the sequence numbers again, so such an abort replaces the
    /// client instead.
    fn in_doubt(&self) -> bool;
    /// Replaces the client by a new one with the same `transactional.id` and initialises it
    /// (which fences the old one and completes its open transaction).
    fn reinit(&mut self) -> Result<(), TxnError>;
}

/// How a transaction ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Committed: what the caller's write returned.
    Committed(T),
    /// Aborted: nothing of it is visible; redo the batch on the same state.
    Aborted(TxnError),
    /// Maybe committed: the client was replaced; restore from the log before deciding again.
    Unclear(TxnError),
    /// The stop flag was raised while the client could not be replaced.
    Stopped,
}

/// Runs transactions on a [`TxnClient`] with the recovery rules of the module docs.
#[derive(Debug)]
pub struct Transactor<C> {
    client: C,
    role: &'static str,
    /// Timeout of each call.
    timeout: Duration,
    /// How long a retriable call is retried before it counts as unclear.
    retry_for: Duration,
    stop: Arc<AtomicBool>,
    outage: Outage,
}

impl<C: TxnClient> Transactor<C> {
    pub fn new(
        client: C,
        role: &'static str,
        timeout: Duration,
        retry_for: Duration,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            client,
            role,
            timeout,
            retry_for,
            stop,
            outage: Outage::new(role, "kafka-transactions"),
        }
    }

    pub fn client(&self) -> &C {
        &self.client
    }

    /// One transaction: begin, `write`, add `offsets` (they travel while the records are
    /// acknowledged), `check` what was written, commit.
    pub fn run<W, T>(
        &mut self,
        write: impl FnOnce(&C) -> Result<W, TxnError>,
        offsets: &C::Offsets,
        check: impl FnOnce(&C, W) -> Result<T, TxnError>,
    ) -> Outcome<T> {
        if let Err(error) = self.retrying("begin", |c, _| c.begin()) {
            return self.recover(error);
        }
        let started = Instant::now();
        let written = match write(&self.client) {
            Ok(written) => written,
            Err(error) => return self.recover(error),
        };
        self.phase("write", started);
        if let Err(error) = self.retrying("send_offsets", |c, t| c.send_offsets(offsets, t)) {
            return self.recover(error);
        }
        let started = Instant::now();
        let value = match check(&self.client, written) {
            Ok(value) => value,
            Err(error) => return self.recover(error),
        };
        self.phase("check", started);
        match self.retrying("commit", |c, t| c.commit(t)) {
            Ok(()) => {
                self.outage.recovered();
                Outcome::Committed(value)
            }
            Err(error) if error.kind == TxnErrorKind::Abortable => self.abort(error),
            Err(error) => self.unclear(error),
        }
    }

    /// A failure before the commit was sent: the transaction cannot have committed.
    fn recover<T>(&mut self, error: TxnError) -> Outcome<T> {
        match error.kind {
            TxnErrorKind::Fatal => self.unclear(error),
            _ => self.abort(error),
        }
    }

    fn abort<T>(&mut self, error: TxnError) -> Outcome<T> {
        metrics::counter!("logbook_transactions_total", "role" => self.role, "outcome" => "aborted")
            .increment(1);
        if self.client.in_doubt() {
            // the commit was never sent: the replacement's fencing aborts the transaction
            tracing::warn!(
                role = self.role,
                %error,
                "transaction aborted with records not acknowledged: replacing the producer \
                 (a new epoch), then redoing the batch"
            );
            return if self.replace() {
                Outcome::Aborted(error)
            } else {
                Outcome::Stopped
            };
        }
        match self.retrying("abort", |c, t| c.abort(t)) {
            Ok(()) => {
                tracing::warn!(role = self.role, %error, "transaction aborted: redoing the batch");
                Outcome::Aborted(error)
            }
            Err(abort_error) => {
                tracing::warn!(role = self.role, %error, %abort_error, "abort failed");
                self.unclear(abort_error)
            }
        }
    }

    /// Replaces the client (same transactional id), waiting out an unavailable broker.
    fn unclear<T>(&mut self, error: TxnError) -> Outcome<T> {
        metrics::counter!("logbook_transactions_total", "role" => self.role, "outcome" => "unclear")
            .increment(1);
        tracing::warn!(
            role = self.role,
            %error,
            "transaction outcome unknown: fencing the producer, then restoring from the log"
        );
        if self.replace() {
            Outcome::Unclear(error)
        } else {
            Outcome::Stopped
        }
    }

    /// Replaces the client by one with the same `transactional.id` (which fences the old one
    /// and ends its open transaction), waiting out an unavailable broker; `false` when the stop
    /// flag was raised first.
    fn replace(&mut self) -> bool {
        let mut backoff = Backoff::default();
        loop {
            match self.client.reinit() {
                Ok(()) => {
                    self.outage.recovered();
                    return true;
                }
                Err(reinit_error) => self.outage.failed(&reinit_error),
            }
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            backoff.sleep();
        }
    }

    /// How long a successful step of a transaction took (`logbook_transaction_phase_seconds`).
    fn phase(&self, name: &'static str, started: Instant) {
        metrics::histogram!("logbook_transaction_phase_seconds", "role" => self.role, "phase" => name)
            .record(started.elapsed().as_secs_f64());
    }

    /// Calls `call` again while it fails with a retriable error, for at most `retry_for`.
    fn retrying(
        &mut self,
        name: &'static str,
        mut call: impl FnMut(&C, Duration) -> Result<(), TxnError>,
    ) -> Result<(), TxnError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            match call(&self.client, self.timeout) {
                Ok(()) => {
                    self.phase(name, started);
                    return Ok(());
                }
                Err(error)
                    if error.retriable()
                        && started.elapsed() < self.retry_for
                        && !self.stop.load(Ordering::Relaxed) =>
                {
                    tracing::debug!(role = self.role, call = name, %error, "retrying");
                    self.outage.failed(&error);
                    backoff.sleep();
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::*;
    use TxnErrorKind::{Abortable, Fatal, Other, Retriable};

    /// A client that answers each call from a script (`Ok` when the script is empty) and logs
    /// every call.
    #[derive(Default)]
    struct Scripted {
        answers: RefCell<VecDeque<(&'static str, Option<TxnErrorKind>)>>,
        calls: RefCell<Vec<&'static str>>,
        /// Whether a record is unacknowledged (until the client is replaced).
        in_doubt: bool,
    }

    impl Scripted {
        fn with(answers: &[(&'static str, Option<TxnErrorKind>)]) -> Self {
            Self {
                answers: RefCell::new(answers.iter().copied().collect()),
                calls: RefCell::default(),
                in_doubt: false,
            }
        }

        fn answer(&self, call: &'static str) -> Result<(), TxnError> {
            self.calls.borrow_mut().push(call);
            let mut answers = self.answers.borrow_mut();
            match answers.front() {
                Some((name, result)) if *name == call => {
                    let result = *result;
                    answers.pop_front();
                    result.map_or(Ok(()), |kind| Err(TxnError::new(kind, call)))
                }
                _ => Ok(()),
            }
        }
    }

    impl TxnClient for Scripted {
        type Offsets = ();
        fn begin(&self) -> Result<(), TxnError> {
            self.answer("begin")
        }
        fn send_offsets(&self, _: &(), _: Duration) -> Result<(), TxnError> {
            self.answer("send_offsets")
        }
        fn commit(&self, _: Duration) -> Result<(), TxnError> {
            self.answer("commit")
        }
        fn abort(&self, _: Duration) -> Result<(), TxnError> {
            self.answer("abort")
        }
        fn reinit(&mut self) -> Result<(), TxnError> {
            self.answer("reinit")?;
            self.in_doubt = false;
            Ok(())
        }
        fn in_doubt(&self) -> bool {
            self.in_doubt
        }
    }

    fn run(script: &[(&'static str, Option<TxnErrorKind>)]) -> (Outcome<u8>, Vec<&'static str>) {
        run_writing(script, Ok(7))
    }

    fn run_writing(
        script: &[(&'static str, Option<TxnErrorKind>)],
        write: Result<u8, TxnError>,
    ) -> (Outcome<u8>, Vec<&'static str>) {
        run_with(Scripted::with(script), write)
    }

    fn run_with(client: Scripted, write: Result<u8, TxnError>) -> (Outcome<u8>, Vec<&'static str>) {
        let mut transactor = Transactor::new(
            client,
            "test",
            Duration::from_millis(10),
            Duration::from_millis(200),
            Arc::default(),
        );
        let outcome = transactor.run(|_| write, &(), |_, value| Ok(value));
        let calls = transactor.client.calls.borrow().clone();
        (outcome, calls)
    }

    #[test]
    fn a_clean_transaction_commits() {
        let (outcome, calls) = run(&[]);
        assert!(matches!(outcome, Outcome::Committed(7)));
        assert_eq!(calls, ["begin", "send_offsets", "commit"]);
    }

    #[test]
    fn a_retriable_commit_is_retried_with_the_same_call() {
        let (outcome, calls) = run(&[("commit", Some(Retriable)), ("commit", Some(Retriable))]);
        assert!(matches!(outcome, Outcome::Committed(7)));
        assert_eq!(
            calls,
            ["begin", "send_offsets", "commit", "commit", "commit"]
        );
    }

    #[test]
    fn an_unclear_commit_fences_the_producer_and_is_never_an_abort() {
        for kind in [Other, Fatal] {
            let (outcome, calls) = run(&[("commit", Some(kind))]);
            assert!(matches!(outcome, Outcome::Unclear(_)), "{kind:?}");
            assert_eq!(calls, ["begin", "send_offsets", "commit", "reinit"]);
        }
    }

    #[test]
    fn a_commit_retried_past_its_time_counts_as_unclear() {
        let script: Vec<_> = (0..200).map(|_| ("commit", Some(Retriable))).collect();
        let (outcome, calls) = run(&script);
        assert!(matches!(outcome, Outcome::Unclear(_)));
        assert_eq!(calls.last(), Some(&"reinit"));
        assert!(!calls.contains(&"abort"));
    }

    #[test]
    fn an_abortable_commit_is_aborted() {
        let (outcome, calls) = run(&[("commit", Some(Abortable))]);
        assert!(matches!(outcome, Outcome::Aborted(_)));
        assert_eq!(calls, ["begin", "send_offsets", "commit", "abort"]);
    }

    #[test]
    fn failures_before_the_commit_abort() {
        let (outcome, calls) = run(&[("send_offsets", Some(Other))]);
        assert!(matches!(outcome, Outcome::Aborted(_)));
        assert_eq!(calls, ["begin", "send_offsets", "abort"]);
        let (outcome, calls) = run_writing(&[], Err(TxnError::abort("not delivered")));
        assert!(matches!(outcome, Outcome::Aborted(_)));
        assert_eq!(calls, ["begin", "abort"]);
        let (outcome, calls) = run(&[("send_offsets", Some(Retriable))]);
        assert!(matches!(outcome, Outcome::Committed(7)));
        assert_eq!(calls, ["begin", "send_offsets", "send_offsets", "commit"]);
    }

    /// The chaos test's lost transfer step: a record the broker wrote but never acknowledged
    /// (its leader was killed) was purged by `abort_transaction`, and the next transaction's
    /// record to that partition got its sequence number, was dropped by the broker as a
    /// duplicate and reported delivered. An abort with such records replaces the client.
    #[test]
    fn an_abort_with_unacknowledged_records_replaces_the_client_instead() {
        let doubtful = |script: &[(&'static str, Option<TxnErrorKind>)]| Scripted {
            in_doubt: true,
            ..Scripted::with(script)
        };
        let (outcome, calls) = run_with(doubtful(&[("commit", Some(Abortable))]), Ok(7));
        assert!(matches!(outcome, Outcome::Aborted(_)));
        assert_eq!(calls, ["begin", "send_offsets", "commit", "reinit"]);
        let (outcome, calls) = run_with(doubtful(&[]), Err(TxnError::abort("not delivered")));
        assert!(matches!(outcome, Outcome::Aborted(_)));
        assert_eq!(calls, ["begin", "reinit"]);
        let (outcome, calls) = run_with(
            doubtful(&[("send_offsets", Some(Other)), ("reinit", Some(Other))]),
            Ok(7),
        );
        assert!(
            matches!(outcome, Outcome::Aborted(_)),
            "a failed reinit is retried"
        );
        assert_eq!(calls, ["begin", "send_offsets", "reinit", "reinit"]);
    }

    #[test]
    fn a_fatal_error_before_the_commit_replaces_the_client() {
        let (outcome, calls) = run(&[("begin", Some(Fatal))]);
        assert!(matches!(outcome, Outcome::Unclear(_)));
        assert_eq!(calls, ["begin", "reinit"]);
    }

    #[test]
    fn a_failed_abort_replaces_the_client_and_a_failed_reinit_is_retried() {
        let (outcome, calls) = run(&[
            ("commit", Some(Abortable)),
            ("abort", Some(Other)),
            ("reinit", Some(Other)),
        ]);
        assert!(matches!(outcome, Outcome::Unclear(_)));
        assert_eq!(
            calls,
            [
                "begin",
                "send_offsets",
                "commit",
                "abort",
                "reinit",
                "reinit"
            ]
        );
    }
}
