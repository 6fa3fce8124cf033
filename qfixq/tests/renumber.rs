//! Renumbering straight to the new number (docs/repair.md, "the mess
//! file's name is not its inode number"): a queue copied with `cp -a`
//! beside the original has every message under a name that is not its
//! mess inode, and no message holds any new number, so each message moves
//! once: its mess to its waiting name, its other files to the new number,
//! then the mess. A message whose new number is another message's old
//! name takes the two-step path. For every k, a live run killed right
//! after its k-th step and then run again must finish with every message
//! under its mess inode, whole (the same files by content, together), and
//! nothing left under a waiting name.

use std::path::{Path, PathBuf};
use std::process::Command;

use qcommon::queue::Part;
use qtests::prelude::qfixq::*;
use qtests::snapshot::snapshot;

const MESSAGES: usize = 16;
const SPLIT: u32 = 5;
const SEED: u64 = 4242;

/// `cp -a` of the fixture's queue to `name` beside it: new inodes, old names.
fn copy_of(fx: &Fixture, name: &str) -> PathBuf {
    let to = fx.tmp.path().join(name);
    let st = Command::new("cp").arg("-a").arg(fx.queue()).arg(&to).status().expect("cp");
    assert!(st.success(), "cp -a failed");
    to
}

fn bucket_path(queue: &Path, part: Part, n: u64) -> PathBuf {
    let mut p = queue.join(part.dir());
    if matches!(part, Part::Mess | Part::Info | Part::Local | Part::Remote) {
        p.push((n % u64::from(SPLIT)).to_string());
    }
    p.join(n.to_string())
}

/// Gives message `b` (every file) the number that is message `a`'s mess
/// inode, so that `a`'s new number is `b`'s old name: a real collision.
fn collide(queue: &Path, a: u64, b: u64) -> u64 {
    let ix = index(queue, false);
    let k = ix.msgs[&a].part(Part::Mess).expect("mess of a").ino;
    for part in Part::ALL {
        if let Some(f) = ix.msgs[&b].part(part) {
            std::fs::rename(&f.path, bucket_path(queue, part, k)).expect("rename b");
        }
    }
    k
}

/// Files and messages of a queue (numbered message files).
fn counts(queue: &Path) -> (usize, usize) {
    let ix = index(queue, false);
    (ix.msgs.values().map(|m| m.parts.iter().flatten().count()).sum(), ix.msgs.len())
}

/// Waiting names left anywhere in the queue.
fn waiting_names(queue: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![queue.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.file_type().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".qfixq-renum-") {
                out.push(e.path());
            }
        }
    }
    out
}

/// The crash test on copies made by `prepare` (which returns the queue
/// and the renames an uninterrupted run must make).
fn kill_after_every_step(what: &str, prepare: &dyn Fn(&Fixture, &str) -> (PathBuf, usize)) {
    if !root_or_skip(what) {
        return;
    }
    let fx = build_in(scratch(false), MESSAGES, SPLIT, false, SEED, &[]);
    let args = ["--split", "5"];
    let live = ["--split", "5", "--all", "live"];

    let (q, renames) = prepare(&fx, "reference");
    let fates = expected_fates(&q, false);
    let contents = census(&q, false);
    let before = snapshot(&q);
    let run = qfixq(&q, &live);
    run.expect(1, &format!("{what}: uninterrupted live"));
    let total = run.done_steps();
    let done_renames = run.out().lines().filter(|l| l.trim_start().starts_with("done: rename")).count();
    assert_eq!(done_renames, renames, "{what}: renames of the uninterrupted run\n{}", run.show());
    qfixq(&q, &args).expect(0, &format!("{what}: check after the uninterrupted run"));
    assert_none(&check_fates(&fates, &q, false), what, Some(&run));
    assert_none(&check_census(&contents, &q), what, Some(&run));
    assert_none(&check_healthy(&q, SPLIT, false, &before), what, Some(&run));
    std::fs::remove_dir_all(&q).unwrap();

    let mut half_moved = 0;
    for k in 1..=total {
        let what = format!("{what}: killed after step {k} of {total}");
        let (q, _) = prepare(&fx, &format!("copy-{k}"));
        let fates = expected_fates(&q, false);
        let contents = census(&q, false);
        let before = snapshot(&q);
        let first = qfixq_env(&q, &live, &[("QTOOLS_ABORT_AFTER_STEP", k.to_string().as_str())]);
        assert_eq!(first.signal(), Some(9), "{what}: expected death by SIGKILL\n{}", first.show());
        let second = qfixq(&q, &live);
        assert!(
            matches!(second.code(), Some(0 | 1)),
            "{what}: the run after the crash must finish\n{}\n{}",
            first.show(),
            second.show()
        );
        if second.out().contains("is half moved to") {
            half_moved += 1;
        }
        let third = qfixq(&q, &args);
        assert_eq!(third.code(), Some(0), "{what}: check after the rerun\n{}\n{}", second.show(), third.show());
        let ctx = format!("{}\n{}", first.show(), second.show());
        for (errors, title) in [
            (check_fates(&fates, &q, false), "messages"),
            (check_census(&contents, &q), "file contents"),
            (check_healthy(&q, SPLIT, false, &before), "queue health"),
        ] {
            assert!(errors.is_empty(), "{what}: {title}:\n  {}\n{ctx}", errors.join("\n  "));
        }
        assert_eq!(waiting_names(&q), Vec::<PathBuf>::new(), "{what}: waiting names left\n{ctx}");
        assert!(!q.join("lost+found").exists(), "{what}: something was set aside\n{ctx}");
        std::fs::remove_dir_all(&q).unwrap();
    }
    // A kill between a message's mess and its last file leaves it half
    // moved; the rerun must have met that state.
    assert!(half_moved > 0, "{what}: no kill left a message half moved");
    println!("{what}: {total} steps, killed after each; {half_moved} reruns found a message half moved");
}

#[test]
fn a_copy_beside_the_original_moves_each_file_once() {
    kill_after_every_step("cp -a beside the original", &|fx, name| {
        let q = copy_of(fx, name);
        let (files, messages) = counts(&q);
        // Each file once, and the mess once more (to its waiting name).
        (q, files + messages)
    });
}

#[test]
fn a_real_collision_takes_the_two_step_path_and_the_rest_go_straight() {
    kill_after_every_step("cp -a with one collision", &|fx, name| {
        let q = copy_of(fx, name);
        let ix = index(&q, false);
        let mut numbers = ix.msgs.keys().copied();
        let (a, b) = (numbers.next().unwrap(), numbers.next().unwrap());
        let files_a = ix.msgs[&a].parts.iter().flatten().count();
        collide(&q, a, b);
        let (files, messages) = counts(&q);
        // a: every file to its waiting name and on to the new number; the
        // others as above.
        (q, (files - files_a) + (messages - 1) + 2 * files_a)
    });
}
