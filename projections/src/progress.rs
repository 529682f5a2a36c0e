//! Read-your-writes: knowing, in the API process, how far each projection has got.
//!
//! [`ProgressWatcher`] keeps the stored next offset of every projection and partition in
//! memory. A background task LISTENs on [`PROGRESS_CHANNEL`] (projectors NOTIFY in their batch
//! transaction, so a notice arrives exactly when the rows are visible), then loads the table,
//! and applies each notice. After a lost connection it reconnects and loads the table again
//! (notices sent meanwhile are gone). Waiters sleep on a `watch` channel: no polling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use logbook_events::Position;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::offsets::{PROGRESS_CHANNEL, ProgressNotice};

/// How long a query waits for `min_position` unless configured otherwise.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

/// Stored next offsets by projection (offsets key) and partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    offsets: HashMap<String, HashMap<i32, i64>>,
}

impl Progress {
    /// The stored next offset of a projection's partition, if known.
    pub fn next_offset(&self, projection: &str, partition: i32) -> Option<i64> {
        self.offsets.get(projection)?.get(&partition).copied()
    }

    /// Whether the projection has applied the event at `position`.
    pub fn has_passed(&self, projection: &str, position: Position) -> bool {
        self.next_offset(projection, position.partition)
            .is_some_and(|next| next > position.offset)
    }

    /// Records offsets; they only move forward (a late notice cannot move them back).
    pub fn advance(&mut self, projection: &str, offsets: &[(i32, i64)]) -> bool {
        let partitions = self.offsets.entry(projection.to_owned()).or_default();
        let mut changed = false;
        for (partition, next) in offsets {
            let stored = partitions.entry(*partition).or_insert(-1);
            if *next > *stored {
                *stored = *next;
                changed = true;
            }
        }
        changed
    }
}

/// The in-memory view of projection progress, fed by LISTEN/NOTIFY.
#[derive(Debug)]
pub struct ProgressWatcher {
    progress: watch::Receiver<Progress>,
    max_wait: Duration,
}

impl ProgressWatcher {
    /// Starts watching with [`DEFAULT_MAX_WAIT`]. Must be called inside a tokio runtime; the
    /// background task ends when the watcher is dropped.
    pub fn start(pool: PgPool) -> Arc<ProgressWatcher> {
        Self::start_with(pool, DEFAULT_MAX_WAIT)
    }

    /// Starts watching; queries wait at most `max_wait` for a position.
    pub fn start_with(pool: PgPool, max_wait: Duration) -> Arc<ProgressWatcher> {
        let (sender, receiver) = watch::channel(Progress::default());
        tokio::spawn(listen(pool, sender));
        Arc::new(ProgressWatcher {
            progress: receiver,
            max_wait,
        })
    }

    /// The configured bound of a read-your-writes wait.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// A copy of the current progress.
    pub fn snapshot(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Waits until `projection` has applied the event at `position`; false after `timeout`.
    pub async fn wait_for(&self, projection: &str, position: Position, timeout: Duration) -> bool {
        let mut receiver = self.progress.clone();
        let passed = receiver.wait_for(|p| p.has_passed(projection, position));
        matches!(tokio::time::timeout(timeout, passed).await, Ok(Ok(_)))
    }
}

/// Keeps `sender` up to date until every receiver is gone.
async fn listen(pool: PgPool, sender: watch::Sender<Progress>) {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::select! {
            () = sender.closed() => return,
            result = session(&pool, &sender) => {
                if let Err(error) = result {
                    if crate::db::note_refusal(&error) {
                        return;
                    }
                    tracing::warn!(%error, retry_in = ?delay, "projection progress listener failed");
                }
            }
        }
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One listening connection: LISTEN, load, then apply notices (reloading after a reconnect).
async fn session(pool: &PgPool, sender: &watch::Sender<Progress>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(PROGRESS_CHANNEL).await?;
    reload(pool, sender).await?;
    loop {
        match listener.try_recv().await? {
            Some(notification) => apply_notice(sender, notification.payload()),
            None => reload(pool, sender).await?,
        }
    }
}

async fn reload(pool: &PgPool, sender: &watch::Sender<Progress>) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT projection, partition, next_offset FROM projection_offsets")
            .fetch_all(pool)
            .await?;
    let mut by_projection: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    for (projection, partition, next) in rows {
        by_projection
            .entry(projection)
            .or_default()
            .push((partition, next));
    }
    sender.send_if_modified(|progress| {
        by_projection
            .iter()
            .fold(false, |changed, (name, offsets)| {
                progress.advance(name, offsets) | changed
            })
    });
    Ok(())
}

fn apply_notice(sender: &watch::Sender<Progress>, payload: &str) {
    match serde_json::from_str::<ProgressNotice>(payload) {
        Ok(notice) => {
            sender.send_if_modified(|p| p.advance(&notice.projection, &notice.offsets));
        }
        Err(error) => tracing::warn!(%error, "unreadable projection progress notice"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_moves_forward() {
        let mut progress = Progress::default();
        assert!(!progress.has_passed("ledger", Position::new(0, 0)));
        assert!(progress.advance("ledger", &[(0, 5), (1, 2)]));
        assert!(progress.has_passed("ledger", Position::new(0, 4)));
        assert!(!progress.has_passed("ledger", Position::new(0, 5)));
        assert!(!progress.advance("ledger", &[(0, 3)]));
        assert_eq!(progress.next_offset("ledger", 0), Some(5));
        assert!(!progress.has_passed("archive", Position::new(0, 0)));
    }

    #[tokio::test]
    async fn waiters_wake_on_a_notice_and_time_out_otherwise() {
        let (sender, receiver) = watch::channel(Progress::default());
        let watcher = ProgressWatcher {
            progress: receiver,
            max_wait: DEFAULT_MAX_WAIT,
        };
        let waiting = watcher.wait_for("ledger", Position::new(2, 9), Duration::from_secs(5));
        let notify = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            apply_notice(&sender, r#"{"projection":"ledger","offsets":[[2,10]]}"#);
        };
        let (passed, ()) = tokio::join!(waiting, notify);
        assert!(passed);
        let late = watcher.wait_for("ledger", Position::new(2, 10), Duration::from_millis(30));
        assert!(!late.await);
    }
}
