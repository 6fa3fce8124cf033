//! Removal by message number and by filter (`--all`), through the real
//! binary: numbers select exactly those messages, `--all` every message,
//! both narrowed by the filters; the default stays the null-sender
//! bounces; bad numbers (not in the queue, a stray, a message being
//! queued) are reported, left alone, and give exit 8.

use std::collections::BTreeSet;
use std::path::PathBuf;

use qtests::json::check_json;
use qtests::prelude::qkillns::*;
use qtests::{build_queue, BuildSpec};

const DAY: i64 = 86_400;

fn text_of(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn numbers_select_exactly_those_messages_whatever_their_sender() {
    if !root_or_skip("numbers_select_exactly_those_messages_whatever_their_sender") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let a = q.preprocessed(b"alice@local.example", &[], &[(b"dave@remote.example", false)], "hello", t - DAY, false);
    let b = q.todo(b"eve@remote.example", &[b"frank@local.example"], "hi", t - 60);
    let bounce = q.preprocessed(b"", &[], &[(b"x@remote.example", false)], "failure notice", t - DAY, true);
    let keep = q.preprocessed(b"carl@local.example", &[], &[(b"y@remote.example", false)], "keep", t - DAY, false);

    // Dry run: exactly the two named, nothing changed.
    let before = snapshot(&q.root);
    let out =
        qkillns(&q).args(["-n", &a.number.to_string(), &b.number.to_string()]).assert().success().get_output().clone();
    let (text, _) = text_of(&out);
    assert!(text.contains(&format!("{}  would remove", a.number)), "{text}");
    assert!(text.contains(&format!("{}  would remove", b.number)), "{text}");
    assert!(!text.contains(&format!("{}  would", bounce.number)), "the default rule must not add bounces: {text}");
    assert!(text.contains("would remove 2 message(s)"), "{text}");
    assert!(text.contains(&format!("selection: message(s) {}, {}", a.number, b.number)), "{text}");
    assert_same(&before, &snapshot(&q.root));

    // Live: those two go, the others stay as they were.
    let gone: Vec<PathBuf> = a.files.iter().chain(&b.files).cloned().collect();
    let rest = without(snapshot(&q.root), &gone);
    let out = qkillns(&q).args([&a.number.to_string(), &b.number.to_string()]).assert().success().get_output().clone();
    let (text, _) = text_of(&out);
    assert!(text.contains("removed 2 message(s)"), "{text}");
    assert!(q.present(&a).is_empty() && q.present(&b).is_empty());
    assert_eq!(q.present(&bounce), bounce.files);
    assert_eq!(q.present(&keep), keep.files);
    assert_same(&rest, &without(snapshot(&q.root), &[]));

    // A filter narrows the numbers: the named message that does not match
    // is left, and said so; exit 0.
    let out = qkillns(&q)
        .args([&keep.number.to_string(), &bounce.number.to_string(), "--sender", "^$"])
        .assert()
        .success()
        .get_output()
        .clone();
    let (text, err) = text_of(&out);
    assert!(text.contains("removed 1 message(s)"), "{text}");
    assert!(q.present(&bounce).is_empty());
    assert_eq!(q.present(&keep), keep.files);
    assert!(err.contains(&format!("message {}: not selected by the filters", keep.number)), "{err}");
}

#[test]
fn all_with_filters_is_one_command() {
    if !root_or_skip("all_with_filters_is_one_command") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let r = |a: &'static [u8]| -> Vec<(&'static [u8], bool)> { vec![(a, false)] };
    let flood1 = q.preprocessed(b"spam@flood.example", &[], &r(b"a@x.example"), "buy", t - DAY, false);
    let flood2 = q.todo(b"spam@flood.example", &[b"b@y.example"], "buy", t - 60);
    let old_slow = q.preprocessed(b"ann@local.example", &[], &r(b"c@slow.example"), "hi", t - 6 * DAY, false);
    let young_slow = q.preprocessed(b"ann@local.example", &[], &r(b"d@slow.example"), "hi", t - DAY, false);
    let old_other = q.preprocessed(b"ann@local.example", &[], &r(b"e@fast.example"), "hi", t - 6 * DAY, false);
    let bounce = q.preprocessed(b"", &[], &r(b"f@fast.example"), "failure notice", t - DAY, false);

    // Everything from one sender.
    let out = qkillns(&q).args(["--all", "--sender", "@flood\\.example$"]).assert().success().get_output().clone();
    let (text, _) = text_of(&out);
    assert!(text.contains("removed 2 message(s)"), "{text}");
    assert!(q.present(&flood1).is_empty() && q.present(&flood2).is_empty());

    // Everything older than 5 days to one domain.
    let out = qkillns(&q)
        .args(["--all", "--older-than", "5d", "--recipient", "@slow\\.example$"])
        .assert()
        .success()
        .get_output()
        .clone();
    let (text, _) = text_of(&out);
    assert!(text.contains("removed 1 message(s)"), "{text}");
    assert!(q.present(&old_slow).is_empty());
    for m in [&young_slow, &old_other, &bounce] {
        assert_eq!(q.present(m), m.files, "{} must stay", m.number);
    }

    // --all alone, dry: every message left.
    let out = qkillns(&q).args(["-n", "--all"]).assert().success().get_output().clone();
    let (text, _) = text_of(&out);
    assert!(text.contains("would remove 3 message(s)"), "{text}");
    assert!(text.contains("selection: every message"), "{text}");

    // The default is still the bounces.
    let out = qkillns(&q).arg("-n").assert().success().get_output().clone();
    let (text, _) = text_of(&out);
    assert!(text.contains("would remove 1 message(s)"), "{text}");
    assert!(text.contains(&format!("{}  would remove", bounce.number)), "{text}");
}

