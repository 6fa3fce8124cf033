//! qfixq's modes and outputs on whole queues: a healthy queue is left
//! alone, `live empty`, `--json` against the text report, `--split N`
//! re-bucketing, and the escaping of untrusted names.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use qtests::prelude::qfixq::*;
use qtests::snapshot::snapshot;
use qtests::Damage;

fn python3() -> bool {
    let ok = Command::new("python3").arg("-c").arg("pass").status().is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: python3 is needed to validate JSON");
    }
    ok
}

#[test]
fn healthy_queue_is_left_alone() {
    if !root_or_skip("healthy_queue_is_left_alone") {
        return;
    }
    for big_todo in [false, true] {
        let fx = build(40, 23, big_todo, 3, &[]);
        let q = fx.queue();
        assert_none(&check_healthy(q, 23, big_todo, &snapshot(q)), "the builder's queue", None);
        let frozen = freeze(&fx);
        let check = qfixq(q, &[]);
        check.expect(0, "check of a healthy queue");
        assert!(check.out().contains("summary: no problems found"), "{}", check.show());
        assert_frozen(&fx, &frozen, "check of a healthy queue", Some(&check));
        let live = qfixq(q, &["--all", "live"]);
        live.expect(0, "live on a healthy queue");
        assert_eq!(live.done_steps(), 0, "live on a healthy queue did something\n{}", live.show());
        assert_frozen(&fx, &frozen, "live on a healthy queue", Some(&live));
        assert!(!q.join("lost+found").exists(), "live on a healthy queue made lost+found");
    }
}

/// No message file (numeric name) left anywhere in the message directories.
fn message_files(q: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["mess", "intd", "todo", "info", "local", "remote", "bounce"] {
        for f in regular_files(&q.join(d)) {
            v.push(f.display().to_string());
        }
    }
    v
}

#[test]
fn live_empty_removes_every_message_and_repairs_the_rest() {
    if !root_or_skip("live_empty_removes_every_message_and_repairs_the_rest") {
        return;
    }
    let ds = [
        Damage::BadOwnersModes,
        Damage::MissingLockFiles,
        Damage::WrongBucket,
        Damage::PidLeftovers,
        Damage::ExtraHardLink,
        Damage::CopiedToOtherFs,
    ];
    let fx = build(40, 23, false, 9, &ds);
    let q = fx.queue();
    let before = freeze(&fx);
    let r = qfixq(q, &["live", "empty"]);
    r.expect(1, "live empty");
    assert!(r.out().contains("emptied:"), "the summary counts emptied messages\n{}", r.show());
    let left = message_files(q);
    assert!(left.is_empty(), "message files left after live empty: {left:?}\n{}", r.show());
    assert!(quarantined_mess(q).is_empty(), "live empty deletes, it does not quarantine\n{}", r.show());
    assert_none(&check_healthy(q, 23, false, &before.queue), "after live empty", Some(&r));
    for lf in ["sendmutex", "tcpto", "trigger"] {
        assert!(std::fs::symlink_metadata(q.join("lock").join(lf)).is_ok(), "lock/{lf} missing");
    }
    assert_same(&before.outside, &snapshot(&fx.outside), "live empty: outside the queue", Some(&r));
    qfixq(q, &[]).expect(0, "check after live empty");

    // The flag spelling does the same.
    let fx = build(20, 23, true, 10, &[]);
    let r = qfixq(fx.queue(), &["--live", "--empty"]);
    r.expect(1, "--live --empty");
    assert!(message_files(fx.queue()).is_empty(), "--live --empty left messages\n{}", r.show());
    qfixq(fx.queue(), &[]).expect(0, "check after --live --empty");
}

/// Replaces `lost+found/<session>` by `lost+found/S`: two runs have two
/// session names.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("lost+found/") {
        out.push_str(&rest[..i + "lost+found/".len()]);
        rest = &rest[i + "lost+found/".len()..];
        let end = rest.find(['/', ' ', '\n']).unwrap_or(rest.len());
        out.push('S');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

