//! Waiting names left by an interrupted renumbering, made by hand in the
//! states a crash leaves, beside files that are not the message's: every
//! waiting name is resolved by the next run, and a file that is not the
//! renumbered message's never joins it.
//!
//! Message X renumbered to K waits under `.qfixq-renum-X-K` names beside
//! where its files belong under X; the second half renames them to K, the
//! mess last.

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
