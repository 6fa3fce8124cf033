//! The exit status of qkillns (docs/repair-policy.md): this module owns the
//! numbers and how several outcomes combine into one.
//!
//! - 0: the run completed, also when nothing matched and when some
//!   messages could not be read (those are reported on stderr and left
//!   alone; they are not an operational error of the run).
//! - 8: operational error: qmail-send holds the lock, another process works
//!   in the queue, the queue or part of it cannot be read, a removal or
//!   time-stamp step failed (the message is named on stderr), or qmail-send
//!   could not be signalled.
//! - 16: usage error (bad option, regular expression or duration).

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// The run completed.
    Done,
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
            ExitCode::Operational => 8,
            ExitCode::Usage => 16,
        }
    }

    /// The more serious of two outcomes.
    pub fn worst(self, other: ExitCode) -> ExitCode {
        self.max(other)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_policy() {
        assert_eq!(ExitCode::Done.code(), 0);
        assert_eq!(ExitCode::Operational.code(), 8);
        assert_eq!(ExitCode::Usage.code(), 16);
    }

    #[test]
    fn worst_wins() {
        assert_eq!(ExitCode::Done.worst(ExitCode::Operational), ExitCode::Operational);
        assert_eq!(ExitCode::Operational.worst(ExitCode::Done), ExitCode::Operational);
        assert_eq!(ExitCode::Usage.worst(ExitCode::Operational), ExitCode::Usage);
        assert_eq!(ExitCode::Done.worst(ExitCode::Done), ExitCode::Done);
    }
}