const JSON_TO_TEXT: &str = r#"
import json, sys
d = json.loads(sys.stdin.buffer.read().decode("utf-8"))
keys = [k for k in d if k not in ("schema_version", "mode", "findings", "summary", "notes", "exit")]
assert d["schema_version"] == 3, d["schema_version"]
assert isinstance(d["split"]["value"], int) and isinstance(d["disk"], dict), (d["split"], d["disk"])
assert d["summary"]["findings"] == len(d["findings"])
assert d["summary"]["problems"] == sum(1 for f in d["findings"] if f["problem"])
out = [str(len(keys)), str(len(d["findings"])), str(d["summary"]["problems"]), str(len(d["notes"])), str(d["exit"])]
for f in d["findings"]:
    assert isinstance(f["left"], bool) and isinstance(f["problem"], bool)
    assert f["kind"].replace("_", "").isalpha() and f["kind"].islower(), f["kind"]
    out.append("%s: %s: %s" % (f["path"], f["text"], f["remedy"]))
    for s in f["steps"]:
        assert s["status"] in ("planned", "done", "failed"), s
        word = {"planned": "would", "done": "done", "failed": "FAILED"}[s["status"]]
        out.append("  %s: %s" % (word, s["text"]))
sys.stdout.buffer.write(("\n".join(out) + "\n").encode("utf-8"))
"#;

