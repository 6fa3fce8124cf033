//! Reading a queue's files the way a test must: never through a link,
//! never blocking on a FIFO, never touching an access time; message
//! numbers as qmail writes them; walks that list every regular file.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Reads a regular file without following a link, without blocking on a
/// FIFO and without changing its access time (when the kernel allows
/// O_NOATIME, which it does to root and to the file's owner).
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let mut f = match OpenOptions::new().read(true).custom_flags(flags | libc::O_NOATIME).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new().read(true).custom_flags(flags).open(path),
        r => r,
    }?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Whether a name is a message number as qmail writes it.
pub fn number_of(name: &[u8]) -> Option<u64> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) || (name.len() > 1 && name[0] == b'0') {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Regular files anywhere under `dir` (links never followed).
pub fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for de in rd.flatten() {
            let p = de.path();
            let Ok(md) = fs::symlink_metadata(&p) else { continue };
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Regular files directly in the buckets of a split part directory (or
/// in the directory itself), by number, for counting what a queue holds.
pub fn numeric_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else { return v };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        let name = e.file_name();
        if m.is_dir() {
            for e2 in fs::read_dir(&p).into_iter().flatten().flatten() {
                if e2.file_type().is_ok_and(|t| t.is_file()) {
                    if let Some(n) = qcommon::safe_fs::parse_number(e2.file_name().as_bytes()) {
                        v.push((n, e2.path()));
                    }
                }
            }
        } else if m.is_file() {
            if let Some(n) = qcommon::safe_fs::parse_number(name.as_bytes()) {
                v.push((n, p));
            }
        }
    }
    v.sort();
    v
}

/// Opens a file and takes an exclusive flock on it (without waiting),
/// held while the returned lock lives.
pub fn hold_flock(p: &Path) -> nix::fcntl::Flock<fs::File> {
    let f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .unwrap_or_else(|(_, e)| panic!("flock {}: {e}", p.display()))
}
