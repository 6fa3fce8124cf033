//! Traps for a tool that follows links or opens FIFOs.

use super::*;

/// Links from the queue to canaries outside it.
pub(super) fn symlink_trap(c: &mut Ctx<'_>) -> Result<()> {
    let q = c.m.queue.clone();
    let split = c.m.split;
    let out = c.outside_subdir()?;
    let canary = out.join("canary.txt");
    plain_file(&canary, b"canary: no tool may read through a link to me, or change me\n", 0o644)?;
    c.report.outside.push(canary.clone());

    // A link as a message file name in a mess bucket and in todo.
    let b = c.rng.below(u64::from(split)) as u32;
    let n = c.unused_number(b);
    let p = c.path(Part::Mess, n);
    std::os::unix::fs::symlink(&canary, &p)?;
    let r = c.rel(&p);
    c.note(format!("{r} -> {}", canary.display()));
    let b2 = c.rng.below(u64::from(split)) as u32;
    let n2 = c.unused_number(b2);
    let p2 = c.path(Part::Todo, n2);
    std::os::unix::fs::symlink(&canary, &p2)?;
    let r = c.rel(&p2);
    c.note(format!("{r} -> {}", canary.display()));

    // A whole local bucket replaced by a link to an outside directory that
    // holds its files (the fewest we can find) and some numeric canaries.
    let mut best: Option<(u32, Vec<u64>)> = None;
    for b in 0..split {
        let files = numeric_files(&q.join("local").join(b.to_string()))?;
        let better = match &best {
            None => true,
            Some(x) => files.len() < x.1.len(),
        };
        if better {
            best = Some((b, files));
        }
    }
    let (b, files) = best.unwrap_or((0, Vec::new()));
    let bucket = q.join("local").join(b.to_string());
    let moved = out.join(format!("local-{b}"));
    fs::create_dir(&moved)?;
    c.report.outside.push(moved.clone());
    for n in &files {
        let from = bucket.join(n.to_string());
        let to = moved.join(n.to_string());
        if fs::rename(&from, &to).is_err() {
            fs::copy(&from, &to)?;
            fs::remove_file(&from)?;
        }
        c.report.outside.push(to);
        c.touch(*n);
    }
    for k in 1..=2u64 {
        let n = 1_000_000 * k * u64::from(split) + u64::from(b);
        let f = moved.join(n.to_string());
        plain_file(&f, b"Tcanary@outside.example\0", 0o600)?;
        c.report.outside.push(f);
    }
    fs::remove_dir_all(&bucket)?;
    std::os::unix::fs::symlink(&moved, &bucket)?;
    let r = c.rel(&bucket);
    c.note(format!("{r} -> {} (its {} files moved there)", moved.display(), files.len()));

    // lock/tcpto as a link to an outside canary.
    let tcpto = out.join("tcpto");
    plain_file(&tcpto, &[0u8; LockFile::TCPTO_SIZE as usize], 0o644)?;
    c.report.outside.push(tcpto.clone());
    let lt = q.join("lock").join("tcpto");
    let _ = fs::remove_file(&lt);
    std::os::unix::fs::symlink(&tcpto, &lt)?;
    c.note(format!("lock/tcpto -> {}", tcpto.display()));
    Ok(())
}

/// An info file replaced by a FIFO, and a FIFO with a message name.
pub(super) fn fifo_trap(c: &mut Ctx<'_>) -> Result<()> {
    let split = c.m.split;
    let n = c.victims(1, Fresh::Preprocessed, preprocessed)?[0];
    let info = c.path(Part::Info, n);
    fs::remove_file(&info)?;
    nix::unistd::mkfifo(&info, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    let r = c.rel(&info);
    c.note(format!("replaced {r} with a FIFO"));
    c.touch(n);
    let b = c.rng.below(u64::from(split)) as u32;
    let m = c.unused_number(b);
    let f = c.path(Part::Mess, m);
    nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o644))?;
    let r = c.rel(&f);
    c.note(format!("made a FIFO at {r}"));
    Ok(())
}