/// Parses qfixq's JSON with Python (strict UTF-8) and rebuilds the text
/// report's finding and step lines from it: (header fields, findings,
/// problems, notes, exit, lines).
fn json_to_text(json: &[u8]) -> (usize, usize, u64, usize, i32, Vec<String>) {
    let mut child = Command::new("python3")
        .args(["-c", JSON_TO_TEXT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().expect("stdin").write_all(json).expect("write json");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "invalid JSON: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(json)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = text.lines().map(str::to_string);
    let mut num = || lines.next().expect("a number").parse::<i64>().expect("a number");
    let (h, f, p, n, e) = (num() as usize, num() as usize, num() as u64, num() as usize, num() as i32);
    (h, f, p, n, e, lines.collect())
}

#[test]
fn json_report_matches_the_text_report() {
    if !root_or_skip("json_report_matches_the_text_report") || !python3() {
        return;
    }
    let ds =
        [Damage::StrayNames, Damage::GarbledInfo, Damage::WrongBucket, Damage::BadOwnersModes, Damage::PidLeftovers];
    let fx = build(30, 23, false, 21, &ds);
    let q = fx.queue();
    let frozen = freeze(&fx);
    let text = qfixq(q, &["--all"]);
    text.expect(4, "text check");
    let json = qfixq(q, &["--json"]);
    json.expect(4, "JSON check");
    assert_frozen(&fx, &frozen, "checks", Some(&json));

    let (header, findings, problems, notes, exit, lines) = json_to_text(&json.stdout);
    assert_eq!(exit, 4, "the JSON exit field");
    let out = text.out();
    let all: Vec<&str> = out.lines().collect();
    assert!(all.len() > header + notes + 1, "short text report\n{}", text.show());
    let body = &all[1 + header..all.len() - notes - 1];
    let text_findings = body.iter().filter(|l| !l.starts_with("  ")).count();
    assert!(findings > 5, "few findings\n{}", text.show());
    assert_eq!(findings, text_findings, "findings in JSON and text\n{}\n{}", json.show(), text.show());
    let last = all.last().expect("summary");
    assert!(last.starts_with(&format!("summary: {problems} problems")), "summary {last:?} vs {problems}");
    let a: Vec<String> = body.iter().map(|l| normalize(l)).collect();
    let b: Vec<String> = lines.iter().map(|l| normalize(l)).collect();
    assert_eq!(a, b, "the JSON report says what the text report says");

    // Live, JSON: valid, every step done, the exit field is the status.
    let live = qfixq(q, &["--json", "live"]);
    live.expect(1, "JSON live");
    let (_, findings, _, _, exit, lines) = json_to_text(&live.stdout);
    assert_eq!(exit, 1, "the JSON exit field of live");
    assert!(findings > 5);
    assert!(lines.iter().any(|l| l.starts_with("  done: ")), "live JSON has done steps");
    assert!(!lines.iter().any(|l| l.starts_with("  would: ") || l.starts_with("  FAILED: ")), "{}", live.show());
    let clean = qfixq(q, &["--json"]);
    clean.expect(0, "JSON check of the repaired queue");
    let (_, findings, problems, _, exit, _) = json_to_text(&clean.stdout);
    assert_eq!((problems, exit), (0, 0));
    assert!(findings <= 1, "only notes are left\n{}", clean.show());
}

#[test]
fn split_change_rebuckets_the_whole_queue() {
    if !root_or_skip("split_change_rebuckets_the_whole_queue") {
        return;
    }
    for big_todo in [false, true] {
        let fx = build(40, 23, big_todo, 31, &[]);
        let q = fx.queue();
        let before = snapshot(q);
        let fates = expected_fates(q, big_todo);
        let census = census(q, big_todo);
        let check = qfixq(q, &["--split", "7"]);
        check.expect(4, "--split 7 check");
        assert!(check.out().contains("split:     7 (from --split)"), "{}", check.show());
        let live = qfixq(q, &["--split", "7", "live"]);
        live.expect(1, "--split 7 live");
        assert_none(&check_healthy(q, 7, big_todo, &before), "after --split 7 live", Some(&live));
        for d in ["mess", "info", "local", "remote"] {
            assert!(!q.join(d).join("7").exists() && !q.join(d).join("22").exists(), "{d}: extra buckets left");
        }
        qfixq(q, &["--split", "7"]).expect(0, "--split 7 check after the change");
        let from_disk = qfixq(q, &[]);
        from_disk.expect(0, "check after the change, split from disk");
        assert!(from_disk.out().contains("split:     7 (from the buckets on disk"), "{}", from_disk.show());
        assert_none(&check_fates(&fates, q, big_todo), "messages after --split 7", Some(&live));
        assert_none(&check_census(&census, q), "file contents after --split 7", Some(&live));
        assert!(!q.join("lost+found").exists(), "re-bucketing set something aside\n{}", live.show());
    }
}

#[test]
fn untrusted_names_are_escaped() {
    if !root_or_skip("untrusted_names_are_escaped") {
        return;
    }
    let fx = build(20, 23, false, 41, &[Damage::StrayNames]);
    let q = fx.queue();
    let check = qfixq(q, &["--all"]);
    check.expect(4, "check with stray names");
    let live = qfixq(q, &["--all", "live"]);
    live.expect(1, "live with stray names");
    for r in [&check, &live] {
        let out = String::from_utf8(r.stdout.clone()).unwrap_or_else(|e| panic!("not UTF-8: {e}\n{}", r.show()));
        let bad: Vec<char> = out.chars().filter(|c| (c.is_control() && *c != '\n') || *c == '\u{7f}').collect();
        assert!(bad.is_empty(), "raw control characters {bad:?} in the report\n{}", r.show());
        let err = String::from_utf8(r.stderr.clone()).expect("stderr is UTF-8");
        assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{}", r.show());
        // The name "12\n34" shows on one line, escaped; nothing starts a
        // line with its tail.
        assert!(out.lines().any(|l| l.contains("12\\n34")), "12\\n34 not shown escaped\n{}", r.show());
        assert!(!out.lines().any(|l| l.starts_with("34")), "a raw newline split a line\n{}", r.show());
        let findings: Vec<&str> = out.lines().filter(|l| l.contains("red") && l.contains("local/")).collect();
        assert!(!findings.is_empty() && findings.iter().all(|l| l.contains('\\')), "ESC not escaped\n{}", r.show());
        assert!(out.lines().any(|l| l.contains("remote/") && l.contains("\\x")), "bytes not escaped\n{}", r.show());
    }
    if python3() {
        let fx = build(20, 23, false, 41, &[Damage::StrayNames]);
        let json = qfixq(fx.queue(), &["--json"]);
        json.expect(4, "JSON with stray names");
        let (_, findings, _, _, _, lines) = json_to_text(&json.stdout);
        assert!(findings >= 8, "{}", json.show());
        assert!(lines.iter().any(|l| l.contains("12\\n34")), "{lines:?}");
    }
}

#[test]
fn no_quarantine_deletes_what_cannot_be_saved() {
    if !root_or_skip("no_quarantine_deletes_what_cannot_be_saved") {
        return;
    }
    let fx = build(30, 23, false, 51, &[Damage::ZeroByteMess, Damage::S2Leftover, Damage::OrphanInfo]);
    let q = fx.queue();
    let before = snapshot(q);
    let fates = expected_fates(q, false);
    let live = qfixq(q, &["live", "--no-quarantine"]);
    live.expect(1, "live --no-quarantine");
    qfixq(q, &[]).expect(0, "check after live --no-quarantine");
    assert!(regular_files(&q.join("lost+found")).is_empty(), "--no-quarantine moved files\n{}", live.show());
    // The saved messages are all there; the others are gone.
    let saved: Fates = fates
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().filter(|f| *f != Fate::Quarantined).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_none(&check_fates(&saved, q, false), "messages after --no-quarantine", Some(&live));
    assert_none(&check_healthy(q, 23, false, &before), "after --no-quarantine", Some(&live));
}

#[test]
fn usage_errors_exit_16() {
    let q = Path::new("/nonexistent-queue");
    for args in [
        &["bogus"][..],
        &["live", "full"][..],
        &["--no-such-flag"][..],
        &["--threads", "0"][..],
        &["--empty"][..],
        &["-n", "live"][..],
        &["check", "live"][..],
    ] {
        let r = qfixq(q, args);
        r.expect(16, &format!("{args:?}"));
        assert!(!r.err().is_empty(), "a usage error says why\n{}", r.show());
    }
    let help = qfixq(q, &["--help"]);
    help.expect(0, "--help");
    assert!(help.out().contains("Exit status") && help.out().contains("32 interrupted"), "{}", help.show());
    // A queue that is not there is an operational error.
    qfixq(q, &[]).expect(8, "missing queue");
}

/// The queue directory itself may be a symbolic link (to another disk).
#[test]
fn queue_reached_through_a_symbolic_link() {
    if !root_or_skip("queue_reached_through_a_symbolic_link") {
        return;
    }
    let fx = build(30, 23, false, 71, &[Damage::WrongBucket, Damage::GarbledInfo]);
    let link = fx.tmp.path().join("queue-link");
    std::os::unix::fs::symlink(fx.queue(), &link).expect("symlink");
    let before = snapshot(fx.queue());
    let fates = expected_fates(fx.queue(), false);
    qfixq(&link, &[]).expect(4, "check through the link");
    let live = qfixq(&link, &["live"]);
    live.expect(1, "live through the link");
    qfixq(&link, &[]).expect(0, "second check through the link");
    assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()), "the link is kept");
    assert_none(&check_fates(&fates, fx.queue(), false), "messages", Some(&live));
    assert_none(&check_healthy(fx.queue(), 23, false, &before), "health", Some(&live));
}

