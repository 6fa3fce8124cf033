//! `qbench`: the one command that reproduces every performance figure of
//! the queue tools, each beside its classic counterpart.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/qbench [--sizes 10k,100k,1m] [--runs 5] [--dir /work/bench-queues]
//!                       [--cases qstat,detail,check,live-copy,live-owners,killns]
//!                       [--huge-runs 3] [--cold] [--cold-runs 3] [--cold-sizes 100k] [--strace 100k]
//!                       [--wait-quiet] [--baseline-bin DIR] [--markdown FILE]
//! ```
//!
//! Practice queues are built once with the builder library and kept under
//! `--dir` (see `bench/queues.rs`); destructive cases get a freshly built
//! queue per run, and their floors (`qfloor`, the system calls the job
//! cannot avoid) one of their own. The cold check runs beside its floor,
//! `qfloor walk` (what the check reads, judging nothing) at 1, 2, 4, 8 and
//! 16 readers, and is measured against the fastest. `--baseline-bin` runs a second build of
//! the tools beside ours, in alternation. Each command runs as a child
//! reaped with `wait4`, stdout to /dev/null (see `bench/measure.rs`); the
//! report ends with each command's peak RSS per size and the bytes per
//! message it grows by.

#[path = "../bench/cases.rs"]
mod cases;
#[path = "../bench/measure.rs"]
mod measure;
#[path = "../bench/queues.rs"]
mod queues;
#[path = "../bench/renamed.rs"]
mod renamed;
#[path = "../bench/report.rs"]
mod report;
#[path = "../bench/syscalls.rs"]
mod syscalls;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;

use cases::{Case, Ctx, Group, Tools, CASE_NAMES};
use queues::Size;

/// Benchmark qstat, qfixq and qkillns against their classic counterparts
/// on practice queues of 10k to 1M messages.
#[derive(Debug, Parser)]
#[command(name = "qbench", version)]
struct Args {
    /// Queue sizes (messages): 10k, 100k, 1m or plain numbers.
    #[arg(long, value_delimiter = ',', value_parser = Size::parse, default_value = "10k,100k,1m")]
    sizes: Vec<Size>,
    /// Measured runs per command (after one warm-up run, none at 1M); destructive
    /// cases run once at 1M messages.
    #[arg(long, value_name = "N", default_value_t = 5)]
    runs: usize,
    /// Where the practice queues are kept (DIR/<size>/queue) and scratch
    /// queues made.
    #[arg(long, value_name = "DIR", default_value = "/work/bench-queues")]
    dir: PathBuf,
    /// Cases to run (killns: qkillns -n and removal; killns-n: -n only; list: qstat --list beside qstat --detail).
    #[arg(long, value_delimiter = ',', value_parser = parse_case,
          default_value = "qstat,detail,check,live-copy,live-owners,killns")]
    cases: Vec<&'static [Case]>,
    /// Also run the cold-cache variant (root only): the page cache dropped
    /// before every run of every command.
    #[arg(long)]
    cold: bool,
    /// Measured runs per non-destructive command at 1M messages and more
    /// (each takes one to three minutes there).
    #[arg(long, value_name = "N", default_value_t = 3)]
    huge_runs: usize,
    /// Runs per command in the cold variant (one at 1M messages).
    #[arg(long, value_name = "N", default_value_t = 3)]
    cold_runs: usize,
    /// Sizes for the cold variant (default: --sizes).
    #[arg(long, value_delimiter = ',', value_parser = Size::parse)]
    cold_sizes: Option<Vec<Size>>,
    /// Count system calls per message under `strace -f -c` at this size.
    #[arg(long, value_name = "SIZE", value_parser = Size::parse)]
    strace: Option<Size>,
    /// Skip the warm cases (run only --cold and --strace).
    #[arg(long)]
    no_warm: bool,
    /// Before measuring, wait (up to 20 minutes, polling every 30 s) for
    /// the 1-minute load average to drop below 1.5.
    #[arg(long)]
    wait_quiet: bool,
    /// Directory holding qstat, qfixq and qkillns (default: this program's);
    /// they are copied to DIR/bin and run from there.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Directory holding a second build of qstat, qfixq and qkillns (the
    /// code before a change): run beside ours in the same run, in
    /// alternation, for new ÷ baseline ratios. Copied to DIR/baseline-bin.
    #[arg(long, value_name = "DIR")]
    baseline_bin: Option<PathBuf>,
    /// Also write the report as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

fn parse_case(s: &str) -> Result<&'static [Case], String> {
    CASE_NAMES.iter().find(|(n, _)| *n == s).map(|(_, c)| *c).ok_or_else(|| {
        let names: Vec<&str> = CASE_NAMES.iter().map(|(n, _)| *n).collect();
        format!("unknown case {s:?} (one of {})", names.join(", "))
    })
}

fn log(s: &str) {
    let _ = writeln!(io::stderr(), "qbench: {s}");
}

