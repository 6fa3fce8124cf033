//! Scratch directories for practice queues.
//!
//! Making and removing a queue's hundred directories waits on the journal
//! of a busy disk, so most tests build on /dev/shm (tmpfs); but a
//! renumbering is best tested on a disk filesystem, where freed inode
//! numbers come back (tmpfs never reuses one). `QTESTS_TMPFS=0` (or the
//! older `QFIXQ_TEST_TMPFS=0`) keeps everything on disk.

use std::path::Path;

/// Whether the environment allows scratch directories on tmpfs.
fn tmpfs_allowed() -> bool {
    ["QTESTS_TMPFS", "QFIXQ_TEST_TMPFS"].iter().all(|k| std::env::var(k).map_or(true, |v| v != "0"))
}

/// A scratch directory, removed on drop: in /dev/shm when `tmpfs` is asked
/// for, allowed and there, else in the usual temporary directory.
pub fn scratch(tmpfs: bool) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if tmpfs && tmpfs_allowed() && shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("qtests.").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::Builder::new().prefix("qtests.").tempdir().expect("tempdir")
}