/// `-n` and the mode word `check` are the read-only check, as fsck's and
/// qkillns' `-n`: they change nothing and report like a plain `qfixq`.
#[test]
fn dash_n_and_check_are_the_check() {
    if !root_or_skip("dash_n_and_check_are_the_check") {
        return;
    }
    let fx = build(30, 7, false, 3, &[qtests::Damage::S2Leftover]);
    let q = fx.queue();
    let frozen = freeze(&fx);
    let plain = qfixq(q, &[]);
    plain.expect(4, "plain check");
    for args in [&["-n"][..], &["check"][..], &["--dry-run"][..]] {
        let r = qfixq(q, args);
        r.expect(4, &format!("{args:?}"));
        assert_eq!(without_run_dirs(&r.out()), without_run_dirs(&plain.out()), "{args:?}");
    }
    assert_frozen(&fx, &frozen, "-n and check", None);
}

/// The report's lines after the mode line, with lost+found run directory
/// names (time and pid) taken out.
fn without_run_dirs(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .map(|l| {
            let mut l = l.to_string();
            while let Some(i) = l.find("lost+found/2") {
                let rest = &l[i + "lost+found/".len()..];
                let end = rest.find(['/', ' ']).unwrap_or(rest.len());
                l = format!("{}lost+found/RUN{}", &l[..i], &rest[end..]);
            }
            l
        })
        .collect()
}
