//! qstat beside a working qmail-send: files vanish while they are counted;
//! `--watch` until nothing is left unpreprocessed; a closed pipe.

use std::fs;
use std::io::{BufRead, BufReader};

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qcommon::queue::Part;
use qtests::prelude::qstat::*;
use qtests::{message_path, BuiltState};

fn counts(text: &str) -> (u64, u64) {
    let mut l = text.lines();
    let n = l.next().unwrap().strip_prefix("messages in queue: ").unwrap().parse().unwrap();
    let m = l.next().unwrap().strip_prefix("messages in queue but not yet preprocessed: ").unwrap().parse().unwrap();
    (n, m)
}

/// A thread removes messages as qmail-send does (and churns a stray
/// directory) while qstat runs again and again: every run succeeds, says
/// nothing on stderr, and the counts only go down.
#[test]
fn files_vanishing_mid_count_are_no_error() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 600, false, 31);
    let q = b.queue.clone();
    let split = b.spec_split;
    let numbers: Vec<(u64, bool)> = b.messages.iter().map(|m| (m.number, m.state == BuiltState::TodoStage)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let remover = {
        let (q, done) = (q.clone(), done.clone());
        std::thread::spawn(move || {
            for (i, (n, todo)) in numbers.iter().enumerate() {
                let parts: &[Part] = if *todo {
                    &[Part::Todo, Part::Intd, Part::Mess]
                } else {
                    &[Part::Bounce, Part::Local, Part::Remote, Part::Info, Part::Mess]
                };
                for &p in parts {
                    let _ = fs::remove_file(message_path(&q, p, *n, split, false));
                }
                if i % 40 == 0 {
                    // A nested directory in a bucket appears and vanishes.
                    let d = q.join("mess/3/tmpdir");
                    let _ = fs::create_dir_all(d.join("inner"));
                    let _ = fs::write(d.join("inner/f"), b"");
                    std::thread::sleep(Duration::from_millis(2));
                    let _ = fs::remove_dir_all(&d);
                }
                if i % 3 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut last = (u64::MAX, u64::MAX);
    let mut runs = 0;
    while !done.load(Ordering::SeqCst) || runs < 3 {
        let o = run(&q, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(o.stderr.is_empty(), "{}", err(&o));
        let c = counts(&out(&o));
        // Three more entries at most: the churned directory and its content.
        assert!(c.0 <= last.0.saturating_add(3) && c.0 <= 603 && c.1 <= last.1, "{c:?} after {last:?}");
        last = (c.0.min(last.0), c.1);
        let o = run(&q, &["--detail", "--top", "3", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(o.stderr.is_empty(), "{}", err(&o));
        let j = Json::parse(&out(&o));
        assert!(j.at("detail.messages_scanned").u() <= 600);
        runs += 1;
    }
    remover.join().unwrap();
    let o = run(&q, &[]);
    assert_eq!(counts(&out(&o)), (0, 0));
    assert!(runs >= 3);
    eprintln!("{runs} rounds of qstat while messages vanished");
}

/// `--watch --until-preprocessed` reprints with a time stamp and exits 0
/// once todo is empty.
#[test]
fn watch_until_preprocessed() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 40, false, 32);
    assert!(b.counts.todo > 0);
    let todo: Vec<u64> = b.messages.iter().filter(|m| m.state == BuiltState::TodoStage).map(|m| m.number).collect();
    let child = Command::new(assert_cmd::cargo::cargo_bin("qstat"))
        .env("LC_ALL", "C")
        .arg("--queue")
        .arg(&b.queue)
        .args(["--watch", "0.1", "--until-preprocessed"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // "qmail-send" preprocesses: todo (and intd) go away.
    for n in &todo {
        fs::remove_file(message_path(&b.queue, Part::Todo, *n, b.spec_split, false)).unwrap();
        let _ = fs::remove_file(message_path(&b.queue, Part::Intd, *n, b.spec_split, false));
    }
    let o = wait_with_timeout(child, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(start.elapsed() < Duration::from_secs(20));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 6, "at least two rounds: {text}");
    assert_eq!(lines.len() % 3, 0, "{text}");
    for round in lines.chunks(3) {
        // A local time stamp: YYYY-MM-DD HH:MM:SS +hhmm.
        assert_eq!(round[0].len(), 25, "{round:?}");
        assert_eq!(&round[0][4..5], "-", "{round:?}");
        assert!(round[1].starts_with("messages in queue: 40"), "{round:?}");
    }
    assert_eq!(lines[2], format!("messages in queue but not yet preprocessed: {}", todo.len()));
    assert_eq!(lines[lines.len() - 1], "messages in queue but not yet preprocessed: 0");
}

/// `--watch --json` gives one document per line; with nothing to
/// preprocess it stops after the first.
#[test]
fn watch_json_lines() {
    let t = tempfile::tempdir().unwrap();
    let q = t.path().join("queue");
    for d in ["mess/0", "todo", "lock"] {
        fs::create_dir_all(q.join(d)).unwrap();
    }
    let o = run(&q, &["--watch", "5", "--until-preprocessed", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    let j = Json::parse(&text);
    assert_eq!(j.get("messages").u(), 0);
}

/// A reader that goes away (`qstat --watch 1 | head -2`) ends qstat quietly.
#[test]
fn closed_pipe_is_not_an_error() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 10, false, 33);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("qstat"))
        .arg("--queue")
        .arg(&b.queue)
        .args(["--watch", "0.05"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    drop(r);
    let o = wait_with_timeout(child, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(o.stderr.is_empty(), "{}", err(&o));
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {}", String::from_utf8_lossy(&o.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
