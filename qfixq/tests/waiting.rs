//! Waiting names left by an interrupted renumbering, made by hand in the
//! states a crash leaves, beside files that are not the message's: every
//! waiting name is resolved by the next run, and a file that is not the
//! renumbered message's never joins it.
//!
//! Message X renumbered to K waits under `.qfixq-renum-X-K` names beside
//! where its files belong under X; the second half renames them to K, the
//! mess last.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use qcommon::queue::Part;
use qtests::prelude::qfixq::*;
use qtests::snapshot::snapshot;

const SPLIT: u64 = 7;

fn bucketed(dir: &str, n: u64) -> PathBuf {
    PathBuf::from(format!("{dir}/{}/{n}", n % SPLIT))
}

fn waiting(dir: &str, old: u64, new: u64) -> PathBuf {
    PathBuf::from(format!("{dir}/{}/.qfixq-renum-{old}-{new}", old % SPLIT))
}

/// A preprocessed message with info, a recipient list and no todo, and an
/// envelope for an orphan todo.
fn pick(q: &Path) -> (u64, Vec<Part>, Vec<u8>) {
    let idx = index(q, false);
    let pre = idx
        .msgs
        .iter()
        .find(|(_, m)| m.part(Part::Info).is_some() && m.part(Part::Todo).is_none() && m.part(Part::Bounce).is_none())
        .map(|(n, m)| {
            (*n, [Part::Info, Part::Local, Part::Remote].into_iter().filter(|p| m.part(*p).is_some()).collect())
        })
        .expect("a preprocessed message");
    // Another message's envelope, as an orphan todo holds it.
    let todo = b"u0\0p1\0Fflood@other.example\0Tsomeone@elsewhere.example\0".to_vec();
    (pre.0, pre.1, todo)
}

/// An unused number whose bucket differs from `k`'s.
fn free_number(q: &Path, k: u64) -> u64 {
    let idx = index(q, false);
    (k + 1_000_001..).find(|x| x % SPLIT != k % SPLIT && !idx.msgs.contains_key(x)).unwrap()
}

#[test]
fn an_orphan_under_the_new_number_is_not_joined_after_a_first_half_crash() {
    if !root_or_skip("orphan_under_the_new_number") {
        return;
    }
    let fx = build(40, SPLIT as u32, false, 31, &[]);
    let q = fx.queue();
    let (k, parts, orphan_todo) = pick(q);
    let want = actual_env(index(q, false).msgs.get(&k).unwrap()).unwrap();
    let x = free_number(q, k);
    // The orphan first (older), then the first half of X -> K.
    std::fs::write(q.join(format!("todo/{k}")), &orphan_todo).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    for part in &parts {
        std::fs::rename(q.join(bucketed(part.dir(), k)), q.join(waiting(part.dir(), x, k))).unwrap();
    }
    std::fs::rename(q.join(bucketed("mess", k)), q.join(waiting("mess", x, k))).unwrap();
    let before = snapshot(q);

    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    assert!(!q.join(format!("todo/{k}")).exists(), "the orphan todo joined message {k}\n{}", live.show());
    let got = actual_env(index(q, false).msgs.get(&k).expect("message K is back")).unwrap();
    assert_eq!(got, want, "message {k} keeps its own envelope\n{}", live.show());
    let kept: Vec<_> = regular_files(&q.join("lost+found"))
        .into_iter()
        .filter(|p| read_nofollow(p).unwrap_or_default() == orphan_todo)
        .collect();
    assert_eq!(kept.len(), 1, "the orphan todo is set aside, not lost\n{}", live.show());
    assert_none(&check_healthy(q, SPLIT as u32, false, &before), "health", Some(&live));
}

#[test]
fn files_moved_by_an_interrupted_second_half_are_finished() {
    if !root_or_skip("files_moved_by_a_second_half") {
        return;
    }
    let fx = build(40, SPLIT as u32, false, 32, &[]);
    let q = fx.queue();
    let (k, parts, _) = pick(q);
    let want = actual_env(index(q, false).msgs.get(&k).unwrap()).unwrap();
    let x = free_number(q, k);
    // First half of X -> K, then the second half moved info before a crash.
    for part in &parts {
        std::fs::rename(q.join(bucketed(part.dir(), k)), q.join(waiting(part.dir(), x, k))).unwrap();
    }
    std::fs::rename(q.join(bucketed("mess", k)), q.join(waiting("mess", x, k))).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::rename(q.join(waiting("info", x, k)), q.join(bucketed("info", k))).unwrap();
    let before = snapshot(q);

    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    let got = actual_env(index(q, false).msgs.get(&k).expect("message K is back")).unwrap();
    assert_eq!(got, want, "message {k} is whole again\n{}", live.show());
    assert!(!q.join("lost+found").exists() || regular_files(&q.join("lost+found")).is_empty(), "{}", live.show());
    assert_none(&check_healthy(q, SPLIT as u32, false, &before), "health", Some(&live));
}

