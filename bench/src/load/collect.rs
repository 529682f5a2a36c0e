//! Folds what the workers and the sampler report into histograms and a per-second timeline.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::Op;
use crate::procstat::Usage;
use crate::summary::{self, Percentiles};

/// A report from a worker or the sampler.
#[derive(Debug)]
pub enum Report {
    /// One command: when it was due and when it completed (s since start), latency from its
    /// due time, the time it actually spent on the wire, and the HTTP status (0: no answer).
    Command {
        due_s: f64,
        at_s: f64,
        latency_us: u64,
        service_us: u64,
        op: Op,
        status: u16,
    },
    /// A read with the command's position: time from the command's answer to the read's.
    Fresh { at_s: f64, micros: u64, status: u16 },
    /// A transfer answered 202 read until settled: time from the answer to the first read
    /// showing it completed or failed (`settled` false: still pending at the probe's limit).
    Settled {
        at_s: f64,
        micros: u64,
        settled: bool,
    },
    /// Once a second: projector lag and process usage.
    Tick {
        at_s: f64,
        lag: Option<i64>,
        usage: Vec<(String, Usage)>,
    },
}

#[derive(Debug)]
struct Second {
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    lag: Option<i64>,
    usage: Vec<(String, Usage)>,
}

impl Second {
    fn new() -> Self {
        Self {
            ok: 0,
            errors: 0,
            latency: summary::histogram(),
            lag: None,
            usage: Vec::new(),
        }
    }
}

/// One row of the timeline in the report.
#[derive(Debug, Serialize)]
pub struct TimelineRow {
    pub t: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub lag: Option<i64>,
    pub procs: BTreeMap<String, Usage>,
}

/// Everything measured, as written to the report.
#[derive(Debug, Serialize)]
pub struct Measured {
    pub measured_seconds: f64,
    /// Successful commands among those due in the window.
    pub ok: u64,
    pub errors: u64,
    pub throughput_ok_per_s: f64,
    pub statuses: BTreeMap<String, u64>,
    pub latency: Percentiles,
    pub service_time: Percentiles,
    pub per_op: BTreeMap<String, Percentiles>,
    pub freshness: Percentiles,
    pub freshness_failures: u64,
    /// Transfers answered 202: answer -> completed or failed visible (empty for systems that
    /// settle a transfer before answering).
    pub transfer_settle: Percentiles,
    pub transfer_settle_unsettled: u64,
    pub projector_lag_max: Option<i64>,
    pub cdf: Vec<(f64, f64)>,
    pub procs: BTreeMap<String, ProcSummary>,
    pub timeline: Vec<TimelineRow>,
}

/// Mean CPU and peak RSS of one process tree over the measured window.
#[derive(Debug, Serialize)]
pub struct ProcSummary {
    pub cpu_percent_mean: f64,
    pub rss_mib_max: f64,
}

/// Collects reports. Latency and statuses count every command due inside the measured window,
/// however late it completed (a slow tail is never cut off); throughput counts completions
/// inside the window.
#[derive(Debug)]
pub struct Collector {
    window: (f64, f64),
    latency: Histogram<u64>,
    service: Histogram<u64>,
    per_op: HashMap<Op, Histogram<u64>>,
    freshness: Histogram<u64>,
    freshness_failures: u64,
    settle: Histogram<u64>,
    unsettled: u64,
    statuses: BTreeMap<String, u64>,
    ok: u64,
    errors: u64,
    completed_ok: u64,
    seconds: Vec<Second>,
}

impl Collector {
    /// Counts what completes between `warmup` and `warmup + duration` seconds.
    pub fn new(warmup: f64, duration: f64) -> Self {
        Self {
            window: (warmup, warmup + duration),
            latency: summary::histogram(),
            service: summary::histogram(),
            per_op: HashMap::new(),
            freshness: summary::histogram(),
            freshness_failures: 0,
            settle: summary::histogram(),
            unsettled: 0,
            statuses: BTreeMap::new(),
            ok: 0,
            errors: 0,
            completed_ok: 0,
            seconds: Vec::new(),
        }
    }

    fn second(&mut self, at_s: f64) -> &mut Second {
        let index = at_s.max(0.0) as usize;
        while self.seconds.len() <= index {
            self.seconds.push(Second::new());
        }
        &mut self.seconds[index]
    }

    fn measured(&self, at_s: f64) -> bool {
        at_s >= self.window.0 && at_s < self.window.1
    }

    pub fn add(&mut self, report: Report) {
        match report {
            Report::Command {
                due_s,
                at_s,
                latency_us,
                service_us,
                op,
                status,
            } => {
                let success = (200..300).contains(&status);
                if success && self.measured(at_s) {
                    self.completed_ok += 1;
                }
                self.command(due_s, at_s, latency_us, service_us, op, status)
            }
            Report::Fresh {
                at_s,
                micros,
                status,
            } => {
                if self.measured(at_s) {
                    if status == 200 {
                        summary::record(&mut self.freshness, micros);
                    } else {
                        self.freshness_failures += 1;
                    }
                }
            }
            Report::Settled {
                at_s,
                micros,
                settled,
            } => {
                if self.measured(at_s) {
                    if settled {
                        summary::record(&mut self.settle, micros);
                    } else {
                        self.unsettled += 1;
                    }
                }
            }
            Report::Tick { at_s, lag, usage } => {
                let second = self.second(at_s);
                second.lag = lag;
                second.usage = usage;
            }
        }
    }

