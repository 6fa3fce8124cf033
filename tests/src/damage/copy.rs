//! A queue copied to another filesystem (new inodes under the old names).

use super::*;

/// Every file copied to a new inode under its old name, hard links kept or broken.
pub(super) fn copied_to_other_fs(c: &mut Ctx<'_>, damage: Damage) -> Result<()> {
    let q = c.m.queue.clone();
    let keep = damage == Damage::CopiedToOtherFs;
    let numbers: Vec<u64> = c.scan.msgs.keys().copied().collect();
    let mut links = HashMap::new();
    let mut seq = 0;
    let copied = copy_tree(&q, keep, &mut links, &mut seq)?;
    c.report.touched = numbers;
    c.note(format!(
        "copied {copied} files to new inodes under their old names ({} hard links)",
        if keep { "keeping" } else { "breaking" }
    ));
    Ok(())
}
