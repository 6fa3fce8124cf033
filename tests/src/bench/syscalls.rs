//! Counting system calls per message: each non-destructive command run
//! once under `strace -f -c` (warm), its summary parsed into the total and
//! the most frequent calls.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::cases::Cmd;
use crate::queues::Size;

/// The `strace -c` summary of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The command's label.
    pub label: String,
    /// All system calls made.
    pub total: u64,
    /// The most frequent calls, with their counts, most frequent first.
    pub top: Vec<(String, u64)>,
}

/// Parses `strace -c` output: rows of `% time, seconds, usecs/call, calls,
/// [errors,] syscall`, and a `total` row.
pub fn parse(text: &str) -> Option<(u64, Vec<(String, u64)>)> {
    let mut total = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 5 || t[0].parse::<f64>().is_err() {
            continue;
        }
        let (Some(name), Ok(calls)) = (t.last(), t[3].parse::<u64>()) else { continue };
        if *name == "total" {
            total = Some(calls);
        } else {
            rows.push((name.to_string(), calls));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    total.map(|t| (t, rows))
}

/// Runs `cmd` once under `strace -f -c` and summarises it.
pub fn count(cmd: &Cmd, scratch: &Path) -> Result<Summary> {
    let out = scratch.join("strace.txt");
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg("--")
        .args(&cmd.argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("run strace (is it installed?)")?;
    if !status.success() && status.code().is_none_or(|c| !cmd.ok.contains(&c)) {
        bail!("strace {} exited {status}", cmd.argv.join(" "));
    }
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    let Some((total, mut top)) = parse(&text) else { bail!("no strace summary in {}", out.display()) };
    top.truncate(5);
    Ok(Summary { label: cmd.label.clone(), total, top })
}

/// A Markdown table of the summaries at `size`.
pub fn markdown(size: Size, rows: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| command ({} messages, warm) | syscalls | per message | most frequent |", size.label());
    let _ = writeln!(out, "|---|--:|--:|---|");
    for s in rows {
        let top: Vec<String> = s.top.iter().map(|(n, c)| format!("{n} {:.2}", *c as f64 / size.0 as f64)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} |",
            s.label.replace('|', "\\|"),
            s.total,
            s.total as f64 / size.0 as f64,
            top.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_summary() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.600000           6    100000           newfstatat
 30.00    0.300000           3    100000        12 getdents64
 10.00    0.100000           1        50           read
------ ----------- ----------- --------- --------- ----------------
100.00    1.000000           5    200050        12 total
";
        let (total, rows) = parse(text).unwrap();
        assert_eq!(total, 200050);
        assert_eq!(rows[0].1, 100000);
        assert_eq!(rows[2], ("read".to_string(), 50));
    }
}
