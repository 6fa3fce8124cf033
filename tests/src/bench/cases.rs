//! The benchmark cases: each of our tools beside its classic counterpart
//! (or, where there is none, the reference the tool issue names), how to
//! run them, and the measuring loops: warm (pairs in alternation after a
//! warm-up), destructive (a fresh damaged queue per run) and cold (the page
//! cache dropped before every run).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use qtests::{apply_damage, BuiltQueue, Damage};

use crate::measure::{self, Sample};
use crate::queues::{self, Mix, Scratch, Size};

/// One case of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Default `qstat` against qmail-qstat's two `find | wc -l`.
    Qstat,
    /// `qstat --detail` against the stat-every-file `find` walk.
    Detail,
    /// `qfixq` check of a healthy queue against the same walk.
    Check,
    /// `qfixq live` after the copied-to-another-filesystem damage.
    LiveCopy,
    /// `qfixq live` after the bad-owners-and-modes damage.
    LiveOwners,
    /// `qkillns -n` against the qfixq check of the same queue.
    KillnsDry,
    /// `qstat --list` (every message, oldest first) against `qstat --detail`.
    List,
    /// `qkillns` (removal) against the qfixq check of the same queue.
    Killns,
}

/// The names `--cases` takes, and the cases each selects.
pub const CASE_NAMES: &[(&str, &[Case])] = &[
    ("qstat", &[Case::Qstat]),
    ("detail", &[Case::Detail]),
    ("check", &[Case::Check]),
    ("live-copy", &[Case::LiveCopy]),
    ("live-owners", &[Case::LiveOwners]),
    ("killns", &[Case::KillnsDry, Case::Killns]),
    ("killns-n", &[Case::KillnsDry]),
    ("list", &[Case::List]),
];

/// The stat-every-file walk (as a shell command on `q`).
fn find_walk(q: &Path) -> Vec<String> {
    sh(format!("find {} -type f -printf '%i %s %U %m\\n' | wc -l", shell_quote(q)))
}

fn sh(script: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script]
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Where our binaries are and the ids to give qfixq.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Directory of qstat, qfixq and qkillns (target/release).
    pub bin: PathBuf,
    /// `--ids` for qfixq: the caller's uid thrice and gid (practice queues
    /// are built without qmail's ids).
    pub ids: String,
}

impl Tools {
    fn tool(&self, name: &str, args: &[&str], q: &Path) -> Vec<String> {
        let mut v = vec![self.bin.join(name).display().to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        v.push("--queue".into());
        v.push(q.display().to_string());
        v
    }

    fn check(&self, q: &Path, extra: &[&str]) -> Vec<String> {
        let mut a = vec!["--ids", &self.ids];
        a.extend_from_slice(extra);
        self.tool("qfixq", &a, q)
    }
}

/// A command to measure, with the exit statuses that mean it worked.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// Short label for the tables.
    pub label: String,
    /// The argument vector.
    pub argv: Vec<String>,
    /// Exit statuses that count as success.
    pub ok: &'static [i32],
}

