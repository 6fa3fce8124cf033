//! `--check`: qstat as a Nagios/Icinga plugin. This module owns the
//! threshold ranges of the plugin guidelines and the one line of output.
//!
//! A threshold is a range `[@]start:end`; the plugin alerts when the value
//! is outside it (inside it with `@`). `N` means `0:N` (alert above N or
//! below 0), `N:` means from N up (alert below N), `~:N` means from minus
//! infinity (alert above N). `--warning`/`--critical` apply to the number
//! of messages in the queue, `--warning-unpreprocessed`/
//! `--critical-unpreprocessed` to the messages not yet preprocessed; the
//! worst state wins. The line is
//!
//! `QSTAT OK - 123 messages in queue, 4 not yet preprocessed | messages=123;W;C;0 unpreprocessed=4;;;0`
//!
//! with the thresholds as given in the perfdata, and with `--detail` more
//! perfdata (recipients, bounces, oldest age, expired, damaged).

use crate::exit::ExitCode;
use crate::report::Report;

/// A threshold range.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    start: f64,
    end: f64,
    inside: bool,
}

fn bound(s: &str, what: &str, whole: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{whole:?}: {what} {s:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{whole:?}: {what} {s:?} is not a finite number"))
    }
}

impl Threshold {
    /// Parses `[@]start:end`, `N`, `N:` or `~:N`.
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let (inside, range) = match s.strip_prefix('@') {
            Some(r) => (true, r),
            None => (false, s),
        };
        if range.is_empty() {
            return Err(format!("{s:?}: empty range"));
        }
        let (start, end) = match range.split_once(':') {
            None => (0.0, bound(range, "end", s)?),
            Some((a, b)) => {
                let start = match a {
                    "~" => f64::NEG_INFINITY,
                    "" => 0.0,
                    a => bound(a, "start", s)?,
                };
                let end = if b.is_empty() { f64::INFINITY } else { bound(b, "end", s)? };
                (start, end)
            }
        };
        if start > end {
            return Err(format!("{s:?}: start is above end"));
        }
        Ok(Threshold { text: s.to_string(), start, end, inside })
    }

    /// Whether `v` is an alert.
    pub fn alerts(&self, v: f64) -> bool {
        let within = v >= self.start && v <= self.end;
        within == self.inside
    }

    /// As given.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The thresholds of a check.
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    /// On messages in queue.
    pub warning: Option<Threshold>,
    /// On messages in queue.
    pub critical: Option<Threshold>,
    /// On messages not yet preprocessed.
    pub warning_unpreprocessed: Option<Threshold>,
    /// On messages not yet preprocessed.
    pub critical_unpreprocessed: Option<Threshold>,
}

fn judge(v: u64, warn: &Option<Threshold>, crit: &Option<Threshold>) -> (ExitCode, String) {
    let v = v as f64;
    if let Some(c) = crit.as_ref().filter(|c| c.alerts(v)) {
        return (ExitCode::Critical, format!(" (critical: {})", c.text()));
    }
    if let Some(w) = warn.as_ref().filter(|w| w.alerts(v)) {
        return (ExitCode::Warning, format!(" (warning: {})", w.text()));
    }
    (ExitCode::Ok, String::new())
}

fn t(x: &Option<Threshold>) -> &str {
    x.as_ref().map_or("", |t| t.text())
}

