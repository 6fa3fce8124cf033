//! The benchmark cases: each of our tools beside its classic counterpart
//! (or, where there is none, the reference the tool issue names), how to
//! run them, and the measuring loops: warm (pairs in alternation after a
//! warm-up), destructive (a fresh damaged queue per run) and cold (the page
//! cache dropped before every run).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use qtests::{apply_damage, BuiltQueue, Damage};

use crate::measure::{self, Sample};
use crate::queues::{self, Mix, Scratch, Size};
use crate::renamed;

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
    /// `qfixq live` after the all-owners-wrong damage (every entry wrong).
    LiveOwnersAll,
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
    ("live-owners-all", &[Case::LiveOwnersAll]),
    ("killns", &[Case::KillnsDry, Case::Killns]),
    ("killns-n", &[Case::KillnsDry]),
    ("list", &[Case::List]),
];

/// The split of every practice queue qbench builds.
const SPLIT: u32 = qcommon::queue::DEFAULT_SPLIT;

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
    /// The `qfloor` program: the floors and the queue-shape summary.
    pub qfloor: PathBuf,
    /// Directory of a second set of qstat, qfixq and qkillns
    /// (`--baseline-bin`), run beside ours.
    pub baseline: Option<PathBuf>,
}

impl Tools {
    /// The same tools from the baseline directory, if there is one.
    fn baseline_tools(&self) -> Option<Tools> {
        let bin = self.baseline.clone()?;
        Some(Tools { bin, baseline: None, ..self.clone() })
    }

    /// `qfloor shape` of queue `q`: one line, compared between the tool's
    /// queue and the floor's (and the baseline's) after a destructive run.
    pub fn shape(&self, q: &Path) -> Result<String> {
        let out = std::process::Command::new(&self.qfloor)
            .args(["shape", "--ids", &self.ids, "--split", &SPLIT.to_string(), "--queue"])
            .arg(q)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("run {} shape", self.qfloor.display()))?;
        if !out.status.success() {
            bail!("qfloor shape {}: {}", q.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

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
            Case::LiveOwnersAll => "qfixq live, all owners",
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
            Case::LiveOwnersAll => Some(Damage::AllOwnersWrong),
            _ => None,
        }
    }

    /// Whether the case changes its queue (a fresh copy per run).
    pub fn destructive(self) -> bool {
        matches!(self, Case::LiveCopy | Case::LiveOwners | Case::LiveOwnersAll | Case::Killns)
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
            (Case::LiveCopy | Case::LiveOwners | Case::LiveOwnersAll, false) => {
                ("qfixq live", t.check(q, &["live"]), &[0, 1])
            }
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

    /// The baseline's build of our tool on queue `q` (`--baseline-bin`).
    pub fn baseline(self, t: &Tools, q: &Path, one_thread: bool) -> Option<Cmd> {
        let mut c = self.ours(&t.baseline_tools()?, q, one_thread)?;
        c.label = format!("{} (baseline)", c.label);
        Some(c)
    }

    /// The floor of a destructive case on queue `q`: `qfloor` making only
    /// the system calls the job cannot avoid (docs/performance.md,
    /// "Floors").
    pub fn floor(self, t: &Tools, q: &Path) -> Option<Cmd> {
        let (label, job) = match self {
            Case::LiveCopy => ("floor: renames", "renumber"),
            Case::LiveOwners | Case::LiveOwnersAll => ("floor: chown/chmod", "owners"),
            Case::Killns => ("floor: read, unlink", "killns"),
            _ => return None,
        };
        let mut argv = vec![t.qfloor.display().to_string(), job.into(), "--split".into(), SPLIT.to_string()];
        if matches!(self, Case::LiveOwners | Case::LiveOwnersAll) {
            argv.extend(["--ids".to_string(), t.ids.clone()]);
        }
        argv.extend(["--queue".to_string(), q.display().to_string()]);
        Some(Cmd { label: label.into(), argv, ok: &[0] })
    }

    /// The cold check's floor on queue `q`: `qfloor walk` (list, stat
    /// every file, read every envelope, judge nothing) at each of
    /// [`WALK_THREADS`] readers; none for other cases.
    pub fn walks(self, t: &Tools, q: &Path) -> Vec<Cmd> {
        if self != Case::Check {
            return Vec::new();
        }
        WALK_THREADS.iter().map(|n| walk(t, q, *n)).collect()
    }

    /// The warm check's floor on queue `q`: `qfloor walk` with
    /// [`WARM_WALK_THREADS`] readers, the same lists, stats and reads as
    /// the check, judging nothing; none for other cases.
    pub fn warm_walk(self, t: &Tools, q: &Path) -> Option<Cmd> {
        (self == Case::Check).then(|| walk(t, q, WARM_WALK_THREADS))
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
            Case::Detail | Case::Check | Case::LiveCopy | Case::LiveOwners | Case::LiveOwnersAll => {
                Cmd { label: "find -printf walk".into(), argv: find_walk(q), ok: &[0] }
            }
            Case::KillnsDry | Case::Killns => Cmd { label: "qfixq check".into(), argv: t.check(q, &[]), ok: &[0] },
            Case::List => Cmd { label: "qstat --detail".into(), argv: t.tool("qstat", &["--detail"], q), ok: &[0] },
        }
    }
}

