//! Progress of long steps (SRS generation, keygen, proving at large k, compiling the verifier): a
//! spinner or a bar on a terminal, plain `tracing` lines otherwise (CI, logs, the daemon).
//!
//! Bars are drawn only after [`enable_terminal`] (the one-shot CLI commands call it; the daemon
//! does not) and only when stderr is a terminal. [`log_writer`] is the `tracing` writer to use
//! with them: it hides the bar while a log line is written, so lines and bars never interleave.
//!
//! A [`Step`] is a guard: it finishes its bar on drop, and logs how long the step took.

use std::{
    io::{IsTerminal, Write},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static TERMINAL: AtomicBool = AtomicBool::new(false);
/// The bar on screen, hidden by [`log_writer`] while it writes.
static ACTIVE: Mutex<Option<(u64, ProgressBar)>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Draws bars from now on if stderr is a terminal (otherwise steps stay log lines).
pub fn enable_terminal() {
    TERMINAL.store(std::io::stderr().is_terminal(), Ordering::Relaxed);
}

/// Whether steps draw bars.
pub fn is_terminal() -> bool {
    TERMINAL.load(Ordering::Relaxed)
}

/// A `tracing_subscriber` writer to stderr that hides the active bar while writing.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

/// Makes a [`LogWriter`] (pass to `tracing_subscriber::fmt().with_writer(..)`).
pub fn log_writer() -> LogWriter {
    LogWriter
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, bar)| bar.clone());
        match active {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A long step in progress: a spinner (or a bar, see [`Step::bar`]) on a terminal, a log line at
/// the start, at each quarter of a bar's total, and at the end otherwise. Finishes on drop.
#[derive(Debug)]
pub struct Step {
    label: String,
    id: u64,
    bar: Option<ProgressBar>,
    started: Instant,
    /// Last quarter logged (bars without a terminal).
    quarter: AtomicU64,
    done: bool,
}

impl Step {
    /// Starts a step shown as a spinner with its elapsed time.
    pub fn start(label: impl Into<String>) -> Self {
        let label = label.into();
        let bar = is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
            bar
        });
        Self::begin(label, bar)
    }

    /// Starts a step of `total` units shown as a bar with its rate and ETA; update it with
    /// [`Step::set`].
    pub fn bar(label: impl Into<String>, total: u64) -> Self {
        let label = label.into();
        let bar = is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {percent}% ({elapsed}, ETA {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Self::begin(label, bar)
    }

    /// Starts a spinner if `cond` (e.g. proving only at k ≥ 16), nothing otherwise.
    pub fn start_if(cond: bool, label: impl Into<String>) -> Option<Self> {
        cond.then(|| Self::start(label))
    }

    fn begin(label: String, bar: Option<ProgressBar>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match &bar {
            Some(bar) => {
                bar.set_message(label.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, bar.clone()));
            }
            None => tracing::info!("{label}..."),
        }
        Self { label, id, bar, started: Instant::now(), quarter: AtomicU64::new(0), done: false }
    }

    /// Reports `done` of `total` units.
    pub fn set(&self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            None if total > 0 => {
                let quarter = done * 4 / total;
                if (1..4).contains(&quarter) && self.quarter.fetch_max(quarter, Ordering::Relaxed) < quarter {
                    tracing::info!("{}: {}% ({:.1} s)", self.label, quarter * 25, self.started.elapsed().as_secs_f64());
                }
            }
            None => {}
        }
    }

    /// Marks the step successful (dropping it without this logs it as stopped).
    pub fn finish(mut self) -> Duration {
        self.done = true;
        self.started.elapsed()
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
            if active.as_ref().is_some_and(|(id, _)| *id == self.id) {
                *active = None;
            }
        }
        let seconds = self.started.elapsed().as_secs_f64();
        if self.done {
            tracing::info!("{}: done in {seconds:.1} s", self.label);
        } else {
            tracing::info!("{}: stopped after {seconds:.1} s", self.label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_without_a_terminal_are_log_lines_and_finish_on_drop() {
        // Tests never run with bars: TERMINAL is only set by enable_terminal.
        assert!(!is_terminal());
        let step = Step::bar("generating", 100);
        for i in 0..=100 {
            step.set(i, 100);
        }
        assert_eq!(step.quarter.load(Ordering::Relaxed), 3);
        assert!(step.finish() < Duration::from_secs(60));
        drop(Step::start_if(false, "never"));
        let spinner = Step::start("spinning");
        drop(spinner);
        assert!(ACTIVE.lock().unwrap().is_none());
        let mut w = log_writer();
        w.flush().unwrap();
    }
}
