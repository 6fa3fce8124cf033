//! Broken envelope and message files: empty, garbled, truncated, stale, linked from outside.

use super::*;

/// Mess files truncated to nothing.
pub(super) fn zero_byte_mess(c: &mut Ctx<'_>) -> Result<()> {
    for n in c.victims(3, Fresh::Preprocessed, mess)? {
        let p = c.path(Part::Mess, n);
        rewrite_keep_times(&p, b"")?;
        let r = c.rel(&p);
        c.note(format!("truncated {r} to 0 bytes"));
        c.touch(n);
    }
    Ok(())
}

/// Info files emptied or overwritten with garbage.
pub(super) fn broken_info(c: &mut Ctx<'_>, damage: Damage) -> Result<()> {
    for n in c.victims(2, Fresh::Preprocessed, preprocessed)? {
        let p = c.path(Part::Info, n);
        let data = if damage == Damage::EmptyInfo {
            Vec::new()
        } else {
            let mut v = vec![*c.rng.pick(b"XZ\xff\x01")];
            let len = c.rng.range(8, 40);
            v.extend((0..len).map(|_| c.rng.next_u64() as u8));
            v
        };
        rewrite_keep_times(&p, &data)?;
        let r = c.rel(&p);
        c.note(format!("overwrote {r} with {} bytes", data.len()));
        c.touch(n);
    }
    Ok(())
}

/// A local or remote file cut in the middle of its last record.
pub(super) fn truncated_list(c: &mut Ctx<'_>, damage: Damage) -> Result<()> {
    let part = if damage == Damage::TruncatedLocal { Part::Local } else { Part::Remote };
    let all = c.scan.select(|h| preprocessed(h) && h[part.index()]);
    // Prefer lists of two or more records, whose first survives.
    let mut multi = Vec::new();
    for &n in &all {
        if read_file(&c.path(part, n))?.iter().filter(|&&b| b == 0).count() >= 2 {
            multi.push(n);
        }
    }
    let victims = if !multi.is_empty() {
        c.rng.choose(&multi, 2)
    } else {
        c.victims(2, Fresh::Preprocessed, |h| preprocessed(h) && h[part.index()])?
    };
    for n in victims {
        let p = c.path(part, n);
        let data = read_file(&p)?;
        if let Some(len) = cut_last_record(&data) {
            rewrite_keep_times(&p, &data[..len])?;
            let r = c.rel(&p);
            c.note(format!("cut {r} from {} to {len} bytes", data.len()));
            c.touch(n);
        }
    }
    Ok(())
}

/// A bounce file beside a todo.
pub(super) fn stale_bounce_beside_todo(c: &mut Ctx<'_>) -> Result<()> {
    for n in c.victims(2, Fresh::TodoStage, todo_stage)? {
        let todo = Todo::parse(&read_file(&c.path(Part::Todo, n))?).ok();
        let addr =
            todo.and_then(|t| t.recipients.into_iter().next()).unwrap_or_else(|| b"someone@gmail.example".to_vec());
        let mut text = Vec::new();
        content::write_bounce_report(&mut text, &mut c.rng, &addr);
        if fs::symlink_metadata(c.path(Part::Bounce, n)).is_err() {
            c.m.write_part(Part::Bounce, n, &text, None)?;
            let r = c.rel(&c.path(Part::Bounce, n));
            c.note(format!("wrote stale {r}"));
            c.touch(n);
        }
    }
    Ok(())
}

/// A garbled todo, a separate file from its valid intd.
pub(super) fn broken_todo_with_intd(c: &mut Ctx<'_>) -> Result<()> {
    for (i, n) in c.victims(2, Fresh::TodoStage, todo_stage)?.into_iter().enumerate() {
        let intd = c.path(Part::Intd, n);
        let todo = c.path(Part::Todo, n);
        let data = match read_file(&intd) {
            Ok(d) => d,
            Err(_) => read_file(&todo)?,
        };
        if fs::symlink_metadata(&intd).is_err() {
            // Its intd is gone: make a valid separate one first.
            c.m.write_part(Part::Intd, n, &data, None)?;
        }
        let garbled = garble_todo(&data, i);
        fs::remove_file(&todo)?;
        c.m.write_part(Part::Todo, n, &garbled, None)?;
        let r = c.rel(&todo);
        c.note(format!("{r} garbled, a separate file from its valid intd"));
        c.touch(n);
    }
    Ok(())
}

/// A garbled todo beside complete info and recipients.
pub(super) fn broken_todo_preprocessed(c: &mut Ctx<'_>) -> Result<()> {
    let victims = c.victims(2, Fresh::Preprocessed, |h| {
        preprocessed(h) && (h[Part::Local.index()] || h[Part::Remote.index()]) && !h[Part::Intd.index()]
    })?;
    for (i, n) in victims.into_iter().enumerate() {
        let sender = Info::parse(&read_file(&c.path(Part::Info, n))?).map_or(Vec::new(), |x| x.sender);
        let mut recipients = Vec::new();
        for p in [Part::Local, Part::Remote] {
            if let Ok(d) = read_file(&c.path(p, n)) {
                if let Ok(r) = Recipients::parse_salvaging(&d) {
                    recipients.extend(r.list.into_iter().map(|x| x.address));
                }
            }
        }
        let t = Todo {
            uid: Some(b"7791".to_vec()),
            pid: Some(c.rng.range(300, 99_999).to_string().into_bytes()),
            sender,
            recipients,
        };
        let garbled = garble_todo(&t.to_bytes(), i);
        c.m.write_part(Part::Todo, n, &garbled, None)?;
        let r = c.rel(&c.path(Part::Todo, n));
        c.note(format!("made garbled {r} beside complete info and recipients"));
        if i == 0 {
            fs::hard_link(c.path(Part::Todo, n), c.path(Part::Intd, n))?;
            c.note(format!("linked intd/{n} to it"));
        }
        c.touch(n);
    }
    Ok(())
}

/// A hard link to a message file from outside the queue.
pub(super) fn extra_hard_link(c: &mut Ctx<'_>) -> Result<()> {
    let out = c.outside_subdir()?;
    let victims = c.victims(2, Fresh::Preprocessed, preprocessed)?;
    for (i, n) in victims.into_iter().enumerate() {
        let part = if i == 0 { Part::Info } else { Part::Mess };
        let from = c.path(part, n);
        let to = out.join(format!("{}-{n}", part.dir()));
        fs::hard_link(&from, &to)?;
        let r = c.rel(&from);
        c.note(format!("hard-linked {r} from {}", to.display()));
        c.report.outside.push(to);
        c.touch(n);
    }
    Ok(())
}
