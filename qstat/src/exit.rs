//! qstat's exit statuses: the ordinary ones, and in `--check` mode the four
//! of the Nagios/Icinga plugin guidelines. This module owns the numbers
//! and how two outcomes combine.

/// How a qstat run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Everything was counted and printed (and in `--check` mode: OK).
    Ok,
    /// `--check`: a WARNING threshold was crossed.
    Warning,
    /// `--check`: a CRITICAL threshold was crossed.
    Critical,
    /// `--check`: the state is unknown (queue unreadable, bad options).
    Unknown,
    /// The output was printed, but part of the queue could not be read
    /// (each error was printed to stderr): the counts may be low.
    Incomplete,
    /// Nothing could be counted: the queue is unreadable or is not a qmail
    /// queue, or its split could not be decided for `--detail`/`--top`.
    Operational,
    /// Bad command line (outside `--check` mode).
    Usage,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Warning => 1,
            ExitCode::Critical => 2,
            ExitCode::Unknown => 3,
            ExitCode::Incomplete => 4,
            ExitCode::Operational => 8,
            ExitCode::Usage => 16,
        }
    }

    /// The more serious of two outcomes (in `--check` mode UNKNOWN is
    /// worse than CRITICAL, as the plugin guidelines order them by code).
    pub fn worst(self, other: ExitCode) -> ExitCode {
        self.max(other)
    }

    /// The plugin state word for `--check` output.
    pub fn plugin_word(self) -> &'static str {
        match self {
            ExitCode::Ok => "OK",
            ExitCode::Warning => "WARNING",
            ExitCode::Critical => "CRITICAL",
            _ => "UNKNOWN",
        }
    }
}

impl qcommon::cli::ToolExit for ExitCode {
    const TOOL: &'static str = "qstat";
    const SUCCESS: Self = ExitCode::Ok;
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
    fn codes_are_the_documented_ones() {
        let all = [
            (ExitCode::Ok, 0),
            (ExitCode::Warning, 1),
            (ExitCode::Critical, 2),
            (ExitCode::Unknown, 3),
            (ExitCode::Incomplete, 4),
            (ExitCode::Operational, 8),
            (ExitCode::Usage, 16),
        ];
        for (c, n) in all {
            assert_eq!(c.code(), n, "{c:?}");
        }
    }

    #[test]
    fn worst_orders_by_seriousness() {
        assert_eq!(ExitCode::Ok.worst(ExitCode::Warning), ExitCode::Warning);
        assert_eq!(ExitCode::Critical.worst(ExitCode::Warning), ExitCode::Critical);
        assert_eq!(ExitCode::Critical.worst(ExitCode::Unknown), ExitCode::Unknown);
        assert_eq!(ExitCode::Incomplete.worst(ExitCode::Ok), ExitCode::Incomplete);
        assert_eq!(ExitCode::Incomplete.worst(ExitCode::Operational), ExitCode::Operational);
    }

    #[test]
    fn plugin_words() {
        assert_eq!(ExitCode::Ok.plugin_word(), "OK");
        assert_eq!(ExitCode::Warning.plugin_word(), "WARNING");
        assert_eq!(ExitCode::Critical.plugin_word(), "CRITICAL");
        assert_eq!(ExitCode::Unknown.plugin_word(), "UNKNOWN");
        assert_eq!(std::process::ExitCode::from(ExitCode::Usage), std::process::ExitCode::from(16));
    }
}
