//! Message files without the rest of their message, and what a crashed qmail-queue leaves.

use super::*;

/// Preprocessed messages without their mess.
pub(super) fn orphan_info(c: &mut Ctx<'_>) -> Result<()> {
    for n in c.victims(2, Fresh::Preprocessed, preprocessed)? {
        c.remove_part(Part::Mess, n)?;
        c.touch(n);
    }
    Ok(())
}

/// A local or remote file left alone.
pub(super) fn orphan_list(c: &mut Ctx<'_>, damage: Damage) -> Result<()> {
    let keep = if damage == Damage::OrphanLocal { Part::Local } else { Part::Remote };
    let victims = c.victims(2, Fresh::Preprocessed, |h| preprocessed(h) && h[keep.index()])?;
    for n in victims {
        for p in Part::ALL {
            if p != keep {
                c.remove_part(p, n)?;
            }
        }
        c.touch(n);
    }
    Ok(())
}

/// Todo-stage messages without their mess (one without its intd too).
pub(super) fn orphan_todo(c: &mut Ctx<'_>) -> Result<()> {
    for (i, n) in c.victims(2, Fresh::TodoStage, todo_stage)?.into_iter().enumerate() {
        c.remove_part(Part::Mess, n)?;
        if i == 1 {
            c.remove_part(Part::Intd, n)?;
        }
        c.touch(n);
    }
    Ok(())
}

/// A bounce file left alone.
pub(super) fn orphan_bounce(c: &mut Ctx<'_>) -> Result<()> {
    let with_bounce = c.scan.select(|h| mess(h) && h[Part::Bounce.index()]);
    let victims = if with_bounce.is_empty() {
        let n = c.victims(1, Fresh::Preprocessed, preprocessed)?[0];
        let mut text = Vec::new();
        content::write_bounce_report(&mut text, &mut c.rng, b"nobody@nowhere.example");
        c.m.write_part(Part::Bounce, n, &text, None)?;
        c.scan.msgs.entry(n).or_default()[Part::Bounce.index()] = true;
        vec![n]
    } else {
        c.rng.choose(&with_bounce, 2)
    };
    for n in victims {
        for p in Part::ALL {
            if p != Part::Bounce {
                c.remove_part(p, n)?;
            }
        }
        c.touch(n);
    }
    Ok(())
}

/// What a crashed qmail-queue leaves: a lone mess (S2) or mess and intd (S3).
pub(super) fn leftover(c: &mut Ctx<'_>, damage: Damage) -> Result<()> {
    let kind = if damage == Damage::S2Leftover { Fresh::MessOnly } else { Fresh::MessIntd };
    let now = now_secs();
    for birth in [now - 2 * 86_400, now - 60] {
        let n = c.fresh(kind, birth)?;
        c.touch(n);
    }
    Ok(())
}
