//! qfixq's test fixtures and runs: a practice queue built with qmail's
//! ids from a seed and damaged, with a directory for the trap damages'
//! canaries; qfixq run on it (found by [`crate::runner::tool`]); and the
//! checks that a run left everything as it was.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::damage::{apply_damage, Damage, DamageReport};
use crate::ids::{IDS, IDS_ARG};
use crate::runner::{cmd, tool, Invocation};
use crate::scratch::scratch;
use crate::snapshot::{atimes, snapshot, Snapshot};
use crate::{build_queue, BuildSpec, BuiltQueue};

/// Reference time of every build, so that two builds with one seed hold
/// the same mail.
pub const NOW: i64 = 1_760_000_000;

/// A built (and maybe damaged) queue in a scratch directory, with the
/// directory where trap damages put their canaries.
#[derive(Debug)]
pub struct Fixture {
    /// Holds everything; removed on drop.
    pub tmp: tempfile::TempDir,
    /// What the builder made.
    pub built: BuiltQueue,
    /// Canaries outside the queue.
    pub outside: PathBuf,
    /// What each damage did.
    pub reports: Vec<DamageReport>,
}

impl Fixture {
    /// The queue directory.
    pub fn queue(&self) -> &Path {
        &self.built.queue
    }

    /// Its split.
    pub fn split(&self) -> u32 {
        self.built.spec_split
    }

    /// Whether todo and intd are split.
    pub fn big_todo(&self) -> bool {
        self.built.big_todo
    }
}

/// Builds a queue of `messages` with qmail's ids and applies `damages`;
/// on tmpfs, unless a damage renumbers (see [`crate::scratch`]).
pub fn build(messages: usize, split: u32, big_todo: bool, seed: u64, damages: &[Damage]) -> Fixture {
    let renumbers = damages.iter().any(|d| matches!(d, Damage::CopiedToOtherFs | Damage::CopiedToOtherFsBrokenLinks));
    build_in(scratch(!renumbers), messages, split, big_todo, seed, damages)
}

/// Builds as [`build`] does, but says which damage could not be applied
/// (some damages do not compose: one may remove what another needs).
pub fn try_build(
    messages: usize,
    split: u32,
    big_todo: bool,
    seed: u64,
    damages: &[Damage],
) -> Result<Fixture, Damage> {
    let renumbers = damages.iter().any(|d| matches!(d, Damage::CopiedToOtherFs | Damage::CopiedToOtherFsBrokenLinks));
    let tmp = scratch(!renumbers);
    let spec = BuildSpec { messages, split, big_todo, seed, ids: Some(IDS), now: NOW, ..BuildSpec::default() };
    let built = build_queue(&tmp.path().join("queue"), &spec).expect("build queue");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).expect("mkdir outside");
    let mut reports = Vec::new();
    for d in damages {
        reports.push(apply_damage(&built, *d, seed, &outside).map_err(|_| *d)?);
    }
    Ok(Fixture { tmp, built, outside, reports })
}

/// Builds as [`build`] does, in `tmp`.
pub fn build_in(
    tmp: tempfile::TempDir,
    messages: usize,
    split: u32,
    big_todo: bool,
    seed: u64,
    damages: &[Damage],
) -> Fixture {
    let spec = BuildSpec { messages, split, big_todo, seed, ids: Some(IDS), now: NOW, ..BuildSpec::default() };
    let built = build_queue(&tmp.path().join("queue"), &spec).expect("build queue");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).expect("mkdir outside");
    let reports = damages
        .iter()
        .map(|d| apply_damage(&built, *d, seed, &outside).unwrap_or_else(|e| panic!("damage {}: {e:#}", d.name())))
        .collect();
    Fixture { tmp, built, outside, reports }
}

/// One run of qfixq (through [`crate::runner`]).
#[derive(Debug)]
pub struct Run {
    /// The arguments after `--queue Q --ids I`.
    pub args: Vec<String>,
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

impl Run {
    /// The exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed it.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Standard output, lossy.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error, lossy.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Steps a live run carried out (its `done:` lines).
    pub fn done_steps(&self) -> usize {
        self.out().lines().filter(|l| l.starts_with("  done: ")).count()
    }

    /// Everything about the run, for a failure message.
    pub fn show(&self) -> String {
        let cut = |s: String| {
            if s.len() > 12_000 {
                let mut k = s.len() - 12_000;
                while !s.is_char_boundary(k) {
                    k += 1;
                }
                format!("[...]{}", &s[k..])
            } else {
                s
            }
        };
        format!(
            "qfixq {:?}: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.status,
            cut(self.out()),
            cut(self.err())
        )
    }

