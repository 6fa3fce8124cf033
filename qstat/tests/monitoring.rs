//! `--check` sees damage (structure: CRITICAL; damaged messages: WARNING;
//! age and expiry thresholds; inconsistent thresholds are UNKNOWN), and
//! `--prometheus` carries codes, a queue label, an error gauge and the
//! last success. Through the real binary, on built queues.

use std::fs;
use std::os::unix::fs::chown;

use qtests::prelude::qstat::*;
use qtests::{apply_damage, build_queue, BuildSpec, Damage};

fn check(queue: &std::path::Path, args: &[&str]) -> (i32, String) {
    let o = run(queue, &[&["--check"][..], args].concat());
    let text = out(&o);
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    (o.status.code().expect("exit status"), text)
}

fn perf(line: &str, label: &str) -> String {
    let (_, p) = line.trim_end().split_once(" | ").expect("perfdata");
    p.split(' ')
        .find(|x| x.starts_with(&format!("{label}=")))
        .unwrap_or_else(|| panic!("{label} in {line}"))
        .to_string()
}

#[test]
fn structure_damage_is_critical() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 40, false, 3);
    let (c, l) = check(&b.queue, &["--detail"]);
    assert_eq!(c, 0, "a healthy queue is OK: {l}");
    assert_eq!(perf(&l, "structure_problems"), "structure_problems=0;;0;0");

    // info/20 missing: qmail-send stalls on every message of that bucket.
    let info20 = b.queue.join("info/20");
    let stash = t.path().join("info20");
    fs::rename(&info20, &stash).unwrap();
    let (c, l) = check(&b.queue, &[]);
    assert_eq!(c, 2, "{l}");
    assert!(l.starts_with("QSTAT CRITICAL - queue structure damaged") && l.contains("info/20 is missing"), "{l}");
    let (c, l) = check(&b.queue, &["--detail"]);
    assert_eq!(c, 2, "{l}");
    assert_eq!(perf(&l, "structure_problems"), "structure_problems=1;;0;0");
    fs::rename(&stash, &info20).unwrap();

    // A lock file missing, another of the wrong kind.
    fs::remove_file(b.queue.join("lock/trigger")).unwrap();
    fs::write(b.queue.join("lock/trigger"), b"").unwrap();
    fs::remove_file(b.queue.join("lock/sendmutex")).unwrap();
    let (c, l) = check(&b.queue, &[]);
    assert_eq!(c, 2, "{l}");
    assert!(l.contains("(and 1 more structure problems)"), "{l}");
    let (c, l) = check(&b.queue, &["--detail"]);
    assert_eq!((c, perf(&l, "structure_problems")), (2, "structure_problems=2;;0;0".to_string()), "{l}");
}

#[test]
fn wrong_owners_are_critical() {
    if !root_or_skip("wrong_owners_are_critical") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let spec = BuildSpec { messages: 20, seed: 5, now: NOW, ids: Some(IDS), ..BuildSpec::default() };
    let b = build_queue(&t.path().join("queue"), &spec).unwrap();
    let ids_arg = IDS_ARG;
    let (c, l) = check(&b.queue, &["--ids", ids_arg]);
    assert_eq!(c, 0, "{l}");
    chown(b.queue.join("remote"), Some(0), Some(0)).unwrap();
    let (c, l) = check(&b.queue, &["--ids", ids_arg]);
    assert_eq!(c, 2, "{l}");
    assert!(l.contains("remote: owner 0:0, should be 7002:7004"), "{l}");
}

#[test]
fn damaged_messages_warn_and_thresholds_apply() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 60, false, 4);
    let (c, l) = check(&b.queue, &["--detail"]);
    assert_eq!(c, 0, "{l}");
    assert_eq!(perf(&l, "damaged"), "damaged=0;0;;0");
    apply_damage(&b, Damage::ZeroByteMess, 4, &t.path().join("outside")).expect("damage");
    let (c, l) = check(&b.queue, &["--detail"]);
    assert_eq!(c, 1, "damaged messages warn: {l}");
    assert!(l.starts_with("QSTAT WARNING - ") && l.contains(" damaged (warning: 0)"), "{l}");
    let n: u64 = perf(&l, "damaged").trim_start_matches("damaged=").split(';').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{l}");
    // A threshold of their own; given alone it scans the queue.
    let (c, l) = check(&b.queue, &["--critical-damaged", "0"]);
    assert_eq!(c, 2, "{l}");
    let (c, _) = check(&b.queue, &["--warning-damaged", &n.to_string()]);
    assert_eq!(c, 0);

    // The oldest message's age and the messages past queuelifetime (the
    // builder makes a few older than a week before NOW, which is long ago).
    let (c, l) = check(&b.queue, &["--warning-damaged", "1000", "--warning-age", "3600", "--critical-age", "@0:1"]);
    assert_eq!(c, 1, "{l}");
    assert!(l.contains("(warning: 3600)"), "{l}");
    assert!(perf(&l, "oldest_age").ends_with("s;3600;@0:1;0"), "{l}");
    let (c, l) = check(&b.queue, &["--warning-damaged", "1000", "--critical-expired", "0"]);
    assert_eq!(c, 2, "{l}");
    assert!(perf(&l, "expired").ends_with(";;0;0"), "{l}");
}

