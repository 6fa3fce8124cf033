//! Renumbering straight to the new number (docs/repair.md, "the mess
//! file's name is not its inode number"): a queue copied with `cp -a`
//! beside the original has every message under a name that is not its
//! mess inode, and no message holds any new number, so each message moves
//! once, listed first in the renumbering journal: its other files to the
//! new number, then the mess. A message whose new number is another message's old
//! name takes the two-step path. For every k, a live run killed right
//! after its k-th step and then run again must finish with every message
//! under its mess inode, whole (the same files by content, together), and
//! nothing left under a waiting name. While a kill leaves messages half
//! moved, `lock/sendmutex` is set aside (the fence): qmail-send's open of
//! it fails; the rerun puts it back.

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

/// `lock/sendmutex` set aside while messages are half moved.
const FENCE: &str = "lock/sendmutex.qfixq-renumbering";

/// After a run that finished: lock/sendmutex is back (an empty regular
/// file, qmails:qmail 0600, docs/queue-format.md) and the fence gone.
fn assert_sendmutex_back(q: &Path, ctx: &str) {
    use std::os::unix::fs::MetadataExt;
    assert!(!q.join(FENCE).exists(), "the fence is still up\n{ctx}");
    let md = std::fs::symlink_metadata(q.join("lock/sendmutex")).expect("lock/sendmutex is back");
    assert!(md.is_file() && md.len() == 0, "lock/sendmutex: an empty regular file\n{ctx}");
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (IDS.qmails, IDS.qmail_gid, 0o600), "{ctx}");
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
    let q0 = q.clone();
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
    assert_sendmutex_back(&q0, &run.show());
    std::fs::remove_dir_all(&q).unwrap();

    let mut half_moved = 0;
    let mut fenced = 0;
    for k in 1..=total {
        let what = format!("{what}: killed after step {k} of {total}");
        let (q, _) = prepare(&fx, &format!("copy-{k}"));
        let fates = expected_fates(&q, false);
        let contents = census(&q, false);
        let before = snapshot(&q);
        let first = qfixq_env(&q, &live, &[("QTOOLS_ABORT_AFTER_STEP", k.to_string().as_str())]);
        assert_eq!(first.signal(), Some(9), "{what}: expected death by SIGKILL\n{}", first.show());
        if q.join(FENCE).exists() {
            // The fence is up: qmail-send's own open of its lock fails, so
            // it cannot start on a queue with messages half moved.
            fenced += 1;
            let open = std::fs::OpenOptions::new().write(true).open(q.join("lock/sendmutex"));
            assert!(open.is_err(), "{what}: lock/sendmutex opens while the fence is up\n{}", first.show());
            let check = qfixq(&q, &args);
            assert!(
                check.out().contains("set aside by an interrupted renumbering"),
                "{what}: a check says the fence is up\n{}",
                check.show()
            );
        }
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
        assert_sendmutex_back(&q, &ctx);
        std::fs::remove_dir_all(&q).unwrap();
    }
    // A kill between a message's mess and its last file leaves it half
    // moved; the rerun must have met that state.
    assert!(half_moved > 0, "{what}: no kill left a message half moved");
    // Every kill between the fence's two renames left it up.
    assert!(fenced + 2 >= total - 1, "{what}: only {fenced} of {total} kills left the fence up");
    println!(
        "{what}: {total} steps, killed after each; {half_moved} reruns found a message half moved, {fenced} the fence up"
    );
}

#[test]
fn a_copy_beside_the_original_moves_each_file_once() {
    kill_after_every_step("cp -a beside the original", &|fx, name| {
        let q = copy_of(fx, name);
        let (files, _) = counts(&q);
        // Each file once, the mess last; the fence up and down.
        (q, files + 2)
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
        let (files, _) = counts(&q);
        // a: every file to its waiting name and on to the new number; the
        // others once each; the fence up and down.
        (q, (files - files_a) + 2 * files_a + 2)
    });
}

/// The journal of straight moves under way (docs/repair.md, "Renumbering").
const JOURNAL: &str = "lock/qfixq-renumbering.journal";

/// A half-done straight move made by hand: a preprocessed message K of a
/// fresh queue whose mess and lists went to a free number X (X's mess has
/// inode K), its info left under K, as a straight move X -> K killed after
/// its info leaves it. Returns the queue's fixture, K, X, K's envelope
/// and K's info.
fn info_left_under_k(seed: u64) -> (Fixture, u64, u64, Env, Vec<u8>) {
    let fx = build(40, SPLIT, false, seed, &[]);
    let q = fx.queue().to_path_buf();
    let ix = index(&q, false);
    let (k, m) = ix
        .msgs
        .iter()
        .find(|(_, m)| m.part(Part::Info).is_some() && m.part(Part::Todo).is_none() && m.part(Part::Bounce).is_none())
        .expect("a preprocessed message");
    let (k, want) = (*k, actual_env(m).unwrap());
    let x = (k + 1_000_001..).find(|x| x % u64::from(SPLIT) != k % u64::from(SPLIT)).unwrap();
    for part in [Part::Mess, Part::Local, Part::Remote] {
        if m.part(part).is_some() {
            std::fs::rename(bucket_path(&q, part, k), bucket_path(&q, part, x)).unwrap();
        }
    }
    let info = std::fs::read(bucket_path(&q, Part::Info, k)).unwrap();
    (fx, k, x, want, info)
}

