//! Output an administrator can read at any queue size, through the real
//! binaries: qfixq's text report grouped by kind (a table, a few examples
//! per kind, the summary; `--all` prints every step), qkillns's listing
//! shortened the same way, a progress line on a terminal only (checked
//! under a pseudo-terminal with util-linux `script`: it appears, is
//! cleared, never reaches standard output, and nothing of it reaches a
//! pipe), times as ISO 8601 UTC with their age, and Subjects shown as
//! UTF-8 under a UTF-8 locale with control characters still escaped.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use qcommon::queue::Part;
use qtests::prelude::cross::*;
use qtests::{apply_damage, message_path, BuiltQueue, Damage};

const SPLIT: u32 = 7;

/// A queue of `messages` (a fraction `null_sender` of them bounces) with
/// `damages`, on disk (renumbering needs inode reuse).
fn damaged(dir: &Path, messages: usize, null_sender: f64, damages: &[Damage]) -> BuiltQueue {
    let built = build(&dir.join("queue"), messages, SPLIT, 16, null_sender);
    let outside = dir.join("outside");
    fs::create_dir_all(&outside).expect("mkdir outside");
    for d in damages {
        apply_damage(&built, *d, 16, &outside).unwrap_or_else(|e| panic!("damage {}: {e:#}", d.name()));
    }
    built
}

/// Lines of `out` that are findings (not steps, not the table).
fn count_lines(out: &str, pred: impl Fn(&str) -> bool) -> usize {
    out.lines().filter(|l| pred(l)).count()
}

/// Whether `s` holds `YYYY-MM-DDTHH:MM:SSZ (AGE ago)` right at its start.
fn starts_with_iso_and_age(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19)
        && b.get(19) == Some(&b'Z');
    shape && s[20..].starts_with(" (") && s[20..].split(')').next().is_some_and(|a| a.ends_with(" ago"))
}

#[test]
fn qfixq_report_is_grouped_by_kind() {
    if !root_or_skip("qfixq_report_is_grouped_by_kind") {
        return;
    }
    let tmp = scratch(false);
    let built = damaged(tmp.path(), 80, 0.05, &[Damage::CopiedToOtherFs, Damage::EmptyInfo]);
    let q = &built.queue;

    let grouped = cmd("qfixq").queue(q, SPLIT).run();
    grouped.assert_sane().expect(4);
    let all = cmd("qfixq").queue(q, SPLIT).arg("--all").run();
    all.assert_sane().expect(4);
    let (g, a) = (grouped.out(), all.out());

    // The same summary line, the same header.
    assert_eq!(g.lines().last(), a.lines().last(), "summary lines differ\n{}\n{}", grouped.show(), all.show());
    assert!(g.lines().last().unwrap_or("").starts_with("summary: "), "{}", grouped.show());
    // (The disk line's percentages follow whatever else writes to the
    // filesystem between the two runs: compare only its label.)
    let header = |o: &str| -> Vec<String> {
        o.lines().take(7).map(|l| if l.starts_with("disk:") { "disk:".to_string() } else { l.to_string() }).collect()
    };
    assert_eq!(header(&g), header(&a));

    // The table: one row per kind, with the counts of the full report.
    let renumbered = count_lines(&a, |l| !l.starts_with(' ') && l.contains(": renumbered to "));
    assert!(renumbered > 10, "few renumberings\n{}", all.show());
    let plan =
        g.lines().find(|l| l.starts_with("plan: ")).unwrap_or_else(|| panic!("no plan line\n{}", grouped.show()));
    let findings = count_lines(&a, |l| !l.starts_with(' ') && l.contains(": ") && !l.contains("summary:"))
        - a.lines().take(7).count();
    assert!(plan.starts_with(&format!("plan: {findings} findings of ")), "{plan} vs {findings}\n{}", all.show());
    let would = count_lines(&a, |l| l.starts_with("  would: "));
    assert!(plan.ends_with(&format!(", {would} steps")), "{plan} vs {would} steps");
    assert!(g.contains("what live will do"), "{}", grouped.show());
    let row = g
        .lines()
        .find(|l| l.split_whitespace().next() == Some("renumber"))
        .unwrap_or_else(|| panic!("no renumber row\n{}", grouped.show()));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], renumbered.to_string(), "renumber count: {row}");
    assert!(g.lines().any(|l| l.split_whitespace().next() == Some("sender-lost")), "{}", grouped.show());

    // A few examples per kind, and what was left out is said.
    let examples = count_lines(&g, |l| !l.starts_with(' ') && l.contains(": renumbered to "));
    assert_eq!(examples, 3, "{}", grouped.show());
    assert!(
        g.contains(&format!("  ... and {} more of this kind (--all shows them)", renumbered - 3)),
        "{}",
        grouped.show()
    );
    assert!(g.contains("`--all` prints every finding and step"), "{}", grouped.show());
    assert!(g.lines().count() * 3 < a.lines().count(), "grouped is not shorter\n{}", grouped.show());

    // Times: ISO 8601 UTC with the age beside them.
    let birth = a.lines().find_map(|l| l.split_once("birth time ").map(|(_, r)| r.to_string()));
    let birth = birth.unwrap_or_else(|| panic!("no birth time\n{}", all.show()));
    assert!(starts_with_iso_and_age(&birth), "birth time {birth:?}");

    // Live: grouped the same way, then a clean check.
    let live = cmd("qfixq").queue(q, SPLIT).arg("live").run();
    live.assert_sane().expect(1);
    let l = live.out();
    assert!(l.lines().any(|x| x.starts_with("repair: ") && x.ends_with(" steps carried out")), "{}", live.show());
    assert!(l.contains("what was done"), "{}", live.show());
    assert!(count_lines(&l, |x| x.starts_with("  done: ")) < would / 3, "{}", live.show());
    assert!(l.lines().last().unwrap_or("").contains(" fixed, 0 left"), "{}", live.show());
    cmd("qfixq").queue(q, SPLIT).run().assert_sane().expect(0);
}

