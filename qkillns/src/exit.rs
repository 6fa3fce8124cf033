//! The exit status of qkillns (docs/repair-policy.md): this module owns the
//! numbers and how several outcomes combine into one.
//!
//! - 0: the run completed, also when nothing matched and when some
//!   messages could not be read (those are reported on stderr and left
//!   alone; they are not an operational error of the run).
//! - 4: the run completed, but part of the queue could not be read (a
//!   directory of it could not be listed; each error is on stderr and the
//!   messages there were not looked at). The same number as qfixq's and
//!   qstat's for the same thing.
//! - 8: operational error: qmail-send holds the lock, another process works
//!   in the queue, the queue cannot be read, a removal or time-stamp step
//!   failed (the message is named on stderr), a message number given is no
//!   message of the queue, or qmail-send could not be signalled.
//! - 16: usage error (bad option, regular expression or duration).

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// The run completed.
    Done,
    /// The run completed, but part of the queue could not be read: a
    /// directory, or a message (left alone).
    Incomplete,
    /// Operational error.
    Operational,
    /// Usage error.
    Usage,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Done => 0,
            ExitCode::Incomplete => 4,
            ExitCode::Operational => 8,
            ExitCode::Usage => 16,
        }
    }

    /// The more serious of two outcomes.
    pub fn worst(self, other: ExitCode) -> ExitCode {
        self.max(other)
    }
}

impl qcommon::cli::ToolExit for ExitCode {
    const TOOL: &'static str = "qkillns";
    const SUCCESS: Self = ExitCode::Done;
    const USAGE: Self = ExitCode::Usage;
    const OPERATIONAL: Self = ExitCode::Operational;
    fn code(self) -> u8 {
        ExitCode::code(self)
    }
}

qcommon::exit_code_into_process!(ExitCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_policy() {
        assert_eq!(ExitCode::Done.code(), 0);
        assert_eq!(ExitCode::Incomplete.code(), 4);
        assert_eq!(ExitCode::Operational.code(), 8);
        assert_eq!(ExitCode::Usage.code(), 16);
    }

    #[test]
    fn worst_wins() {
        assert_eq!(ExitCode::Done.worst(ExitCode::Operational), ExitCode::Operational);
        assert_eq!(ExitCode::Operational.worst(ExitCode::Done), ExitCode::Operational);
        assert_eq!(ExitCode::Usage.worst(ExitCode::Operational), ExitCode::Usage);
        assert_eq!(ExitCode::Done.worst(ExitCode::Done), ExitCode::Done);
        assert_eq!(ExitCode::Done.worst(ExitCode::Incomplete), ExitCode::Incomplete);
        assert_eq!(ExitCode::Incomplete.worst(ExitCode::Operational), ExitCode::Operational);
        assert_eq!(std::process::ExitCode::from(ExitCode::Incomplete), std::process::ExitCode::from(4));
    }
}
