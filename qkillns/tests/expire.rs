//! `--expire`, beside a (stand-in) qmail-send.

use qtests::prelude::qkillns::*;

const DAY: i64 = 86_400;

/// A queue in a qmail home with control/queuelifetime = `lifetime`.
fn home_queue(lifetime: Option<&str>) -> Queue {
    let q = Queue::with(false, Some("home"));
    std::fs::create_dir_all(q.home().join("control")).unwrap();
    if let Some(l) = lifetime {
        std::fs::write(q.home().join("control/queuelifetime"), l).unwrap();
    }
    q
}

fn expire_cmd(q: &Queue) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("qkillns").unwrap();
    c.arg("--qmail-home").arg(q.home()).args(["--split", "23", "--expire"]);
    c.env_remove("QTOOLS_ABORT_AFTER_STEP");
    c.timeout(std::time::Duration::from_secs(60));
    c
}

#[test]
fn backdates_info_and_signals_the_given_pid() {
    if !root_or_skip("backdates_info_and_signals_the_given_pid") {
        return;
    }
    let q = home_queue(Some("7200\n"));
    let t = now();
    // Younger than queuelifetime (2 hours), and older than it.
    let a = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t - 1800, false);
    let old = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t - 30 * DAY, false);
    let todo = q.todo(b"", &[b"c@d.example"], "failure notice", t);
    let other = q.preprocessed(b"x@y.example", &[], &[(b"a@b.example", false)], "hello", t - DAY, false);
    let Some(stand_in) = StandIn::counting_alarms(None, None) else {
        println!("skipped: perl not found");
        return;
    };
    // Dry run first: changes nothing, signals nothing.
    let before = snapshot(&q.root);
    let out = expire_cmd(&q).arg("-n").arg("--pid").arg(stand_in.pid().to_string()).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains(&format!("{}  would expire", a.number)), "{text}");
    assert!(text.contains("queuelifetime: 7200 s"), "{text}");
    assert_same(&before, &snapshot(&q.root));
    assert_eq!(stand_in.alarms(0), 0);

    let out = expire_cmd(&q).arg("--pid").arg(stand_in.pid().to_string()).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let after = now();
    let info = &a.files[1];
    let m = q.mtime(info);
    assert!(m >= t - 7200 - 3600 && m <= after - 7200 - 3600, "info mtime {m}, before {t}, after {after}");
    // Already older than the target: left as it was.
    assert_eq!(q.mtime(&old.files[1]), t - 30 * DAY);
    // Not preprocessed: skipped; another sender: untouched.
    assert_eq!(q.present(&todo), todo.files);
    assert_eq!(q.mtime(&other.files[1]), t - DAY);
    assert!(text.contains(&format!("{}  expired", a.number)), "{text}");
    assert!(text.contains(&format!("{}  already expired", old.number)), "{text}");
    assert!(text.contains(&format!("{}  skipped (todo)", todo.number)), "{text}");
    assert!(text.contains("skipped 1 selected message(s) not yet preprocessed"), "{text}");
    assert!(text.contains(&format!("sent SIGALRM to pid {}", stand_in.pid())), "{text}");
    assert!(text.contains("DOUBLE BOUNCE"), "{text}");
    assert!(text.contains("doublebounceto"), "{text}");
    assert_eq!(stand_in.alarms(1), 1);
    // Nothing removed.
    for m in [&a, &old, &other] {
        assert_eq!(q.present(m), m.files);
    }
}

#[test]
fn finds_qmail_send_by_its_lock() {
    if !root_or_skip("finds_qmail_send_by_its_lock") {
        return;
    }
    let q = home_queue(None);
    let a = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", now() - DAY, false);
    let lock = q.root.join("lock/sendmutex");
    let Some(qs) = StandIn::counting_alarms(Some(&lock), Some("qmail-send")) else {
        println!("skipped: perl not found");
        return;
    };
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", qs.pid())).unwrap_or_default();
    if comm.trim() != "qmail-send" {
        println!("skipped: perl cannot set its process name (comm is {comm:?})");
        return;
    }
    let out = expire_cmd(&q).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains(&format!("pid {} (qmail-send, holds lock/sendmutex)", qs.pid())), "{text}");
    assert!(text.contains("queuelifetime: 604800 s"), "{text}");
    assert_eq!(qs.alarms(1), 1);
    assert!(q.mtime(&a.files[1]) <= now() - 604_800 - 3600);
}

#[test]
fn a_lock_holder_that_is_not_qmail_send_is_refused() {
    if !root_or_skip("a_lock_holder_that_is_not_qmail_send_is_refused") {
        return;
    }
    let q = home_queue(None);
    let a = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", now() - DAY, false);
    let lock = q.root.join("lock/sendmutex");
    let Some(other) = StandIn::counting_alarms(Some(&lock), None) else {
        println!("skipped: perl not found");
        return;
    };
    let before = snapshot(&q.root);
    let out = expire_cmd(&q).assert().code(8);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains(&format!("held by pid {}", other.pid())), "{stderr}");
    assert!(stderr.contains("not qmail-send"), "{stderr}");
    assert_eq!(other.alarms(0), 0);
    assert_same(&before, &snapshot(&q.root));
    let _ = a;
}

#[test]
fn without_qmail_send_the_times_are_still_set() {
    if !root_or_skip("without_qmail_send_the_times_are_still_set") {
        return;
    }
    let q = home_queue(Some("3600"));
    let a = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", now(), false);
    let out = expire_cmd(&q).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("no qmail-send found"), "{text}");
    assert!(q.mtime(&a.files[1]) <= now() - 3600 - 3600);
    // A pid that does not exist is refused before anything changes.
    let b = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", now(), false);
    let m = q.mtime(&b.files[1]);
    expire_cmd(&q).args(["--pid", "999999999"]).assert().code(8);
    assert_eq!(q.mtime(&b.files[1]), m);
}

#[test]
fn an_info_file_with_two_links_is_not_touched() {
    if !root_or_skip("an_info_file_with_two_links_is_not_touched") {
        return;
    }
    let q = home_queue(None);
    let a = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", now(), false);
    let outside = q.dir.path().join("outside-link");
    std::fs::hard_link(q.abs(&a.files[1]), &outside).unwrap();
    let m = q.mtime(&a.files[1]);
    let out = expire_cmd(&q).assert().code(8);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains(&format!("message {}", a.number)), "{stderr}");
    assert_eq!(q.mtime(&a.files[1]), m);
}