#[test]
fn qkillns_listing_is_shortened_and_subjects_are_utf8() {
    if !root_or_skip("qkillns_listing_is_shortened_and_subjects_are_utf8") {
        return;
    }
    let tmp = scratch(true);
    let built = damaged(tmp.path(), 40, 1.0, &[]);
    let q = &built.queue;
    let bounces = built.messages.len();
    assert_eq!(bounces, 40);

    let short = cmd("qkillns").queue(q, SPLIT).arg("-n").run();
    short.assert_sane().expect(0);
    let s = short.out();
    assert_eq!(count_lines(&s, |l| l.contains("  would remove  ")), 10, "{}", short.show());
    assert!(
        s.contains(&format!("... and {} more message(s) not listed: -v lists every one", bounces - 10)),
        "{}",
        short.show()
    );
    assert!(s.contains(&format!("would remove {bounces} message(s)")), "{}", short.show());
    // -v lists every one (--all is qkillns's selection of every message).
    for flag in ["-v", "--verbose"] {
        let every = cmd("qkillns").queue(q, SPLIT).args(["-n", flag]).run();
        every.assert_sane().expect(0);
        assert_eq!(count_lines(&every.out(), |l| l.contains("  would remove  ")), bounces, "{}", every.show());
        assert!(!every.out().contains("not listed"), "{}", every.show());
    }

    // A Subject with a UTF-8 encoded word that hides an escape sequence.
    let victim = built.messages[0].number;
    let mess = message_path(q, Part::Mess, victim, SPLIT, false);
    fs::write(&mess, b"Subject: =?UTF-8?B?wqFIb2xhG1sySiBtdW5kbw==?=\n\nbody\n").expect("rewrite mess");
    let run_in = |locale: &str| {
        let out = Command::new(tool("qkillns"))
            .args(["--queue".as_ref(), q.as_os_str(), "--split".as_ref(), "7".as_ref(), "--ids".as_ref()])
            .args([IDS_ARG, "-n", "-v"])
            .env_remove("LC_CTYPE")
            .env_remove("LANG")
            .env("LC_ALL", locale)
            .stdin(Stdio::null())
            .output()
            .expect("run qkillns");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8 output")
    };
    let utf8 = run_in("C.UTF-8");
    let line = utf8.lines().find(|l| l.starts_with(&format!("{victim} "))).expect("victim listed");
    assert!(line.contains("subject \"\u{a1}Hola\\x1b[2J mundo\""), "{line}");
    assert!(!utf8.contains('\x1b'), "a raw escape reached the terminal");
    let c = run_in("C");
    let line = c.lines().find(|l| l.starts_with(&format!("{victim} "))).expect("victim listed");
    assert!(line.contains("subject \"\\xc2\\xa1Hola\\x1b[2J mundo\""), "{line}");
    assert!(c.is_ascii(), "non-ASCII output under the C locale");
}

#[test]
fn qstat_oldest_message_has_an_iso_time() {
    let tmp = scratch(true);
    let built = damaged(tmp.path(), 20, 0.1, &[]);
    let r = cmd("qstat").queue(&built.queue, SPLIT).arg("--detail").run();
    r.assert_sane().expect(0);
    let out = r.out();
    let line = out.lines().find(|l| l.starts_with("oldest message: ")).expect("oldest line");
    let born = line.split_once(", born ").map(|(_, b)| b).unwrap_or_else(|| panic!("{line}"));
    assert!(starts_with_iso_and_age(born), "{line}");
}

