//! Tests of the practice-queue builder, the damage catalogue and the
//! snapshot helpers, on small queues (at most 200 messages).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use qcommon::envelope::{Info, Recipients, Todo};
use qcommon::queue::{bucket_of, Ids, LockFile, Part, OTHER_DIRS, QUEUE_DIR_SPEC};
use qtests::root::is_root;
use qtests::snapshot::{count_queue, messages_by_content, Kind};
use qtests::{apply_damage, build_queue, message_path, snapshot, BuildSpec, BuiltQueue, BuiltState, Damage, Where};

const NOW: i64 = 1_700_000_000;

fn spec(messages: usize, seed: u64, big_todo: bool) -> BuildSpec {
    BuildSpec { messages, seed, big_todo, now: NOW, ..BuildSpec::default() }
}

fn build(dir: &Path, s: &BuildSpec) -> BuiltQueue {
    build_queue(&dir.join("queue"), s).expect("build")
}

/// Regular files of a part, with their bucket directory name if split.
fn part_files(q: &BuiltQueue, part: Part) -> Vec<(u64, fs::Metadata, Option<u32>)> {
    let dir = q.queue.join(part.dir());
    let mut out = Vec::new();
    let mut visit = |d: &Path, bucket: Option<u32>| {
        for de in fs::read_dir(d).unwrap() {
            let de = de.unwrap();
            let md = fs::symlink_metadata(de.path()).unwrap();
            assert!(md.is_file(), "{} is not a regular file", de.path().display());
            let n: u64 = std::str::from_utf8(de.file_name().as_bytes()).unwrap().parse().unwrap();
            out.push((n, md, bucket));
        }
    };
    if part.is_split(q.big_todo) {
        for b in 0..q.spec_split {
            visit(&dir.join(b.to_string()), Some(b));
        }
    } else {
        visit(&dir, None);
    }
    out
}

#[test]
fn names_are_inodes_and_envelopes_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let q = build(tmp.path(), &spec(150, 7, false));
    assert_eq!(q.messages.len(), 150);
    let mess = part_files(&q, Part::Mess);
    assert_eq!(mess.len(), 150);
    for (n, md, b) in &mess {
        assert_eq!(*n, md.ino(), "mess name is its inode");
        assert_eq!(*b, Some(bucket_of(*n, q.spec_split)));
        assert_eq!(md.mode() & 0o7777, 0o644);
        assert_eq!(md.nlink(), 1);
        assert!(md.size() > 0);
    }
    let numbers: BTreeSet<u64> = mess.iter().map(|m| m.0).collect();
    for part in [Part::Info, Part::Local, Part::Remote, Part::Bounce, Part::Todo, Part::Intd] {
        for (n, md, b) in part_files(&q, part) {
            assert!(numbers.contains(&n), "{}/{n} has a mess", part.dir());
            if let Some(b) = b {
                assert_eq!(b, bucket_of(n, q.spec_split));
            }
            assert_eq!(md.mode() & 0o7777, part.file_perm(), "{}/{n} mode", part.dir());
        }
    }
    for m in &q.messages {
        let p = |part| message_path(&q.queue, part, m.number, q.spec_split, q.big_todo);
        let mess_md = fs::metadata(p(Part::Mess)).unwrap();
        assert_eq!(mess_md.len(), m.mess_len);
        assert_eq!(mess_md.mtime(), m.birth);
        let text = fs::read(p(Part::Mess)).unwrap();
        assert!(text.starts_with(b"Received: (qmail "));
        if m.sender.is_empty() {
            assert!(text.windows(22).any(|w| w == &b"Subject: failure notice"[..22]));
        }
        match m.state {
            BuiltState::TodoStage => {
                let todo = fs::metadata(p(Part::Todo)).unwrap();
                let intd = fs::metadata(p(Part::Intd)).unwrap();
                assert_eq!(todo.ino(), intd.ino(), "todo and intd share an inode");
                assert_eq!(todo.nlink(), 2);
                let t = Todo::parse(&fs::read(p(Part::Todo)).unwrap()).unwrap();
                assert_eq!(t.sender, m.sender);
                let want: Vec<Vec<u8>> = m.recipients.iter().map(|r| r.0.clone()).collect();
                assert_eq!(t.recipients, want);
                assert!(t.uid.is_some() && t.pid.is_some());
                assert!(!p(Part::Info).exists() && !p(Part::Bounce).exists());
            }
            BuiltState::Preprocessed => {
                assert!(!p(Part::Todo).exists() && !p(Part::Intd).exists());
                let info = Info::parse(&fs::read(p(Part::Info)).unwrap()).unwrap();
                assert_eq!(info.sender, m.sender);
                assert_eq!(fs::metadata(p(Part::Info)).unwrap().mtime(), m.birth);
                let mut on_disk = Vec::new();
                for (w, part) in [(Where::Local, Part::Local), (Where::Remote, Part::Remote)] {
                    if let Ok(data) = fs::read(p(part)) {
                        let r = Recipients::parse(&data).unwrap();
                        assert!(r.pending() > 0, "a list on disk has something to do");
                        on_disk.extend(r.list.into_iter().map(|x| (x.address, w, x.done)));
                    }
                }
                assert_eq!(on_disk, m.recipients);
                assert_eq!(p(Part::Bounce).exists(), m.bounce);
            }
        }
        assert!(m.birth <= NOW && m.birth > NOW - 11 * 86_400);
    }
    // Both states and some null senders in the mix; some births past the
    // queue lifetime.
    assert!(q.messages.iter().any(|m| m.state == BuiltState::TodoStage));
    assert!(q.messages.iter().any(|m| m.recipients.iter().any(|r| r.2)));
    // The structure and its modes.
    let md = |rel: &str| fs::symlink_metadata(q.queue.join(rel)).unwrap();
    assert_eq!(md("").mode() & 0o7777, QUEUE_DIR_SPEC.1);
    for (name, _, mode) in OTHER_DIRS {
        assert_eq!(md(name).mode() & 0o7777, mode);
    }
    for part in Part::ALL {
        assert_eq!(md(part.dir()).mode() & 0o7777, part.dir_spec().1);
    }
    assert!(md("lock/trigger").file_type().is_fifo_like());
    assert_eq!(md("lock/trigger").mode() & 0o7777, LockFile::Trigger.spec().1);
    assert_eq!(md("lock/tcpto").len(), LockFile::TCPTO_SIZE);
    assert_eq!(md("lock/tcpto").mode() & 0o7777, 0o644);
    assert_eq!(md("lock/sendmutex").len(), 0);
    assert_eq!(md("lock/sendmutex").mode() & 0o7777, 0o600);
    assert_eq!(fs::read_dir(q.queue.join("pid")).unwrap().count(), 0, "pid/ is empty");
}

