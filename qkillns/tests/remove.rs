//! Removal and dry run, through the real binary, on hand-made queues.

use std::path::PathBuf;

use qtests::json::check_json;
use qtests::prelude::qkillns::*;

const DAY: i64 = 86_400;

/// A queue with a few of everything; returns (queue, selected by the null
/// sender rule, everything else).
fn mixed() -> (Queue, Vec<Msg>, Vec<Msg>) {
    let q = Queue::new();
    let t = now();
    let sel = vec![
        q.preprocessed(b"", &[], &[(b"bob@remote.example", false)], "failure notice", t - 2 * DAY, false),
        q.preprocessed(
            b"",
            &[(b"postmaster@local.example", false)],
            &[(b"x@remote.example", true), (b"y@remote.example", false)],
            "failure notice",
            t - 3 * DAY,
            true,
        ),
        q.todo(b"", &[b"carol@remote.example"], "failure notice", t - 600),
    ];
    let other = vec![
        q.preprocessed(b"alice@local.example", &[], &[(b"dave@remote.example", false)], "hello", t - DAY, false),
        q.preprocessed(b"#@[]", &[(b"postmaster@local.example", false)], &[], "double", t - DAY, false),
        q.todo(b"eve@remote.example", &[b"frank@local.example"], "hi", t - 60),
    ];
    (q, sel, other)
}

#[test]
fn dry_run_lists_the_selection_and_changes_nothing() {
    if !root_or_skip("dry_run_lists_the_selection_and_changes_nothing") {
        return;
    }
    let (q, sel, other) = mixed();
    let before = snapshot(&q.root);
    let out = qkillns(&q).arg("-n").assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    for m in &sel {
        let line = text.lines().find(|l| l.starts_with(&format!("{}  would remove", m.number)));
        let line = line.unwrap_or_else(|| panic!("{} not listed:\n{text}", m.number));
        assert!(line.contains("from <>"), "{line}");
        assert!(line.contains("subject \"failure notice\""), "{line}");
    }
    for m in &other {
        assert!(!text.contains(&format!("{}  ", m.number)), "{} listed:\n{text}", m.number);
    }
    assert!(text.contains("would remove 3 message(s)"), "{text}");
    assert!(text.contains("qmail-send: not running"), "{text}");
    // Nothing changed: contents, modes, owners, times (file atimes too).
    assert_same(&before, &snapshot(&q.root));
}

#[test]
fn removes_exactly_the_selected_messages() {
    if !root_or_skip("removes_exactly_the_selected_messages") {
        return;
    }
    let (q, sel, other) = mixed();
    let gone: Vec<PathBuf> = sel.iter().flat_map(|m| m.files.clone()).collect();
    let before = without(snapshot(&q.root), &gone);
    let out = qkillns(&q).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("removed 3 message(s)"), "{text}");
    for m in &sel {
        assert!(q.present(m).is_empty(), "{} left: {:?}", m.number, q.present(m));
        assert!(text.contains(&format!("{}  removed", m.number)), "{text}");
    }
    for m in &other {
        assert_eq!(q.present(m), m.files);
    }
    assert_same(&before, &without(snapshot(&q.root), &[]));
    // A second run finds nothing and still exits 0.
    let out = qkillns(&q).assert().success().get_output().clone();
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 0 message(s)"));
}

#[test]
fn double_and_sender_rules() {
    if !root_or_skip("double_and_sender_rules") {
        return;
    }
    let (q, sel, other) = mixed();
    let out = qkillns(&q).args(["-n", "--double"]).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("would remove 4 message(s)"), "{text}");
    assert!(text.contains(&format!("{}  would remove", other[1].number)), "{text}");

    // --sender replaces the null rule.
    let out = qkillns(&q).args(["--sender", "@remote\\.example$"]).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("removed 1 message(s)"), "{text}");
    assert!(q.present(&other[2]).is_empty());
    for m in sel.iter().chain(&other[..2]) {
        assert_eq!(q.present(m), m.files);
    }
}