/// A crash in the first half after a salvaged message's mess moved but
/// before its record did: every file waits, the record is still under the
/// old number. The rerun moves the record to the new number with the
/// message (it used to be left under the old one, naming no message, so
/// qkillns would have taken the salvaged message for a bounce).
#[test]
fn a_salvage_record_left_behind_by_a_first_half_crash_follows_its_message() {
    if !root_or_skip("a_salvage_record_left_behind") {
        return;
    }
    let fx = build(40, SPLIT as u32, false, 33, &[]);
    let q = fx.queue();
    let (k, parts, _) = pick(q);
    let x = free_number(q, k);
    // The message as qfixq salvaged it: info with the null sender, and its
    // record under the old number X.
    std::fs::write(q.join(bucketed("info", k)), b"F\0").unwrap();
    let birth =
        std::fs::metadata(q.join(bucketed("mess", k))).map(|m| std::os::unix::fs::MetadataExt::mtime(&m)).unwrap();
    std::fs::create_dir_all(q.join("lost+found/salvaged")).unwrap();
    std::fs::write(q.join(format!("lost+found/salvaged/{x}")), format!("{x} {k} {birth} info-missing\n")).unwrap();
    for part in &parts {
        std::fs::rename(q.join(bucketed(part.dir(), k)), q.join(waiting(part.dir(), x, k))).unwrap();
    }
    std::fs::rename(q.join(bucketed("mess", k)), q.join(waiting("mess", x, k))).unwrap();

    let live = qfixq(q, &["live"]);
    assert!(matches!(live.code(), Some(0 | 1)), "{}", live.show());
    qfixq(q, &[]).expect(0, "check after live");
    assert!(!q.join(format!("lost+found/salvaged/{x}")).exists(), "record left under the old number\n{}", live.show());
    let rec = std::fs::read_to_string(q.join(format!("lost+found/salvaged/{k}"))).unwrap_or_default();
    assert!(rec.starts_with(&format!("{k} {k} {birth} ")), "record {rec:?}\n{}", live.show());
    assert_eq!(std::fs::read(q.join(bucketed("info", k))).unwrap(), b"F\0");
}

/// A crash in the first half of a todo-stage message X -> K right after
/// its intd took its renumbering name, while another message M -> X waits
/// under its renumbering names: X's todo is still under X. Renaming the
/// intd set the status-change time of the inode it shares with that todo,
/// later than M's waiting mess: the todo used to be taken for a file the
/// second half of M -> X had moved, left under X, and joined to M once it
/// took X (M's content with X's recipients; X's mess and intd set aside by
/// the run after). The rerun must give both messages their new numbers,
/// each with its own envelope, in one run.
#[test]
fn a_todo_left_under_its_old_number_is_not_taken_for_a_moved_file() {
    todo_left_under_its_old_number(false);
}

/// The same crash in a straight move X -> K (K free): the intd had gone
/// to K itself, the todo is still under X.
#[test]
fn a_todo_left_by_a_straight_move_is_not_taken_for_a_moved_file() {
    todo_left_under_its_old_number(true);
}