/// `is_fifo` by another name, so the assertion above reads well.
trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[test]
fn counts_match_a_directory_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(200, 11, false);
    s.null_sender = 0.2;
    s.double_bounce = 0.05;
    let q = build(tmp.path(), &s);
    let walked = count_queue(&q.queue).unwrap();
    assert_eq!(walked, q.counts);
    assert_eq!(q.counts.messages, 200);
    assert_eq!(q.counts.todo, part_files(&q, Part::Todo).len() as u64);
    assert_eq!(q.counts.bounce_files, part_files(&q, Part::Bounce).len() as u64);
    let nulls = q.messages.iter().filter(|m| m.sender.is_empty()).count() as u64;
    assert_eq!(q.counts.null_sender, nulls);
    assert!(nulls > 10 && q.counts.double_bounce > 0);
    let local: u64 = q
        .messages
        .iter()
        .filter(|m| m.state == BuiltState::Preprocessed)
        .map(|m| m.recipients.iter().filter(|r| r.1 == Where::Local && !r.2).count() as u64)
        .sum();
    assert_eq!(q.counts.local_pending, local);
    // The flood sender dominates.
    let flood = q.messages.iter().filter(|m| m.sender == qtests::content::FLOOD_SENDER.as_bytes()).count();
    assert!(flood > 40, "flood sender has {flood} of 200");
}

#[test]
fn deterministic_by_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build(&tmp.path().join("a"), &spec(120, 5, false));
    let b = build(&tmp.path().join("b"), &spec(120, 5, false));
    let c = build(&tmp.path().join("c"), &spec(120, 6, false));
    let strip = |q: &BuiltQueue| {
        q.messages
            .iter()
            .map(|m| (m.state, m.sender.clone(), m.recipients.clone(), m.mess_len, m.birth, m.bounce))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_ne!(strip(&a), strip(&c));
    assert_eq!(a.counts, b.counts);
    let ca = messages_by_content(&a.queue).unwrap();
    assert_eq!(ca, messages_by_content(&b.queue).unwrap(), "same contents and envelopes");
    assert_eq!(ca.values().map(Vec::len).sum::<usize>(), 120);
    assert_ne!(ca, messages_by_content(&c.queue).unwrap());
}

