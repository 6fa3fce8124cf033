//! The runbook is tested: the commands of its "Practise first" section run
//! here, in order, against a practice queue, through `sh` as an
//! administrator types them; every block of tool output the runbook
//! quotes is marked in the Markdown (`<!-- output of `COMMAND` -->`, the
//! command being one of the practice commands) and each of its lines must
//! be a line of what that command printed, in the same order. Before the
//! comparison both sides are made independent of the run: the practice
//! queue's path reads `/var/qmail/queue`, numbers of five digits or more
//! (message and inode numbers, times, byte counts) read `N`, bucket
//! numbers in paths `B`, ages `AGE` (also those beside a time, `(AGE
//! ago)`), disk percentages `P`, process ids `N`, and qfixq's
//! `processes:` line leaves out qmail programs running elsewhere on the
//! host and the ones it ignores (zombies). A quoted
//! `...` stands for lines left out. A block marked `(counts vary)` has
//! counts that depend on the inode numbers (which messages lost their
//! info): there every number and recipient is compared as a placeholder.
//! A block marked `with qmail-send running` is printed (on standard
//! output or error) by its command while a stand-in qmail-send holds the
//! practice queue's lock; such runs must change nothing.
//!
//! Then the runbook's sequence is checked by content: exactly the real
//! bounces are gone and every salvaged message is still queued.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use qtests::practice::{check_removal, contents, null_sender_contents, salvaged_contents};
use qtests::prelude::cross::*;

const RUNBOOK: &str = include_str!("../../docs/runbook.md");
const PRACTICE_DIR: &str = "/tmp/practice";
const MARK: &str = "<!-- output of `";

/// The indented code blocks of `text` (each a list of lines without the
/// four-space indent), with the line of text just before each.
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut before = String::new();
    let mut cur: Option<Vec<String>> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("    ") {
            cur.get_or_insert_with(Vec::new).push(rest.to_string());
            continue;
        }
        if let Some(c) =
            cur.as_mut().filter(|_| l.is_empty() && lines.get(i + 1).is_some_and(|n| n.starts_with("    ")))
        {
            c.push(String::new());
            continue;
        }
        if let Some(b) = cur.take() {
            out.push((before.clone(), b));
        }
        if !l.trim().is_empty() {
            before = l.to_string();
        }
    }
    if let Some(b) = cur.take() {
        out.push((before, b));
    }
    out
}

/// The "Practise first" section.
fn practice_section() -> &'static str {
    let start = RUNBOOK.find("\n## Practise first").expect("runbook: no \"Practise first\" section");
    let rest = &RUNBOOK[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// The practice commands: the block marked `<!-- practice commands -->`.
fn practice_commands() -> Vec<String> {
    let section = practice_section();
    let (_, lines) = blocks(section)
        .into_iter()
        .find(|(before, _)| before.contains("<!-- practice commands -->"))
        .expect("runbook: no block marked <!-- practice commands -->");
    lines.into_iter().filter(|l| !l.trim().is_empty()).collect()
}

/// A command line without its trailing `# comment`.
fn strip_comment(l: &str) -> String {
    match l.find("  #") {
        Some(i) => l[..i].trim_end().to_string(),
        None => l.trim_end().to_string(),
    }
}

/// A quoted block of output.
struct Quote {
    /// The practice command that prints it.
    command: String,
    /// Its counts depend on the inode numbers of the run: every number is
    /// compared as `N`, every recipient as `<ADDR>`.
    varies: bool,
    /// Printed (on standard output or error) while a stand-in qmail-send
    /// holds the practice queue's lock: run after the practice commands.
    running: bool,
    /// The quoted lines.
    lines: Vec<String>,
}

/// The quoted blocks, each marked `<!-- output of `CMD` -->` (with
/// ` (counts vary)` after the command when its counts depend on the run).
fn quoted() -> Vec<Quote> {
    let mut out = Vec::new();
    for (before, lines) in blocks(RUNBOOK) {
        let Some(i) = before.find(MARK) else { continue };
        let rest = &before[i + MARK.len()..];
        let end = rest.rfind("` ").or_else(|| rest.rfind('`')).expect("runbook: unterminated output marker");
        let command = rest[..end].to_string();
        let varies = rest[end..].contains("(counts vary)");
        let running = rest[end..].contains("with qmail-send running");
        out.push(Quote { command, varies, running, lines });
    }
    out
}

/// Replaces each run of ASCII digits of at least `min` digits by `N`.
fn long_numbers(s: &str, min: usize) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in s.chars().chain(std::iter::once('\u{0}')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            out.push_str(if digits.len() >= min { "N" } else { &digits });
            digits.clear();
        }
        if c != '\u{0}' {
            out.push(c);
        }
    }
    out
}