/// The plugin's line (with a newline) and exit status for a report.
pub fn render(r: &Report, th: &Thresholds) -> (String, ExitCode) {
    if let Some(first) = r.errors.first() {
        let more = match r.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more errors)", n - 1),
        };
        return (format!("QSTAT UNKNOWN - part of the queue could not be read: {first}{more}\n"), ExitCode::Unknown);
    }
    let c = &r.counts;
    let (s1, note1) = judge(c.messages, &th.warning, &th.critical);
    let (s2, note2) = judge(c.unpreprocessed, &th.warning_unpreprocessed, &th.critical_unpreprocessed);
    let state = s1.worst(s2);
    let mut line = format!(
        "QSTAT {} - {} messages in queue{note1}, {} not yet preprocessed{note2} | messages={};{};{};0 unpreprocessed={};{};{};0",
        state.plugin_word(),
        c.messages,
        c.unpreprocessed,
        c.messages,
        t(&th.warning),
        t(&th.critical),
        c.unpreprocessed,
        t(&th.warning_unpreprocessed),
        t(&th.critical_unpreprocessed),
    );
    if let Some(d) = &r.detail {
        let mut add = |label: &str, v: i64, uom: &str| line.push_str(&format!(" {label}={v}{uom};;;0"));
        add("preprocessed", d.preprocessed as i64, "");
        add("local_recipients", d.local_pending as i64, "");
        add("remote_recipients", d.remote_pending as i64, "");
        add("pending_bounces", d.pending_bounce as i64, "");
        add("null_sender", d.null_sender.total() as i64, "");
        add("double_bounce", d.double_bounce.total() as i64, "");
        add("oldest_age", d.oldest.map_or(0, |o| (r.time - o.birth).max(0)), "s");
        add("expired", d.past_lifetime as i64, "");
        add("damaged", d.damaged as i64, "");
        add("strays", d.strays as i64, "");
    }
    line.push('\n');
    (line, state)
}

/// The line for a run that could not look at the queue at all.
pub fn unknown(why: &str) -> String {
    let one_line: String = why.lines().collect::<Vec<_>>().join(" ");
    format!("QSTAT UNKNOWN - {one_line}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::Counts;

    fn th(s: &str) -> Threshold {
        Threshold::parse(s).unwrap()
    }

    #[test]
    fn ranges_as_the_guidelines_define_them() {
        let r = th("10");
        assert!(!r.alerts(0.0) && !r.alerts(10.0) && r.alerts(11.0) && r.alerts(-1.0));
        let r = th("10:");
        assert!(r.alerts(9.0) && !r.alerts(10.0) && !r.alerts(1e12));
        let r = th("~:10");
        assert!(!r.alerts(-1e12) && !r.alerts(10.0) && r.alerts(10.5));
        let r = th("10:20");
        assert!(r.alerts(9.0) && !r.alerts(15.0) && r.alerts(21.0));
        let r = th("@10:20");
        assert!(!r.alerts(9.0) && r.alerts(10.0) && r.alerts(20.0) && !r.alerts(21.0));
        assert!(Threshold::parse("").is_err());
        assert!(Threshold::parse("x").is_err());
        assert!(Threshold::parse("20:10").is_err());
        assert!(Threshold::parse("1:inf").is_err());
        assert_eq!(th("@1:2").text(), "@1:2");
    }

    fn report(messages: u64, unpreprocessed: u64) -> Report {
        Report {
            queue: "/q".into(),
            time: 0,
            counts: Counts { messages, unpreprocessed },
            big_todo: false,
            detail: None,
            top: None,
            errors: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn lines_and_states() {
        let t = Thresholds { warning: Some(th("100")), critical: Some(th("1000")), ..Thresholds::default() };
        let (l, s) = render(&report(123, 4), &t);
        assert_eq!(s, ExitCode::Warning);
        assert_eq!(
            l,
            "QSTAT WARNING - 123 messages in queue (warning: 100), 4 not yet preprocessed \
             | messages=123;100;1000;0 unpreprocessed=4;;;0\n"
        );
        let (l, s) = render(&report(12, 4), &t);
        assert_eq!(s, ExitCode::Ok);
        assert!(l.starts_with("QSTAT OK - 12 messages in queue, 4 not yet preprocessed | "), "{l}");
        let (l, s) = render(&report(5000, 4), &t);
        assert_eq!(s, ExitCode::Critical);
        assert!(l.contains("(critical: 1000)"), "{l}");
        let t2 = Thresholds { critical_unpreprocessed: Some(th("3")), ..t.clone() };
        let (l, s) = render(&report(12, 4), &t2);
        assert_eq!(s, ExitCode::Critical);
        assert!(l.ends_with("unpreprocessed=4;;3;0\n"), "{l}");
        let mut r = report(1, 1);
        r.errors = vec!["a".into(), "b".into()];
        let (l, s) = render(&r, &t);
        assert_eq!(s, ExitCode::Unknown);
        assert_eq!(l, "QSTAT UNKNOWN - part of the queue could not be read: a (and 1 more errors)\n");
        assert_eq!(unknown("x\ny"), "QSTAT UNKNOWN - x y\n");
    }
}
