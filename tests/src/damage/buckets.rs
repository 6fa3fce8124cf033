//! Damages of the bucket directories: missing, wrong, extra.

use super::*;

/// One info bucket removed with its files.
pub(super) fn missing_bucket(c: &mut Ctx<'_>) -> Result<()> {
    let split = c.m.split;
    let q = c.m.queue.clone();
    let mut full = Vec::new();
    for b in 0..split {
        let files = numeric_files(&q.join("info").join(b.to_string()))?;
        if !files.is_empty() {
            full.push((b, files));
        }
    }
    let (b, files) = if full.is_empty() {
        let n = c.fresh(Fresh::Preprocessed, now_secs() - 7200)?;
        (bucket_of(n, split), vec![n])
    } else {
        let i = c.rng.index(full.len());
        full.swap_remove(i)
    };
    let dir = q.join("info").join(b.to_string());
    fs::remove_dir_all(&dir).with_context(|| format!("rm -r {}", dir.display()))?;
    let r = c.rel(&dir);
    c.note(format!("removed bucket {r} with {} files", files.len()));
    c.report.touched.extend(files);
    Ok(())
}

/// Files of several parts moved to a wrong bucket.
pub(super) fn wrong_bucket(c: &mut Ctx<'_>) -> Result<()> {
    let split = c.m.split;
    let q = c.m.queue.clone();
    if split < 2 {
        bail!("a split of 1 has no wrong bucket");
    }
    // One file each of different parts: mess, info, remote, local,
    // and todo with the big-todo layout.
    let mut parts = vec![Part::Mess, Part::Info, Part::Remote, Part::Local];
    if c.m.big_todo {
        parts.push(Part::Todo);
    }
    let mut picks = Vec::new();
    for part in parts {
        let fresh = if part == Part::Todo { Fresh::TodoStage } else { Fresh::Preprocessed };
        let taken: Vec<u64> = picks.iter().map(|x: &(u64, Part)| x.0).collect();
        let n = c.victims(1, fresh, |h| {
            h[Part::Mess.index()] && h[part.index()] && (part == Part::Todo || !h[Part::Todo.index()])
        })?[0];
        if !taken.contains(&n) {
            picks.push((n, part));
        }
    }
    for (n, part) in picks {
        let b = bucket_of(n, split);
        let mut wrong = (b + 1 + c.rng.below(u64::from(split) - 1) as u32) % split;
        // Another damage (missing-bucket) may have removed the bucket
        // drawn: take the next wrong one that is there (no further draw,
        // so every other build stays the same).
        for _ in 0..split {
            if wrong != b && q.join(part.dir()).join(wrong.to_string()).is_dir() {
                break;
            }
            wrong = (wrong + 1) % split;
        }
        if wrong == b || !q.join(part.dir()).join(wrong.to_string()).is_dir() {
            continue;
        }
        let from = c.path(part, n);
        let to = q.join(part.dir()).join(wrong.to_string()).join(n.to_string());
        if fs::symlink_metadata(&to).is_ok() {
            continue;
        }
        fs::rename(&from, &to)?;
        let (a, z) = (c.rel(&from), c.rel(&to));
        c.note(format!("moved {a} to {z}"));
        c.touch(n);
    }
    Ok(())
}

/// Buckets of an older, larger split, with messages in them.
pub(super) fn extra_buckets(c: &mut Ctx<'_>) -> Result<()> {
    let split = c.m.split;
    let q = c.m.queue.clone();
    let dirs: Vec<Part> = Part::ALL.into_iter().filter(|p| p.is_split(c.m.big_todo)).collect();
    for p in &dirs {
        let (o, mode) = p.dir_spec();
        for b in [split, split + 1] {
            let d = q.join(p.dir()).join(b.to_string());
            if fs::symlink_metadata(&d).is_ok() {
                continue;
            }
            c.m.mkdir(&d, o, mode)?;
            let r = c.rel(&d);
            c.note(format!("made extra bucket {r}"));
        }
    }
    let old = u64::from(split) + 2;
    let all = c.scan.select(mess);
    let mut pref: Vec<u64> = all.iter().copied().filter(|n| n % old >= u64::from(split)).collect();
    if pref.len() < 3 {
        pref = all;
    }
    let victims =
        if pref.is_empty() { vec![c.fresh(Fresh::Preprocessed, now_secs() - 7200)?] } else { c.rng.choose(&pref, 3) };
    for n in victims {
        let extra = if n % old >= u64::from(split) { n % old } else { u64::from(split) + c.rng.below(2) };
        for p in &dirs {
            if c.scan.has(n, *p) {
                let from = c.path(*p, n);
                let to = q.join(p.dir()).join(extra.to_string()).join(n.to_string());
                fs::rename(&from, &to)?;
                let (a, z) = (c.rel(&from), c.rel(&to));
                c.note(format!("moved {a} to {z}"));
            }
        }
        c.touch(n);
    }
    Ok(())
}
