//! The 1M renumbering case's setup: every message of a healthy practice
//! queue renamed off its inode, in place.
//!
//! At 1M messages the `copied-to-other-fs` damage (a new inode for every
//! file, 12 GB written) takes 40 minutes and more on a shared machine,
//! and a second copy for the floor as long again. What the repair and its
//! floor do after a copy is renumber every message: move each file from
//! its name N to the mess file's inode K. Renaming every message's files
//! from K to a number off its inode (K + 2^31, in that number's bucket)
//! leaves the same work in a few minutes: each message is renumbered, one
//! rename per file for the floor. One difference, said in the report's
//! notes: after a copy about one message in ten has a new number that is
//! another message's old one (a collision, moved in two steps by qfixq);
//! after this renaming none has.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use qcommon::queue::{Part, QueueShape};

/// Added to every message number; ext4 inode numbers of a 1M queue are far
/// below it, so the new numbers are free.
const OFFSET: u64 = 1 << 31;

/// Renames the files of every message of the healthy queue `q` (split
/// `split`, todo and intd not split) from its number N to N + 2^31, mess
/// last; returns how many messages were renamed.
pub fn rename_off_inodes(q: &Path, split: u32) -> Result<u64> {
    let shape = QueueShape { split, big_todo: false };
    let mut numbers = Vec::new();
    for b in 0..split {
        let d = q.join("mess").join(b.to_string());
        for e in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let e = e.with_context(|| format!("listing {}", d.display()))?;
            let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                bail!("{}: {:?} is not a message number", d.display(), e.file_name());
            };
            if n >= OFFSET {
                bail!("{}: message {n} is already off its inode (or its inode is above 2^31)", d.display());
            }
            numbers.push(n);
        }
    }
    let order = [Part::Intd, Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce, Part::Mess];
    for &n in &numbers {
        for part in order {
            let from = q.join(shape.path(part, n));
            let to = q.join(shape.path(part, n + OFFSET));
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && part != Part::Mess => {}
                Err(e) => return Err(e).with_context(|| format!("renaming {} to {}", from.display(), to.display())),
            }
        }
    }
    Ok(numbers.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// After the renaming, every message's files sit under its number +
    /// 2^31 in that number's bucket, none under the old one, and the mess
    /// file is still the same inode: each message must be renumbered back.
    #[test]
    fn every_message_leaves_its_inode_with_all_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = qtests::BuildSpec {
            messages: 300,
            split: 23,
            keep_manifest: false,
            ids: None,
            ..qtests::BuildSpec::default()
        };
        let built = qtests::build_queue(tmp.path(), &spec).unwrap();
        let shape = QueueShape { split: 23, big_todo: false };
        let files_of = |n: u64| -> Vec<Part> {
            Part::ALL.into_iter().filter(|p| built.queue.join(shape.path(*p, n)).exists()).collect()
        };
        let before: Vec<(u64, Vec<Part>)> = (0..23u32)
            .flat_map(|b| fs::read_dir(built.queue.join("mess").join(b.to_string())).unwrap())
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse::<u64>().unwrap())
            .map(|n| (n, files_of(n)))
            .collect();
        assert_eq!(before.len(), 300);
        assert_eq!(rename_off_inodes(&built.queue, 23).unwrap(), 300);
        for (n, parts) in before {
            assert!(files_of(n).is_empty(), "message {n} left files under its old number");
            assert_eq!(files_of(n + OFFSET), parts, "message {n}'s files under its new number");
            let ino = fs::symlink_metadata(built.queue.join(shape.path(Part::Mess, n + OFFSET))).unwrap().ino();
            assert_eq!(ino, n, "message {n}'s mess file is the same inode");
        }
    }
}