#[test]
fn big_todo_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(100, 3, true);
    s.split = 7;
    s.mix.todo_stage = 0.5;
    let q = build(tmp.path(), &s);
    for d in ["todo", "intd", "mess", "info", "local", "remote"] {
        let names: BTreeSet<String> =
            fs::read_dir(q.queue.join(d)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        let want: BTreeSet<String> = (0..7).map(|b| b.to_string()).collect();
        assert_eq!(names, want, "{d} holds exactly its buckets");
    }
    let todo = part_files(&q, Part::Todo);
    assert!(todo.len() > 20);
    for (n, md, b) in todo {
        assert_eq!(b, Some(bucket_of(n, 7)));
        let intd = fs::metadata(message_path(&q.queue, Part::Intd, n, 7, true)).unwrap();
        assert_eq!(intd.ino(), md.ino());
    }
    assert_eq!(count_queue(&q.queue).unwrap(), q.counts);
}

#[test]
fn every_damage_applies_and_changes_something() {
    for big_todo in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        for (i, d) in Damage::ALL.iter().enumerate() {
            let dir = tmp.path().join(d.name());
            let q = build(&dir, &spec(40, 100 + i as u64, big_todo));
            let outside = dir.join("outside");
            let before = snapshot(&q.queue);
            assert!(before.errors.is_empty(), "{:?}", before.errors);
            let r = apply_damage(&q, *d, 9, &outside).unwrap_or_else(|e| panic!("{}: {e:#}", d.name()));
            assert_eq!(r.damage, *d);
            let after = snapshot(&q.queue);
            let diff = before.diff(&after);
            assert!(!diff.is_empty(), "{} changed nothing", d.name());
            assert!(before != after);
            if !d.is_global() && !matches!(d, Damage::CopiedToOtherFs | Damage::CopiedToOtherFsBrokenLinks) {
                assert!(r.touched.len() <= 12, "{} touched {} messages", d.name(), r.touched.len());
            }
            for o in &r.outside {
                assert!(fs::symlink_metadata(o).is_ok(), "{} canary {} exists", d.name(), o.display());
                assert!(o.starts_with(&outside));
            }
            if matches!(d, Damage::SymlinkTrap | Damage::ExtraHardLink) {
                assert!(!r.outside.is_empty());
            } else {
                assert!(r.outside.is_empty(), "{} wrote outside", d.name());
                assert!(!outside.exists());
            }
            // Damages stack: a second one still applies.
            apply_damage(&q, Damage::StrayNames, 1, &outside).unwrap_or_else(|e| panic!("{} + stray: {e:#}", d.name()));
        }
    }
}

#[test]
fn copied_to_other_fs_renumbers_nothing_but_inodes() {
    for (damage, linked) in [(Damage::CopiedToOtherFs, true), (Damage::CopiedToOtherFsBrokenLinks, false)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spec(100, 21, false);
        s.mix.todo_stage = 0.4;
        let q = build(tmp.path(), &s);
        let before = messages_by_content(&q.queue).unwrap();
        let snap = snapshot(&q.queue);
        let r = apply_damage(&q, damage, 1, &tmp.path().join("outside")).unwrap();
        assert_eq!(r.touched.len(), 100);
        // Contents, envelopes, modes, owners and times are all the same...
        assert_eq!(messages_by_content(&q.queue).unwrap(), before);
        let after = snapshot(&q.queue);
        assert_eq!(after.len(), snap.len());
        for (p, e) in &snap.entries {
            let a = after.get(p).unwrap_or_else(|| panic!("{} vanished", p.display()));
            if e.kind == Kind::File {
                let mut a = a.clone();
                if !linked && (p.starts_with("todo") || p.starts_with("intd")) {
                    assert_eq!(a.nlink, 1);
                    a.nlink = e.nlink;
                }
                assert_eq!(&a, e, "{}", p.display());
            }
        }
        // ...but the names no longer match the inodes.
        let mess = part_files(&q, Part::Mess);
        let matching = mess.iter().filter(|(n, md, _)| *n == md.ino()).count();
        assert!(matching <= 5, "{matching} of {} mess names still match", mess.len());
        assert!(!snap.inode_changes(&after).is_empty());
        for (n, md, _) in part_files(&q, Part::Todo) {
            let intd = fs::metadata(message_path(&q.queue, Part::Intd, n, q.spec_split, false)).unwrap();
            assert_eq!(intd.ino() == md.ino(), linked, "{damage:?}: todo/intd link kept = {linked}");
            assert_eq!(md.nlink(), if linked { 2 } else { 1 });
        }
        // No temporary names were left behind.
        assert!(after.entries.keys().all(|p| !p.to_string_lossy().contains(".qbuild-copy")));
    }
}