/// Reader threads of the cold check's floor rows (`qfloor walk`).
pub const WALK_THREADS: [usize; 5] = [1, 2, 4, 8, 16];

/// Reader threads of the warm check's floor row: a thread per core of
/// the machines the figures come from (docs/performance.md).
pub const WARM_WALK_THREADS: usize = 2;

/// `qfloor walk` with `n` reader threads on queue `q`.
fn walk(t: &Tools, q: &Path, n: usize) -> Cmd {
    Cmd {
        label: format!("floor: qfloor walk, {n} thread{}", if n == 1 { "" } else { "s" }),
        argv: vec![
            t.qfloor.display().to_string(),
            "walk".into(),
            "--threads".into(),
            n.to_string(),
            "--queue".into(),
            q.display().to_string(),
        ],
        ok: &[0],
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
    /// The floor (destructive cases), run on its own copy of the queue.
    pub floor: Option<Series>,
    /// The baseline's build of `ours[0]` (`--baseline-bin`).
    pub baseline: Option<Series>,
    /// The check's floor: `qfloor walk` at each of [`WALK_THREADS`] (cold
    /// check groups), at [`WARM_WALK_THREADS`] (warm check groups); empty
    /// otherwise.
    pub walks: Vec<Series>,
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
/// messages), then `runs` rounds in alternation: ours, the counterpart,
/// and the baseline's build of ours when there is one.
pub fn warm(cx: &mut Ctx<'_>, case: Case, size: Size, q: &Path) -> Result<Group> {
    let ours = case.ours(cx.tools, q, false).expect("every case has our tool");
    let reference = case.reference(cx.tools, q);
    let baseline = case.baseline(cx.tools, q, false);
    let walk = case.warm_walk(cx.tools, q);
    let load = measure::loadavg()[0];
    let scratch = scratch_dir(cx.dir)?;
    // At 1M messages a warm-up buys nothing: this machine drops cached
    // file contents after about a minute unused, and a 12 GB queue does
    // not stay cached between two runs anyway.
    let warm_up = !size.is_huge();
    if warm_up {
        for c in std::iter::once(&ours).chain([&reference]).chain(baseline.as_ref()).chain(walk.as_ref()) {
            run_checked(c, &scratch)?;
        }
    }
    let mut a = Series { cmd: ours, samples: Vec::new() };
    let mut b = Series { cmd: reference, samples: Vec::new() };
    let mut base = baseline.map(|cmd| Series { cmd, samples: Vec::new() });
    let mut walks: Vec<Series> = walk.into_iter().map(|cmd| Series { cmd, samples: Vec::new() }).collect();
    for i in 0..cx.runs {
        a.samples.push(run_checked(&a.cmd, &scratch)?);
        b.samples.push(run_checked(&b.cmd, &scratch)?);
        let mut line = format!(
            "  {} {} run {}/{}: {:.3} s vs {:.3} s",
            size.label(),
            case.name(),
            i + 1,
            cx.runs,
            a.samples[i].wall,
            b.samples[i].wall
        );
        if let Some(s) = base.as_mut() {
            s.samples.push(run_checked(&s.cmd, &scratch)?);
            line.push_str(&format!(", baseline {:.3} s", s.samples[i].wall));
        }
        for w in &mut walks {
            w.samples.push(run_checked(&w.cmd, &scratch)?);
            line.push_str(&format!(", walk {:.3} s", w.samples[i].wall));
        }
        (cx.log)(&line);
    }
    let notes = if warm_up { Vec::new() } else { vec!["no warm-up run at this size".to_string()] };
    Ok(Group { size, case, cold: false, ours: vec![a], reference: b, floor: None, baseline: base, walks, load, notes })
}

/// Which command of a destructive case gets a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The counterpart, then our tool, on one queue.
    Ours,
    /// The floor, on its own queue.
    Floor,
    /// The baseline's build of our tool, on its own queue.
    Baseline,
}

impl Role {
    fn slug(self) -> &'static str {
        match self {
            Role::Ours => "ours",
            Role::Floor => "floor",
            Role::Baseline => "baseline",
        }
    }
}