fn now_utc() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (y, mo, d, h, mi, s, _) = qtests::content::civil(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
        .unwrap_or(0);
    format!("{cpus} CPUs, {:.0} GB RAM, Linux {}", mem as f64 / 1048576.0, kernel.trim())
}

fn warm_cache_notes(groups: &mut [Group]) {
    for g in groups.iter_mut().filter(|g| !g.cold) {
        for s in g.ours.iter().chain(std::iter::once(&g.reference)).chain(&g.floor).chain(&g.baseline) {
            let st = report::Stats::of(s);
            if st.disk_mb >= 1.0 {
                let line =
                    format!("{}: {:.0} MB per run came from storage (median): partly cold", s.cmd.label, st.disk_mb);
                g.notes.push(line);
            }
        }
    }
}

struct Out(io::Stdout);

impl Out {
    fn say(&mut self, s: &str) {
        if let Err(e) = self.0.lock().write_all(s.as_bytes()) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            log(&format!("stdout: {e}"));
        }
    }
}

fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let own_dir = std::env::current_exe()?.parent().map(Path::to_path_buf).context("no directory of qbench")?;
    let bin = args.bin_dir.clone().unwrap_or_else(|| own_dir.clone());
    std::fs::create_dir_all(&args.dir).with_context(|| format!("mkdir -p {}", args.dir.display()))?;
    // The binaries are copied first, so that a rebuild during a long run
    // cannot swap the tool being measured half way.
    let snapshot = args.dir.join("bin");
    copy_tools(&bin, &["qstat", "qfixq", "qkillns"], &snapshot, "--bin-dir")?;
    copy_tools(&own_dir, &["qfloor"], &snapshot, "qbench's own directory")?;
    let baseline = match &args.baseline_bin {
        Some(b) => {
            let to = args.dir.join("baseline-bin");
            copy_tools(b, &["qstat", "qfixq", "qkillns"], &to, "--baseline-bin")?;
            Some(to)
        }
        None => None,
    };
    let qfloor = snapshot.join("qfloor");
    let bin = snapshot;
    let root = nix::unistd::geteuid().is_root();
    if args.cold && !root {
        bail!("--cold drops the page cache: root only");
    }
    if args.runs == 0 || args.cold_runs == 0 || args.huge_runs == 0 {
        bail!("--runs, --huge-runs and --cold-runs must be at least 1");
    }
    let mut sizes = args.sizes.clone();
    sizes.sort();
    sizes.dedup();
    let mut selected: Vec<Case> = args.cases.iter().flat_map(|c| c.iter().copied()).collect();
    selected.dedup();
    let ids = format!("{0}:{0}:{0}:{1}", nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    let tools = Tools { bin, ids, qfloor, baseline };
    queues::clear_scratch(&args.dir)?;
    let mut logf = |s: &str| log(s);

    // Every kept queue first (building is the heavy part), then measure.
    let cold_sizes = args.cold_sizes.clone().unwrap_or_else(|| sizes.clone());
    let mut all_sizes: Vec<Size> = sizes.iter().chain(&cold_sizes).chain(args.strace.iter()).copied().collect();
    all_sizes.sort();
    all_sizes.dedup();
    for &size in &all_sizes {
        for mix in [queues::Mix::Default, queues::Mix::NullSender10] {
            if selected.iter().any(|c| !c.destructive() && c.mix() == mix) {
                queues::base(&args.dir, size, mix, &mut logf)?;
            }
        }
    }
    if args.wait_quiet {
        measure::wait_quiet(1.5, Duration::from_secs(20 * 60), &mut logf);
    }
    let load_start = measure::loadavg();
    let date = now_utc();
    let mut groups: Vec<Group> = Vec::new();
    let mut cx = Ctx { tools: &tools, dir: &args.dir, runs: args.runs, log: &mut logf };
    let warm_sizes: &[Size] = if args.no_warm { &[] } else { &sizes };
    for &size in warm_sizes {
        cx.runs = if size.is_huge() { args.huge_runs } else { args.runs };
        for &case in &selected {
            log(&format!("{} {}", size.label(), case.name()));
            let g = if case.destructive() {
                cases::destructive(&mut cx, case, size)?
            } else {
                let q = cases::base_queue(&mut cx, case, size)?;
                cases::warm(&mut cx, case, size, &q)?
            };
            log(&format!("done (load {:.2}):\n{}", g.load, report::text(&[&g])));
            groups.push(g);
        }
    }
    if args.cold {
        cx.runs = args.cold_runs;
        for &size in &cold_sizes {
            for &case in selected.iter().filter(|c| c.cold_applies()) {
                log(&format!("{} {} (cold)", size.label(), case.name()));
                let q = cases::base_queue(&mut cx, case, size)?;
                let g = cases::cold(&mut cx, case, size, &q)?;
                log(&format!("done (load {:.2}):\n{}", g.load, report::text(&[&g])));
                groups.push(g);
            }
        }
    }
    let mut straced = Vec::new();
    if let Some(size) = args.strace {
        let scratch = args.dir.join("scratch");
        std::fs::create_dir_all(&scratch)?;
        for &case in selected.iter().filter(|c| !c.destructive()) {
            let q = cases::base_queue(&mut cx, case, size)?;
            let mut cmds = vec![case.ours(&tools, &q, false).expect("every case has our tool")];
            if matches!(case, Case::Qstat | Case::Check) {
                cmds.push(case.reference(&tools, &q));
            }
            for c in &cmds {
                log(&format!("strace -c {}", c.label));
                let s = syscalls::count(c, &scratch)?;
                log(&format!("{}: {} syscalls, {:?}", s.label, s.total, s.top));
                straced.push(s);
            }
        }
    }
    let load_end = measure::loadavg();
    queues::clear_scratch(&args.dir)?;
    warm_cache_notes(&mut groups);

    let warm: Vec<&Group> = groups.iter().filter(|g| !g.cold).collect();
    let cold: Vec<&Group> = groups.iter().filter(|g| g.cold).collect();
    let all: Vec<&Group> = groups.iter().collect();
    let targets = report::targets(&all, &sizes);
    let notes = report::notes(&all);
    let comparisons = report::comparisons(&all);
    let loads = format!(
        "load average at start {:.2} {:.2} {:.2}, at end {:.2} {:.2} {:.2}; {}",
        load_start[0],
        load_start[1],
        load_start[2],
        load_end[0],
        load_end[1],
        load_end[2],
        report::loads(&all)
    );

    let mut out = Out(io::stdout());
    let mut t = String::new();
    let _ = writeln!(t, "qbench {date}: {}\n{loads}\n\nwarm cache:\n{}", machine(), report::text(&warm));
    if !cold.is_empty() {
        let _ = writeln!(t, "cold cache (page cache dropped before every run):\n{}", report::text(&cold));
    }
    for n in &notes {
        let _ = writeln!(t, "note: {n}");
    }
    for l in &targets {
        let _ = writeln!(t, "target: {l}");
    }
    for l in &comparisons {
        let _ = writeln!(t, "ratio: {l}");
    }
    if let Some(m) = report::memory_text(&warm) {
        let _ = writeln!(t, "\npeak RSS (warm; largest over the runs):\n{m}");
    }
    if let Some(size) = args.strace {
        let _ = writeln!(t, "\n{}", syscalls::markdown(size, &straced));
    }
    let _ = writeln!(t, "took {:.0} s", started.elapsed().as_secs_f64());
    out.say(&t);

    if let Some(path) = &args.markdown {
        let mut m = String::new();
        let _ = writeln!(m, "Measured {date} on {}.\n", machine());
        let _ = writeln!(m, "Command: `{command_line}`\n");
        let _ = writeln!(m, "Load: {loads}.\n");
        let _ = writeln!(m, "#### Warm cache\n\n{}", report::markdown(&warm));
        if !cold.is_empty() {
            let _ = writeln!(m, "#### Cold cache (page cache dropped before every run)\n\n{}", report::markdown(&cold));
        }
        if !notes.is_empty() {
            let _ = writeln!(m, "Notes:\n");
            for n in &notes {
                let _ = writeln!(m, "- {n}");
            }
            m.push('\n');
        }
        let _ = writeln!(m, "Targets:\n");
        for l in &targets {
            let _ = writeln!(m, "- {l}");
        }
        if !comparisons.is_empty() {
            let _ = writeln!(m, "\nAgainst the floors and the baseline:\n");
            for l in &comparisons {
                let _ = writeln!(m, "- {l}");
            }
        }
        if let Some(t) = report::memory_markdown(&warm) {
            let _ = writeln!(m, "\n#### Peak RSS (warm; largest over the runs)\n\n{t}");
        }
        if let Some(size) = args.strace {
            let _ = writeln!(m, "\n#### System calls\n\n{}", syscalls::markdown(size, &straced));
        }
        std::fs::write(path, m).with_context(|| format!("write {}", path.display()))?;
        log(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Copies the programs `names` from `from` to `to` (through a temporary
/// name, so that a rebuild during a long run cannot swap one half way).
fn copy_tools(from: &Path, names: &[&str], to: &Path, hint: &str) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("mkdir -p {}", to.display()))?;
    for t in names {
        let src = from.join(t);
        if !src.is_file() {
            bail!("{} missing: run `cargo build --release -p qtests -p qfixq -p qstat -p qkillns` first (or check {hint})", src.display());
        }
        let tmp = to.join(format!(".{t}.tmp"));
        std::fs::copy(&src, &tmp).with_context(|| format!("copy {} to {}", src.display(), tmp.display()))?;
        std::fs::rename(&tmp, to.join(t))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