#[test]
fn trap_canaries_and_fresh_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let q = build(tmp.path(), &spec(60, 4, false));
    let outside = tmp.path().join("outside");
    let r = apply_damage(&q, Damage::SymlinkTrap, 2, &outside).unwrap();
    let lt = fs::symlink_metadata(q.queue.join("lock/tcpto")).unwrap();
    assert!(lt.file_type().is_symlink());
    assert!(r.outside.iter().any(|p| p.ends_with("canary.txt")));
    let r = apply_damage(&q, Damage::ExtraHardLink, 2, &outside).unwrap();
    assert_eq!(r.touched.len(), 2);
    for n in &r.touched {
        let info = message_path(&q.queue, Part::Info, *n, q.spec_split, false);
        let mess = message_path(&q.queue, Part::Mess, *n, q.spec_split, false);
        let links = fs::metadata(&info).unwrap().nlink().max(fs::metadata(&mess).unwrap().nlink());
        assert_eq!(links, 2);
    }
    // Fresh messages are made the qmail way too.
    for d in [Damage::S2Leftover, Damage::S3Leftover] {
        let r = apply_damage(&q, d, 3, &outside).unwrap();
        assert_eq!(r.touched.len(), 2);
        for n in &r.touched {
            let mess = message_path(&q.queue, Part::Mess, *n, q.spec_split, false);
            assert_eq!(fs::metadata(&mess).unwrap().ino(), *n);
            let intd = message_path(&q.queue, Part::Intd, *n, q.spec_split, false);
            assert_eq!(intd.exists(), d == Damage::S3Leftover);
        }
    }
    let r = apply_damage(&q, Damage::BrokenTodoWithIntd, 5, &outside).unwrap();
    for n in &r.touched {
        let todo = message_path(&q.queue, Part::Todo, *n, q.spec_split, false);
        let intd = message_path(&q.queue, Part::Intd, *n, q.spec_split, false);
        assert!(Todo::parse(&fs::read(&todo).unwrap()).is_err());
        assert!(Todo::parse(&fs::read(&intd).unwrap()).is_ok());
        assert_ne!(fs::metadata(&todo).unwrap().ino(), fs::metadata(&intd).unwrap().ino());
    }
}

#[test]
fn owners_when_root() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let ids = Ids { qmailq: 7792, qmails: 7796, qmailr: 7797, qmail_gid: 7790 };
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(80, 8, true);
    s.ids = Some(ids);
    let q = build(tmp.path(), &s);
    assert_eq!(q.ids, Some(ids));
    let egid = nix::unistd::getegid().as_raw();
    let md = |rel: &str| fs::symlink_metadata(q.queue.join(rel)).unwrap();
    assert_eq!((md("").uid(), md("").gid()), (ids.qmailq, ids.qmail_gid));
    for (name, o, _) in OTHER_DIRS {
        assert_eq!((md(name).uid(), md(name).gid()), (ids.uid(o), ids.qmail_gid));
    }
    for part in Part::ALL {
        let (o, mode) = part.dir_spec();
        assert_eq!((md(part.dir()).uid(), md(part.dir()).gid()), (ids.uid(o), ids.qmail_gid));
        if part.is_split(true) {
            let b = md(&format!("{}/3", part.dir()));
            assert_eq!((b.uid(), b.gid(), b.permissions().mode() & 0o7777), (ids.uid(o), ids.qmail_gid, mode));
        }
        for (n, f, _) in part_files(&q, part) {
            let gid = if part.group_is_qmail() { ids.qmail_gid } else { egid };
            assert_eq!((f.uid(), f.gid()), (ids.uid(part.file_owner()), gid), "{}/{n}", part.dir());
        }
    }
    for lf in LockFile::ALL {
        let m = md(&format!("lock/{}", lf.name()));
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (ids.uid(lf.spec().0), ids.qmail_gid, lf.spec().1));
    }
    // Bad owners: some file or directory now belongs to a stranger.
    let before = snapshot(&q.queue);
    apply_damage(&q, Damage::BadOwnersModes, 1, &tmp.path().join("o")).unwrap();
    let after = snapshot(&q.queue);
    assert!(before.diff(&after).iter().any(|l| l.contains("owner")));
}
