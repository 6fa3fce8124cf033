//! The changes qkillns makes, as qcommon's mutator steps: this module owns
//! which steps a selected message gets (removal, or the backdating of
//! `--expire`) and qmail-send's `queuelifetime`.
//!
//! Removal is `qcommon::remove::removal_action`: every file of the
//! message, in the order todo, intd, bounce, local, remote, info, mess,
//! each unlink checked against the inode the scan saw. Expiry is one
//! `SetMtime` of the info file to now − queuelifetime − 1 hour, refused by
//! the mutator when the info file has more than one link (it may be linked
//! from outside the queue, and a time stamp belongs to the inode).

use std::path::Path;

use qcommon::mutator::{Action, Step};
use qcommon::queue::Part;
use qcommon::remove::{expect_of, removal_action};
use qcommon::scan::ScannedMessage;

/// qmail-send's default `queuelifetime` (seconds).
pub const DEFAULT_QUEUELIFETIME: u64 = qcommon::lifetime::DEFAULT_LIFETIME;

/// How far past queuelifetime `--expire` backdates.
pub const EXPIRE_MARGIN: i64 = 3_600;

/// The removal of `msg`, with the size of each unlinked file (from the
/// scan) beside each step.
pub fn removal(msg: &ScannedMessage) -> (Action, Vec<u64>) {
    let action = removal_action(msg);
    let sizes = action
        .steps
        .iter()
        .map(|s| {
            msg.all_files().find(|f| f.rel_path(msg.number) == s.path()).and_then(|f| f.stat).map_or(0, |st| st.size)
        })
        .collect();
    (action, sizes)
}

/// What `--expire` does to one message.
#[derive(Debug)]
pub enum Expiry {
    /// Backdate the info file.
    Set(Action),
    /// The info time stamp is already at or before the target: nothing to
    /// change (setting it would make the message younger).
    AlreadyPast,
    /// The scan has no stat of the info file.
    NoInfo,
}

/// The backdating of `msg`'s info file to `target`.
pub fn expiry(msg: &ScannedMessage, target: i64) -> Expiry {
    let Some(info) = msg.file(Part::Info) else {
        return Expiry::NoInfo;
    };
    let (Some(st), Some(expect)) = (info.stat, expect_of(info, 1)) else {
        return Expiry::NoInfo;
    };
    if st.mtime <= target {
        return Expiry::AlreadyPast;
    }
    Expiry::Set(Action {
        message: Some(msg.number),
        steps: vec![Step::SetMtime { path: info.rel_path(msg.number), expect, mtime: target }],
    })
}

/// The info time stamp `--expire` sets: now − queuelifetime − 1 hour.
pub fn expire_target(now: i64, queuelifetime: u64) -> i64 {
    now.saturating_sub(i64::try_from(queuelifetime).unwrap_or(i64::MAX)).saturating_sub(EXPIRE_MARGIN)
}

/// Where the queuelifetime came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetime {
    /// Seconds.
    pub seconds: u64,
    /// Where it came from, for the report.
    pub source: String,
    /// The same as a code: `file` or `default` (docs/json.md).
    pub source_code: &'static str,
    /// A warning to print, when something was not right.
    pub warning: Option<String>,
}

/// Reads `control/queuelifetime` as qmail-send does
/// ([`qcommon::lifetime`]: the first line's leading digits; a missing
/// file, or a line without leading digits, gives the default 604800).
/// `None` for the path means qmail's home is not known.
pub fn queuelifetime(path: Option<&Path>) -> Lifetime {
    let (l, warning) = qcommon::lifetime::read_lifetime_file(path);
    Lifetime { seconds: l.seconds, source: l.source_text(), source_code: l.source_code(), warning }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_is_read_as_qmail_reads_it() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("queuelifetime");
        assert_eq!(queuelifetime(Some(&p)).seconds, DEFAULT_QUEUELIFETIME);
        std::fs::write(&p, "1209600\n").unwrap();
        let l = queuelifetime(Some(&p));
        assert_eq!(l.seconds, 1_209_600);
        assert!(l.source.contains("queuelifetime"));
        std::fs::write(&p, "3600 # an hour\n").unwrap();
        assert_eq!(queuelifetime(Some(&p)).seconds, 3600);
        std::fs::write(&p, "").unwrap();
        assert_eq!(queuelifetime(Some(&p)).seconds, DEFAULT_QUEUELIFETIME);
        std::fs::write(&p, "week\n").unwrap();
        assert_eq!(queuelifetime(Some(&p)).seconds, DEFAULT_QUEUELIFETIME);
        assert_eq!(queuelifetime(None).seconds, DEFAULT_QUEUELIFETIME);
    }

    #[test]
    fn target_is_past_the_lifetime() {
        assert_eq!(expire_target(1_000_000, 604_800), 1_000_000 - 604_800 - 3600);
        assert_eq!(expire_target(0, u64::MAX), i64::MIN);
    }
}
