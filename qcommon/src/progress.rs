//! The progress line of a tool's long run, on standard error and only when
//! standard error is a terminal: the phase (listing, scanning, repairing,
//! verifying, removing), done/total when the total is known, the rate and
//! the time left. It is drawn by `indicatif` and cleared when the phase
//! ends, when the tool prints anything (through [`Progress::suspend`]) and
//! at the end, so nothing of it lands in a pipe, a file or the JSON
//! document. This is the one thing of the library that writes: only a tool
//! that makes a [`Progress`] with [`Progress::stderr`] gets a line.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A progress line (or nothing, when standard error is no terminal).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    tool: &'static str,
    /// The first handle: it clears the line when dropped.
    owner: bool,
}

impl Clone for Progress {
    fn clone(&self) -> Self {
        Progress { bar: self.bar.clone(), tool: self.tool, owner: false }
    }
}

fn style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{prefix}: {msg} {pos}/{len} {rate}, {left} left {wide_bar}"
    } else {
        "{prefix}: {msg} {pos} {rate} {spinner}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .tick_chars("|/-\\ ")
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", s.per_sec());
        })
        .with_key("left", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let left = s.eta().as_secs() as i64;
            let _ = write!(w, "{}", crate::human::short_age(left));
        })
}

/// The line drawn now, if any: [`around_output`] clears it.
static ACTIVE: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);

/// Runs `f` (which prints to standard error or to a terminal) with the
/// progress line, if one is drawn, cleared; it is drawn again after.
pub fn around_output<R>(f: impl FnOnce() -> R) -> R {
    let bar = ACTIVE.lock().map(|a| a.clone()).unwrap_or(None);
    match bar {
        Some(b) if !b.is_finished() => b.suspend(f),
        _ => f(),
    }
}

impl Progress {
    /// A line on standard error for `tool`, when it is a terminal; else
    /// nothing at all.
    pub fn stderr(tool: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10))
                .with_style(style(false))
                .with_prefix(tool)
        });
        if let (Some(b), Ok(mut a)) = (&bar, ACTIVE.lock()) {
            *a = Some(b.clone());
        }
        Progress { bar, tool, owner: true }
    }

    /// No line at all.
    pub fn hidden(tool: &'static str) -> Progress {
        Progress { bar: None, tool, owner: true }
    }

    /// Whether a line is drawn.
    pub fn shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Starts a phase (`scanning`, `repairing`, ...) from zero, with its
    /// total when known.
    pub fn phase(&self, phase: &str, total: Option<u64>) {
        let Some(b) = &self.bar else { return };
        match total {
            Some(n) => b.set_length(n),
            None => b.unset_length(),
        }
        b.set_message(phase.to_string());
        b.set_style(style(total.is_some()));
        b.reset();
    }

    /// Starts a phase whose size is not known and that reports no count
    /// (a spinner and the time spent, turned by a thread of indicatif).
    pub fn spin(&self, phase: &str) {
        let Some(b) = &self.bar else { return };
        let st = ProgressStyle::with_template("{prefix}: {msg} {elapsed} {spinner}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_chars("|/-\\ ");
        b.set_style(st);
        b.set_message(phase.to_string());
        b.unset_length();
        b.reset();
        b.enable_steady_tick(std::time::Duration::from_millis(200));
    }

    /// The total of the phase became known (or grew).
    pub fn set_total(&self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_style(style(true));
            b.set_length(total);
        }
    }

    /// `n` more done. The total grows when the count passes it (a total
    /// from a listing is an estimate).
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            if let Some(len) = b.length() {
                if b.position() > len {
                    b.set_length(b.position());
                }
            }
        }
    }

    /// Runs `f` (which prints) with the line cleared, and draws it again
    /// after.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    /// Clears the line (the phase is over); a later [`Progress::phase`]
    /// draws it again.
    pub fn clear(&self) {
        if let Some(b) = &self.bar {
            b.disable_steady_tick();
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // The first handle clears the line.
        if let Some(b) = self.bar.take().filter(|_| self.owner) {
            if !b.is_finished() {
                b.finish_and_clear();
            }
            if let Ok(mut a) = ACTIVE.lock() {
                *a = None;
            }
        }
    }
}

/// A writer that clears the progress line while it writes, when both it
/// and the line go to a terminal (a report on a file or pipe needs no
/// clearing: the line is on another stream).
#[derive(Debug)]
pub struct Clearing<W> {
    inner: W,
    progress: Option<Progress>,
}

impl<W: std::io::Write> Clearing<W> {
    /// `inner`, cleared around `progress` when `inner_is_terminal`.
    pub fn new(inner: W, progress: &Progress, inner_is_terminal: bool) -> Self {
        let progress = (progress.shown() && inner_is_terminal).then(|| progress.clone());
        Clearing { inner, progress }
    }
}

impl<W: std::io::Write> std::io::Write for Clearing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.progress {
            Some(p) => {
                let inner = &mut self.inner;
                p.suspend(|| {
                    inner.write_all(buf)?;
                    inner.flush()?;
                    Ok(buf.len())
                })
            }
            None => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
