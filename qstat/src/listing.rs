//! Directory listings that leave no trace: this module owns reading a
//! directory of the queue without changing its access time.
//!
//! [`qcommon::safe_fs::Dir::for_each_entry`] opens the directory anew, and
//! `getdents` on a descriptor without `O_NOATIME` may update the
//! directory's access time (with `relatime`, the first listing after a
//! change does). Here the listing goes through a duplicate of the
//! directory's own descriptor (opened by the safe layer, never through a
//! link) with `O_NOATIME` set on it, which root (or the owner) may set.

use std::ffi::CStr;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use qcommon::safe_fs::{io_errno, Dir, FileKind};
use qcommon::{Error, Result};

/// Calls `f` with the name and `d_type` of each entry of `dir` (without `.`
/// and `..`), streaming; no stat. `dir` must not be listed by another
/// thread at the same time (the duplicate shares its file offset).
pub fn for_each_entry(dir: &Dir, mut f: impl FnMut(&CStr, Option<FileKind>)) -> Result<()> {
    // A close-on-exec duplicate (F_DUPFD_CLOEXEC).
    let fd = dir.as_fd().try_clone_to_owned().map_err(|e| Error::sys("list", dir.path(), io_errno(&e)))?;
    // O_NOATIME is refused (EPERM) to a caller who neither owns the
    // directory nor has CAP_FOWNER: the listing then goes on without it.
    if let Ok(flags) = fcntl(&fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NOATIME;
        let _ = fcntl(&fd, FcntlArg::F_SETFL(flags));
    }
    // The descriptor may have been read before: start from the beginning.
    // (`Iter` also rewinds when dropped.)
    nix::unistd::lseek(&fd, 0, nix::unistd::Whence::SeekSet).map_err(|e| Error::sys("list", dir.path(), e))?;
    let mut d = nix::dir::Dir::from_fd(fd).map_err(|e| Error::sys("list", dir.path(), e))?;
    let mut iter = d.iter();
    for ent in &mut iter {
        let ent = ent.map_err(|e| Error::sys("read directory", dir.path(), e))?;
        let name = ent.file_name();
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        f(name, ent.file_type().map(kind_of))
    }
    Ok(())
}

fn kind_of(t: nix::dir::Type) -> FileKind {
    use nix::dir::Type;
    match t {
        Type::Fifo => FileKind::Fifo,
        Type::CharacterDevice => FileKind::CharDevice,
        Type::Directory => FileKind::Directory,
        Type::BlockDevice => FileKind::BlockDevice,
        Type::File => FileKind::Regular,
        Type::Symlink => FileKind::Symlink,
        Type::Socket => FileKind::Socket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qcommon::safe_fs::SymlinkBehavior;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn lists_names_and_types_without_touching_atime() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::os::unix::fs::symlink("/", t.path().join("l")).unwrap();
        // Make the directory's atime old, so relatime would update it.
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::open(t.path()).unwrap().set_times(std::fs::FileTimes::new().set_accessed(old)).unwrap();
        let before = std::fs::metadata(t.path()).unwrap().atime();
        let dir = Dir::open(t.path(), SymlinkBehavior::NoFollow).unwrap();
        for _ in 0..2 {
            let mut seen = Vec::new();
            for_each_entry(&dir, |n, k| seen.push((n.to_str().unwrap().to_string(), k))).unwrap();
            seen.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                seen,
                vec![
                    ("d".to_string(), Some(FileKind::Directory)),
                    ("f".to_string(), Some(FileKind::Regular)),
                    ("l".to_string(), Some(FileKind::Symlink)),
                ]
            );
        }
        let after = std::fs::metadata(t.path()).unwrap().atime();
        if nix::unistd::geteuid().is_root() {
            assert_eq!(before, after, "directory atime changed");
        }
    }
}