#[test]
fn filters_narrow_the_selection() {
    if !root_or_skip("filters_narrow_the_selection") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let rem = |a: &'static [u8]| -> Vec<(&'static [u8], bool)> { vec![(a, false)] };
    // All null sender; they differ in recipient, subject and age.
    let all = q.preprocessed(b"", &[], &rem(b"victim@spam.example"), "failure notice", t - 3 * DAY, false);
    let young = q.preprocessed(b"", &[], &rem(b"victim@spam.example"), "failure notice", t - 3600, false);
    let other_rcpt = q.preprocessed(b"", &[], &rem(b"friend@ok.example"), "failure notice", t - 3 * DAY, false);
    let other_subj = q.preprocessed(b"", &[], &rem(b"victim@spam.example"), "Re: lunch", t - 3 * DAY, false);
    let todo_match = q.todo(b"", &[b"a@ok.example", b"victim@spam.example"], "failure notice", t - 3 * DAY);
    let encoded = q.preprocessed_text(
        b"",
        &[],
        &rem(b"victim@spam.example"),
        &message_text(b"", "=?UTF-8?B?ZmFpbHVyZSBub3RpY2U=?=", "X-Flood: yes\n"),
        t - 3 * DAY,
        false,
    );
    let out = qkillns(&q)
        .args(["-n", "--recipient", "@spam\\.example$", "--header", "subject: ^failure", "--older-than", "1d12h"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    let listed = |m: &Msg| text.contains(&format!("{}  would remove", m.number));
    assert!(listed(&all), "{text}");
    assert!(listed(&todo_match), "a todo recipient counts: {text}");
    assert!(listed(&encoded), "RFC 2047 subject is decoded: {text}");
    assert!(!listed(&young) && !listed(&other_rcpt) && !listed(&other_subj), "{text}");
    assert!(text.contains("would remove 3 message(s)"), "{text}");

    // Two header filters: both must match.
    let out = qkillns(&q)
        .args(["-n", "--header", "Subject: failure", "--header", "x-flood: ^yes$"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("would remove 1 message(s)"), "{text}");
    assert!(text.contains(&format!("{}  would remove", encoded.number)), "{text}");

    // --younger-than, then a live run of the same selection.
    let out = qkillns(&q).args(["--younger-than", "2h"]).assert().success().get_output().clone();
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 message(s)"));
    assert!(q.present(&young).is_empty());
    assert_eq!(q.present(&all), all.files);

    // A live run with a header filter reads the header too.
    let out = qkillns(&q).args(["--header", "X-Flood: ^yes$"]).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("removed 1 message(s)"), "{text}");
    assert!(q.present(&encoded).is_empty());
    assert_eq!(q.present(&all), all.files);
    assert_eq!(q.present(&other_subj), other_subj.files);
}

#[test]
fn big_todo_layout_and_uncommitted_and_lone_mess() {
    if !root_or_skip("big_todo_layout_and_uncommitted_and_lone_mess") {
        return;
    }
    let q = Queue::with(true, None);
    let t = now();
    let todo = q.todo(b"", &[b"a@b.example"], "failure notice", t);
    let kept = q.todo(b"x@y.example", &[b"a@b.example"], "hi", t);
    // Uncommitted: mess and intd only (as an interrupted run leaves it).
    let unc = q.todo(b"", &[b"c@d.example"], "failure notice", t);
    std::fs::remove_file(q.abs(&unc.files[2])).unwrap();
    let lone = q.lone_mess(t - 3600);
    let out = qkillns(&q).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("removed 2 message(s)"), "{text}");
    assert!(q.present(&todo).is_empty() && q.present(&unc).is_empty(), "{text}");
    assert_eq!(q.present(&kept), kept.files);
    assert_eq!(q.present(&lone), lone.files);
    assert!(text.contains("1 message(s) have neither todo, info"), "{text}");
}

#[test]
fn unreadable_messages_are_reported_and_left_alone() {
    if !root_or_skip("unreadable_messages_are_reported_and_left_alone") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let good = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t, false);
    let bad_info = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t, false);
    std::fs::write(q.abs(&bad_info.files[1]), b"Xjunk\0").unwrap();
    let bad_remote = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t, false);
    std::fs::write(q.abs(&bad_remote.files[2]), b"Qxx\0").unwrap();
    // Done, but two messages were left: exit 4, as qfixq.
    let out = qkillns(&q).assert().code(4).get_output().clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stdout.contains("removed 1 message(s)"), "{stdout}");
    assert!(stdout.contains("could not read 2 message(s)"), "{stdout}");
    assert!(stderr.contains(&format!("message {}", bad_info.number)), "{stderr}");
    assert!(stderr.contains(&format!("message {}", bad_remote.number)), "{stderr}");
    assert!(stderr.contains("left alone"), "{stderr}");
    assert!(q.present(&good).is_empty());
    assert_eq!(q.present(&bad_info), bad_info.files);
    assert_eq!(q.present(&bad_remote), bad_remote.files);
}

