//! A full disk: the queue on a tiny tmpfs (2 MB, 400 inodes) mounted by
//! the test, filled to ENOSPC in blocks and in inodes. A repair loses no
//! message, says what it could not do and exits 4; renumbering needs no
//! new space (renames only) and succeeds on the full disk; qkillns frees
//! space and succeeds; once space is freed, a rerun completes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use qtests::prelude::cross::*;
use qtests::{apply_damage, BuiltQueue, BuiltState, Damage};

const SPLIT: u32 = 5;

/// A tmpfs of 2 MB and 400 inodes in a scratch directory; unmounted
/// before the directory is removed (fields drop in declaration order).
struct Tiny {
    mount: Mount,
    fillers: Vec<PathBuf>,
    _tmp: tempfile::TempDir,
}

fn tiny(test: &str) -> Option<Tiny> {
    if !root_or_skip(test) {
        return None;
    }
    let tmp = scratch(false);
    match Mount::tmpfs(&tmp.path().join("mnt"), "size=2m,nr_inodes=400,mode=0755") {
        Ok(mount) => Some(Tiny { mount, fillers: Vec::new(), _tmp: tmp }),
        Err(e) => {
            skipped(test, &format!("cannot mount a tmpfs: {e}"));
            None
        }
    }
}

impl Tiny {
    fn dir(&self) -> &Path {
        &self.mount.dir
    }

    /// Fills the filesystem: one big file until ENOSPC, then empty files
    /// until no inode is left.
    fn fill(&mut self) {
        let big = self.dir().join("filler");
        let mut f = fs::File::create(&big).expect("create filler");
        let chunk = vec![0x5a_u8; 16 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
        self.fillers.push(big);
        let dir = self.dir().join("fillers");
        if fs::create_dir(&dir).is_ok() {
            self.fillers.push(dir.clone());
            for i in 0.. {
                match fs::File::create(dir.join(i.to_string())) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling inodes: {e}"),
                }
            }
        }
        let st = nix::sys::statvfs::statvfs(self.dir()).expect("statvfs");
        assert!(st.files_free() == 0 || st.blocks_available() == 0, "the filesystem is not full");
        assert!(fs::File::create(self.dir().join("one-more")).is_err(), "still room for a file");
    }

    fn free(&mut self) {
        for p in self.fillers.drain(..) {
            if p.is_dir() {
                fs::remove_dir_all(&p).expect("remove fillers");
            } else {
                fs::remove_file(&p).expect("remove filler");
            }
        }
    }
}

fn build_in(t: &Tiny, messages: usize, seed: u64, null_sender: f64) -> BuiltQueue {
    build(&t.dir().join("queue"), messages, SPLIT, seed, null_sender)
}

/// Content hashes of every regular file in the queue (lost+found too),
/// with their counts.
fn contents(queue: &Path) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for (p, n) in snapshot_light(queue).entries {
        if n.kind == Kind::File && !p.starts_with("lock") {
            *m.entry(n.hash.unwrap_or(0)).or_insert(0) += 1;
        }
    }
    m
}

/// Contents of mess files only (in the queue or in lost+found).
fn mess_contents(queue: &Path) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for (p, n) in snapshot_light(queue).entries {
        let is_mess = p.starts_with("mess") || (p.starts_with("lost+found") && p.ends_with("mess"));
        if n.kind == Kind::File && is_mess {
            *m.entry(n.hash.unwrap_or(0)).or_insert(0) += 1;
        }
    }
    m
}

/// Mess files whose name is not their inode number.
fn misnamed(queue: &Path) -> Vec<String> {
    numeric_files(&queue.join("mess"))
        .into_iter()
        .filter(|(n, p)| fs::symlink_metadata(p).map(|m| m.ino()).ok() != Some(*n))
        .map(|(n, p)| format!("{n} at {}", p.display()))
        .collect()
}

#[test]
fn repair_on_a_full_disk_loses_nothing_and_finishes_once_freed() {
    let Some(mut t) = tiny("repair_on_a_full_disk_loses_nothing_and_finishes_once_freed") else { return };
    let built = build_in(&t, 24, 41, 0.1);
    let q = built.queue.clone();
    let outside = t.dir().join("outside");
    let mut victims = Vec::new();
    for d in [Damage::GarbledInfo, Damage::TruncatedRemote, Damage::CopiedToOtherFs] {
        let r = apply_damage(&built, d, 41, &outside).unwrap_or_else(|e| panic!("{}: {e:#}", d.name()));
        if d != Damage::CopiedToOtherFs {
            victims.extend(r.touched);
        }
    }
    let before = contents(&q);
    let mess_before = mess_contents(&q);
    t.fill();

    let run = cmd("qfixq").queue(&q, SPLIT).arg("live").run();
    run.assert_sane().expect(4);
    let out = run.out();
    assert!(out.contains("WARNING: 95% or more"), "the header warns of the full disk\n{}", run.show());
    assert!(out.contains("FAILED") && out.contains("ENOSPC"), "failures are reported with ENOSPC\n{}", run.show());
    // Nothing written, so nothing may have gone: every file's content is
    // still there.
    let after = contents(&q);
    let lost: Vec<String> = before
        .iter()
        .filter(|(h, n)| after.get(*h).copied().unwrap_or(0) < **n)
        .map(|(h, n)| format!("{h:016x} x{n}"))
        .collect();
    assert_no_diff(&lost, "file contents lost on a full disk", Some(&run));
    // Renumbering needs renames only: every message but the damaged ones
    // (whose rewrite failed first) has its inode as its name now.
    let left: Vec<String> = misnamed(&q)
        .into_iter()
        .filter(|s| {
            let n: u64 = s.split(' ').next().unwrap().parse().unwrap();
            !victims.contains(&n)
        })
        .collect();
    assert_no_diff(&left, "messages not renumbered on the full disk", Some(&run));

    t.free();
    let run = cmd("qfixq").queue(&q, SPLIT).arg("live").run();
    run.assert_sane().expect_any(&[0, 1]);
    cmd("qfixq").queue(&q, SPLIT).run().assert_sane().expect(0);
    assert_eq!(mess_contents(&q), mess_before, "a message was lost");
    assert!(misnamed(&q).is_empty());
}