    fn command(
        &mut self,
        due_s: f64,
        at_s: f64,
        latency_us: u64,
        service_us: u64,
        op: Op,
        status: u16,
    ) {
        let success = (200..300).contains(&status);
        let second = self.second(at_s);
        if success {
            second.ok += 1;
            summary::record(&mut second.latency, latency_us);
        } else {
            second.errors += 1;
        }
        if !self.measured(due_s) {
            return;
        }
        let label = if status == 0 {
            "no answer".to_owned()
        } else {
            status.to_string()
        };
        *self.statuses.entry(label).or_default() += 1;
        if success {
            self.ok += 1;
            summary::record(&mut self.latency, latency_us);
            summary::record(&mut self.service, service_us);
            let per_op = self.per_op.entry(op).or_insert_with(summary::histogram);
            summary::record(per_op, latency_us);
        } else {
            self.errors += 1;
        }
    }

    /// The report section of this run.
    pub fn finish(self) -> Measured {
        let duration = self.window.1 - self.window.0;
        let (first, last) = (self.window.0 as usize, self.window.1 as usize);
        let mut procs: BTreeMap<String, (f64, f64, u32)> = BTreeMap::new();
        let mut lag_max = None;
        for second in self.seconds.iter().take(last).skip(first) {
            lag_max = lag_max.max(second.lag);
            for (name, usage) in &second.usage {
                let entry = procs.entry(name.clone()).or_default();
                entry.0 += usage.cpu_percent;
                entry.1 = entry.1.max(usage.rss_mib);
                entry.2 += 1;
            }
        }
        let timeline = self
            .seconds
            .iter()
            .enumerate()
            .map(|(t, s)| TimelineRow {
                t: t as u64,
                ok: s.ok,
                errors: s.errors,
                p50_ms: s.latency.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: s.latency.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: s.latency.max() as f64 / 1000.0,
                lag: s.lag,
                procs: s.usage.iter().cloned().collect(),
            })
            .collect();
        Measured {
            measured_seconds: duration,
            ok: self.ok,
            errors: self.errors,
            throughput_ok_per_s: self.completed_ok as f64 / duration.max(1e-9),
            statuses: self.statuses,
            latency: Percentiles::of(&self.latency),
            service_time: Percentiles::of(&self.service),
            per_op: self
                .per_op
                .iter()
                .map(|(op, h)| (op.name().to_owned(), Percentiles::of(h)))
                .collect(),
            freshness: Percentiles::of(&self.freshness),
            freshness_failures: self.freshness_failures,
            transfer_settle: Percentiles::of(&self.settle),
            transfer_settle_unsettled: self.unsettled,
            projector_lag_max: lag_max,
            cdf: summary::cdf(&self.latency),
            procs: procs
                .into_iter()
                .map(|(name, (cpu, rss, n))| {
                    let summary = ProcSummary {
                        cpu_percent_mean: cpu / f64::from(n.max(1)),
                        rss_mib_max: rss,
                    };
                    (name, summary)
                })
                .collect(),
            timeline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(at_s: f64, latency_ms: u64, status: u16) -> Report {
        Report::Command {
            due_s: at_s - latency_ms as f64 / 1000.0,
            at_s,
            latency_us: latency_ms * 1000,
            service_us: latency_ms * 500,
            op: Op::Deposit,
            status,
        }
    }

    #[test]
    fn only_the_measured_window_counts() {
        let mut collector = Collector::new(1.0, 2.0);
        collector.add(command(0.5, 100, 200)); // warm-up
        collector.add(command(1.5, 10, 200));
        collector.add(command(2.5, 20, 409));
        collector.add(command(2.9, 30, 0));
        collector.add(command(3.5, 100, 200)); // after the window
        collector.add(Report::Fresh {
            at_s: 1.2,
            micros: 4000,
            status: 200,
        });
        collector.add(Report::Fresh {
            at_s: 1.3,
            micros: 4000,
            status: 503,
        });
        for (at_s, settled) in [(1.4, true), (1.6, false), (3.2, true)] {
            let micros = 60_000;
            collector.add(Report::Settled {
                at_s,
                micros,
                settled,
            });
        }
        let measured = collector.finish();
        assert_eq!((measured.ok, measured.errors), (1, 2));
        assert_eq!(measured.throughput_ok_per_s, 0.5);
        assert_eq!(measured.statuses.get("409"), Some(&1));
        assert_eq!(measured.statuses.get("no answer"), Some(&1));
        assert!((measured.latency.p50_ms - 10.0).abs() < 0.1);
        assert_eq!(measured.freshness.count, 1);
        assert_eq!(measured.freshness_failures, 1);
        assert_eq!(measured.transfer_settle.count, 1);
        assert_eq!(measured.transfer_settle_unsettled, 1);
        assert_eq!(measured.timeline.len(), 4);
        assert_eq!(measured.timeline[0].ok, 1);
    }
}