/// One run under a pseudo-terminal: what reached the terminal (standard
/// error, and standard output unless `stdout_to` is given).
fn under_pty(tool_args: &str, stdout_to: Option<&Path>, dir: &Path) -> Option<(Vec<u8>, i32)> {
    let script = which("script")?;
    let log = dir.join("typescript");
    let line = match stdout_to {
        Some(p) => format!("{tool_args} > '{}'", p.display()),
        None => tool_args.to_string(),
    };
    let st = Command::new(script)
        .args(["-q", "-e", "-c", &line])
        .arg(&log)
        .env("TERM", "xterm")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run script");
    let raw = fs::read(&log).expect("read the typescript");
    // Leave out script's own first and last lines.
    let text: Vec<u8> = raw
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"Script started") && !l.starts_with(b"Script done"))
        .flatten()
        .copied()
        .collect();
    Some((text, st.code().unwrap_or(-1)))
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// After the last carriage return of the progress line, the line is
/// cleared: the terminal ends with a clear-line sequence or a newline.
fn assert_cleared(term: &[u8], what: &str) {
    let shown = String::from_utf8_lossy(term);
    let last = term.iter().rposition(|&b| b == b'\r').unwrap_or_else(|| panic!("{what}: no progress line\n{shown:?}"));
    let after = &term[last + 1..];
    assert!(
        after.starts_with(b"\x1b[2K") || after.starts_with(b"\n"),
        "{what}: the progress line is not cleared at the end\n{shown:?}"
    );
    let rest = after.strip_prefix(b"\x1b[2K").unwrap_or(after);
    assert!(!find(rest, b"/s"), "{what}: progress after the clearing\n{shown:?}");
}

#[test]
fn progress_is_shown_on_a_terminal_only_and_cleared() {
    if !root_or_skip("progress_is_shown_on_a_terminal_only_and_cleared") {
        return;
    }
    if which("script").is_none() {
        skipped("progress_is_shown_on_a_terminal_only_and_cleared", "util-linux `script` is not installed");
        return;
    }
    let tmp = scratch(false);
    let built = damaged(tmp.path(), 300, 0.5, &[Damage::CopiedToOtherFs]);
    let q = built.queue.display().to_string();
    let args = format!("--queue '{q}' --split {SPLIT} --ids {IDS_ARG}");
    let runs = [
        ("qfixq", format!("{} {args}", tool("qfixq").display()), "qfixq: scanning", 4),
        ("qkillns", format!("{} {args} -n", tool("qkillns").display()), "qkillns: scanning", 0),
        ("qstat", format!("{} {args} --detail", tool("qstat").display()), "qstat: scanning", 0),
        ("qfixq --json", format!("{} {args} --json", tool("qfixq").display()), "qfixq: scanning", 4),
    ];
    for (what, line, phase, code) in &runs {
        // Standard output to a file: the terminal has the progress line
        // alone; the file has none of it.
        let file = tmp.path().join("stdout.txt");
        let (term, st) = under_pty(line, Some(&file), tmp.path()).expect("script");
        assert_eq!(st, *code, "{what}: exit status\n{}", String::from_utf8_lossy(&term));
        assert!(
            find(&term, phase.as_bytes()),
            "{what}: no {phase:?} on the terminal\n{:?}",
            String::from_utf8_lossy(&term)
        );
        assert!(find(&term, b"/s"), "{what}: no rate on the terminal");
        assert_cleared(&term, what);
        let out = fs::read(&file).expect("stdout file");
        assert!(!out.is_empty(), "{what}: empty standard output");
        assert!(!out.contains(&b'\x1b') && !out.contains(&b'\r'), "{what}: terminal bytes in standard output");
        assert!(!find(&out, phase.as_bytes()), "{what}: progress in standard output");

        // Both on the terminal: the report never shares a line with it.
        let (term, st) = under_pty(line, None, tmp.path()).expect("script");
        assert_eq!(st, *code, "{what}: exit status");
        let text = String::from_utf8_lossy(&term);
        let tail = if what.contains("json") {
            "\"exit\":"
        } else if *what == "qfixq" {
            "summary: "
        } else {
            "messages"
        };
        for l in text.split('\n').filter(|l| l.contains(tail)) {
            let before = &l[..l.find(tail).unwrap_or(0)];
            let shown = before.rsplit("\x1b[2K").next().unwrap_or(before).trim_start_matches('\r');
            assert!(!shown.contains("/s"), "{what}: the report is glued to the progress line: {l:?}");
        }
        assert_cleared(&term, what);

        // On a pipe: nothing of it.
        let mut c = Command::new("sh");
        c.arg("-c").arg(line).stdin(Stdio::null()).env("TERM", "xterm");
        let piped = c.output().expect("run on pipes");
        assert_eq!(piped.status.code(), Some(*code), "{what}");
        let err = String::from_utf8_lossy(&piped.stderr);
        assert!(
            !err.contains(phase) && !err.contains('\x1b') && !err.contains('\r'),
            "{what}: progress on a pipe: {err:?}"
        );
    }
}
