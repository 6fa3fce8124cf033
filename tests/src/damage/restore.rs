//! A queue restored from a backup without keeping owners and modes.

use super::*;

/// The owner a restore gave every entry (when root): an account that is
/// none of qmail's ids, the same for every file, as one `cp -r` leaves it.
const RESTORER: u32 = 20_999;

/// Every directory and file of the queue (lost+found aside: qmail never
/// had it) under another owner and group (when root) and with mode 0777
/// (directories) or 0666 (files), as a copy made under umask 000 without
/// `-p` (or a tar extracted without keeping owners) leaves it. Symbolic
/// links are neither followed nor changed.
pub(super) fn all_owners_wrong(c: &mut Ctx<'_>) -> Result<()> {
    let q = c.m.queue.clone();
    let root = nix::unistd::geteuid().is_root();
    let (mut dirs, mut files) = (0u64, 0u64);
    let mut stack = vec![q.clone()];
    while let Some(d) = stack.pop() {
        wrong_owner_mode(&d, root, 0o777)?;
        dirs += 1;
        let mut names: Vec<_> = fs::read_dir(&d)
            .with_context(|| format!("opendir {}", d.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            if d == q && name == "lost+found" {
                continue;
            }
            let p = d.join(&name);
            let md = fs::symlink_metadata(&p).with_context(|| format!("lstat {}", p.display()))?;
            if md.is_dir() {
                stack.push(p);
            } else if !md.file_type().is_symlink() {
                wrong_owner_mode(&p, root, 0o666)?;
                files += 1;
            }
        }
    }
    c.report.touched = c.scan.msgs.keys().copied().collect();
    let owner = if root { format!("owner {RESTORER}:{RESTORER}, ") } else { String::new() };
    c.note(format!("{owner}mode 0777 on {dirs} directories and 0666 on {files} files"));
    Ok(())
}

/// Gives `p` (not a symbolic link) the restorer's owner (when root) and `mode`.
fn wrong_owner_mode(p: &Path, root: bool, mode: u32) -> Result<()> {
    if root {
        std::os::unix::fs::lchown(p, Some(RESTORER), Some(RESTORER))
            .with_context(|| format!("chown {}", p.display()))?;
    }
    // After the chown, which may clear set-id bits.
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", p.display()))
}
