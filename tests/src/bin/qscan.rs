//! qscan: runs the library's streaming scanner over a queue and prints what
//! it counted, for measuring the scanner alone (benchmarks).

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use qcommon::safe_fs::{Dir, SymlinkBehavior};
use qcommon::scan::{scan, ScanEvent, ScanLayout, ScanOptions};

/// Scan a queue with qcommon's scanner and print the totals.
#[derive(Debug, Parser)]
struct Args {
    /// The queue directory.
    queue: PathBuf,
    /// conf-split.
    #[arg(long, default_value_t = 23)]
    split: u32,
    /// todo and intd are split.
    #[arg(long)]
    big_todo: bool,
    /// Threads that stat and read.
    #[arg(long, default_value_t = qcommon::scan::DEFAULT_THREADS)]
    threads: usize,
    /// Messages per unit of work handed to a thread.
    #[arg(long, default_value_t = 128)]
    chunk: usize,
    /// Do not stat message files.
    #[arg(long)]
    no_stat: bool,
    /// Do not read envelopes.
    #[arg(long)]
    no_read: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let root = Dir::open(&a.queue, SymlinkBehavior::Follow)?;
    let opts =
        ScanOptions { threads: a.threads, stat: !a.no_stat, read_envelopes: !a.no_read, chunk: a.chunk, depth: None };
    let t = Instant::now();
    let (mut files, mut envelopes_ok) = (0u64, 0u64);
    let summary = scan(&root, ScanLayout { split: a.split, big_todo: a.big_todo }, &opts, &mut |ev| {
        if let ScanEvent::Message(m) = ev {
            files += m.all_files().count() as u64;
            envelopes_ok += [m.info.as_ref().map(|r| r.is_ok()), m.todo.as_ref().map(|r| r.is_ok())]
                .into_iter()
                .flatten()
                .filter(|ok| *ok)
                .count() as u64;
        }
    })?;
    println!(
        "messages {} files {} valid info/todo {} strays {} errors {} in {:.2} s",
        summary.messages,
        files,
        envelopes_ok,
        summary.strays,
        summary.errors,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
