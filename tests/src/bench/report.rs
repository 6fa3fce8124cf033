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

const HEAD: [&str; 16] = [
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
    "÷ floor",
    "÷ baseline",
];

fn ratio_cell(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_string(), |r| format!("{r:.2}×"))
}

/// One row: `ratios` are against the counterpart, the floor and the
/// baseline.
fn row(g: &Group, s: &Series, ratios: [Option<f64>; 3]) -> Vec<String> {
    let st = Stats::of(s);
    let mut v = vec![
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
    ];
    v.extend(ratios.map(ratio_cell));
    v
}

/// The floor a group's tool is measured against: the destructive case's
/// floor, or for a cold check the fastest `qfloor walk` (least median
/// wall time over its reader counts).
pub fn floor_of(g: &Group) -> Option<&Series> {
    g.floor.as_ref().or_else(|| best_walk(&g.walks))
}

/// The series of least median wall time.
pub fn best_walk(walks: &[Series]) -> Option<&Series> {
    walks.iter().filter(|w| !w.samples.is_empty()).min_by(|a, b| Stats::of(a).med.total_cmp(&Stats::of(b).med))
}

fn rows(groups: &[&Group]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for g in groups {
        let floor = floor_of(g);
        for (i, s) in g.ours.iter().enumerate() {
            let against = |o: Option<&Series>| o.filter(|_| i == 0).map(|b| pair_ratio(s, b));
            out.push(row(g, s, [Some(pair_ratio(s, &g.reference)), against(floor), against(g.baseline.as_ref())]));
        }
        out.push(row(g, &g.reference, [None; 3]));
        for s in g.floor.iter().chain(&g.baseline).chain(&g.walks) {
            out.push(row(g, s, [None; 3]));
        }
    }
    out
}