#[test]
fn inconsistent_thresholds_are_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 5, false, 6);
    for args in [
        &["--warning", "10", "--critical", "5"][..],
        &["--warning-age", "7200", "--critical-age", "3600"],
        &["--warning-expired", "5:", "--critical-expired", "10:"],
        &["--warning-damaged", "@0:10", "--critical-damaged", "@0:20"],
    ] {
        let (c, l) = check(&b.queue, args);
        assert_eq!(c, 3, "{args:?}: {l}");
        assert!(l.starts_with("QSTAT UNKNOWN - usage: ") && l.contains("do not fit together"), "{l}");
    }
    let (c, l) =
        check(&b.queue, &["--warning", "5", "--critical", "10", "--warning-age", "@0:10", "--critical-age", "@2:5"]);
    assert_ne!(c, 3, "{l}");
}

fn sample<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(&format!("{metric}{{"))).collect()
}

#[test]
fn prometheus_labels_errors_and_last_success() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 40, false, 7);
    apply_damage(&b, Damage::ZeroByteMess, 7, &t.path().join("outside")).expect("damage");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qmail.prom");
    let o = run(&b.queue, &["--detail", "--prometheus"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    // Every sample has the queue label, the path by default.
    let q = format!("{{queue=\"{}\"", b.queue.display());
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(l.contains(&q), "{l}");
    }
    // Reasons are codes.
    let reasons = sample(&text, "qmail_queue_damaged_messages_by_reason");
    assert!(!reasons.is_empty(), "{text}");
    for l in &reasons {
        let code = l.split("reason=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(!code.is_empty() && code.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'), "{l}");
    }
    assert!(reasons.iter().any(|l| l.contains("reason=\"empty_mess\"")), "{text}");
    assert_eq!(sample(&text, "qmail_queue_run_error"), vec![format!("qmail_queue_run_error{q}}} 0")]);

    // A name for the label; a good run records its time as the last success.
    let o = qstat()
        .arg("--queue")
        .arg(&b.queue)
        .args(["--prometheus"])
        .arg(&file)
        .args(["--queue-name", "mx1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let good = fs::read_to_string(&file).unwrap();
    let stamp = |text: &str, metric: &str| -> Option<i64> {
        sample(text, metric).first().map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
    };
    let success = stamp(&good, "qmail_queue_last_success_timestamp_seconds").expect("a last success");
    assert_eq!(Some(success), stamp(&good, "qmail_queue_scan_timestamp_seconds"));
    assert!(good.contains("\nqmail_queue_messages{queue=\"mx1\"} "), "{good}");

    // The queue goes away: the file says so, keeps the last success, exit 8.
    let gone = t.path().join("gone");
    fs::rename(&b.queue, &gone).unwrap();
    let o = qstat()
        .arg("--queue")
        .arg(&b.queue)
        .args(["--prometheus"])
        .arg(&file)
        .args(["--queue-name", "mx1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(8), "{}", err(&o));
    let failed = fs::read_to_string(&file).unwrap();
    assert_eq!(sample(&failed, "qmail_queue_run_error"), vec!["qmail_queue_run_error{queue=\"mx1\"} 1"], "{failed}");
    assert_eq!(sample(&failed, "qmail_queue_read_complete"), vec!["qmail_queue_read_complete{queue=\"mx1\"} 0"]);
    assert_eq!(stamp(&failed, "qmail_queue_last_success_timestamp_seconds"), Some(success), "{failed}");
    assert!(sample(&failed, "qmail_queue_messages").is_empty(), "no figures from a failed run: {failed}");
    // --queue-name only goes with --prometheus.
    let o = qstat().args(["--queue-name", "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(16));
}
