//! `queue/lost+found` when it is not what it should be, and the run
//! directories in it: something else standing at `lost+found` (a link, a
//! file, a pipe) is shown by the check and handled by live exactly so;
//! two runs in one second with one pid (each run in its own pid
//! namespace is pid 1) never share a run directory; impossible ids are
//! refused before anything is read.

use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use qtests::prelude::qfixq::*;
use qtests::Damage;

/// A queue with a message that must be set aside (qmail-queue died
/// before it linked todo).
fn damaged(seed: u64) -> Fixture {
    build(20, 7, false, seed, &[Damage::S3Leftover])
}

fn run_dirs(queue: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(queue.join("lost+found"))
        .map(|it| it.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn assert_lost_found_is_a_dir(q: &Path, what: &str) {
    let m = std::fs::symlink_metadata(q.join("lost+found")).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(m.is_dir(), "{what}: lost+found is {:?}", m.file_type());
}

#[test]
fn lost_found_as_a_symlink_is_removed_not_followed() {
    if !root_or_skip("lost_found_as_a_symlink") {
        return;
    }
    let fx = damaged(11);
    let q = fx.queue();
    let canary = fx.outside.join("canary");
    std::fs::write(&canary, b"outside").unwrap();
    symlink(&fx.outside, q.join("lost+found")).unwrap();
    let check = qfixq(q, &[]);
    check.expect(4, "check");
    assert!(check.out().contains("would: unlink lost+found"), "check must show the link's removal\n{}", check.show());
    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    assert!(live.out().contains("done: unlink lost+found"), "{}", live.show());
    qfixq(q, &[]).expect(0, "check after live");
    assert_lost_found_is_a_dir(q, "after live");
    assert_eq!(run_dirs(q).len(), 1, "one run directory");
    let names: Vec<_> = std::fs::read_dir(&fx.outside).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("canary")], "nothing written outside the queue");
    assert_eq!(std::fs::read(&canary).unwrap(), b"outside");
}

#[test]
fn lost_found_as_a_file_is_kept_inside_the_new_lost_found() {
    if !root_or_skip("lost_found_as_a_file") {
        return;
    }
    let fx = damaged(12);
    let q = fx.queue();
    std::fs::write(q.join("lost+found"), b"someone's notes\n").unwrap();
    let check = qfixq(q, &[]);
    check.expect(4, "check");
    assert!(check.out().contains("would: rename lost+found -> .qtools-lost+found."), "{}", check.show());
    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    assert_lost_found_is_a_dir(q, "after live");
    let runs = run_dirs(q);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let kept = runs[0].join("lost+found-file/lost+found");
    assert_eq!(std::fs::read(&kept).unwrap(), b"someone's notes\n", "the file's content is kept");
    let reason = std::fs::read_to_string(runs[0].join("lost+found-file/reason")).unwrap();
    assert!(reason.contains("was: queue/lost+found"), "{reason}");
    assert!(!std::fs::read_dir(q).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(".qtools")));
}

#[test]
fn lost_found_as_a_fifo_is_removed() {
    if !root_or_skip("lost_found_as_a_fifo") {
        return;
    }
    let fx = damaged(13);
    let q = fx.queue();
    nix::unistd::mkfifo(&q.join("lost+found"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(std::fs::symlink_metadata(q.join("lost+found")).unwrap().file_type().is_fifo());
    let check = qfixq(q, &[]);
    check.expect(4, "check");
    assert!(check.out().contains("would: unlink lost+found"), "{}", check.show());
    qfixq(q, &["live"]).expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    assert_lost_found_is_a_dir(q, "after live");
}

/// `unshare -pf` runs qfixq as pid 1 of a new pid namespace.
fn unshare_usable() -> Option<PathBuf> {
    let path = ["/usr/bin/unshare", "/bin/unshare"].iter().map(PathBuf::from).find(|p| p.exists())?;
    let ok = Command::new(&path).args(["-pf", "--mount-proc", "true"]).status().is_ok_and(|s| s.success());
    ok.then_some(path)
}

fn qfixq_as_pid1(unshare: &Path, q: &Path, args: &[&str]) -> std::process::Output {
    Command::new(unshare)
        .args(["-pf", "--mount-proc"])
        .arg(binary())
        .arg("--queue")
        .arg(q)
        .args(["--ids", IDS_ARG])
        .args(args)
        .env_remove("QTOOLS_ABORT_AFTER_STEP")
        .output()
        .expect("run qfixq under unshare")
}

#[test]
fn two_runs_as_pid_1_in_one_second_get_two_run_directories() {
    if !root_or_skip("two_runs_as_pid_1") {
        return;
    }
    let Some(unshare) = unshare_usable() else {
        println!("skipped: two_runs_as_pid_1: `unshare -pf --mount-proc` is not available here");
        return;
    };
    let fx = damaged(14);
    let q = fx.queue();
    // Every name a run as pid 1 could choose in the next minute is taken,
    // as if earlier runs in the same second had made them.
    std::fs::create_dir(q.join("lost+found")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for t in now - 1..now + 60 {
        std::fs::create_dir(q.join("lost+found").join(format!("{}-1", qcommon::remove::utc_stamp(t)))).unwrap();
    }
    let taken = run_dirs(q).len();
    let out = qfixq_as_pid1(&unshare, q, &["live"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let runs = run_dirs(q);
    assert_eq!(runs.len(), taken + 1, "a new run directory");
    let new: Vec<_> = runs.iter().filter(|p| p.to_string_lossy().ends_with("-1-2")).collect();
    assert_eq!(new.len(), 1, "the run chose `<time>-1-2`: {runs:?}");

    // And two real runs back to back, each with a message to set aside.
    let before = run_dirs(q).len();
    for round in 0..2 {
        let fx2 = damaged(20 + round);
        let src = fx2.queue();
        // Move the fresh leftover into our queue under its own number.
        let (n, files) = leftover_files(src);
        for (rel, data) in files {
            let to = q.join(&rel);
            std::fs::write(&to, data).unwrap();
            let _ = n;
        }
        let out = qfixq_as_pid1(&unshare, q, &["--split", "7", "live"]);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "round {round}: {code:?}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(run_dirs(q).len() > before, "back-to-back runs made their own run directories");
    qfixq(q, &[]).expect(0, "check at the end");
}

/// The files of the first message in `src` that has a mess but no info
/// and no todo (the leftover), as (relative path, content).
fn leftover_files(src: &Path) -> (u64, Vec<(PathBuf, Vec<u8>)>) {
    let idx = index(src, false);
    for (n, m) in &idx.msgs {
        if m.part(qcommon::queue::Part::Mess).is_some()
            && m.part(qcommon::queue::Part::Info).is_none()
            && m.part(qcommon::queue::Part::Todo).is_none()
        {
            // A name that is no message number: qfixq sets it aside.
            let rel = PathBuf::from(format!("mess/{}/x{n}", n % 7));
            let data = m.part(qcommon::queue::Part::Mess).expect("mess").data.clone();
            return (*n, vec![(rel, data)]);
        }
    }
    panic!("no leftover in {}", src.display());
}

#[test]
fn impossible_ids_are_refused() {
    let t = tempfile::tempdir().unwrap();
    for ids in ["4294967295:7002:7003:7004", "7001:7002:7003:4294967295", "7001:65535:7003:7004"] {
        let out =
            Command::new(binary()).arg("--queue").arg(t.path()).args(["--ids", ids, "live"]).output().expect("run");
        assert_eq!(out.status.code(), Some(16), "--ids {ids}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("-1"), "--ids {ids} must say why: {err}");
    }
}
