//! I/O errors: a real EIO from the kernel. The test makes a small ext2
//! image, loop-mounts it, builds a queue in it, points one info file's
//! data block at the last block of the filesystem (debugfs, while it is
//! unmounted), mounts it again and shrinks the loop device under the
//! mounted filesystem (`losetup -c`), so that reading that block fails in
//! the block layer: `read` returns EIO, while every other file reads
//! fine. (Corrupting an inode instead gives EUCLEAN at `stat`, not EIO;
//! device-mapper's `error` target would be simpler but is not available
//! everywhere.) Root only; skipped with a reason when mkfs.ext2, debugfs
//! or losetup are missing or loop devices cannot be made.
//!
//! Expected: the error is reported with the path and the errno, that
//! message is left as it is, every other message is handled.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use qcommon::queue::Part;
use qtests::prelude::cross::*;
use qtests::{apply_damage, message_path, BuiltState, Damage};

const SPLIT: u32 = 5;
/// Image size: one block group of 1 KiB blocks.
const BLOCKS: u64 = 8192;
/// The device loses its last 64 blocks.
const CUT: u64 = 64;

/// Fields drop in declaration order: the mount goes before the directory.
struct Faulty {
    _mount: Mount,
    queue: PathBuf,
    /// The message whose info returns EIO.
    victim: u64,
    /// Its info file.
    info: PathBuf,
    /// Messages damaged on purpose (garbled info, truncated remote).
    damaged: Vec<u64>,
    _tmp: tempfile::TempDir,
}

fn faulty(test: &str) -> Option<Faulty> {
    if !root_or_skip(test) {
        return None;
    }
    let tools = match E2Tools::find() {
        Ok(t) => t,
        Err(e) => {
            skipped(test, &e);
            return None;
        }
    };
    let tmp = scratch(false);
    let img = tmp.path().join("fs.img");
    let dir = tmp.path().join("mnt");
    let mut mount = match loop_ext2(&tools, &img, &dir, BLOCKS, 1024) {
        Ok(m) => m,
        Err(e) => {
            skipped(test, &format!("cannot loop-mount an ext2 image: {e}"));
            return None;
        }
    };
    let dev = mount.loopdev.clone().expect("a loop device");
    let os = |s: &str| std::ffi::OsString::from(s);

    let queue = dir.join("queue");
    let built = build(&queue, 24, SPLIT, 51, 0.3);
    let outside = tmp.path().join("outside");
    let mut damaged = Vec::new();
    for d in [Damage::GarbledInfo, Damage::TruncatedRemote] {
        damaged.extend(apply_damage(&built, d, 51, &outside).expect("damage").touched);
    }
    let victim = built
        .messages
        .iter()
        .find(|m| m.state == BuiltState::Preprocessed && !m.sender.is_empty() && !damaged.contains(&m.number))
        .expect("a victim")
        .number;
    let info = message_path(&queue, Part::Info, victim, SPLIT, false);
    let ino = fs::metadata(&info).unwrap().ino();

    // Unmounted: its first data block becomes the filesystem's last one.
    nix::mount::umount(&dir).expect("umount");
    let req = format!("set_inode_field <{ino}> block[0] {}", BLOCKS - 1);
    if let Err(e) = sh(&tools.debugfs, &[&os("-w"), &os("-R"), &os(&req), img.as_os_str()]) {
        skipped(test, &format!("debugfs cannot edit the image: {e}"));
        return None;
    }
    mount_ext2(&dev, &dir).expect("mount again");
    // Mounted: the device shrinks under the filesystem.
    fs::File::options().write(true).open(&img).unwrap().set_len((BLOCKS - CUT) * 1024).unwrap();
    if let Err(e) = sh(&tools.losetup, &[&os("-c"), dev.as_os_str()]) {
        skipped(test, &format!("cannot resize the loop device: {e}"));
        return None;
    }
    match read_nofollow(&info) {
        Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
        other => {
            skipped(test, &format!("could not make a file return EIO (reading it gave {other:?})"));
            mount.unmount();
            return None;
        }
    }
    Some(Faulty { _mount: mount, queue, victim, info, damaged, _tmp: tmp })
}

