//! The foundation's promises, tested through qcommon's public API on
//! practice queues: traps leave everything outside the queue untouched,
//! the mutator's dry run changes nothing, and the crash switch stops a run
//! after exactly k steps.

use std::path::{Path, PathBuf};
use std::process::Command;

use qcommon::mutator::{Action, Mode, Mutator, Step};
use qcommon::remove::{removal_action, Quarantine};
use qcommon::safe_fs::{Dir, SymlinkBehavior};
use qcommon::scan::{scan, ScanEvent, ScanLayout, ScanOptions, ScannedMessage, Stray};
use qtests::{apply_damage, build_queue, snapshot, BuildSpec, Damage};

fn build(dir: &Path, messages: usize, big_todo: bool) -> qtests::BuiltQueue {
    let spec = BuildSpec { messages, big_todo, seed: 42, ..Default::default() };
    build_queue(&dir.join("queue"), &spec).expect("build")
}

fn scan_all(queue: &Path, split: u32, big_todo: bool) -> (Vec<ScannedMessage>, Vec<Stray>) {
    let root = Dir::open(queue, SymlinkBehavior::Follow).unwrap();
    let (mut m, mut s) = (Vec::new(), Vec::new());
    scan(&root, ScanLayout { split, big_todo }, &ScanOptions::default(), &mut |ev| match ev {
        ScanEvent::Message(x) => m.push(*x),
        ScanEvent::Stray(x) => s.push(x),
        ScanEvent::Error(e) => panic!("scan error: {e}"),
    })
    .unwrap();
    (m, s)
}

#[test]
fn traps_leave_everything_outside_untouched() {
    for big_todo in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let built = build(t.path(), 40, big_todo);
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        for d in [Damage::SymlinkTrap, Damage::FifoTrap, Damage::ExtraHardLink] {
            apply_damage(&built, d, 3, &outside).unwrap();
        }
        let before = snapshot(&outside);
        assert!(!before.is_empty());
        let queue = t.path().join("queue");
        // Scanning reads every envelope: no FIFO may block it, no link be followed.
        let (msgs, strays) = scan_all(&queue, 23, big_todo);
        assert!(!msgs.is_empty());
        assert!(strays.iter().any(|s| s.stat.is_some_and(|st| st.kind == qcommon::safe_fs::FileKind::Symlink)));
        assert!(strays.iter().any(|s| s.stat.is_some_and(|st| st.kind == qcommon::safe_fs::FileKind::Fifo)));
        // Remove every message and quarantine every stray, live.
        let root = Dir::open(&queue, SymlinkBehavior::Follow).unwrap();
        let mut q = Quarantine::new(&root, 0, 1).unwrap();
        let mut m = Mutator::new(root, Mode::Live);
        for msg in &msgs {
            m.run_action(&removal_action(msg), &mut |_, _| {});
        }
        for s in &strays {
            let steps = match s.stat.map(|st| st.kind) {
                Some(qcommon::safe_fs::FileKind::Regular | qcommon::safe_fs::FileKind::Directory) => {
                    q.stray_steps(&s.path, None, "test")
                }
                _ => vec![Step::Unlink { path: s.path.clone(), expect: None }],
            };
            m.run_action(&Action { message: None, steps }, &mut |_, _| {});
        }
        // Also try, on purpose, to go through the symlinked bucket.
        for e in std::fs::read_dir(queue.join("mess")).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_symlink() {
                let p = PathBuf::from("mess").join(e.file_name()).join("1");
                assert!(m.apply(&Step::Unlink { path: p, expect: None }).is_err());
            }
        }
        let after = snapshot(&outside);
        // Unlinking a queue name of a hard-linked canary changes its link
        // count only; nothing else may differ.
        let diff: Vec<String> = before.diff(&after).into_iter().filter(|d| !d.contains(": links ")).collect();
        assert!(diff.is_empty(), "outside changed: {diff:?}");
    }
}

#[test]
fn dry_run_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let built = build(t.path(), 30, false);
    let outside = t.path().join("outside");
    apply_damage(&built, Damage::StrayNames, 1, &outside).unwrap();
    let queue = t.path().join("queue");
    let before = snapshot(t.path());
    let (msgs, strays) = scan_all(&queue, 23, false);
    let root = Dir::open(&queue, SymlinkBehavior::Follow).unwrap();
    let mut q = Quarantine::new(&root, 0, 1).unwrap();
    let mut m = Mutator::new(root, Mode::DryRun);
    let mut planned = 0;
    let mut done = 0;
    for msg in &msgs {
        let a = removal_action(msg);
        planned += a.steps.len();
        let out = m.run_action(&a, &mut |_, _| {});
        assert!(out.failed.is_none());
        done += out.done;
    }
    for s in &strays {
        let a = Action { message: None, steps: q.stray_steps(&s.path, None, "test") };
        planned += a.steps.len();
        done += m.run_action(&a, &mut |_, _| {}).done;
    }
    assert_eq!(done, planned);
    assert!(planned > 60);
    let after = snapshot(t.path());
    assert_eq!(before.diff(&after), Vec::<String>::new());
}

/// The child side of the crash-switch test: runs `steps` mkdir steps.
#[test]
fn crash_switch_child() {
    let Ok(dir) = std::env::var("QTESTS_CRASH_CHILD_DIR") else { return };
    let root = Dir::open(Path::new(&dir), SymlinkBehavior::NoFollow).unwrap();
    let mut m = Mutator::new(root, Mode::Live);
    let steps =
        (0..10).map(|i| Step::Mkdir { path: PathBuf::from(format!("d{i}")), perm: 0o700, owner: None }).collect();
    m.run_action(&Action { message: None, steps }, &mut |_, _| {});
}

#[test]
fn crash_switch_stops_after_exactly_k_steps() {
    use std::os::unix::process::ExitStatusExt;
    let me = std::env::current_exe().unwrap();
    for k in [1u32, 4, 9] {
        let t = tempfile::tempdir().unwrap();
        let status = Command::new(&me)
            .args(["--exact", "crash_switch_child", "--nocapture", "--test-threads=1"])
            .env("QTESTS_CRASH_CHILD_DIR", t.path())
            .env("QTOOLS_ABORT_AFTER_STEP", k.to_string())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(9), "the child must die by SIGKILL after step {k}");
        let made = std::fs::read_dir(t.path()).unwrap().count();
        assert_eq!(made, k as usize, "steps done before the crash");
    }
    // Without the switch all ten steps are done.
    let t = tempfile::tempdir().unwrap();
    let status = Command::new(&me)
        .args(["--exact", "crash_switch_child", "--test-threads=1"])
        .env("QTESTS_CRASH_CHILD_DIR", t.path())
        .env_remove("QTOOLS_ABORT_AFTER_STEP")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 10);
}
