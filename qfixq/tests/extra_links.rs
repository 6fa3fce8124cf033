//! Extra hard links of a mess file (docs/repair-policy.md): a mess with
//! more names than its own may be linked from outside the queue, so its
//! message is set aside whole (a rename) and the file never chowned or
//! chmodded. A name this run removes itself (a `pid/` leftover) does not
//! count as extra, and live judges the links exactly as a check does.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use qcommon::queue::Part;
use qtests::prelude::qfixq::*;

const SPLIT: u64 = 7;

/// A preprocessed message (info, a recipient list, no todo, no bounce)
/// and its mess path relative to the queue.
fn preprocessed(q: &Path) -> (u64, PathBuf) {
    let idx = index(q, false);
    let n = idx
        .msgs
        .iter()
        .find(|(_, m)| m.part(Part::Info).is_some() && m.part(Part::Todo).is_none() && m.part(Part::Bounce).is_none())
        .map(|(n, _)| *n)
        .expect("a preprocessed message");
    (n, PathBuf::from(format!("mess/{}/{n}", n % SPLIT)))
}

/// A mess linked from outside the queue and from a `pid/` leftover: three
/// names, one of which (the leftover) live removes before it states the
/// messages. Live once counted the leftover's name as allowed although it
/// was already gone from the stat, so the mess passed with its outside
/// link and stayed in place; a check after it found it again.
#[test]
fn a_mess_linked_from_outside_and_from_pid_is_set_aside() {
    if !root_or_skip("a_mess_linked_from_outside_and_from_pid_is_set_aside") {
        return;
    }
    let fx = build(20, SPLIT as u32, false, 41, &[]);
    let q = fx.queue();
    let (n, mess) = preprocessed(q);
    let outside = fx.outside.join(format!("mess-{n}"));
    std::fs::hard_link(q.join(&mess), &outside).unwrap();
    std::fs::hard_link(q.join(&mess), q.join("pid/94486.1796476106.1")).unwrap();
    let before = std::fs::symlink_metadata(&outside).unwrap();
    let content = std::fs::read(&outside).unwrap();
    let aside = format!("{}: ", mess.display());

    let check = qfixq(q, &[]);
    check.expect(4, "check");
    assert!(
        check.out().lines().any(|l| l.starts_with(&aside) && l.contains("whole message set aside")),
        "{}",
        check.show()
    );

    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    assert!(
        live.out()
            .lines()
            .any(|l| l.starts_with(&aside) && l.contains("hard links") && l.contains("whole message set aside")),
        "live must set the message aside as the check said\n{}",
        live.show()
    );
    qfixq(q, &[]).expect(0, "check after live");

    // Set aside by a rename: gone from the queue, in lost+found, the
    // outside name untouched (owner, mode, content), its pid/ name gone.
    assert!(std::fs::symlink_metadata(q.join(&mess)).is_err(), "the mess stayed in place");
    assert!(std::fs::symlink_metadata(q.join("pid/94486.1796476106.1")).is_err());
    let set_aside: Vec<PathBuf> = regular_files(&q.join("lost+found"))
        .into_iter()
        .filter(|f| std::fs::symlink_metadata(f).is_ok_and(|m| m.ino() == before.ino()))
        .collect();
    assert_eq!(set_aside.len(), 1, "the mess, once in lost+found: {set_aside:?}");
    let after = std::fs::symlink_metadata(&outside).unwrap();
    assert_eq!((after.ino(), after.nlink()), (before.ino(), 2), "lost+found and outside");
    assert_eq!((after.uid(), after.gid(), after.mode()), (before.uid(), before.gid(), before.mode()));
    assert_eq!(std::fs::read(&outside).unwrap(), content);
}

/// A mess whose only other name is a `pid/` leftover keeps its message:
/// the leftover goes, the message stays as it is.
#[test]
fn a_mess_linked_only_from_pid_stays() {
    if !root_or_skip("a_mess_linked_only_from_pid_stays") {
        return;
    }
    let fx = build(20, SPLIT as u32, false, 42, &[]);
    let q = fx.queue();
    let (n, mess) = preprocessed(q);
    let want = actual_env(index(q, false).msgs.get(&n).unwrap()).unwrap();
    std::fs::hard_link(q.join(&mess), q.join("pid/4711.1796476106.1")).unwrap();

    let check = qfixq(q, &[]);
    check.expect(4, "check");
    assert!(!check.out().contains("hard links"), "{}", check.show());
    let live = qfixq(q, &["live"]);
    live.expect(1, "live");
    assert!(!live.out().contains("hard links"), "{}", live.show());
    qfixq(q, &[]).expect(0, "check after live");
    assert_eq!(std::fs::symlink_metadata(q.join(&mess)).unwrap().nlink(), 1);
    assert_eq!(actual_env(index(q, false).msgs.get(&n).unwrap()).unwrap(), want);
}
