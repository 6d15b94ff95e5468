//! Progress reporting behind one small interface: bars on a terminal,
//! nothing in pipes, in `--json` mode or with `--quiet`.
//!
//! Owns: drawing to stderr (only when it is a terminal, so a closed pipe
//! never meets a bar). Must not: print results (stdout is for results)
//! or decide anything about the work it reports.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress reporter; [`Progress::hidden`] draws nothing.
pub struct Progress {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// Draws only when stderr is a terminal and `quiet` is false.
    pub fn for_terminal(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    pub fn hidden() -> Progress {
        Progress {
            enabled: false,
            bar: Mutex::new(None),
        }
    }

    /// Starts a counted step (`total` items).
    pub fn start(&self, what: &str, total: u64) {
        self.start_styled(what, total, "{msg:>12} [{bar:30}] {pos}/{len}");
    }

    /// Starts a step counted in bytes.
    pub fn start_bytes(&self, what: &str, total: u64) {
        self.start_styled(
            what,
            total,
            "{msg:>12} {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        );
    }

    /// A step with nothing to count (`0 B/0 B`) draws no bar: the previous
    /// bar is cleared and nothing replaces it.
    fn start_styled(&self, what: &str, total: u64, template: &str) {
        if !self.enabled {
            return;
        }
        if total == 0 {
            self.finish();
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        if let Some(old) = self.bar.lock().expect("not poisoned").replace(bar) {
            old.finish_and_clear();
        }
    }

    /// A one-line status for steps with no count (resolving, connecting).
    pub fn status(&self, what: &str) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
        bar.set_message(what.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        if let Some(old) = self.bar.lock().expect("not poisoned").replace(bar) {
            old.finish_and_clear();
        }
    }

    /// Shows `done` of `total` items beside a byte count (blobs sent at
    /// once, each advancing the same total).
    pub fn set_items(&self, done: usize, total: usize) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").as_ref() {
            bar.set_prefix(format!("{done}/{total}"));
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").as_ref() {
            bar.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
    }
}

/// A reader that advances the current bar by every byte read through it.
pub struct ProgressReader<'a, R: ?Sized> {
    inner: &'a mut R,
    progress: &'a Progress,
}

impl Progress {
    pub fn reader<'a, R: std::io::Read + ?Sized>(
        &'a self,
        inner: &'a mut R,
    ) -> ProgressReader<'a, R> {
        ProgressReader {
            inner,
            progress: self,
        }
    }
}

impl<R: std::io::Read + ?Sized> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step with nothing to count draws no bar (no `0 B/0 B`) and clears
    /// the bar before it; a step with something to count gets one.
    #[test]
    fn no_bar_for_an_empty_step() {
        let p = Progress {
            enabled: true,
            bar: Mutex::new(None),
        };
        p.start_bytes("fetching", 10);
        assert!(p.bar.lock().unwrap().is_some());
        p.start_bytes("fetching", 0);
        assert!(p.bar.lock().unwrap().is_none());
        p.start("storing", 0);
        assert!(p.bar.lock().unwrap().is_none());
        p.start("storing", 3);
        assert!(p.bar.lock().unwrap().is_some());
        p.finish();
    }
}
