//! Moves across filesystems: the queue copied out to a tmpfs with
//! `cp -a`, removed, and copied back, as an administrator does to free a
//! disk. Every file has a new inode under its old name, and since the
//! filesystem hands out the freed inode numbers again, a message's new
//! number is often another message's old name. `qfixq live` must
//! renumber everything without losing or mixing up a message: every
//! message is found by its content with the same envelope, and every name
//! is its mess file's inode.
//!
//! The queue lives on a small loop-mounted ext2 image (fresh, so inode
//! numbers are reused deterministically); without the e2fsprogs tools or
//! loop devices, on the scratch directory's own filesystem (reuse likely,
//! not certain).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use qtests::messages_by_content;
use qtests::prelude::cross::*;

const SPLIT: u32 = 7;

/// Mess files whose name is not their inode number.
fn misnamed(queue: &Path) -> Vec<String> {
    numeric_files(&queue.join("mess"))
        .into_iter()
        .filter(|(n, p)| fs::symlink_metadata(p).map(|m| m.ino()).ok() != Some(*n))
        .map(|(n, p)| format!("{n} at {}", p.display()))
        .collect()
}

fn copy_out_and_back(test: &str, big_todo: bool, seed: u64) {
    if !root_or_skip(test) {
        return;
    }
    let tmp = scratch(false);
    let home = tmp.path().join("disk");
    let _mount = match E2Tools::find().and_then(|t| loop_ext2(&t, &tmp.path().join("fs.img"), &home, 16_384, 2048)) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("note: {test}: {e}; using the scratch directory's filesystem");
            fs::create_dir(&home).unwrap();
            None
        }
    };
    let queue = home.join("queue");
    let spec = qtests::BuildSpec {
        messages: 80,
        split: SPLIT,
        big_todo,
        seed,
        ids: Some(IDS),
        ..qtests::BuildSpec::default()
    };
    qtests::build_queue(&queue, &spec).expect("build");
    let before = messages_by_content(&queue).expect("read queue");
    let old_names: BTreeSet<u64> = numeric_files(&queue.join("mess")).into_iter().map(|(n, _)| n).collect();

    // cp -a to a tmpfs, rm -rf, cp -a back.
    let shm = scratch(true);
    let cp = which("cp").expect("cp");
    let rm = which("rm").expect("rm");
    sh(&cp, &["-a".as_ref(), queue.as_os_str(), shm.path().as_os_str()]).expect("cp -a out");
    sh(&rm, &["-rf".as_ref(), queue.as_os_str()]).expect("rm -rf");
    sh(&cp, &["-a".as_ref(), shm.path().join("queue").as_os_str(), home.as_os_str()]).expect("cp -a back");

    // Names no longer match inodes; some new inode numbers are other
    // messages' old names.
    let wrong = misnamed(&queue);
    assert!(wrong.len() >= 70, "only {} of 80 messages need a new number", wrong.len());
    let collisions = numeric_files(&queue.join("mess"))
        .into_iter()
        .filter(|(n, p)| {
            let ino = fs::metadata(p).unwrap().ino();
            ino != *n && old_names.contains(&ino)
        })
        .count();
    println!("{test}: {} messages to renumber, {collisions} onto another message's old name", wrong.len());
    if _mount.is_some() {
        assert!(collisions >= 5, "the copy back reused too few inode numbers ({collisions}) to test collisions");
    }

    let run = cmd("qfixq").queue(&queue, SPLIT).arg("live").run();
    run.assert_sane().expect(1);
    assert_no_diff(&misnamed(&queue), "names that are not inodes after the repair", Some(&run));
    let after = messages_by_content(&queue).expect("read queue");
    assert_eq!(after, before, "messages lost or mixed up\n{}", run.show());
    assert!(!queue.join("lost+found").exists(), "something was set aside\n{}", run.show());
    cmd("qfixq").queue(&queue, SPLIT).run().assert_sane().expect(0);
    // qstat agrees on the counts.
    let run = cmd("qstat").queue(&queue, SPLIT).run();
    run.assert_sane().expect(0);
    assert!(run.out().starts_with("messages in queue: 80\n"), "{}", run.show());
}

#[test]
fn a_queue_copied_out_and_back_is_renumbered_without_loss() {
    copy_out_and_back("a_queue_copied_out_and_back_is_renumbered_without_loss", false, 61);
}

#[test]
fn a_big_todo_queue_copied_out_and_back_is_renumbered_without_loss() {
    copy_out_and_back("a_big_todo_queue_copied_out_and_back_is_renumbered_without_loss", true, 62);
}
