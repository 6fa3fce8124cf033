//! `cargo run -p xtask -- <task>`: the project's chores.
//!
//! - `gen` writes the man pages (`docs/man/*.8`) and the shell completions
//!   (`completions/<tool>.{bash,zsh,fish}`) from each tool's clap command
//!   (`qfixq::command()`, `qstat::command()`, `qkillns::command()`), so they
//!   cannot say anything the binaries do not do.
//! - `check` generates into a temporary directory and fails when the
//!   checked-in files differ (CI runs it).
//!
//! Modules: [`pages`] holds what clap does not know (exit statuses, files,
//! examples, see also), [`man`] renders a man page, [`generate`] lists and
//! writes every generated file.

mod generate;
mod man;
mod pages;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The project's chores.
#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write the man pages and shell completions into the source tree.
    Gen {
        /// Write below this directory instead of the workspace root.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Fail when the checked-in man pages or completions differ from what `gen` writes.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = generate::workspace_root();
    let result = match cli.task {
        Task::Gen { out } => generate::write_all(out.as_deref().unwrap_or(&root)).map(|written| {
            for p in written {
                eprintln!("wrote {}", p.display());
            }
            true
        }),
        Task::Check => generate::check(&root),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