fn write_journal(q: &Path, pairs: &[(u64, u64)]) {
    let mut data = b"qfixq renumbering journal\n".to_vec();
    for (old, new) in pairs {
        data.extend_from_slice(format!("{old} {new}\n").as_bytes());
    }
    std::fs::write(q.join(JOURNAL), data).unwrap();
}

/// Files in lost+found holding `data`.
fn set_aside_holding(q: &Path, data: &[u8]) -> usize {
    regular_files(&q.join("lost+found")).into_iter().filter(|p| read_nofollow(p).unwrap_or_default() == data).count()
}

/// The info of message K after the run, and its sender.
fn info_of(q: &Path, k: u64) -> Vec<u8> {
    std::fs::read(bucket_path(q, Part::Info, k)).unwrap_or_default()
}

#[test]
fn a_journal_move_half_done_is_finished_with_every_file() {
    if !root_or_skip("a_journal_move_half_done") {
        return;
    }
    let (fx, k, x, want, _) = info_left_under_k(51);
    let q = fx.queue();
    write_journal(q, &[(x, k)]);
    let before = snapshot(q);
    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    assert!(live.out().contains(&format!("message {x} is half moved to {k}")), "{}", live.show());
    qfixq(q, &[]).expect(0, "check after live");
    let got = actual_env(index(q, false).msgs.get(&k).expect("message K")).unwrap();
    assert_eq!(got, want, "message {k} is whole, its info joined\n{}", live.show());
    assert!(!q.join(JOURNAL).exists(), "journal removed\n{}", live.show());
    assert!(regular_files(&q.join("lost+found")).is_empty(), "nothing set aside\n{}", live.show());
    assert_none(&check_healthy(q, SPLIT, false, &before), "health", Some(&live));
}

/// Without a journal, the same state is a copy's mess X of inode K beside
/// an orphan info under K: the info is not joined (it could be another
/// message's sender); it is set aside and X's sender written as lost.
#[test]
fn orphans_under_the_new_number_are_not_joined_without_a_journal() {
    if !root_or_skip("orphans_without_a_journal") {
        return;
    }
    let (fx, k, _, _, info) = info_left_under_k(52);
    let q = fx.queue();
    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    assert_eq!(info_of(q, k), b"F\0", "the orphan info did not join message {k}\n{}", live.show());
    assert_eq!(set_aside_holding(q, &info), 1, "the orphan info is set aside\n{}", live.show());
}

/// A journal pair whose file under K is not what its move leaves there
/// (another kind of file, a file in the wrong bucket, a part also under
/// the old number): that file is judged on its own, never joined.
#[test]
fn a_journal_pair_joins_only_regular_files_in_their_place_and_not_under_both_numbers() {
    if !root_or_skip("a_journal_pair_joins_only") {
        return;
    }
    // A symbolic link where K's info belongs: removed, never followed.
    let (fx, k, x, _, info) = info_left_under_k(53);
    let q = fx.queue();
    let elsewhere = fx.tmp.path().join("info-elsewhere");
    std::fs::rename(bucket_path(q, Part::Info, k), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, bucket_path(q, Part::Info, k)).unwrap();
    write_journal(q, &[(x, k)]);
    let live = qfixq(q, &["live"]);
    live.expect(1, "live (link)");
    qfixq(q, &[]).expect(0, "check after live (link)");
    assert_eq!(info_of(q, k), b"F\0", "the link did not join message {k}\n{}", live.show());
    assert_eq!(std::fs::read(&elsewhere).unwrap(), info, "the link's target is untouched");

    // K's info in the wrong bucket: set aside, not joined.
    let (fx, k, x, _, info) = info_left_under_k(54);
    let q = fx.queue();
    let wrong = q.join("info").join(((k + 1) % u64::from(SPLIT)).to_string()).join(k.to_string());
    std::fs::rename(bucket_path(q, Part::Info, k), &wrong).unwrap();
    write_journal(q, &[(x, k)]);
    let live = qfixq(q, &["live"]);
    live.expect(1, "live (wrong bucket)");
    qfixq(q, &[]).expect(0, "check after live (wrong bucket)");
    assert_eq!(info_of(q, k), b"F\0", "the misplaced info did not join message {k}\n{}", live.show());
    assert_eq!(set_aside_holding(q, &info), 1, "the misplaced info is set aside\n{}", live.show());

    // An info under both numbers: the one under K is judged on its own
    // (set aside); the message keeps the one under its old number.
    let (fx, k, x, want, _) = info_left_under_k(55);
    let q = fx.queue();
    let foreign = b"Fsomeone-else@other.example\0".to_vec();
    std::fs::rename(bucket_path(q, Part::Info, k), bucket_path(q, Part::Info, x)).unwrap();
    std::fs::write(bucket_path(q, Part::Info, k), &foreign).unwrap();
    write_journal(q, &[(x, k)]);
    let live = qfixq(q, &["live"]);
    live.expect(1, "live (both)");
    qfixq(q, &[]).expect(0, "check after live (both)");
    let got = actual_env(index(q, false).msgs.get(&k).expect("message K")).unwrap();
    assert_eq!(got, want, "message {k} keeps the info from under its old number\n{}", live.show());
    assert_eq!(set_aside_holding(q, &foreign), 1, "the info under K is set aside\n{}", live.show());
    assert!(!q.join(JOURNAL).exists(), "journal removed\n{}", live.show());
}
