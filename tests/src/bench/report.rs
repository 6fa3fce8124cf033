//! Turning measured groups into figures and tables: min/median/max wall
//! time, median user/system time, peak RSS, cost per message, bytes read,
//! and the ratio of our tool to its counterpart (the median of the ratios
//! of the pairs, each pair run back to back, so that drift cancels out);
//! plain text for the terminal and Markdown for docs/performance.md; and
//! the verdict on each target of the tool issues.

use std::fmt::Write as _;

use crate::cases::{Case, Group, Series};
use crate::queues::Size;

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The figures of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Runs.
    pub n: usize,
    /// Wall time, s.
    pub min: f64,
    /// Wall time, s.
    pub med: f64,
    /// Wall time, s.
    pub max: f64,
    /// Median user time, s.
    pub user: f64,
    /// Median system time, s.
    pub sys: f64,
    /// Largest peak RSS over the runs, MB (2^20 bytes).
    pub rss_mb: f64,
    /// Median bytes through read calls, MB (10^6 bytes).
    pub read_mb: f64,
    /// Median read calls.
    pub reads: f64,
    /// Median bytes from storage, MB (10^6 bytes).
    pub disk_mb: f64,
}

impl Stats {
    /// The figures of `s`.
    pub fn of(s: &Series) -> Stats {
        let f = |g: fn(&crate::measure::Sample) -> f64| -> Vec<f64> { s.samples.iter().map(g).collect() };
        let wall = f(|x| x.wall);
        Stats {
            n: wall.len(),
            min: wall.iter().copied().fold(f64::INFINITY, f64::min),
            med: median(&wall),
            max: wall.iter().copied().fold(0.0, f64::max),
            user: median(&f(|x| x.user)),
            sys: median(&f(|x| x.sys)),
            rss_mb: s.samples.iter().map(|x| x.maxrss_kb).max().unwrap_or(0) as f64 / 1024.0,
            read_mb: median(&f(|x| x.rchar as f64)) / 1e6,
            reads: median(&f(|x| x.syscr as f64)),
            disk_mb: median(&f(|x| x.read_bytes as f64)) / 1e6,
        }
    }

    /// Microseconds of wall time per message (median).
    pub fn us_per_msg(&self, size: Size) -> f64 {
        self.med * 1e6 / size.0 as f64
    }
}

/// The median over the pairs of `a`'s wall time divided by `b`'s (runs
/// paired by index).
pub fn pair_ratio(a: &Series, b: &Series) -> f64 {
    let r: Vec<f64> =
        a.samples.iter().zip(&b.samples).filter(|(_, y)| y.wall > 0.0).map(|(x, y)| x.wall / y.wall).collect();
    median(&r)
}

const HEAD: [&str; 14] = [
    "size",
    "case",
    "command",
    "runs",
    "min s",
    "median s",
    "max s",
    "user s",
    "sys s",
    "peak RSS MB",
    "µs/msg",
    "read B/msg",
    "disk MB",
    "÷ counterpart",
];

fn row(g: &Group, s: &Series, ratio: Option<f64>) -> [String; 14] {
    let st = Stats::of(s);
    [
        g.size.label(),
        g.case.name().to_string(),
        s.cmd.label.clone(),
        st.n.to_string(),
        format!("{:.3}", st.min),
        format!("{:.3}", st.med),
        format!("{:.3}", st.max),
        format!("{:.2}", st.user),
        format!("{:.2}", st.sys),
        format!("{:.1}", st.rss_mb),
        format!("{:.1}", st.us_per_msg(g.size)),
        format!("{:.0}", st.read_mb * 1e6 / g.size.0 as f64),
        format!("{:.1}", st.disk_mb),
        ratio.map_or_else(|| "—".to_string(), |r| format!("{r:.2}×")),
    ]
}

fn rows(groups: &[&Group]) -> Vec<[String; 14]> {
    let mut out = Vec::new();
    for g in groups {
        for s in &g.ours {
            out.push(row(g, s, Some(pair_ratio(s, &g.reference))));
        }
        out.push(row(g, &g.reference, None));
    }
    out
}