/// The series of a destructive group as they fill up.
#[derive(Default)]
struct Destructive {
    ours: Option<Series>,
    reference: Option<Series>,
    floor: Option<Series>,
    baseline: Option<Series>,
    /// The queue shape each role left, this run.
    shapes: Vec<(Role, String)>,
    notes: Vec<String>,
}

impl Destructive {
    fn push(slot: &mut Option<Series>, cmd: Cmd, s: Sample) {
        slot.get_or_insert_with(|| Series { cmd, samples: Vec::new() }).samples.push(s);
    }

    /// Runs `role`'s command(s) on queue `q` and records the queue shape
    /// it left (when there is something to compare it with).
    fn run(&mut self, cx: &Ctx<'_>, case: Case, role: Role, q: &Path, scratch: &Path, compare: bool) -> Result<String> {
        let said = match role {
            Role::Ours => {
                let reference = case.reference(cx.tools, q);
                let ours = case.ours(cx.tools, q, false).expect("every case has our tool");
                let rs = run_checked(&reference, scratch)?;
                let os = run_checked(&ours, scratch)?;
                let said = format!("{:.3} s vs {:.3} s", os.wall, rs.wall);
                Self::push(&mut self.reference, reference, rs);
                Self::push(&mut self.ours, ours, os);
                said
            }
            Role::Floor => {
                let cmd = case.floor(cx.tools, q).expect("a floor exists for this case");
                let s = run_checked(&cmd, scratch)?;
                let said = format!("floor {:.3} s", s.wall);
                Self::push(&mut self.floor, cmd, s);
                said
            }
            Role::Baseline => {
                let cmd = case.baseline(cx.tools, q, false).expect("--baseline-bin given");
                let s = run_checked(&cmd, scratch)?;
                let said = format!("baseline {:.3} s", s.wall);
                Self::push(&mut self.baseline, cmd, s);
                said
            }
        };
        if compare {
            self.shapes.push((role, cx.tools.shape(q)?));
        }
        Ok(said)
    }

    /// Compares the shapes of this run with our tool's: a floor (or a
    /// baseline) that left a different queue did not do the same job.
    /// Returns whether they all matched.
    fn check_shapes(&mut self, what: &str) -> bool {
        let shapes = std::mem::take(&mut self.shapes);
        let Some((_, ours)) = shapes.iter().find(|(r, _)| *r == Role::Ours) else { return true };
        let mut same = true;
        for (r, s) in shapes.iter().filter(|(r, _)| *r != Role::Ours) {
            if s != ours {
                same = false;
                self.notes.push(format!("SHAPE DIFFERS in {what}: {} left `{s}`, ours `{ours}`", r.slug()));
            }
        }
        same
    }