/// A line made independent of the run (see the module notes); with
/// `varies`, every number and recipient too.
fn normalize(line: &str, queue: &str, varies: bool) -> String {
    let mut s = line.replace(queue, "/var/qmail/queue");
    s = long_numbers(&s, if varies { 1 } else { 5 });
    // Process ids.
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("pid ") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let d = rest.bytes().take_while(u8::is_ascii_digit).count();
        if d > 0 {
            out.push('N');
            rest = &rest[d..];
        }
    }
    out.push_str(rest);
    s = out;
    // qmail programs that run elsewhere on this host (other tests' stand-ins
    // among them) are listed in qfixq's header too: left out.
    if let Some(list) = s.strip_prefix("processes: ") {
        // The entries, split at ", " outside parentheses.
        let mut entries: Vec<&str> = Vec::new();
        let (mut depth, mut start) = (0i32, 0usize);
        for (i, c) in list.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 && list[i..].starts_with(", ") => {
                    entries.push(&list[start..i]);
                    start = i + 2;
                }
                _ => {}
            }
        }
        entries.push(&list[start..]);
        let kept: Vec<&str> =
            entries.into_iter().filter(|p| !p.ends_with("(qmail program)") && !p.ends_with("ignored)")).collect();
        s = format!("processes: {}", if kept.is_empty() { "none".to_string() } else { kept.join(", ") });
    }
    if varies {
        if let Some(a) = s.find("  to <") {
            if let Some(b) = s[a..].find(">  ") {
                s = format!("{}  to <ADDR{}", &s[..a], &s[a + b..]);
            }
        }
    }
    // Buckets in paths: "info/7/N" -> "info/B/N".
    for part in ["mess", "info", "local", "remote", "todo", "intd", "bounce"] {
        let mut out = String::new();
        let mut rest = s.as_str();
        let pat = format!("{part}/");
        while let Some(i) = rest.find(&pat) {
            out.push_str(&rest[..i + pat.len()]);
            rest = &rest[i + pat.len()..];
            let d = rest.bytes().take_while(u8::is_ascii_digit).count();
            if d > 0 && rest[d..].starts_with('/') {
                out.push('B');
                rest = &rest[d..];
            }
        }
        out.push_str(rest);
        s = out;
    }
    // Ages beside times: "(5d 7h ago)" -> "(AGE ago)".
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find(" ago)") {
        let open = rest[..i].rfind('(');
        match open.filter(|&o| rest[o + 1..i].chars().all(|c| c.is_ascii_digit() || " NdhmsAGE".contains(c))) {
            Some(o) => out.push_str(&format!("{}(AGE ago)", &rest[..o])),
            None => out.push_str(&rest[..i + 5]),
        }
        rest = &rest[i + 5..];
    }
    out.push_str(rest);
    s = out;
    // Ages "age 1d13h" and disk use "52.5% used".
    let words: Vec<String> = s.split(' ').map(str::to_string).collect();
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let age = out.last().is_some_and(|p| p == "age")
            && !w.is_empty()
            && w.chars().all(|c| c.is_ascii_digit() || "wdhmsN".contains(c));
        if age {
            out.push("AGE".into());
        } else if w.ends_with('%') && w[..w.len() - 1].chars().all(|c| c.is_ascii_digit() || c == '.') && w.len() > 1 {
            out.push("P%".into());
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

/// Runs one practice line through sh; its standard output and status.
fn sh_line(line: &str, path: &str, p: &str, dir: &Path) -> (String, i32) {
    let (out, _, code) = sh_line_err(line, path, p, dir);
    (out, code)
}

/// Runs one line through sh; its standard output, standard error and status.
fn sh_line_err(line: &str, path: &str, p: &str, dir: &Path) -> (String, String, i32) {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .env("PATH", path)
        .env("P", p)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {line:?}: {e}"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn the_runbooks_practice_commands_print_what_it_quotes_and_remove_only_real_bounces() {
    let test = "the_runbooks_practice_commands_print_what_it_quotes_and_remove_only_real_bounces";
    if !root_or_skip(test) {
        return;
    }
    let tmp = scratch(false);
    let dir = tmp.path().join("practice");
    let dir_s = dir.to_str().expect("UTF-8 scratch path").to_string();
    let queue = dir.join("queue");
    let queue_s = queue.to_str().unwrap().to_string();
    // The tools and qbuild, first on PATH.
    let bins: PathBuf = tool("qfixq").parent().unwrap().to_path_buf();
    let qbuild = PathBuf::from(env!("CARGO_BIN_EXE_qbuild"));
    let path = format!("{}:{}:/usr/bin:/bin:/usr/sbin:/sbin", bins.display(), qbuild.parent().unwrap().display());

    let commands = practice_commands();
    assert!(commands.iter().any(|c| c.starts_with("qbuild ")), "no qbuild line in {commands:?}");
    let mut p = String::new();
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    let mut bounces = None;
    let mut repaired = None;
    let mut salvaged = None;
    for raw in &commands {
        let line = strip_comment(raw).replace(PRACTICE_DIR, &dir_s);
        let key = strip_comment(raw);
        if let Some(def) = line.strip_prefix("P=") {
            let (v, code) = sh_line(&format!("P={def}; printf %s \"$P\""), &path, "", tmp.path());
            assert_eq!(code, 0, "{line}");
            p = v;
            continue;
        }
        // The state before the tools run, and before and after qkillns.
        if key.starts_with("qkillns $P") && !key.contains("-n") {
            repaired = Some(contents(&queue).unwrap());
            salvaged = Some(salvaged_contents(&queue, 23).unwrap());
        }
        let (out, code) = sh_line(&line, &path, &p, tmp.path());
        println!("$ {key}   [exit {code}]\n{out}");
        if key.starts_with("qbuild ") {
            assert_eq!(code, 0, "{line}");
            // qbuild damaged the queue it built: the real bounces are
            // those whose sender is still readable as null, plus none
            // that the damage hid (the check below allows for those).
            bounces = Some(null_sender_contents(&queue).unwrap());
        }
        assert!(outputs.insert(key.clone(), out).is_none(), "practice command {key:?} given twice");
    }

    // The quotes printed while qmail-send runs: a stand-in holds the
    // lock; every one of these commands refuses and changes nothing.
    let quotes = quoted();
    let mut running: BTreeMap<String, String> = BTreeMap::new();
    let running_cmds: Vec<&String> = quotes.iter().filter(|q| q.running).map(|q| &q.command).collect();
    if !running_cmds.is_empty() {
        match StandIn::start(Some(&queue.join("lock/sendmutex")), Some("qmail-send"), None) {
            Some(_qs) => {
                let before = contents(&queue).unwrap();
                for cmd in running_cmds {
                    let (out, err, code) = sh_line_err(cmd, &path, &p, tmp.path());
                    println!("$ {cmd}   [with qmail-send running; exit {code}]\n{out}{err}");
                    running.insert(cmd.clone(), format!("{out}{err}"));
                }
                assert_eq!(contents(&queue).unwrap(), before, "a run beside qmail-send changed the queue");
            }
            None => skipped(test, "no python3 or perl for a stand-in qmail-send: its quotes are not checked"),
        }
    }

    // Every quoted block, line by line, in order.
    let mut checked = 0;
    let mut problems = Vec::new();
    assert!(quotes.len() >= 8, "only {} quoted blocks are marked", quotes.len());
    for Quote { command: cmd, varies, running: beside, lines } in &quotes {
        let printed = if *beside { running.get(cmd) } else { outputs.get(cmd) };
        if *beside && printed.is_none() {
            continue; // no stand-in (said above)
        }
        let Some(out) = printed else {
            problems.push(format!("quoted output of `{cmd}`: not a practice command"));
            continue;
        };
        let got: Vec<String> = out.lines().map(|l| normalize(l, &queue_s, *varies)).collect();
        let mut at = 0;
        for want in lines {
            if want.trim() == "..." || want.is_empty() {
                continue;
            }
            let w = normalize(want, &queue_s, *varies);
            match got[at..].iter().position(|g| *g == w) {
                Some(k) => {
                    at += k + 1;
                    checked += 1;
                }
                None => problems
                    .push(format!("`{cmd}`: quoted line {want:?} (normalized {w:?}) is not printed (after line {at})")),
            }
        }
    }
    println!("runbook: {} quoted blocks, {checked} quoted lines checked", quotes.len());
    assert!(problems.is_empty(), "the runbook quotes what the tools do not print:\n{}", problems.join("\n"));

    // The sequence by content.
    let bounces = bounces.expect("qbuild ran");
    let repaired = repaired.expect("qkillns ran");
    let salvaged = salvaged.unwrap();
    let after = contents(&queue).unwrap();
    let r = check_removal(&bounces, &salvaged, &repaired, &after).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "runbook sequence: {} real bounces removed, {} salvaged messages kept, {} messages left",
        r.bounces_removed, r.salvaged_kept, r.left
    );
    assert!(r.salvaged_kept > 0, "the practice queue has no salvaged message: the test proves nothing");
    assert!(r.bounces_removed > 0, "no bounce removed");
}