/// The sender is read from todo while there is one, before an info a
/// crashed preprocessing left beside it, also by the scan that reads only
/// that envelope of a message the sender rules out; such a message is
/// read no further, so its garbled recipient list is nobody's business.
#[test]
fn the_sender_comes_from_todo_before_info() {
    if !root_or_skip("the_sender_comes_from_todo_before_info") {
        return;
    }
    let q = Queue::new();
    let t = now();
    // A sender in todo, the null sender in the info beside it: kept.
    let kept = q.todo(b"alice@local.example", &[b"bob@remote.example"], "hello", t - 600);
    let kept_info = q.path("info", kept.number);
    std::fs::write(q.abs(&kept_info), b"F\0").unwrap();
    // The null sender in todo, a sender in the info beside it: removed.
    let gone = q.todo(b"", &[b"carol@remote.example"], "failure notice", t - 600);
    let gone_info = q.path("info", gone.number);
    std::fs::write(q.abs(&gone_info), b"Fdave@local.example\0").unwrap();
    // A sender's message with a remote list that is not one: not read.
    let other = q.preprocessed(b"erin@local.example", &[], &[(b"a@b.example", false)], "hi", t, false);
    std::fs::write(q.abs(&other.files[2]), b"Qxx\0").unwrap();

    let out = qkillns(&q).arg("-n").assert().success().get_output().clone();
    let (text, err) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(text.contains(&format!("{}  would remove", gone.number)), "{text}");
    assert!(text.contains("from <>"), "{text}");
    assert!(text.contains("would remove 1 message(s)"), "{text}");
    for n in [kept.number, other.number] {
        assert!(!text.contains(&format!("{n}  ")), "{n} listed:\n{text}");
        assert!(!err.contains(&format!("message {n}")), "{n} reported:\n{err}");
    }

    let out = qkillns(&q).assert().success().get_output().clone();
    let (text, err) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(text.contains("removed 1 message(s)"), "{text}");
    assert!(!err.contains("left alone"), "{err}");
    assert!(q.present(&gone).is_empty() && !q.exists(&gone_info), "{:?}", q.present(&gone));
    assert_eq!(q.present(&kept), kept.files);
    assert!(q.exists(&kept_info));
    assert_eq!(q.present(&other), other.files);
}

#[test]
fn refuses_while_qmail_send_holds_the_lock() {
    if !root_or_skip("refuses_while_qmail_send_holds_the_lock") {
        return;
    }
    let (q, sel, _) = mixed();
    let Some(holder) = StandIn::counting_alarms(Some(&q.root.join("lock/sendmutex")), None) else {
        println!("skipped: perl not found");
        return;
    };
    let before = snapshot(&q.root);
    let out = qkillns(&q).assert().code(8).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("qmail-send is running"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", holder.pid())), "{stderr}");
    assert!(stderr.contains("--expire"), "{stderr}");
    // --force does not override the lock.
    qkillns(&q).arg("--force").assert().code(8);
    assert_same(&before, &snapshot(&q.root));
    // The dry run still works, and says a removal would refuse.
    let out = qkillns(&q).arg("-n").assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("a removal would refuse"), "{text}");
    assert!(text.contains(&format!("{}  would remove", sel[0].number)), "{text}");
    assert_same(&before, &snapshot(&q.root));
}

#[test]
fn refuses_while_a_process_works_in_the_queue_unless_forced() {
    if !root_or_skip("refuses_while_a_process_works_in_the_queue_unless_forced") {
        return;
    }
    let (q, sel, _) = mixed();
    let mut child = std::process::Command::new("sleep").arg("30").current_dir(q.root.join("todo")).spawn().unwrap();
    let before = snapshot(&q.root);
    let out = qkillns(&q).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    // The refusal's wording is the session's, the same as qfixq's.
    assert!(
        stderr.contains(&format!("processes work inside the queue: sleep pid {} (working in ", child.id())),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_same(&before, &snapshot(&q.root));
    let out = qkillns(&q).arg("--force").assert().success().get_output().clone();
    let _ = child.kill();
    let _ = child.wait();
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 3 message(s)"));
    assert!(sel.iter().all(|m| q.present(m).is_empty()));
}

#[test]
fn missing_sendmutex_asks_for_qfixq() {
    if !root_or_skip("missing_sendmutex_asks_for_qfixq") {
        return;
    }
    let (q, _, _) = mixed();
    std::fs::remove_file(q.root.join("lock/sendmutex")).unwrap();
    let before = snapshot(&q.root);
    let out = qkillns(&q).assert().code(8).get_output().clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("qfixq live"));
    assert_same(&before, &snapshot(&q.root));
}

