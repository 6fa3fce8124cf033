//! `qkillns`: removes null-sender messages (bounces) from a qmail queue
//! while qmail-send is stopped, or, with `--expire`, lets a running
//! qmail-send give up on them itself. See `qkillns --help` and README.md.
//!
//! The binary only calls [`main_with_args`]; [`command`] is the single
//! source of the command line (help, man pages, completions).

pub mod args;
pub mod duration;
pub mod exit;
pub mod guard;
pub mod headers;
pub mod plan;
pub mod report;
pub mod run;
pub mod select;

pub use args::command;
pub use exit::ExitCode;

/// Parses `argv` (program name first) and runs.
pub fn main_with_args<I, T>(argv: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    qcommon::cli::limit_malloc_arenas();
    match args::parse(argv) {
        args::Parsed::Run(a) => run::run(&a),
        args::Parsed::Exit(code) => code,
    }
}