    fn finish(mut self, size: Size, case: Case, load: f64, notes: Vec<String>) -> Result<Group> {
        let (Some(ours), Some(reference)) = (self.ours, self.reference) else { bail!("no runs") };
        let mut all = notes;
        if self.floor.is_some() || self.baseline.is_some() {
            let same = !self.notes.iter().any(|n| n.starts_with("SHAPE DIFFERS"));
            if same {
                all.push("the floor's (and baseline's) queue had the same shape as ours after every run".into());
            }
        }
        all.append(&mut self.notes);
        Ok(Group {
            size,
            case,
            cold: false,
            ours: vec![ours],
            reference,
            floor: self.floor,
            baseline: self.baseline,
            walks: Vec::new(),
            load,
            notes: all,
        })
    }
}

/// The roles of a destructive case, rotated by `run` so that no role is
/// always first.
fn roles(cx: &Ctx<'_>, case: Case, run: usize) -> Vec<Role> {
    let mut v = vec![Role::Ours];
    if case.floor(cx.tools, Path::new("q")).is_some() {
        v.push(Role::Floor);
    }
    if cx.tools.baseline.is_some() {
        v.push(Role::Baseline);
    }
    let k = run % v.len();
    v.rotate_left(k);
    v
}

/// A destructive group: per run, and per role (ours, the floor, the
/// baseline), a freshly built (and damaged) queue; on ours the
/// counterpart runs first (it changes nothing), then our tool. The roles
/// take turns at going first. After each, the queue's shape is recorded
/// and the floor's and baseline's compared with ours. At 1M messages one
/// run only, on the kept queue itself (see [`destructive_in_place`]).
pub fn destructive(cx: &mut Ctx<'_>, case: Case, size: Size) -> Result<Group> {
    if size.is_huge() {
        return destructive_in_place(cx, case, size);
    }
    let runs = cx.runs;
    let load = measure::loadavg()[0];
    let scratch = scratch_dir(cx.dir)?;
    let mut d = Destructive::default();
    for i in 0..runs {
        let roles = roles(cx, case, i);
        let compare = roles.len() > 1;
        let mut said = Vec::new();
        for role in roles {
            let name = format!("{}-{}-{}-{}", case_slug(case), size.label(), i + 1, role.slug());
            (cx.log)(&format!(
                "  {} {} run {}/{runs}: building a fresh queue ({})",
                size.label(),
                case.name(),
                i + 1,
                role.slug()
            ));
            let s = Scratch::build(cx.dir, &name, size, case.mix(), case.damage())?;
            if s.messages != size.0 as u64 {
                bail!("{}: built {} messages, not {}", s.queue.display(), s.messages, size.0);
            }
            said.push(d.run(cx, case, role, &s.queue, &scratch, compare)?);
            s.remove()?;
        }
        let same = d.check_shapes(&format!("run {}", i + 1));
        if compare {
            said.push(if same { "queue shapes the same".into() } else { "SHAPE DIFFERS (see the notes)".into() });
        }
        (cx.log)(&format!("  {} {} run {}/{runs}: {}", size.label(), case.name(), i + 1, said.join(", ")));
    }
    let notes = vec!["a freshly built queue per run and command (just written and synced: warm)".to_string()];
    d.finish(size, case, load, notes)
}