impl Case {
    /// The case's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Case::Qstat => "qstat",
            Case::Detail => "qstat --detail",
            Case::Check => "qfixq check",
            Case::LiveCopy => "qfixq live, copied",
            Case::LiveOwners => "qfixq live, owners",
            Case::KillnsDry => "qkillns -n",
            Case::Killns => "qkillns (removal)",
            Case::List => "qstat --list",
        }
    }

    /// Which practice queue the case runs on.
    pub fn mix(self) -> Mix {
        match self {
            Case::KillnsDry | Case::Killns => Mix::NullSender10,
            _ => Mix::Default,
        }
    }

    /// The damage a destructive case's fresh queue gets first.
    fn damage(self) -> Option<Damage> {
        match self {
            Case::LiveCopy => Some(Damage::CopiedToOtherFs),
            Case::LiveOwners => Some(Damage::BadOwnersModes),
            _ => None,
        }
    }

    /// Whether the case changes its queue (a fresh copy per run).
    pub fn destructive(self) -> bool {
        matches!(self, Case::LiveCopy | Case::LiveOwners | Case::Killns)
    }

    /// Whether the case reads message contents (the cold variant applies).
    pub fn cold_applies(self) -> bool {
        matches!(self, Case::Qstat | Case::Detail | Case::Check | Case::KillnsDry | Case::List)
    }

    /// Our tool on queue `q` (with `one_thread`: limited to one I/O thread,
    /// where the tool has such an option).
    pub fn ours(self, t: &Tools, q: &Path, one_thread: bool) -> Option<Cmd> {
        let (label, argv, ok): (&str, Vec<String>, &'static [i32]) = match (self, one_thread) {
            (Case::Qstat, false) => ("qstat", t.tool("qstat", &[], q), &[0]),
            (Case::Detail, false) => ("qstat --detail", t.tool("qstat", &["--detail"], q), &[0]),
            (Case::Detail, true) => {
                ("qstat --detail --threads 1", t.tool("qstat", &["--detail", "--threads", "1"], q), &[0])
            }
            (Case::Check, false) => ("qfixq", t.check(q, &[]), &[0]),
            (Case::Check, true) => ("qfixq --threads 1", t.check(q, &["--threads", "1"]), &[0]),
            (Case::LiveCopy | Case::LiveOwners, false) => ("qfixq live", t.check(q, &["live"]), &[0, 1]),
            (Case::KillnsDry, false) => ("qkillns -n", t.tool("qkillns", &["-n"], q), &[0]),
            (Case::KillnsDry, true) => {
                ("qkillns -n --threads 1", t.tool("qkillns", &["-n", "--threads", "1"], q), &[0])
            }
            (Case::Killns, false) => ("qkillns", t.tool("qkillns", &[], q), &[0]),
            (Case::List, false) => ("qstat --list", t.tool("qstat", &["--list"], q), &[0]),
            (Case::List, true) => ("qstat --list --threads 1", t.tool("qstat", &["--list", "--threads", "1"], q), &[0]),
            _ => return None,
        };
        Some(Cmd { label: label.into(), argv, ok })
    }

    /// The counterpart on queue `q`: the classic tool, or where there is
    /// none the reference the tool issue names (our own check for qkillns,
    /// the stat-every-file walk for a live repair).
    pub fn reference(self, t: &Tools, q: &Path) -> Cmd {
        match self {
            Case::Qstat => Cmd {
                label: "qmail-qstat (find|wc)".into(),
                argv: sh(format!("cd {} && find mess/* -type f | wc -l; find todo -type f | wc -l", shell_quote(q))),
                ok: &[0],
            },
            Case::Detail | Case::Check | Case::LiveCopy | Case::LiveOwners => {
                Cmd { label: "find -printf walk".into(), argv: find_walk(q), ok: &[0] }
            }
            Case::KillnsDry | Case::Killns => Cmd { label: "qfixq check".into(), argv: t.check(q, &[]), ok: &[0] },
            Case::List => Cmd { label: "qstat --detail".into(), argv: t.tool("qstat", &["--detail"], q), ok: &[0] },
        }
    }
}

/// The measured runs of one command.
#[derive(Debug, Clone)]
pub struct Series {
    /// What ran.
    pub cmd: Cmd,
    /// One sample per measured run.
    pub samples: Vec<Sample>,
}

/// One case at one size: our tool, its counterpart, measured in
/// alternation.
#[derive(Debug, Clone)]
pub struct Group {
    /// Messages in the queue.
    pub size: Size,
    /// The case.
    pub case: Case,
    /// Warm, or cold (page cache dropped before each run).
    pub cold: bool,
    /// Our tool (and, cold, our tool limited to one thread).
    pub ours: Vec<Series>,
    /// The counterpart.
    pub reference: Series,
    /// 1-minute load average before the group ran.
    pub load: f64,
    /// Notes for the reader (runs reduced, options missing...).
    pub notes: Vec<String>,
}

/// Runs `cmd` once, checking its exit status.
fn run_checked(cmd: &Cmd, scratch: &Path) -> Result<Sample> {
    let err = scratch.join("stderr");
    let s = measure::run(&cmd.argv, &err)?;
    if !cmd.ok.contains(&s.status) {
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        let head: String = text.lines().take(5).collect::<Vec<_>>().join(" | ");
        bail!("{} exited {}: {}", cmd.argv.join(" "), s.status, head);
    }
    Ok(s)
}

