//! What the runbook's sequence must do to a practice queue, checked by
//! content (message numbers change when qfixq renumbers): after `qfixq
//! live` and `qkillns`, exactly the real bounces are gone (messages whose
//! sender was null before the damage), and every other message, salvaged
//! ones included, is still queued. Used by qdemo and the cross-tool tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use qcommon::queue::Part;

use crate::builder::message_path;
use crate::snapshot::{hash_bytes, messages_by_content, EnvelopeState};

/// Messages by content hash: how many of each.
pub type Contents = BTreeMap<u64, usize>;

/// Every message of `queue` by content, with how many share it.
pub fn contents(queue: &Path) -> Result<Contents> {
    Ok(messages_by_content(queue)?.into_iter().map(|(k, v)| (k, v.len())).collect())
}

/// The contents of the messages whose envelope sender is null (a todo's
/// or an info's).
pub fn null_sender_contents(queue: &Path) -> Result<BTreeSet<u64>> {
    let mut out = BTreeSet::new();
    for (k, states) in messages_by_content(queue)? {
        let null = states.iter().any(|s| match s {
            EnvelopeState::Todo { sender, .. } => sender.is_empty(),
            EnvelopeState::Preprocessed { sender: Some(s), .. } => s.is_empty(),
            _ => false,
        });
        if null {
            out.insert(k);
        }
    }
    Ok(out)
}

/// The contents of the messages that have a salvage record
/// (`lost+found/salvaged/N`, N naming a message of the queue).
pub fn salvaged_contents(queue: &Path, split: u32) -> Result<BTreeSet<u64>> {
    let dir = queue.join("lost+found/salvaged");
    let mut out = BTreeSet::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("list {}", dir.display()))?;
        let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else { continue };
        let mess = message_path(queue, Part::Mess, n, split, false);
        let data = std::fs::read(&mess).with_context(|| format!("record {n}: read {}", mess.display()))?;
        out.insert(hash_bytes(&data));
    }
    Ok(out)
}

/// What a bounce removal did, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// Real bounces that were in the queue after the repair (all gone now).
    pub bounces_removed: usize,
    /// Salvaged messages in the queue after the repair (all still there).
    pub salvaged_kept: usize,
    /// Messages left in the queue.
    pub left: usize,
}

/// Checks that going from `repaired` to `after` removed exactly the real
/// bounces: the messages whose content was null-sender before the damage
/// (`bounces`) and that are not salvaged (`salvaged`: a bounce whose info
/// was lost cannot be told from any other salvaged message, and is kept).
pub fn check_removal(
    bounces: &BTreeSet<u64>,
    salvaged: &BTreeSet<u64>,
    repaired: &Contents,
    after: &Contents,
) -> std::result::Result<Removal, String> {
    let mut errors = Vec::new();
    let mut removed = 0;
    let mut left = 0;
    for (k, n) in repaired {
        let real_bounce = bounces.contains(k) && !salvaged.contains(k);
        let now = after.get(k).copied().unwrap_or(0);
        if real_bounce {
            removed += n;
            if now != 0 {
                errors.push(format!("bounce {k:016x}: still queued ({now})"));
            }
        } else {
            left += n;
            if now != *n {
                let what = if salvaged.contains(k) { "salvaged message" } else { "message" };
                errors.push(format!("{what} {k:016x}: {n} before, {now} after the removal"));
            }
        }
    }
    for k in after.keys() {
        if !repaired.contains_key(k) {
            errors.push(format!("message {k:016x}: appeared"));
        }
    }
    let kept = salvaged.iter().filter(|k| repaired.contains_key(k)).count();
    if errors.is_empty() {
        Ok(Removal { bounces_removed: removed, salvaged_kept: kept, left })
    } else {
        Err(errors.join("\n"))
    }
}