fn normalize_t(line: &str, q: &str) -> String {
    normalize(line, q, false)
}

#[test]
fn normalizing_keeps_counts_and_hides_run_dependent_numbers() {
    let q = "/tmp/x/practice/queue";
    assert_eq!(
        normalize_t("info/7/7753077: info missing: written with the null sender, birth time 1795579278", q),
        "info/B/N: info missing: written with the null sender, birth time N"
    );
    assert_eq!(
        normalize_t("would remove 163 message(s), 219166 bytes (of 1986 scanned)", q),
        normalize_t("would remove 163 message(s), 2 bytes (of 1986 scanned)", q).replace(" 2 ", " N ")
    );
    assert_eq!(normalize_t("7753944  would remove  age 1d13h  from <>", q), "N  would remove  age AGE  from <>");
    assert_eq!(
        normalize_t("processes: qmail-send pid 9314 (qmail program), qmail-send pid 9842 (holds lock/sendmutex)", q),
        "processes: qmail-send pid N (holds lock/sendmutex)"
    );
    assert_eq!(normalize_t("processes: qmail-send pid 9314 (qmail program)", q), "processes: none");
    assert_eq!(normalize_t("processes: qmail-queue pid 27225 (zombie, already exited: ignored)", q), "processes: none");
    assert_eq!(
        normalize("birth time 2026-11-29T23:36:26Z (5d 7h ago) kept", q, true),
        normalize("birth time 2026-12-05T07:01:02Z (45m 3s ago) kept", q, true)
    );
    assert_eq!(normalize_t("queue:     /tmp/x/practice/queue", q), "queue:     /var/qmail/queue");
    assert_eq!(
        normalize("10030300  removed  age 2d05h  from <>  to <david@localdomain.example>  1011 bytes", q, true),
        "N  removed  age AGE  from <>  to <ADDR>  N bytes"
    );
    assert_eq!(
        normalize_t("disk:      blocks 52.5% used, inodes 4% used", q),
        "disk:      blocks P% used, inodes P% used"
    );
}