/// What the loops need to know besides the case.
pub struct Ctx<'a> {
    /// Binaries and ids.
    pub tools: &'a Tools,
    /// The queue directory (`--dir`).
    pub dir: &'a Path,
    /// Measured runs per command.
    pub runs: usize,
    /// Progress lines go here.
    pub log: &'a mut dyn FnMut(&str),
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("tools", self.tools).field("dir", &self.dir).field("runs", &self.runs).finish()
    }
}

/// A warm group on a kept queue: one warm-up of each command (none at 1M
/// messages), then `runs` pairs, ours first, in alternation.
pub fn warm(cx: &mut Ctx<'_>, case: Case, size: Size, q: &Path) -> Result<Group> {
    let ours = case.ours(cx.tools, q, false).expect("every case has our tool");
    let reference = case.reference(cx.tools, q);
    let load = measure::loadavg()[0];
    let scratch = scratch_dir(cx.dir)?;
    // At 1M messages a warm-up buys nothing: this machine drops cached
    // file contents after about a minute unused, and a 12 GB queue does
    // not stay cached between two runs anyway.
    let warm_up = !size.is_huge();
    if warm_up {
        run_checked(&ours, &scratch)?;
        run_checked(&reference, &scratch)?;
    }
    let mut a = Series { cmd: ours, samples: Vec::new() };
    let mut b = Series { cmd: reference, samples: Vec::new() };
    for i in 0..cx.runs {
        a.samples.push(run_checked(&a.cmd, &scratch)?);
        b.samples.push(run_checked(&b.cmd, &scratch)?);
        (cx.log)(&format!(
            "  {} {} run {}/{}: {:.3} s vs {:.3} s",
            size.label(),
            case.name(),
            i + 1,
            cx.runs,
            a.samples[i].wall,
            b.samples[i].wall
        ));
    }
    let notes = if warm_up { Vec::new() } else { vec!["no warm-up run at this size".to_string()] };
    Ok(Group { size, case, cold: false, ours: vec![a], reference: b, load, notes })
}

/// A destructive group: per run, a freshly built (and damaged) queue, on
/// which the counterpart runs first (it changes nothing), then our tool.
/// At 1M messages one run only, on the kept queue itself (see
/// [`destructive_in_place`]).
pub fn destructive(cx: &mut Ctx<'_>, case: Case, size: Size) -> Result<Group> {
    if size.is_huge() {
        return destructive_in_place(cx, case, size);
    }
    let runs = cx.runs;
    let load = measure::loadavg()[0];
    let scratch = scratch_dir(cx.dir)?;
    let mut a: Option<Series> = None;
    let mut b: Option<Series> = None;
    for i in 0..runs {
        let name = format!("{}-{}-{}", case_slug(case), size.label(), i + 1);
        (cx.log)(&format!("  {} {} run {}/{runs}: building a fresh queue", size.label(), case.name(), i + 1));
        let s = Scratch::build(cx.dir, &name, size, case.mix(), case.damage())?;
        if s.messages != size.0 as u64 {
            bail!("{}: built {} messages, not {}", s.queue.display(), s.messages, size.0);
        }
        let ours = case.ours(cx.tools, &s.queue, false).expect("every case has our tool");
        let reference = case.reference(cx.tools, &s.queue);
        let rs = run_checked(&reference, &scratch)?;
        let os = run_checked(&ours, &scratch)?;
        (cx.log)(&format!(
            "  {} {} run {}/{runs}: {:.3} s vs {:.3} s",
            size.label(),
            case.name(),
            i + 1,
            os.wall,
            rs.wall
        ));
        a.get_or_insert_with(|| Series { cmd: ours, samples: Vec::new() }).samples.push(os);
        b.get_or_insert_with(|| Series { cmd: reference, samples: Vec::new() }).samples.push(rs);
        s.remove()?;
    }
    let notes = vec!["a freshly built queue per run (just written and synced: warm)".to_string()];
    let (Some(a), Some(b)) = (a, b) else { bail!("no runs") };
    Ok(Group { size, case, cold: false, ours: vec![a], reference: b, load, notes })
}

