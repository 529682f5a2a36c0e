//! When a batch read from a consumer closes: the clock that the processor, the saga and the
//! projectors share for their collect loops.
//!
//! A batch waits up to a short idle time for its first record, then up to its linger for more.
//! Once the linger has passed it still takes, without waiting, what the consumer has already
//! fetched, and closes at the first poll that brings nothing: so a linger of 0 means "what is
//! queued now", not "one record per batch". The caller also closes it when it is full.

use std::time::{Duration, Instant};

use crate::kafka::poll_timeout;

/// How long a batch waits for its first record before the collect loop returns (and its caller
/// looks around: stop requests, errors, rebalances).
pub const IDLE: Duration = Duration::from_millis(100);

/// The clock of one batch being collected.
#[derive(Debug, Clone, Copy)]
pub struct Linger {
    linger: Duration,
    idle_until: Instant,
    deadline: Option<Instant>,
}

/// How to poll next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextPoll {
    /// The poll's timeout (whole milliseconds; zero once the linger has passed).
    pub timeout: Duration,
    /// Past the linger: a poll that brings nothing closes the batch.
    pub draining: bool,
}

impl Linger {
    /// Starts a batch: it waits [`IDLE`] for a first record, then `linger` for more.
    pub fn start(linger: Duration) -> Linger {
        Linger::started_at(Instant::now(), linger, IDLE)
    }

    fn started_at(now: Instant, linger: Duration, idle: Duration) -> Linger {
        Linger {
            linger,
            idle_until: now + idle,
            deadline: None,
        }
    }

    /// Something joined the batch (or a partition's end was reached): the linger runs from
    /// the first such moment.
    pub fn received(&mut self) {
        self.received_at(Instant::now());
    }

    fn received_at(&mut self, now: Instant) {
        self.deadline.get_or_insert(now + self.linger);
    }

    /// The next poll, or None when the batch closes (nothing came within the idle time).
    pub fn next_poll(&self) -> Option<NextPoll> {
        self.next_poll_at(Instant::now())
    }

    fn next_poll_at(&self, now: Instant) -> Option<NextPoll> {
        match self.deadline {
            None => {
                let left = self.idle_until.checked_duration_since(now)?;
                (!left.is_zero()).then(|| NextPoll {
                    timeout: poll_timeout(left),
                    draining: false,
                })
            }
            Some(deadline) => Some(match deadline.checked_duration_since(now) {
                Some(left) if !left.is_zero() => NextPoll {
                    timeout: poll_timeout(left),
                    draining: false,
                },
                _ => NextPoll {
                    timeout: Duration::ZERO,
                    draining: true,
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_empty_batch_closes_after_the_idle_time() {
        let t0 = Instant::now();
        let clock = Linger::started_at(t0, 2 * MS, 100 * MS);
        assert_eq!(
            clock.next_poll_at(t0 + 40 * MS),
            Some(NextPoll {
                timeout: 60 * MS,
                draining: false
            })
        );
        assert_eq!(clock.next_poll_at(t0 + 100 * MS), None);
    }

    #[test]
    fn after_the_first_record_it_waits_the_linger_then_drains() {
        let t0 = Instant::now();
        let mut clock = Linger::started_at(t0, 2 * MS, 100 * MS);
        clock.received_at(t0 + 10 * MS);
        // a later record does not move the deadline
        clock.received_at(t0 + 11 * MS);
        let waiting = clock.next_poll_at(t0 + 11 * MS).expect("polls");
        assert_eq!((waiting.timeout, waiting.draining), (MS, false));
        let drain = NextPoll {
            timeout: Duration::ZERO,
            draining: true,
        };
        assert_eq!(clock.next_poll_at(t0 + 12 * MS), Some(drain));
        // past the idle time too: still draining, never closed by the clock alone
        assert_eq!(clock.next_poll_at(t0 + 500 * MS), Some(drain));
    }

    #[test]
    fn a_linger_of_zero_drains_at_once() {
        let t0 = Instant::now();
        let mut clock = Linger::started_at(t0, Duration::ZERO, 100 * MS);
        clock.received_at(t0);
        assert_eq!(
            clock.next_poll_at(t0),
            Some(NextPoll {
                timeout: Duration::ZERO,
                draining: true
            })
        );
    }
}