    /// Panics unless it exited with `code`.
    pub fn expect(&self, code: i32, what: &str) -> &Run {
        assert_eq!(self.code(), Some(code), "{what}: expected exit {code}\n{}", self.show());
        self
    }
}

/// The qfixq command for `queue`, with qmail's ids given.
pub fn command(queue: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(tool("qfixq"));
    cmd.arg("--queue").arg(queue).arg("--ids").arg(IDS_ARG).args(args);
    cmd.env_remove("QTOOLS_ABORT_AFTER_STEP").timeout(Duration::from_secs(120));
    cmd
}

/// The path of the qfixq binary (for runs we must signal ourselves).
pub fn binary() -> PathBuf {
    tool("qfixq")
}

/// Runs qfixq on `queue` with `args`.
pub fn qfixq(queue: &Path, args: &[&str]) -> Run {
    qfixq_env(queue, args, &[])
}

/// Runs qfixq on `queue` with `args` and extra environment.
pub fn qfixq_env(queue: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_with_env(invocation(queue, args), args, env)
}

/// The qfixq run on `queue` with qmail's ids given and a time limit of
/// two minutes, for [`run_with_env`] (a test adds its own arguments).
pub fn invocation(queue: &Path, args: &[&str]) -> Invocation {
    qfixq_invocation().arg("--queue").arg(queue).arg("--ids").arg(IDS_ARG).args(args)
}

/// qfixq with a time limit of two minutes and the inherited descriptor
/// limit (re-bucketing to a large split holds more than 1024 open).
pub fn qfixq_invocation() -> Invocation {
    cmd("qfixq").timeout(Duration::from_secs(120)).inherit_max_files()
}

/// Runs a prepared qfixq invocation through the runner with extra
/// environment; `args` name the run in failure messages.
pub fn run_with_env(mut inv: Invocation, args: &[&str], env: &[(&str, &str)]) -> Run {
    for (k, v) in env {
        inv = inv.env(k, v);
    }
    let r = inv.run();
    let status = match (r.code, r.signal) {
        (Some(code), _) => ExitStatus::from_raw((code & 0xff) << 8),
        (None, Some(sig)) => ExitStatus::from_raw(sig & 0x7f),
        (None, None) => panic!("qfixq ended without an exit code or a signal\n{}", r.show()),
    };
    Run { args: args.iter().map(|s| s.to_string()).collect(), status, stdout: r.stdout, stderr: r.stderr }
}

/// Panics listing `errors` when there are any.
pub fn assert_none(errors: &[String], what: &str, run: Option<&Run>) {
    if !errors.is_empty() {
        let shown: Vec<&String> = errors.iter().take(40).collect();
        panic!(
            "{what}: {} problems:\n  {}\n{}",
            errors.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            run.map(Run::show).unwrap_or_default()
        );
    }
}

/// Panics with the differences when two snapshots differ.
pub fn assert_same(a: &Snapshot, b: &Snapshot, what: &str, run: Option<&Run>) {
    let d = a.diff(b);
    assert_none(&d, what, run);
}

/// A snapshot, its file access times, and the canaries outside: the
/// state a read-only run must leave exactly as it is.
#[derive(Debug)]
pub struct Frozen {
    /// The queue.
    pub queue: Snapshot,
    /// The outside directory.
    pub outside: Snapshot,
    /// Access times of the queue's and the outside regular files.
    pub atimes: BTreeMap<PathBuf, i128>,
}

/// Records `fx` (access times first: the snapshot reads with O_NOATIME,
/// but nothing is left to chance).
pub fn freeze(fx: &Fixture) -> Frozen {
    let mut atimes = atimes(fx.queue(), false);
    atimes.extend(self::atimes(&fx.outside, false));
    Frozen { queue: snapshot(fx.queue()), outside: snapshot(&fx.outside), atimes }
}

/// Panics unless `fx` is exactly as `f` recorded it.
pub fn assert_frozen(fx: &Fixture, f: &Frozen, what: &str, run: Option<&Run>) {
    let now = freeze(fx);
    assert_same(&f.queue, &now.queue, &format!("{what}: the queue changed"), run);
    assert_same(&f.outside, &now.outside, &format!("{what}: a canary outside the queue changed"), run);
    let mut d = Vec::new();
    for (p, t) in &f.atimes {
        match now.atimes.get(p) {
            Some(u) if u != t => d.push(format!("atime of {} {t} -> {u}", p.display())),
            _ => {}
        }
    }
    assert_none(&d, &format!("{what}: access times changed"), run);
}