impl Faulty {
    fn mess(&self) -> PathBuf {
        message_path(&self.queue, Part::Mess, self.victim, SPLIT, false)
    }

    /// What the victim's files are: names, inodes, owners, modes, times.
    fn victim_state(&self) -> Vec<(PathBuf, u64, u32, u32, i64)> {
        Part::ALL
            .iter()
            .filter_map(|p| {
                let path = message_path(&self.queue, *p, self.victim, SPLIT, false);
                let m = fs::symlink_metadata(&path).ok()?;
                Some((path, m.ino(), m.uid(), m.mode(), m.mtime()))
            })
            .collect()
    }
}

#[test]
fn an_unreadable_file_is_reported_and_its_message_left_alone() {
    let Some(f) = faulty("an_unreadable_file_is_reported_and_its_message_left_alone") else { return };
    let rel_info = f.info.strip_prefix(&f.queue).unwrap().display().to_string();
    let rel_mess = f.mess().strip_prefix(&f.queue).unwrap().display().to_string();
    let state = f.victim_state();
    assert!(state.len() >= 2);

    // The check names the file and the errno, and leaves the message.
    let run = cmd("qfixq").queue(&f.queue, SPLIT).run();
    run.assert_sane().expect(4);
    let out = run.out();
    let line = out.lines().find(|l| l.contains(&rel_info)).unwrap_or_else(|| panic!("no line\n{}", run.show()));
    assert!(line.contains("EIO") && line.contains("left as it is"), "{line}");

    // Live: every other message is repaired; this one is left exactly.
    let run = cmd("qfixq").queue(&f.queue, SPLIT).arg("live").run();
    run.assert_sane().expect(4);
    assert_eq!(f.victim_state(), state, "the unreadable message changed\n{}", run.show());
    let out = run.out();
    for n in &f.damaged {
        assert!(out.lines().any(|l| l.contains(&format!("/{n}: "))), "damaged message {n} not handled\n{}", run.show());
    }
    // A second check finds that message and nothing else.
    let run = cmd("qfixq").queue(&f.queue, SPLIT).run();
    run.assert_sane().expect(4);
    let out = run.out();
    let others: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains("/") && !l.starts_with("queue:"))
        .filter(|l| !l.contains(&rel_info) && !l.contains(&rel_mess))
        .collect();
    assert!(others.is_empty(), "problems left besides the unreadable message: {others:?}\n{}", run.show());

    // qstat: the count needs no read; the breakdown reports the error.
    let run = cmd("qstat").queue(&f.queue, SPLIT).run();
    run.assert_sane().expect(0);
    let run = cmd("qstat").queue(&f.queue, SPLIT).arg("--detail").run();
    run.assert_sane().expect(4);
    assert!(run.err().contains(&rel_info) && run.err().contains("EIO"), "{}", run.show());

    // qkillns: the message is reported and left alone, the run goes on,
    // and the status says something was left.
    let run = cmd("qkillns").queue(&f.queue, SPLIT).arg("-n").run();
    run.assert_sane().expect(4);
    assert!(run.err().contains(&rel_info) && run.err().contains("EIO"), "{}", run.show());
    let run = cmd("qkillns").queue(&f.queue, SPLIT).run();
    run.assert_sane().expect(4);
    assert_eq!(f.victim_state(), state, "the unreadable message changed\n{}", run.show());
}

#[test]
fn qkillns_reports_an_unreadable_message_once() {
    let Some(f) = faulty("qkillns_reports_an_unreadable_message_once") else { return };
    let rel_info = f.info.strip_prefix(&f.queue).unwrap().display().to_string();
    for mode in [&["-n"][..], &[][..]] {
        let run = cmd("qkillns").queue(&f.queue, SPLIT).args(mode).run();
        run.assert_sane().expect(4);
        let lines = run.err().lines().filter(|l| l.contains(&rel_info)).count();
        assert_eq!(lines, 1, "the error is printed {lines} times\n{}", run.show());
    }
    let run = cmd("qstat").queue(&f.queue, SPLIT).arg("--detail").run();
    let lines = run.err().lines().filter(|l| l.contains(&rel_info)).count();
    assert_eq!(lines, 1, "the error is printed {lines} times\n{}", run.show());
}
