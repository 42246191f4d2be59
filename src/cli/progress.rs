//! A one-line progress bar for the terminal (no dependencies).

use std::io::Write;
use std::time::Instant;

pub struct Progress {
    total: usize,
    started: Instant,
    label: String,
}

impl Progress {
    pub fn new(label: &str, total: usize) -> Self {
        Self {
            total: total.max(1),
            started: Instant::now(),
            label: label.to_string(),
        }
    }

    /// Redraw the bar at `done` of `total` with a status message.
    pub fn update(&self, done: usize, message: &str) {
        let width = 30;
        let frac = (done as f64 / self.total as f64).min(1.0);
        let filled = (frac * width as f64).round() as usize;
        let secs = self.started.elapsed().as_secs_f64();
        eprint!(
            "\r{} [{}{}] {:>3.0}% {:>6.1}s  {}\x1b[K",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            100.0 * frac,
            secs,
            message
        );
        let _ = std::io::stderr().flush();
    }

    /// Print a line above the bar.
    pub fn println(&self, line: &str) {
        eprintln!("\r{line}\x1b[K");
    }

    pub fn finish(&self) {
        eprintln!();
    }
}
