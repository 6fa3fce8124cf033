//! Missing or wrong lock files.

use super::*;

/// The lock files removed.
pub(super) fn missing_lock_files(c: &mut Ctx<'_>) -> Result<()> {
    let q = c.m.queue.clone();
    for lf in LockFile::ALL {
        let p = q.join("lock").join(lf.name());
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => fs::remove_dir_all(&p)?,
        }
        let r = c.rel(&p);
        c.note(format!("removed {r}"));
    }
    Ok(())
}

/// The lock files of the wrong kind or size.
pub(super) fn wrong_lock_files(c: &mut Ctx<'_>) -> Result<()> {
    let q = c.m.queue.clone();
    let lock = q.join("lock");
    for lf in LockFile::ALL {
        let p = lock.join(lf.name());
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&p)?;
        } else if fs::symlink_metadata(&p).is_ok() {
            fs::remove_file(&p)?;
        }
    }
    plain_file(&lock.join("tcpto"), &[0u8; 100], 0o644)?;
    plain_file(&lock.join("trigger"), b"", 0o622)?;
    fs::create_dir(lock.join("sendmutex"))?;
    c.note("lock/tcpto is 100 bytes, lock/trigger a regular file, lock/sendmutex a directory".into());
    Ok(())
}