/// One destructive run at 1M messages on the kept queue itself, which a
/// second 12 GB (and 3.5 million inodes) queue would not fit beside on a
/// shared machine: per role, the damage is applied to the kept queue in
/// place and the role's commands run (ours: the counterpart, then our
/// tool). A live repair leaves a healthy queue of the same messages
/// (renumbered), reused afterwards; a removal leaves fewer messages, so
/// that queue's marker is removed and the next role's run rebuilds it. Run
/// these cases last: the order of `--cases` does so.
pub fn destructive_in_place(cx: &mut Ctx<'_>, case: Case, size: Size) -> Result<Group> {
    let load = measure::loadavg()[0];
    let scratch = scratch_dir(cx.dir)?;
    let mut d = Destructive::default();
    let roles = roles(cx, case, 0);
    let compare = roles.len() > 1;
    let mut said = Vec::new();
    let mut marker = None;
    for role in roles {
        let q = base_queue(cx, case, size)?;
        if case == Case::LiveCopy {
            // A copy of 1M messages in place takes most of an hour: the
            // same renumbering work is set up by renaming (renamed.rs).
            (cx.log)(&format!(
                "  {} {}: renaming every message of {} off its inode",
                size.label(),
                case.name(),
                q.display()
            ));
            let n = renamed::rename_off_inodes(&q, SPLIT)?;
            (cx.log)(&format!("  {} {}: {n} messages renamed", size.label(), case.name()));
            measure::sync();
        } else if let Some(dmg) = case.damage() {
            (cx.log)(&format!(
                "  {} {}: damaging {} in place ({})",
                size.label(),
                case.name(),
                q.display(),
                dmg.name()
            ));
            let built = BuiltQueue {
                queue: q.clone(),
                spec_split: qcommon::queue::DEFAULT_SPLIT,
                big_todo: false,
                messages: Vec::new(),
                counts: Default::default(),
                ids: None,
            };
            let outside = scratch.join("outside");
            measure::in_child("damage", || apply_damage(&built, dmg, 1, &outside).map(drop))?;
            measure::sync();
        }
        marker = q.parent().map(|h| h.join("qbench-marker"));
        let r = d.run(cx, case, role, &q, &scratch, compare);
        // The queue is healthy again (and kept) only after a live repair
        // that worked; a removal, or a failure, has it rebuilt.
        let keep = case != Case::Killns && r.is_ok();
        if !keep {
            if let Some(m) = &marker {
                let _ = std::fs::remove_file(m);
            }
        }
        said.push(r?);
    }
    let same = d.check_shapes("the one run");
    if compare {
        said.push(if same { "queue shapes the same".into() } else { "SHAPE DIFFERS (see the notes)".into() });
    }
    if !same {
        // A role that left another shape may have left the kept queue
        // unhealthy: have it rebuilt next time.
        if let Some(m) = &marker {
            let _ = std::fs::remove_file(m);
        }
    }
    (cx.log)(&format!("  {} {} (one run): {}", size.label(), case.name(), said.join(", ")));
    let notes = vec![format!(
        "one run only at this size, on the kept queue damaged in place{}",
        match case {
            Case::Killns => " (removal: that queue is rebuilt before each command and next time)",
            Case::LiveCopy => {
                " (not copied: every message renamed to its number + 2^31, which leaves the same \
                 renumbering without the copy's collisions; bench/renamed.rs)"
            }
            _ => "",
        }
    )];
    d.finish(size, case, load, notes)
}

/// A cold group: the page cache dropped before every run of every command;
/// our tool at its default concurrency, at one thread where it has the
/// option, the counterpart, the baseline's build of ours and (check) the
/// floor `qfloor walk` at each of [`WALK_THREADS`] readers, in turn.
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
    let mut baseline = case.baseline(cx.tools, q, false).map(|cmd| Series { cmd, samples: Vec::new() });
    let mut walks: Vec<Series> =
        case.walks(cx.tools, q).into_iter().map(|cmd| Series { cmd, samples: Vec::new() }).collect();
    for i in 0..runs {
        let all =
            ours.iter_mut().chain(std::iter::once(&mut reference)).chain(baseline.as_mut()).chain(walks.iter_mut());
        for s in all {
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
    Ok(Group { size, case, cold: true, ours, reference, floor: None, baseline, walks, load, notes })
}

fn case_slug(case: Case) -> &'static str {
    match case {
        Case::Qstat => "qstat",
        Case::Detail => "detail",
        Case::Check => "check",
        Case::LiveCopy => "live-copy",
        Case::LiveOwners => "live-owners",
        Case::LiveOwnersAll => "live-owners-all",
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