fn todo_left_under_its_old_number(straight: bool) {
    if !root_or_skip("a_todo_left_under_its_old_number") {
        return;
    }
    let fx = build(40, SPLIT as u32, false, 34, &[]);
    let q = fx.queue();
    let idx = index(q, false);
    // X's new number K: a todo-stage message whose todo and intd are one
    // inode. M's new number X: a preprocessed message.
    let (k, shared) = idx
        .msgs
        .iter()
        .find_map(|(n, m)| match (m.part(Part::Todo), m.part(Part::Intd), m.part(Part::Bounce)) {
            (Some(t), Some(i), None) if t.ino == i.ino => Some((*n, t.ino)),
            _ => None,
        })
        .expect("a todo-stage message with todo and intd linked");
    let (x, m_parts, _) = pick(q);
    let want_k = actual_env(idx.msgs.get(&k).unwrap()).unwrap();
    let want_x = actual_env(idx.msgs.get(&x).unwrap()).unwrap();
    let m = free_number(q, x);
    let flat = |dir: &str, name: String| q.join(dir).join(name);
    let renum = |old: u64, new: u64| format!(".qfixq-renum-{old}-{new}");

    // X's todo under its old number first (its own last change, long ago).
    std::fs::rename(flat("todo", k.to_string()), flat("todo", x.to_string())).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The first half of M -> X, whole.
    std::fs::rename(q.join(bucketed("mess", x)), q.join(waiting("mess", m, x))).unwrap();
    for part in &m_parts {
        std::fs::rename(q.join(bucketed(part.dir(), x)), q.join(waiting(part.dir(), m, x))).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The first half of X -> K: its mess, then its intd; killed there.
    std::fs::rename(q.join(bucketed("mess", k)), q.join(waiting("mess", x, k))).unwrap();
    if !straight {
        std::fs::rename(flat("intd", k.to_string()), flat("intd", renum(x, k))).unwrap();
    } else {
        // The intd is already under K (where it was built): touch its
        // inode as the straight move's rename of it would have.
        std::fs::rename(flat("intd", k.to_string()), flat("intd", renum(x, k))).unwrap();
        std::fs::rename(flat("intd", renum(x, k)), flat("intd", k.to_string())).unwrap();
    }
    let md = |p: PathBuf| std::fs::symlink_metadata(p).unwrap();
    let ctime_ns = |m: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
    };
    let todo_md = md(flat("todo", x.to_string()));
    assert_eq!(todo_md.ino(), shared);
    assert!(
        ctime_ns(&todo_md) >= ctime_ns(&md(q.join(waiting("mess", m, x)))),
        "the state under test: the todo's status-change time is not older than M's waiting mess"
    );
    let before = snapshot(q);

    let live = qfixq(q, &["live"]);
    live.expect(1, "the rerun finishes every renumbering");
    qfixq(q, &[]).expect(0, "check after live");
    let after = index(q, false);
    let got_k = actual_env(after.msgs.get(&k).expect("message K is there")).unwrap();
    assert_eq!(got_k, want_k, "message {k} keeps its own envelope\n{}", live.show());
    let got_x = actual_env(after.msgs.get(&x).expect("message X is there")).unwrap();
    assert_eq!(got_x, want_x, "message {x} (M's content) keeps its own envelope\n{}", live.show());
    let t = after.msgs.get(&k).and_then(|m| m.part(Part::Todo)).expect("K's todo");
    assert_eq!(t.ino, shared, "K's todo is its own");
    assert!(after.msgs.get(&x).unwrap().part(Part::Todo).is_none(), "no todo joined message {x}\n{}", live.show());
    assert!(!q.join("lost+found").exists() || regular_files(&q.join("lost+found")).is_empty(), "{}", live.show());
    assert_none(&check_healthy(q, SPLIT as u32, false, &before), "health", Some(&live));
}

/// A crash in the second half of a salvaged message A -> P right after
/// its record was written under P, while message P itself waits to
/// become K (every file of both waits). The record under P is A's (it
/// names inode P): it used to be taken for P's own record left behind by
/// a first half, and moved to K, a message with a real sender.
#[test]
fn a_record_written_by_a_second_half_stays_with_its_message() {
    if !root_or_skip("a_record_written_by_a_second_half") {
        return;
    }
    let fx = build(40, SPLIT as u32, false, 35, &[]);
    let q = fx.queue();
    let idx = index(q, false);
    let pre: Vec<(u64, Vec<Part>)> = idx
        .msgs
        .iter()
        .filter(|(_, m)| m.part(Part::Info).is_some() && m.part(Part::Todo).is_none() && m.part(Part::Bounce).is_none())
        .map(|(n, m)| {
            (*n, [Part::Info, Part::Local, Part::Remote].into_iter().filter(|p| m.part(*p).is_some()).collect())
        })
        .take(2)
        .collect();
    let [(p, p_parts), (k, k_parts)] = [pre[0].clone(), pre[1].clone()];
    let a = free_number(q, p);
    // A's content (now P's): salvaged, its record already under P.
    std::fs::write(q.join(bucketed("info", p)), b"F\0").unwrap();
    let birth =
        std::fs::metadata(q.join(bucketed("mess", p))).map(|m| std::os::unix::fs::MetadataExt::mtime(&m)).unwrap();
    std::fs::create_dir_all(q.join("lost+found/salvaged")).unwrap();
    std::fs::write(q.join(format!("lost+found/salvaged/{p}")), format!("{p} {p} {birth} info-missing\n")).unwrap();
    for part in p_parts.iter().chain([&Part::Mess]) {
        std::fs::rename(q.join(bucketed(part.dir(), p)), q.join(waiting(part.dir(), a, p))).unwrap();
    }
    // P's content (now K's): every file waits under P's renumbering names.
    for part in k_parts.iter().chain([&Part::Mess]) {
        std::fs::rename(q.join(bucketed(part.dir(), k)), q.join(waiting(part.dir(), p, k))).unwrap();
    }

    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    let rec = std::fs::read_to_string(q.join(format!("lost+found/salvaged/{p}"))).unwrap_or_default();
    assert!(rec.starts_with(&format!("{p} {p} {birth} ")), "record {rec:?}\n{}", live.show());
    assert!(!q.join(format!("lost+found/salvaged/{k}")).exists(), "the record moved to {k}\n{}", live.show());
    assert_eq!(std::fs::read(q.join(bucketed("info", p))).unwrap(), b"F\0");
    assert_ne!(std::fs::read(q.join(bucketed("info", k))).unwrap(), b"F\0");
}
