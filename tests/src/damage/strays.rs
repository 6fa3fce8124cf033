//! What qmail never makes: wrong owners and modes, stray names and directories, pid/ leftovers.

use super::*;

/// Wrong owners and modes on directories, message files and lock files.
pub(super) fn bad_owners_modes(c: &mut Ctx<'_>) -> Result<()> {
    let q = c.m.queue.clone();
    let split = c.m.split;
    let root = nix::unistd::geteuid().is_root();
    let chmod = |c: &mut Ctx<'_>, p: &Path, mode: u32| -> Result<()> {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", p.display()))?;
        let r = c.rel(p);
        c.note(format!("chmod {mode:04o} {r}"));
        Ok(())
    };
    let chown = |c: &mut Ctx<'_>, p: &Path| -> Result<()> {
        if root {
            let u = 20_000 + c.rng.below(1000) as u32;
            let g = 20_000 + c.rng.below(1000) as u32;
            let mode = fs::symlink_metadata(p)?.mode() & 0o7777;
            std::os::unix::fs::lchown(p, Some(u), Some(g))?;
            // chown clears set-id bits; keep the mode as it was.
            fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
            let r = c.rel(p);
            c.note(format!("chown {u}:{g} {r}"));
        }
        Ok(())
    };
    // Directories: every mode keeps the owner's rwx, so that the tree stays
    // walkable by a non-root test.
    let dir_modes: [(&str, u32); 10] = [
        ("", 0o777),
        ("pid", 0o755),
        ("mess", 0o700),
        ("info", 0o755),
        ("local", 0o777),
        ("remote", 0o750),
        ("bounce", 0o755),
        ("todo", 0o770),
        ("intd", 0o755),
        ("lock", 0o700),
    ];
    for (d, mode) in dir_modes {
        let p = if d.is_empty() { q.clone() } else { q.join(d) };
        chmod(c, &p, mode)?;
    }
    let buckets = [("mess", 0, 0o777), ("info", 1, 0o2700), ("remote", 2, 0o755), ("local", 3, 0o1777)];
    for (d, b, mode) in buckets {
        let p = q.join(d).join((b % split).to_string());
        chmod(c, &p, mode)?;
    }
    chown(c, &q)?;
    chown(c, &q.join("mess"))?;
    chown(c, &q.join("info").join((4 % split).to_string()))?;
    // Files.
    let all: Vec<u64> = c.scan.msgs.keys().copied().collect();
    let victims = c.rng.choose(&all, 8);
    let bad = [0o666, 0o4755, 0o660, 0o606, 0o2644, 0o777, 0o640];
    for (i, n) in victims.iter().copied().enumerate() {
        let parts: Vec<Part> = Part::ALL.into_iter().filter(|&p| c.scan.has(n, p)).collect();
        if parts.is_empty() {
            continue;
        }
        let part = parts[i % parts.len()];
        let mut mode = bad[i % bad.len()];
        if mode == part.file_perm() {
            mode = 0o666;
        }
        let p = c.path(part, n);
        chmod(c, &p, mode)?;
        if i % 2 == 0 {
            chown(c, &p)?;
        }
        c.touch(n);
    }
    let lock = q.join("lock");
    chmod(c, &lock.join("sendmutex"), 0o666)?;
    chmod(c, &lock.join("tcpto"), 0o600)?;
    chmod(c, &lock.join("trigger"), 0o666)?;
    chown(c, &lock.join("tcpto"))?;
    Ok(())
}

/// Files with names qmail never makes.
pub(super) fn stray_names(c: &mut Ctx<'_>) -> Result<()> {
    let split = c.m.split;
    let q = c.m.queue.clone();
    let b = c.rng.below(u64::from(split)) as u32;
    let bs = b.to_string();
    let todo_dir = if c.m.big_todo { q.join("todo").join(&bs) } else { q.join("todo") };
    let strays: Vec<(PathBuf, &[u8])> = vec![
        (q.join("core"), b"\x7fELF core dump\n"),
        (q.join("mess").join(&bs).join("123.tmp"), b"partial\n"),
        (q.join("info").join(&bs).join("12\n34"), b"F\0"),
        (q.join("local").join(&bs).join("\x1b[31mred\x1b[0m"), b"Tx@y\0"),
        (q.join("remote").join(&bs).join(std::ffi::OsStr::from_bytes(b"\xff\xfe77")), b"Tx@y\0"),
        (q.join("mess").join((123 % split).to_string()).join("0123"), b"Received: x\n\nhi\n"),
        (q.join("mess").join("README"), b"not a bucket\n"),
        (todo_dir.join("x.tmp"), b"u0\0p1\0F\0"),
        (q.join("bounce").join("core"), b"junk\n"),
        (q.join("lock").join("sendmutex.old"), b""),
    ];
    for (p, data) in strays {
        // Skip names already made, and directories another damage
        // removed.
        if fs::symlink_metadata(&p).is_ok() || !p.parent().is_some_and(Path::is_dir) {
            continue;
        }
        plain_file(&p, data, 0o644)?;
        let r = c.rel(&p);
        c.note(format!("made stray file {r}"));
    }
    Ok(())
}

/// Directories where qmail has only files.
pub(super) fn stray_subdirs(c: &mut Ctx<'_>) -> Result<()> {
    let split = c.m.split;
    let q = c.m.queue.clone();
    let b = c.rng.below(u64::from(split)) as u32;
    let n = c.unused_number(b);
    let dirs = [
        q.join("mess").join(b.to_string()).join("tmpdir"),
        q.join("info").join("old"),
        q.join("remote").join(b.to_string()).join(n.to_string()),
        q.join("bounce").join("olddir"),
    ];
    for d in dirs {
        if fs::symlink_metadata(&d).is_ok() || !d.parent().is_some_and(Path::is_dir) {
            continue;
        }
        fs::create_dir(&d).with_context(|| format!("mkdir {}", d.display()))?;
        plain_file(&d.join("1"), b"inside a stray directory\n", 0o600)?;
        let r = c.rel(&d);
        c.note(format!("made stray directory {r} with a file"));
    }
    Ok(())
}

/// Files left in pid/, one a hard link of a mess file.
pub(super) fn pid_leftovers(c: &mut Ctx<'_>) -> Result<()> {
    let q = c.m.queue.clone();
    let now = now_secs();
    let pid = q.join("pid");
    let a = pid.join(format!("{}.{}.1", c.rng.range(300, 99_999), now - 3 * 86_400));
    plain_file(&a, b"Received: (qmail 4711 invoked from network); 1 Jan 2024 00:00:00 -0000\n", 0o644)?;
    let n = c.victims(1, Fresh::Preprocessed, mess)?[0];
    let b = pid.join(format!("{}.{}.1", c.rng.range(300, 99_999), now - 600));
    fs::hard_link(c.path(Part::Mess, n), &b)?;
    let d = pid.join(c.rng.range(300, 99_999).to_string());
    plain_file(&d, b"", 0o644)?;
    let (ra, rb, rm, rd) = (c.rel(&a), c.rel(&b), c.rel(&c.path(Part::Mess, n)), c.rel(&d));
    c.note(format!("left {ra} (no link) and {rd} (empty)"));
    c.note(format!("left {rb}, a hard link of {rm}"));
    c.touch(n);
    Ok(())
}