#[test]
fn json_is_one_valid_document() {
    if !root_or_skip("json_is_one_valid_document") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let m = q.preprocessed(b"", &[], &[(b"we\"ird\xff@x\x1b.example", false)], "caf\u{e9} \"quoted\"", t, false);
    let bad = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "x", t, false);
    std::fs::write(q.abs(&bad.files[1]), b"").unwrap();
    // The unreadable message is left alone: exit 4.
    let out = qkillns(&q).args(["-n", "--json"]).assert().code(4).get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    check_json(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert!(text.contains(&format!("\"number\":{},\"status\":\"would_remove\"", m.number)), "{text}");
    assert!(text.contains("we\\\"ird\\u00ff@x\\u001b.example"), "{text}");
    assert!(text.contains("\"subject\":\"café \\\"quoted\\\"\""), "{text}");
    assert!(text.contains(&format!("\"number\":{},\"status\":\"unreadable\"", bad.number)), "{text}");
    assert!(text.contains("\"steps\":[\"unlink remote/"), "{text}");
    assert!(text.contains("\"selected\":1"), "{text}");
    // A refusal is JSON too.
    std::fs::remove_file(q.root.join("lock/sendmutex")).unwrap();
    let out = qkillns(&q).arg("--json").assert().code(8).get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    check_json(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert!(text.contains("\"error\""), "{text}");
}

#[test]
fn terminal_output_is_escaped_and_verbose_shows_steps() {
    if !root_or_skip("terminal_output_is_escaped_and_verbose_shows_steps") {
        return;
    }
    let q = Queue::new();
    let m = q.preprocessed(b"", &[], &[(b"evil\x1b]0;pwned\x07@x.example", false)], "\x1b[2Jclear", now(), true);
    let out = qkillns(&q).args(["-n", "-v"]).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("evil\\x1b]0;pwned\\x07@x.example"), "{text}");
    // The steps, in removal order, mess last.
    let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("    ")).map(str::trim).collect();
    let n = m.number;
    let b = n % u64::from(SPLIT);
    assert_eq!(
        steps,
        [
            format!("unlink bounce/{n}"),
            format!("unlink remote/{b}/{n}"),
            format!("unlink info/{b}/{n}"),
            format!("unlink mess/{b}/{n}")
        ]
    );
    // -q: the summary only.
    let out = qkillns(&q).args(["-n", "-q"]).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("would remove 1 message(s)"), "{text}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    if !root_or_skip("a_closed_pipe_ends_quietly") {
        return;
    }
    let (q, _, _) = mixed();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("qkillns"))
        .args(["-n", "--split", "23", "--queue"])
        .arg(&q.root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Part of the queue that cannot be read (a bucket that the user running
/// qkillns may not list: the test drops root with setpriv) is reported,
/// the rest is looked at, and the run ends with exit 4, as qfixq and qstat
/// end for the same thing.
#[test]
fn an_unreadable_part_of_the_queue_is_exit_4() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_skip("an_unreadable_part_of_the_queue_is_exit_4") {
        return;
    }
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !setpriv.exists() {
        eprintln!("skipped: no /usr/bin/setpriv to drop root");
        return;
    }
    let q = Queue::new();
    let m = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", now(), false);
    // Everything readable by nobody, but one bucket of info.
    let mut stack = vec![q.root.parent().unwrap().to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if md.is_file() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let bucket = (m.number + 1) % u64::from(SPLIT);
    let closed = q.root.join(format!("info/{bucket}"));
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let as_nobody = |extra: &[&str]| {
        let mut c = assert_cmd::Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(assert_cmd::cargo::cargo_bin("qkillns"));
        c.arg("--queue").arg(&q.root).args(["--split", &SPLIT.to_string(), "--ids", "0:0:0:0", "-n"]);
        c.args(extra);
        c.timeout(std::time::Duration::from_secs(60));
        c
    };
    let out = as_nobody(&[]).assert().code(4).get_output().clone();
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(stderr.contains(&format!("info/{bucket}")) && stderr.contains("EACCES"), "{stderr}");
    assert!(stdout.contains(&format!("{}  would remove", m.number)), "{stdout}");
    assert!(stdout.contains("1 part(s) of the queue could not be read (see the errors above); exit 4"), "{stdout}");
    let out = as_nobody(&["--json"]).assert().code(4).get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    check_json(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert!(text.contains("\"scan_errors\":1"), "{text}");
    // As root the same queue reads whole: exit 0.
    qkillns(&q).arg("-n").assert().code(0);
}
