//! qfixq's exit status, as docs/repair-policy.md gives it.

/// How a run of qfixq ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Nothing wrong.
    Clean,
    /// Problems found and all fixed.
    Fixed,
    /// Problems left unfixed (every check that finds any).
    Unfixed,
    /// Operational error: queue unreadable, qmail running, ids or split undecidable.
    Operational,
    /// Usage error.
    Usage,
    /// Interrupted by a signal.
    Interrupted,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Clean => 0,
            ExitCode::Fixed => 1,
            ExitCode::Unfixed => 4,
            ExitCode::Operational => 8,
            ExitCode::Usage => 16,
            ExitCode::Interrupted => 32,
        }
    }

    /// The more serious of two statuses (the larger number: fsck's order).
    pub fn worst(self, other: ExitCode) -> ExitCode {
        if other.code() > self.code() {
            other
        } else {
            self
        }
    }

    /// The status of a run from what it found and did.
    pub fn from_outcome(found: u64, unfixed: u64, live: bool) -> ExitCode {
        match (found, unfixed, live) {
            (0, 0, _) => ExitCode::Clean,
            (_, _, false) => ExitCode::Unfixed,
            (_, 0, true) => ExitCode::Fixed,
            _ => ExitCode::Unfixed,
        }
    }
}

impl qcommon::cli::ToolExit for ExitCode {
    const TOOL: &'static str = "qfixq";
    const SUCCESS: Self = ExitCode::Clean;
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
    fn codes_follow_the_policy() {
        let all = [
            ExitCode::Clean,
            ExitCode::Fixed,
            ExitCode::Unfixed,
            ExitCode::Operational,
            ExitCode::Usage,
            ExitCode::Interrupted,
        ];
        assert_eq!(all.map(ExitCode::code), [0, 1, 4, 8, 16, 32]);
        assert_eq!(std::process::ExitCode::from(ExitCode::Usage), std::process::ExitCode::from(16));
    }

    #[test]
    fn outcome_decides_status() {
        assert_eq!(ExitCode::from_outcome(0, 0, false), ExitCode::Clean);
        assert_eq!(ExitCode::Fixed.worst(ExitCode::Clean), ExitCode::Fixed);
        assert_eq!(ExitCode::Fixed.worst(ExitCode::Unfixed), ExitCode::Unfixed);
        assert_eq!(ExitCode::Interrupted.worst(ExitCode::Operational), ExitCode::Interrupted);
        assert_eq!(ExitCode::from_outcome(0, 0, true), ExitCode::Clean);
        assert_eq!(ExitCode::from_outcome(3, 3, false), ExitCode::Unfixed);
        assert_eq!(ExitCode::from_outcome(3, 0, true), ExitCode::Fixed);
        assert_eq!(ExitCode::from_outcome(3, 1, true), ExitCode::Unfixed);
    }
}
