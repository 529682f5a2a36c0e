//! CPU and resident memory of named process trees, read from `/proc` once a second.
//!
//! A watched process counts together with all its descendants (PostgreSQL's backends are
//! children of the postmaster). CPU is user + system time in `USER_HZ` ticks, which Linux
//! exposes as 100 per second on every architecture.

use std::collections::HashMap;
use std::fs;
use std::time::Instant;

use serde::Serialize;

/// Linux's `USER_HZ`: the unit of utime/stime in `/proc/<pid>/stat`.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("expected name=pid, got {0:?}")]
    BadSpec(String),
}

/// A process tree to watch: a label and the root pid.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Watched {
    type Err = ProcError;
    fn from_str(spec: &str) -> Result<Self, ProcError> {
        let (name, pid) = spec
            .split_once('=')
            .ok_or_else(|| ProcError::BadSpec(spec.to_owned()))?;
        let pid = pid
            .trim()
            .parse()
            .map_err(|_| ProcError::BadSpec(spec.to_owned()))?;
        Ok(Self {
            name: name.trim().to_owned(),
            pid,
        })
    }
}

/// One sample of one watched tree.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Usage {
    /// CPU in percent of one core since the previous sample.
    pub cpu_percent: f64,
    /// Resident set size of the tree in MiB.
    pub rss_mib: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Raw {
    ticks: u64,
    rss_kib: u64,
}

/// Samples the watched trees; `sample` gives the usage since the previous call.
#[derive(Debug)]
pub struct Sampler {
    watched: Vec<Watched>,
    last: HashMap<String, Raw>,
    last_at: Instant,
}

impl Sampler {
    pub fn new(watched: Vec<Watched>) -> Self {
        let mut sampler = Self {
            watched,
            last: HashMap::new(),
            last_at: Instant::now(),
        };
        let _ = sampler.sample();
        sampler
    }

    /// Usage of every watched tree since the previous sample, by name.
    pub fn sample(&mut self) -> Vec<(String, Usage)> {
        let now = Instant::now();
        let seconds = now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        self.last_at = now;
        let table = process_table();
        let mut out = Vec::with_capacity(self.watched.len());
        for watched in &self.watched {
            let raw = tree_usage(&table, watched.pid);
            let before = self.last.insert(watched.name.clone(), raw).unwrap_or(raw);
            let ticks = raw.ticks.saturating_sub(before.ticks) as f64;
            out.push((
                watched.name.clone(),
                Usage {
                    cpu_percent: 100.0 * ticks / TICKS_PER_SECOND / seconds,
                    rss_mib: raw.rss_kib as f64 / 1024.0,
                },
            ));
        }
        out
    }
}

/// pid -> (parent pid, ticks, rss KiB) of every process now.
fn process_table() -> HashMap<u32, (u32, Raw)> {
    let mut table = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(row) = read_process(pid) {
            table.insert(pid, row);
        }
    }
    table
}

fn read_process(pid: u32) -> Option<(u32, Raw)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (ppid, ticks) = parse_stat(&stat)?;
    let statm = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        ppid,
        Raw {
            ticks,
            rss_kib: pages * 4,
        },
    ))
}

/// Parent pid and utime + stime from a `/proc/<pid>/stat` line (the name may hold spaces).
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn tree_usage(table: &HashMap<u32, (u32, Raw)>, root: u32) -> Raw {
    let mut total = Raw::default();
    for (&pid, &(_, raw)) in table {
        if descends_from(table, pid, root) {
            total.ticks += raw.ticks;
            total.rss_kib += raw.rss_kib;
        }
    }
    total
}

fn descends_from(table: &HashMap<u32, (u32, Raw)>, mut pid: u32, root: u32) -> bool {
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match table.get(&pid) {
            Some(&(parent, _)) if parent != 0 && parent != pid => pid = parent,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_in_the_name_parse() {
        let line = "42 (my (odd) name) S 7 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some((7, 300)));
    }

    #[test]
    fn specs_parse_and_the_own_process_is_seen() {
        let me: Watched = format!("me={}", std::process::id()).parse().expect("spec");
        assert!("nopid".parse::<Watched>().is_err());
        let mut sampler = Sampler::new(vec![me]);
        let usage = sampler.sample();
        assert_eq!(usage.len(), 1);
        assert!(usage[0].1.rss_mib > 1.0, "{usage:?}");
    }
}
