//! qfixq refuses to repair while qmail runs (docs/repair-policy.md, rule
//! 2): a process holding qmail-send's lock (lock/sendmutex) stops a live
//! run with exit 8 and no change, whatever `--force` says; a process working
//! inside the queue (a qmail-queue in flight) stops it too unless `--force`.
//! A check still works in both cases.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use qtests::prelude::qfixq::*;
use qtests::Damage;

/// Kills and reaps a child process when dropped.
struct Guard(Child);

impl Guard {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const HOLD_LOCK: &str = "import fcntl, time, sys\n\
    f = open(sys.argv[1])\n\
    fcntl.flock(f, fcntl.LOCK_EX)\n\
    print('ok', flush=True)\n\
    time.sleep(60)\n";

/// A stand-in for qmail-send: holds an exclusive flock on `path`; returns
/// once the lock is taken. None when python3 is missing.
fn hold_lock(path: &Path) -> Option<Guard> {
    let child = match Command::new("python3").arg("-c").arg(HOLD_LOCK).arg(path).stdout(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => {
            println!("skipped: python3 is needed to hold the lock: {e}");
            return None;
        }
    };
    let mut g = Guard(child);
    let mut line = String::new();
    BufReader::new(g.0.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "ok", "the lock holder did not start");
    Some(g)
}

#[test]
fn qmail_send_lock_stops_live() {
    if !root_or_skip("qmail_send_lock_stops_live") {
        return;
    }
    let fx = build(30, 23, false, 61, &[Damage::WrongBucket, Damage::GarbledInfo]);
    let q = fx.queue();
    let Some(holder) = hold_lock(&q.join("lock").join("sendmutex")) else { return };
    let frozen = freeze(&fx);
    let pid = holder.pid().to_string();
    for args in [&["live"][..], &["live", "--force"][..], &["live", "empty"][..]] {
        let r = qfixq(q, args);
        r.expect(8, &format!("{args:?} while the lock is held"));
        assert!(r.err().contains(&pid), "the refusal names pid {pid}\n{}", r.show());
        assert_frozen(&fx, &frozen, &format!("{args:?} while the lock is held"), Some(&r));
    }
    // A check works beside a running qmail-send, and reports it.
    let check = qfixq(q, &[]);
    check.expect(4, "check while the lock is held");
    assert!(check.out().lines().any(|l| l.starts_with("processes:") && l.contains(&pid)), "{}", check.show());
    assert_frozen(&fx, &frozen, "check while the lock is held", Some(&check));
    drop(holder);
    qfixq(q, &["live"]).expect(1, "live once the lock is free");
    qfixq(q, &[]).expect(0, "check after the repair");
}

#[test]
fn process_inside_the_queue_stops_live_unless_forced() {
    if !root_or_skip("process_inside_the_queue_stops_live_unless_forced") {
        return;
    }
    let fx = build(30, 23, false, 62, &[Damage::WrongBucket, Damage::MissingLockFiles]);
    let q = fx.queue();
    let sleeper = Guard(Command::new("sleep").arg("60").current_dir(q.join("mess")).spawn().expect("sleep"));
    let pid = sleeper.pid().to_string();
    // Wait until /proc shows its working directory.
    let want = std::fs::canonicalize(q.join("mess")).expect("canonicalize");
    for _ in 0..200 {
        if std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|p| p == want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let frozen = freeze(&fx);
    let r = qfixq(q, &["live"]);
    r.expect(8, "live beside a process in the queue");
    assert!(r.err().contains(&pid), "the refusal names pid {pid}\n{}", r.show());
    assert_frozen(&fx, &frozen, "live beside a process in the queue", Some(&r));
    let check = qfixq(q, &[]);
    check.expect(4, "check beside a process in the queue");
    assert!(check.out().lines().any(|l| l.starts_with("processes:") && l.contains(&pid)), "{}", check.show());
    assert_frozen(&fx, &frozen, "check beside a process in the queue", Some(&check));

    let forced = qfixq(q, &["live", "--force"]);
    forced.expect(1, "live --force beside a process in the queue");
    qfixq(q, &[]).expect(0, "check after the forced repair");
    assert_none(&check_healthy(q, 23, false, &frozen.queue), "after the forced repair", Some(&forced));
    drop(sleeper);
}