/// A plain-text table: the first `left` columns aligned left, the rest
/// right.
fn table_text<S: AsRef<str>>(head: &[S], body: &[Vec<String>], left: usize) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.as_ref().chars().count()).collect();
    for r in body {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        for (i, c) in cells.enumerate() {
            let pad = " ".repeat(w[i] - c.chars().count());
            if i < left {
                let _ = write!(out, "{c}{pad}  ");
            } else {
                let _ = write!(out, "{pad}{c}  ");
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &mut head.iter().map(AsRef::as_ref));
    for r in body {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

/// A Markdown table: the first `left` columns aligned left, the rest
/// right.
fn table_markdown<S: AsRef<str>>(head: &[S], body: &[Vec<String>], left: usize) -> String {
    let mut out = String::new();
    let head: Vec<&str> = head.iter().map(AsRef::as_ref).collect();
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", ["---|"].repeat(left).concat() + &["--:|"].repeat(head.len() - left).concat());
    for r in body {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// A plain-text table of `groups`.
pub fn text(groups: &[&Group]) -> String {
    table_text(&HEAD, &rows(groups), 3)
}

/// A Markdown table of `groups`.
pub fn markdown(groups: &[&Group]) -> String {
    table_markdown(&HEAD, &rows(groups), 3)
}

/// The memory table of the warm groups: each command's peak RSS at each
/// size (the largest over its runs), and the bytes per message it grows
/// by between the two largest sizes, `(rss_big - rss_small) / (n_big -
/// n_small)`. Returns the header and the rows; `None` with fewer than one
/// size.
pub fn memory(groups: &[&Group]) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let mut sizes: Vec<Size> = groups.iter().filter(|g| !g.cold).map(|g| g.size).collect();
    sizes.sort();
    sizes.dedup();
    if sizes.is_empty() {
        return None;
    }
    // (case, command) in first-seen order, with the peak RSS in KB per size.
    let mut keys: Vec<(Case, String)> = Vec::new();
    let mut peaks: Vec<Vec<Option<u64>>> = Vec::new();
    for g in groups.iter().filter(|g| !g.cold) {
        let col = sizes.iter().position(|&s| s == g.size).expect("size listed");
        for s in g.ours.iter().chain(std::iter::once(&g.reference)).chain(&g.floor).chain(&g.baseline) {
            let kb = s.samples.iter().map(|x| x.maxrss_kb).max();
            let key = (g.case, s.cmd.label.clone());
            let i = match keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    keys.push(key);
                    peaks.push(vec![None; sizes.len()]);
                    keys.len() - 1
                }
            };
            peaks[i][col] = kb;
        }
    }
    let mut head = vec!["case".to_string(), "command".to_string()];
    head.extend(sizes.iter().map(|s| format!("RSS MB at {}", s.label())));
    let (small, big) = match sizes.len() {
        1 => (None, None),
        n => (Some(n - 2), Some(n - 1)),
    };
    if let (Some(a), Some(b)) = (small, big) {
        head.push(format!("B/msg {}→{}", sizes[a].label(), sizes[b].label()));
    }
    let mut body = Vec::new();
    for ((case, label), p) in keys.iter().zip(&peaks) {
        let mut r = vec![case.name().to_string(), label.clone()];
        r.extend(p.iter().map(|kb| kb.map_or_else(|| "—".to_string(), |kb| format!("{:.1}", kb as f64 / 1024.0))));
        if let (Some(a), Some(b)) = (small, big) {
            r.push(match (p[a], p[b]) {
                (Some(x), Some(y)) => format!("{:.0}", bytes_per_message(x, y, sizes[a], sizes[b])),
                _ => "—".to_string(),
            });
        }
        body.push(r);
    }
    Some((head, body))
}

/// Bytes per message between two peak RSS figures (KB) at two sizes.
pub fn bytes_per_message(kb_small: u64, kb_big: u64, small: Size, big: Size) -> f64 {
    (kb_big as f64 - kb_small as f64) * 1024.0 / (big.0 as f64 - small.0 as f64)
}

/// The memory table as plain text.
pub fn memory_text(groups: &[&Group]) -> Option<String> {
    memory(groups).map(|(h, b)| table_text(&h, &b, 2))
}

/// The memory table as Markdown.
pub fn memory_markdown(groups: &[&Group]) -> Option<String> {
    memory(groups).map(|(h, b)| table_markdown(&h, &b, 2))
}

/// One line per group with a floor or a baseline: our tool's ratio to
/// each (what "performance must not regress" and the floors quote).
pub fn comparisons(groups: &[&Group]) -> Vec<String> {
    let mut v = Vec::new();
    for g in groups {
        let mut parts = Vec::new();
        if let Some(f) = floor_of(g) {
            let best = if g.floor.is_none() { "the best " } else { "" };
            parts.push(format!("÷ floor ({best}{}) {:.2}×", f.cmd.label, pair_ratio(&g.ours[0], f)));
        }
        if let Some(b) = &g.baseline {
            parts.push(format!("÷ baseline {:.2}×", pair_ratio(&g.ours[0], b)));
        }
        if !parts.is_empty() {
            let cold = if g.cold { " (cold)" } else { "" };
            v.push(format!("{} {}{cold}: {} {}", g.size.label(), g.case.name(), g.ours[0].cmd.label, parts.join(", ")));
        }
    }
    v
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
    for g in groups.iter().filter(|g| g.cold && g.case == Case::Check) {
        let ratio = best_walk(&g.walks).map(|w| pair_ratio(&g.ours[0], w));
        verdict(format!("{}: cold qfixq check ÷ the best qfloor walk", g.size.label()), ratio, 1.1, "×");
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
    fn bytes_per_message_from_two_sizes() {
        // 10 MB at 10k, 19 MB at 100k: 9 MB over 90,000 messages.
        let b = bytes_per_message(10 * 1024, 19 * 1024, Size(10_000), Size(100_000));
        assert!((b - 9.0 * 1024.0 * 1024.0 / 90_000.0).abs() < 1e-9, "{b}");
        assert!(bytes_per_message(5000, 4000, Size(10), Size(20)) < 0.0);
    }

    #[test]
    fn tables_align() {
        let body = vec![vec!["a".to_string(), "1.0".to_string()], vec!["bbb".to_string(), "10.25".to_string()]];
        let t = table_text(&["x", "y"], &body, 1);
        assert_eq!(t, "x        y\na      1.0\nbbb  10.25\n");
        let m = table_markdown(&["x", "y"], &[vec!["a|b".to_string(), "2".to_string()]], 1);
        assert_eq!(m, "| x | y |\n|---|--:|\n| a\\|b | 2 |\n");
    }

    fn series(label: &str, walls: &[f64]) -> Series {
        let cmd = crate::cases::Cmd { label: label.into(), argv: Vec::new(), ok: &[0] };
        let samples = walls.iter().map(|&wall| crate::measure::Sample { wall, ..Default::default() }).collect();
        Series { cmd, samples }
    }

    #[test]
    fn the_best_walk_is_the_least_median_and_the_cold_check_is_measured_against_it() {
        let walks = vec![
            series("1 thread", &[8.0, 9.0, 8.5]),
            series("8 threads", &[4.2, 3.9, 4.0]),
            series("16 threads", &[3.0, 5.0, 4.5]),
        ];
        assert_eq!(best_walk(&walks).unwrap().cmd.label, "8 threads");
        assert!(best_walk(&[]).is_none());
        let g = Group {
            size: Size(100_000),
            case: Case::Check,
            cold: true,
            ours: vec![series("qfixq", &[4.4, 4.0, 4.8])],
            reference: series("find", &[6.0, 6.0, 6.0]),
            floor: None,
            baseline: None,
            walks,
            load: 0.0,
            notes: Vec::new(),
        };
        assert_eq!(floor_of(&g).unwrap().cmd.label, "8 threads");
        // Pairs 4.4/4.2, 4.0/3.9, 4.8/4.0: median 4.4/4.2.
        let t = targets(&[&g], &[Size(100_000)]);
        let line = t.iter().find(|l| l.contains("qfloor walk")).unwrap();
        assert!(line.starts_with("met") && line.contains(&format!("{:.2}×", 4.4 / 4.2)), "{line}");
        // Its row and the walks' rows are in the table.
        let table = text(&[&g]);
        assert_eq!(table.lines().count(), 1 + 1 + 1 + 3, "{table}");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