/// A plain-text table of `groups`.
pub fn text(groups: &[&Group]) -> String {
    let body = rows(groups);
    let mut w: Vec<usize> = HEAD.iter().map(|h| h.chars().count()).collect();
    for r in &body {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if i < 3 {
                let _ = write!(out, "{c}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{c}  ", " ".repeat(pad));
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &HEAD.map(str::to_string));
    for r in &body {
        line(&mut out, r);
    }
    out
}

/// A Markdown table of `groups`.
pub fn markdown(groups: &[&Group]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEAD.join(" | "));
    let _ = writeln!(out, "|{}", ["---|"; 3].concat() + &["--:|"; 11].concat());
    for r in rows(groups) {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// The notes of `groups`, one line each.
pub fn notes(groups: &[&Group]) -> Vec<String> {
    let mut v = Vec::new();
    for g in groups {
        for n in &g.notes {
            v.push(format!("{} {}{}: {n}", g.size.label(), g.case.name(), if g.cold { " (cold)" } else { "" }));
        }
    }
    v
}

/// The load average each group started at.
pub fn loads(groups: &[&Group]) -> String {
    let l: Vec<f64> = groups.iter().map(|g| g.load).collect();
    if l.is_empty() {
        return "no group ran".into();
    }
    let min = l.iter().copied().fold(f64::INFINITY, f64::min);
    let max = l.iter().copied().fold(0.0, f64::max);
    format!("1-minute load average at the start of each case: {min:.2} to {max:.2} (median {:.2})", median(&l))
}

fn find<'a>(groups: &[&'a Group], size: Size, case: Case, cold: bool) -> Option<&'a Group> {
    groups.iter().copied().find(|g| g.size == size && g.case == case && g.cold == cold)
}

/// The targets of the tool issues, checked against the warm groups: one
/// line each, `met`, `MISSED` or `not measured`.
pub fn targets(groups: &[&Group], sizes: &[Size]) -> Vec<String> {
    let mut v = Vec::new();
    let mut verdict = |what: String, value: Option<f64>, limit: f64, unit: &str| {
        let line = match value {
            Some(x) if x <= limit => format!("met     {what}: {x:.2}{unit} (target ≤ {limit}{unit})"),
            Some(x) => format!("MISSED  {what}: {x:.2}{unit} (target ≤ {limit}{unit})"),
            None => format!("not measured  {what} (target ≤ {limit}{unit})"),
        };
        v.push(line);
    };
    for &size in sizes {
        let l = size.label();
        let ratio = |c: Case| find(groups, size, c, false).map(|g| pair_ratio(&g.ours[0], &g.reference));
        verdict(format!("{l}: qstat ÷ qmail-qstat's find|wc"), ratio(Case::Qstat), 0.5, "×");
        verdict(format!("{l}: qfixq check ÷ stat-every-file walk"), ratio(Case::Check), 1.0, "×");
        verdict(format!("{l}: qkillns removal ÷ qfixq check of the same queue"), ratio(Case::Killns), 2.0, "×");
    }
    if let Some(&big) = sizes.iter().filter(|s| s.is_huge()).max() {
        for g in groups.iter().filter(|g| g.size == big && !g.cold) {
            let s = Stats::of(&g.ours[0]);
            let limit = if g.case == Case::Qstat { 16.0 } else { 64.0 };
            verdict(
                format!("{}: peak RSS of {} ({})", big.label(), g.ours[0].cmd.label, g.case.name()),
                Some(s.rss_mb),
                limit,
                " MB",
            );
        }
    }
    if let Some(g) = sizes.iter().rev().find_map(|&s| find(groups, s, Case::Check, true)) {
        if g.ours.len() == 2 {
            let speedup = Stats::of(&g.ours[1]).med / Stats::of(&g.ours[0]).med;
            let verdict = if speedup >= 3.0 { "met    " } else { "MISSED " };
            v.push(format!(
                "{verdict} {}: cold qfixq check, default ÷ one thread: {speedup:.2}× faster (target ≥ 3×)",
                g.size.label()
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