#[test]
fn bad_numbers_are_reported_and_left_alone() {
    if !root_or_skip("bad_numbers_are_reported_and_left_alone") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let good = q.preprocessed(b"a@local.example", &[], &[(b"b@remote.example", false)], "x", t - DAY, false);
    // A message being queued: mess and an intd without its final records
    // (qmail-queue still writing it), no todo.
    let queued = q.lone_mess(t);
    let intd = q.path("intd", queued.number);
    std::fs::write(q.abs(&intd), b"u0\0p4242\0Fa@b.example").unwrap();
    // A stray with a message number for its name: a directory in info/.
    let stray_n = good.number + 1_000_000;
    let stray_rel = q.path("info", stray_n);
    std::fs::create_dir(q.abs(&stray_rel)).unwrap();
    let unknown = good.number + 2_000_000;

    let before = snapshot(&q.root);
    let args = [good.number.to_string(), queued.number.to_string(), stray_n.to_string(), unknown.to_string()];
    // Dry run and live: the good one is handled, the others reported; exit 8.
    for live in [false, true] {
        let mut cmd = qkillns(&q);
        if !live {
            cmd.arg("-n");
        }
        let out = cmd.args(&args).assert().code(8).get_output().clone();
        let (text, err) = text_of(&out);
        assert!(err.contains(&format!("message {unknown}: not in the queue")), "{err}");
        assert!(
            err.contains(&format!("message {stray_n}: not a message: queue/{}", stray_rel.display()))
                && err.contains("not a regular file"),
            "{err}"
        );
        assert!(
            err.contains(&format!("message {}: has neither todo, info nor a complete intd", queued.number)),
            "{err}"
        );
        assert!(text.contains("3 message number(s) given were left alone"), "{text}");
        if !live {
            assert!(text.contains("would remove 1 message(s)"), "{text}");
            assert_same(&before, &snapshot(&q.root));
        } else {
            assert!(text.contains("removed 1 message(s)"), "{text}");
        }
    }
    assert!(q.present(&good).is_empty());
    assert_eq!(q.present(&queued), queued.files);
    assert!(q.exists(&intd) && q.abs(&stray_rel).is_dir());
    let rest = without(before, &good.files);
    assert_same(&rest, &without(snapshot(&q.root), &[]));

    // JSON: the unknown number is an item of its own; valid JSON.
    let out = qkillns(&q).args(["-n", "--json", &unknown.to_string()]).assert().code(8).get_output().clone();
    let (text, _) = text_of(&out);
    check_json(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(text.contains(&format!("{{\"number\":{unknown},\"status\":\"not_found\"")), "{text}");
    assert!(text.contains("\"named_left\":1"), "{text}");

    // A number that is not one: a usage error.
    qkillns(&q).arg("12x").assert().code(16);
    qkillns(&q).args(["--all", "12"]).assert().code(16);
}

#[test]
fn on_a_practice_queue_all_and_sender_take_exactly_the_flood() {
    if !root_or_skip("on_a_practice_queue_all_and_sender_take_exactly_the_flood") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let queue = t.path().join("queue");
    let spec = BuildSpec { messages: 300, split: SPLIT, seed: 7, ..Default::default() };
    let built = build_queue(&queue, &spec).unwrap();
    let flood = qtests::content::FLOOD_SENDER.as_bytes();
    let chosen: BTreeSet<u64> = built.messages.iter().filter(|m| m.sender == flood).map(|m| m.number).collect();
    assert!(chosen.len() > 5, "the practice queue has {} flood messages", chosen.len());
    let q = Queue { dir: t, root: queue.clone(), big_todo: false };
    let gone: Vec<PathBuf> = chosen.iter().flat_map(|&n| files_of(&queue, n, SPLIT)).collect();
    let rest = without(snapshot(&queue), &gone);
    let re = format!("^{}$", regex_escape(qtests::content::FLOOD_SENDER));
    let out = qkillns(&q).args(["--all", "--sender", &re, "-q"]).assert().success().get_output().clone();
    let (text, _) = text_of(&out);
    assert!(text.contains(&format!("removed {} message(s)", chosen.len())), "{text}");
    for &n in &chosen {
        assert!(files_of(&queue, n, SPLIT).is_empty(), "{n} left");
    }
    assert_same(&rest, &without(snapshot(&queue), &[]));
}

fn regex_escape(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '@' { c.to_string() } else { format!("\\{c}") }).collect()
}
