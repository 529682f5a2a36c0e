//! A progress bar on stderr for the long backup and restore runs (hidden when asked, and by
//! indicatif itself when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str =
    "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {per_sec} eta {eta}";

#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `total` units (offsets for a backup, records for a restore).
    pub fn new(visible: bool, label: &'static str, total: u64) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style);
        }
        bar.set_prefix(label);
        Progress { bar }
    }

    pub fn advance(&self, units: u64) {
        if units > 0 {
            self.bar.inc(units);
        }
    }

    pub fn finish(&self) {
        self.bar.finish();
    }
}
