//! Mounts made by tests, undone on drop: a tmpfs of a given size, and an
//! ext2 image on a loop device (for a small filesystem whose inode numbers
//! come back, or whose device can be shrunk under it).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runner::which;

/// A mount made by a test; unmounted (lazily, if busy) on drop.
#[derive(Debug)]
pub struct Mount {
    /// Where.
    pub dir: PathBuf,
    /// The loop device behind it, detached after the unmount.
    pub loopdev: Option<PathBuf>,
}

impl Mount {
    /// `mount -t tmpfs -o OPTS tmpfs DIR`.
    pub fn tmpfs(dir: &Path, opts: &str) -> Result<Mount, String> {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(opts))
            .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))?;
        Ok(Mount { dir: dir.to_path_buf(), loopdev: None })
    }

    /// Unmounts now (panics on failure).
    pub fn unmount(&mut self) {
        if let Err(e) = nix::mount::umount(&self.dir) {
            panic!("umount {}: {e}", self.dir.display());
        }
        self.dir = PathBuf::new();
        self.detach();
    }

    fn detach(&mut self) {
        if let Some(l) = self.loopdev.take() {
            let _ = Command::new("losetup").arg("-d").arg(&l).status();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() && nix::mount::umount(&self.dir).is_err() {
            let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        }
        self.detach();
    }
}

/// Runs a program, its stdout on success, a one-line reason on failure.
pub fn sh(prog: &Path, args: &[&OsStr]) -> Result<String, String> {
    let out = Command::new(prog).args(args).output().map_err(|e| format!("{}: {e}", prog.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {:?}: {}: {}",
            prog.display(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The programs a loop-mounted ext2 image needs.
#[derive(Debug, Clone)]
pub struct E2Tools {
    /// mkfs.ext2.
    pub mkfs: PathBuf,
    /// debugfs.
    pub debugfs: PathBuf,
    /// losetup.
    pub losetup: PathBuf,
}

impl E2Tools {
    /// Finds them, or says which package is missing.
    pub fn find() -> Result<E2Tools, String> {
        match (which("mkfs.ext2"), which("debugfs"), which("losetup")) {
            (Some(mkfs), Some(debugfs), Some(losetup)) => Ok(E2Tools { mkfs, debugfs, losetup }),
            _ => Err("mkfs.ext2, debugfs and losetup are needed (packages e2fsprogs and mount)".into()),
        }
    }
}

/// Mounts `dev` (ext2, through the ext2 or the ext4 driver) on `dir`.
pub fn mount_ext2(dev: &Path, dir: &Path) -> Result<(), String> {
    let m = |t: &str| nix::mount::mount(Some(dev), dir, Some(t), nix::mount::MsFlags::empty(), None::<&str>);
    m("ext2").or_else(|_| m("ext4")).map_err(|e| format!("mount {} on {}: {e}", dev.display(), dir.display()))
}

/// Makes an ext2 image `img` of `blocks` 1 KiB blocks and `inodes`
/// inodes, attaches it to a loop device and mounts it on `dir`.
pub fn loop_ext2(t: &E2Tools, img: &Path, dir: &Path, blocks: u64, inodes: u32) -> Result<Mount, String> {
    fs::File::create(img).and_then(|f| f.set_len(blocks * 1024)).map_err(|e| format!("image: {e}"))?;
    let os = |s: &str| OsString::from(s);
    let n = inodes.to_string();
    sh(&t.mkfs, &[&os("-q"), &os("-F"), &os("-b"), &os("1024"), &os("-N"), &os(&n), img.as_os_str()])?;
    let dev = PathBuf::from(sh(&t.losetup, &[&os("-f"), &os("--show"), img.as_os_str()])?.trim());
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    if let Err(e) = mount_ext2(&dev, dir) {
        let _ = Command::new(&t.losetup).arg("-d").arg(&dev).status();
        return Err(e);
    }
    Ok(Mount { dir: dir.to_path_buf(), loopdev: Some(dev) })
}