#[test]
fn renumbering_needs_no_new_space() {
    let Some(mut t) = tiny("renumbering_needs_no_new_space") else { return };
    let built = build_in(&t, 30, 42, 0.1);
    let q = built.queue.clone();
    let outside = t.dir().join("outside");
    apply_damage(&built, Damage::CopiedToOtherFs, 42, &outside).expect("copy");
    assert!(misnamed(&q).len() >= 30, "every message needs a new number");
    let by_content = qtests::messages_by_content(&q).expect("read queue");
    t.fill();
    let run = cmd("qfixq").queue(&q, SPLIT).arg("live").run();
    run.assert_sane().expect(1);
    assert!(misnamed(&q).is_empty(), "{:?}\n{}", misnamed(&q), run.show());
    cmd("qfixq").queue(&q, SPLIT).run().assert_sane().expect(0);
    assert_eq!(qtests::messages_by_content(&q).expect("read queue"), by_content, "envelopes changed");
}

#[test]
fn qkillns_frees_space_on_a_full_disk() {
    let Some(mut t) = tiny("qkillns_frees_space_on_a_full_disk") else { return };
    let built = build_in(&t, 30, 43, 0.4);
    let q = built.queue.clone();
    t.fill();
    let avail = nix::sys::statvfs::statvfs(t.dir()).unwrap().files_free();
    let run = cmd("qkillns").queue(&q, SPLIT).run();
    run.assert_sane().expect(0);
    // Every null-sender message is gone, every other one is whole.
    for m in &built.messages {
        let mess = qtests::message_path(&q, qcommon::queue::Part::Mess, m.number, SPLIT, false);
        let info = qtests::message_path(&q, qcommon::queue::Part::Info, m.number, SPLIT, false);
        let todo = qtests::message_path(&q, qcommon::queue::Part::Todo, m.number, SPLIT, false);
        if m.sender.is_empty() {
            assert!(!mess.exists() && !info.exists() && !todo.exists(), "{} left\n{}", m.number, run.show());
        } else {
            assert!(mess.exists(), "{} removed\n{}", m.number, run.show());
            let env = if m.state == BuiltState::Preprocessed { info } else { todo };
            assert!(env.exists(), "{} lost its envelope\n{}", m.number, run.show());
        }
    }
    assert!(nix::sys::statvfs::statvfs(t.dir()).unwrap().files_free() > avail, "no inode was freed");
    t.free();
    cmd("qfixq").queue(&q, SPLIT).run().assert_sane().expect(0);
}

/// The message number a finding line is about (the last component of its
/// path), for lines of the text report.
fn finding_number(line: &str) -> Option<u64> {
    let path = line.split(": ").next()?;
    path.rsplit('/').next()?.parse().ok()
}

#[test]
fn a_failed_action_leaves_every_finding_of_its_message() {
    let Some(mut t) = tiny("a_failed_action_leaves_every_finding_of_its_message") else { return };
    let built = build_in(&t, 24, 44, 0.1);
    let q = built.queue.clone();
    let outside = t.dir().join("outside");
    for d in [Damage::GarbledInfo, Damage::CopiedToOtherFs] {
        apply_damage(&built, d, 44, &outside).unwrap_or_else(|e| panic!("{}: {e:#}", d.name()));
    }
    t.fill();
    let run = cmd("qfixq").queue(&q, SPLIT).arg("live").run();
    run.assert_sane().expect(4);
    let out = run.out();
    // Messages with a failed step, and every problem line about them.
    let mut failed = Vec::new();
    let mut last = None;
    for l in out.lines() {
        if l.starts_with("  FAILED") {
            failed.extend(last);
        } else if !l.starts_with(' ') {
            last = finding_number(l);
        }
    }
    assert!(!failed.is_empty(), "nothing failed\n{}", run.show());
    let unfinished = out
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.contains("waits under its renumbering names"))
        .filter(|l| finding_number(l).is_some_and(|n| failed.contains(&n)))
        .count();
    let left: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("summary: ")?.split(", ").last()?.strip_suffix(" left")?.parse().ok())
        .expect("summary line");
    assert!(
        left >= unfinished,
        "{unfinished} findings of messages {failed:?} were not carried out, the summary says {left} left\n{}",
        run.show()
    );
}