/// One destructive run at 1M messages on the kept queue itself, which a
/// second 12 GB (and 3.5 million inodes) queue would not fit beside on a
/// shared machine: the damage is applied to the kept queue in place, the
/// counterpart runs, then our tool. A live repair leaves a healthy queue of
/// the same messages (renumbered), reused afterwards; a removal leaves
/// fewer messages, so that queue's marker is removed and the next run
/// rebuilds it. Run these cases last: the order of `--cases` does so.
pub fn destructive_in_place(cx: &mut Ctx<'_>, case: Case, size: Size) -> Result<Group> {
    let q = base_queue(cx, case, size)?;
    let load = measure::loadavg()[0];
    let scratch = scratch_dir(cx.dir)?;
    if let Some(d) = case.damage() {
        (cx.log)(&format!("  {} {}: damaging {} in place ({})", size.label(), case.name(), q.display(), d.name()));
        let built = BuiltQueue {
            queue: q.clone(),
            spec_split: qcommon::queue::DEFAULT_SPLIT,
            big_todo: false,
            messages: Vec::new(),
            counts: Default::default(),
            ids: None,
        };
        let outside = scratch.join("outside");
        measure::in_child("damage", || apply_damage(&built, d, 1, &outside).map(drop))?;
        measure::sync();
    }
    let ours = case.ours(cx.tools, &q, false).expect("every case has our tool");
    let reference = case.reference(cx.tools, &q);
    let marker = q.parent().map(|h| h.join("qbench-marker"));
    let rs = run_checked(&reference, &scratch)?;
    let os = run_checked(&ours, &scratch);
    if case == Case::Killns || os.as_ref().map_or(true, |s| s.status != 0 && s.status != 1) {
        if let Some(m) = &marker {
            let _ = std::fs::remove_file(m);
        }
    }
    let os = os?;
    (cx.log)(&format!("  {} {} (one run): {:.3} s vs {:.3} s", size.label(), case.name(), os.wall, rs.wall));
    let notes = vec![format!(
        "one run only at this size, on the kept queue damaged in place{}",
        if case == Case::Killns { " (removal: that queue is rebuilt next time)" } else { "" }
    )];
    Ok(Group {
        size,
        case,
        cold: false,
        ours: vec![Series { cmd: ours, samples: vec![os] }],
        reference: Series { cmd: reference, samples: vec![rs] },
        load,
        notes,
    })
}

/// A cold group: the page cache dropped before every run of every command;
/// our tool at its default concurrency, at one thread where it has the
/// option, and the counterpart, in turn.
pub fn cold(cx: &mut Ctx<'_>, case: Case, size: Size, q: &Path) -> Result<Group> {
    let runs = if size.is_huge() { 1 } else { cx.runs };
    let load = measure::loadavg()[0];
    let scratch = scratch_dir(cx.dir)?;
    let mut ours: Vec<Series> = [false, true]
        .iter()
        .filter_map(|&one| case.ours(cx.tools, q, one))
        .map(|cmd| Series { cmd, samples: Vec::new() })
        .collect();
    let mut reference = Series { cmd: case.reference(cx.tools, q), samples: Vec::new() };
    for i in 0..runs {
        for s in ours.iter_mut().chain(std::iter::once(&mut reference)) {
            measure::drop_caches()?;
            let x = run_checked(&s.cmd, &scratch)?;
            (cx.log)(&format!("  {} cold {} run {}/{runs}: {:.3} s", size.label(), s.cmd.label, i + 1, x.wall));
            s.samples.push(x);
        }
    }
    let mut notes = Vec::new();
    if ours.len() == 1 {
        notes.push(format!("{} has no option to limit its I/O threads", ours[0].cmd.label));
    }
    if size.is_huge() {
        notes.push("one run only at this size".into());
    }
    Ok(Group { size, case, cold: true, ours, reference, load, notes })
}

fn case_slug(case: Case) -> &'static str {
    match case {
        Case::Qstat => "qstat",
        Case::Detail => "detail",
        Case::Check => "check",
        Case::LiveCopy => "live-copy",
        Case::LiveOwners => "live-owners",
        Case::KillnsDry => "killns-n",
        Case::Killns => "killns",
        Case::List => "list",
    }
}

fn scratch_dir(dir: &Path) -> Result<PathBuf> {
    let d = dir.join("scratch");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The kept queue a non-destructive case runs on.
pub fn base_queue(cx: &mut Ctx<'_>, case: Case, size: Size) -> Result<PathBuf> {
    queues::base(cx.dir, size, case.mix(), cx.log)
}
