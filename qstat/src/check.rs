//! `--check`: qstat as a Nagios/Icinga plugin. This module owns the
//! threshold ranges of the plugin guidelines, the states and the one line
//! of output (docs/monitoring.md).
//!
//! A threshold is a range `[@]start:end`; the plugin alerts when the value
//! is outside it (inside it with `@`). `N` means `0:N` (alert above N or
//! below 0), `N:` means from N up (alert below N), `~:N` means from minus
//! infinity (alert above N). Pairs of warning and critical ranges apply to
//! the messages in queue, the messages not yet preprocessed, and (with the
//! full scan) the oldest message's age, the messages past queuelifetime
//! and the damaged messages (warning `0` unless given); a pair whose
//! critical range does not hold its warning range is refused. Structure
//! damage (see [`crate::structure`]) is CRITICAL whatever the thresholds.
//! The worst state wins. The line is
//!
//! `QSTAT OK - 123 messages in queue, 4 not yet preprocessed | messages=123;W;C;0 unpreprocessed=4;;;0`
//!
//! with the thresholds as given in the perfdata, and with the scan more
//! words and perfdata (recipients, bounces, oldest age, expired, damaged,
//! structure problems).

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

impl Threshold {
    /// Whether `critical` fits with `self` as the warning of the same
    /// figure: a plain critical range must hold the whole warning range
    /// (else a value could be critical without passing warning first:
    /// `--warning 10 --critical 5`), an inside (`@`) critical range must lie
    /// within an inside warning range. Mixed kinds are not compared.
    pub fn consistent_with(&self, critical: &Threshold) -> bool {
        match (self.inside, critical.inside) {
            (false, false) => critical.start <= self.start && self.end <= critical.end,
            (true, true) => self.start <= critical.start && critical.end <= self.end,
            _ => true,
        }
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
    /// On the oldest message's age, in seconds.
    pub warning_age: Option<Threshold>,
    /// On the oldest message's age, in seconds.
    pub critical_age: Option<Threshold>,
    /// On messages past queuelifetime.
    pub warning_expired: Option<Threshold>,
    /// On messages past queuelifetime.
    pub critical_expired: Option<Threshold>,
    /// On damaged messages (default: WARNING above 0 when the queue is scanned).
    pub warning_damaged: Option<Threshold>,
    /// On damaged messages.
    pub critical_damaged: Option<Threshold>,
}

impl Thresholds {
    /// Refuses a warning and a critical range of one figure that do not
    /// fit together (a usage error: UNKNOWN, exit 3).
    pub fn validate(&self) -> Result<(), String> {
        let pairs = [
            ("--warning", &self.warning, "--critical", &self.critical),
            (
                "--warning-unpreprocessed",
                &self.warning_unpreprocessed,
                "--critical-unpreprocessed",
                &self.critical_unpreprocessed,
            ),
            ("--warning-age", &self.warning_age, "--critical-age", &self.critical_age),
            ("--warning-expired", &self.warning_expired, "--critical-expired", &self.critical_expired),
            ("--warning-damaged", &self.warning_damaged, "--critical-damaged", &self.critical_damaged),
        ];
        for (wn, w, cn, c) in pairs {
            if let (Some(w), Some(c)) = (w, c) {
                if !w.consistent_with(c) {
                    return Err(format!(
                        "{wn} {} and {cn} {} do not fit together: the critical range must be wider than the \
                         warning range (e.g. --warning 10 --critical 20)",
                        w.text(),
                        c.text()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether a threshold needs the full scan (`--detail`).
    pub fn need_scan(&self) -> bool {
        [
            &self.warning_age,
            &self.critical_age,
            &self.warning_expired,
            &self.critical_expired,
            &self.warning_damaged,
            &self.critical_damaged,
        ]
        .iter()
        .any(|t| t.is_some())
    }
}

fn judge(v: f64, warn: &Option<Threshold>, crit: &Option<Threshold>) -> (ExitCode, String) {
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
    let structure = r.structure.as_deref().unwrap_or(&[]);
    // qmail-qstat's own figures could not be read (or something else could
    // not, and the structure does not say why): UNKNOWN, with the
    // structure's first problem when there is one.
    if !r.errors.is_empty() && (structure.is_empty() || r.count_errors > 0) {
        let first = &r.errors[0];
        let more = match r.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more errors)", n - 1),
        };
        let damage = match structure.first() {
            Some(p) => format!("; queue structure damaged: {} ({} problems)", p.text, structure.len()),
            None => String::new(),
        };
        return (
            format!("QSTAT UNKNOWN - part of the queue could not be read: {first}{more}{damage}\n"),
            ExitCode::Unknown,
        );
    }
    let c = &r.counts;
    let (s1, note1) = judge(c.messages as f64, &th.warning, &th.critical);
    let (s2, note2) = judge(c.unpreprocessed as f64, &th.warning_unpreprocessed, &th.critical_unpreprocessed);
    let mut state = s1.worst(s2);
    let mut words =
        format!("{} messages in queue{note1}, {} not yet preprocessed{note2}", c.messages, c.unpreprocessed);
    let mut perf = format!(
        "messages={};{};{};0 unpreprocessed={};{};{};0",
        c.messages,
        t(&th.warning),
        t(&th.critical),
        c.unpreprocessed,
        t(&th.warning_unpreprocessed),
        t(&th.critical_unpreprocessed),
    );
    if let Some(d) = &r.detail {
        let default_damaged = Threshold::parse("0").expect("a valid range");
        let warn_damaged = th.warning_damaged.clone().or(Some(default_damaged));
        let age = d.oldest.map_or(0, |o| (r.time - o.birth).max(0));
        let (sa, na) = judge(age as f64, &th.warning_age, &th.critical_age);
        let (se, ne) = judge(d.past_lifetime as f64, &th.warning_expired, &th.critical_expired);
        let (sd, nd) = judge(d.damaged as f64, &warn_damaged, &th.critical_damaged);
        state = state.worst(sa).worst(se).worst(sd);
        words.push_str(&format!(
            ", {} damaged{nd}, oldest {age} s old{na}, {} past queuelifetime{ne}",
            d.damaged, d.past_lifetime
        ));
        let mut add =
            |label: &str, v: i64, uom: &str, w: &str, c: &str| perf.push_str(&format!(" {label}={v}{uom};{w};{c};0"));
        add("preprocessed", d.preprocessed as i64, "", "", "");
        add("local_recipients", d.local_pending as i64, "", "", "");
        add("remote_recipients", d.remote_pending as i64, "", "", "");
        add("pending_bounces", d.pending_bounce as i64, "", "", "");
        add("null_sender", d.null_sender.total() as i64, "", "", "");
        add("double_bounce", d.double_bounce.total() as i64, "", "", "");
        add("oldest_age", age, "s", t(&th.warning_age), t(&th.critical_age));
        add("expired", d.past_lifetime as i64, "", t(&th.warning_expired), t(&th.critical_expired));
        add("damaged", d.damaged as i64, "", t(&warn_damaged), t(&th.critical_damaged));
        add("strays", d.strays as i64, "", "", "");
        if r.structure.is_some() {
            add("structure_problems", structure.len() as i64, "", "", "0");
        }
    }
    if let Some(first) = structure.first() {
        state = ExitCode::Critical;
        let more = match structure.len() {
            1 => String::new(),
            n => format!(" (and {} more structure problems)", n - 1),
        };
        words = format!("queue structure damaged, qmail-send stops or stalls: {}{more}; {words}", first.text);
    }
    (format!("QSTAT {} - {words} | {perf}\n", state.plugin_word()), state)
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
            count_errors: 0,
            structure: None,
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
