//! Helpers of the read-side tests: a generator of valid account histories
//! ([`generator`]), a transactional producer that appends them with aborted transactions mixed
//! in ([`kafka`]), the read models expected from a fresh fold of the log and as stored, with the
//! checks comparing them ([`models`]), and a projector run in-process ([`Running`]).

pub mod generator;
pub mod kafka;
pub mod models;

use std::time::Duration;

use logbook_projections::{ProjectorError, ProjectorSettings, run_until};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use generator::{Generator, Planned};
pub use kafka::{committed_log, log_ends, produce, produce_async, produce_raw};
pub use models::{
    Models, assert_equal_to_fresh_fold, assert_prefix_consistent, expected, offsets, stored,
    wait_caught_up,
};

use crate::TestEnv;

/// A projector running in this process.
#[derive(Debug)]
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ProjectorError>>,
}

impl Running {
    /// Starts every projection in this process (6 s session timeout).
    pub fn start(env: &TestEnv) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let mut settings = ProjectorSettings::new(env.kafka.clone());
        settings.session_timeout = Duration::from_secs(6);
        let task = tokio::spawn(run_until(settings, env.db.clone(), async {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    /// Stops between batches; panics if the projector failed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("join")
            .expect("projector ended cleanly");
    }
}
