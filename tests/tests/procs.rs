//! Which processes use a queue, through the real binaries. A process uses
//! the queue only if it does: alive and holding its lock/sendmutex,
//! working inside it, or with a file inside it open. A stand-in qmail-send
//! working in a second queue, processes merely named qmail-queue or
//! qmail-smtpd working elsewhere, and a zombie named qmail-send (exited in
//! the queue, not reaped) block nothing, whatever state lock/sendmutex is
//! in (healthy, missing, replaced by a named pipe); the same stand-in
//! working inside the queue still blocks. The same holds when the tool
//! runs as pid 1 of a pid namespace, with its own /proc or the host's.
//!
//! Also here: a --queue path with escape sequences is shown escaped in
//! every tool's errors, and a qmail-showctl that starts a sleeper and
//! hangs is killed at its time limit together with the sleeper.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qtests::prelude::cross::*;
use qtests::{apply_damage, BuiltQueue, Damage};

const SPLIT: u32 = 7;

/// A queue with something for `qfixq live` to repair and a null-sender
/// bounce or more for qkillns, and a second queue beside it.
fn setup(seed: u64) -> (tempfile::TempDir, BuiltQueue, PathBuf) {
    let tmp = scratch(true);
    let built = build(&tmp.path().join("queue"), 30, SPLIT, seed, 0.3);
    apply_damage(&built, Damage::BadOwnersModes, seed, &tmp.path().join("outside")).expect("damage");
    let other = build(&tmp.path().join("queue2"), 5, SPLIT, seed + 1000, 0.0);
    (tmp, built, other.queue)
}

/// What lock/sendmutex looks like in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockCase {
    Healthy,
    Missing,
    /// Replaced by a named pipe.
    Fifo,
}

const LOCK_CASES: [LockCase; 3] = [LockCase::Healthy, LockCase::Missing, LockCase::Fifo];

fn damage_lock(q: &Path, case: LockCase) {
    let m = q.join("lock/sendmutex");
    match case {
        LockCase::Healthy => {}
        LockCase::Missing => fs::remove_file(&m).expect("remove sendmutex"),
        LockCase::Fifo => {
            fs::remove_file(&m).expect("remove sendmutex");
            nix::unistd::mkfifo(&m, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        }
    }
}

/// A directory with `qmail-send`, a link to sleep(1): exec names the
/// process after the path it is given, so it runs as qmail-send.
fn qmail_send_bin(dir: &Path) -> PathBuf {
    let sleep = which("sleep").expect("sleep(1)");
    fs::create_dir_all(dir).unwrap();
    let p = dir.join("qmail-send");
    symlink(sleep, &p).unwrap();
    p
}

/// A zombie named qmail-send: it ran in `cwd` and exited, and its parent
/// (a sleep that never reaps) keeps it unreaped. Killed on drop.
struct Zombie {
    keeper: Child,
    pid: u32,
}

impl Zombie {
    fn start(cwd: &Path, bin: &Path, scratch: &Path) -> Zombie {
        let pidfile = scratch.join("zombie.pid");
        let keeper = Command::new("sh")
            .arg("-c")
            .arg("(cd \"$1\" && exec \"$2\" 0.2) & echo $! > \"$3\"; exec sleep 300")
            .arg("sh")
            .arg(cwd)
            .arg(bin)
            .arg(&pidfile)
            .current_dir("/")
            .stdin(Stdio::null())
            .spawn()
            .expect("sh");
        let pid = read_pid(&pidfile);
        assert!(wait_state(pid, true), "pid {pid} never became a zombie");
        assert_eq!(comm(pid), "qmail-send");
        Zombie { keeper, pid }
    }
}

impl Drop for Zombie {
    fn drop(&mut self) {
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
    }
}

/// Reads a pid a script wrote, waiting for it (bounded).
fn read_pid(p: &Path) -> u32 {
    for _ in 0..2000 {
        if let Ok(n) = fs::read_to_string(p).unwrap_or_default().trim().parse() {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no pid in {}", p.display());
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// Whether `pid` is a zombie (or gone): the state after the last `)`.
fn ended(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Waits (bounded) until `pid` has ended (`true`) and returns whether it
/// did.
fn wait_state(pid: u32, want_ended: bool) -> bool {
    for _ in 0..2000 {
        if ended(pid) == want_ended {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The `processes:` line of qfixq's header.
fn processes_line(run: &Run) -> String {
    run.out().lines().find(|l| l.starts_with("processes:")).unwrap_or_default().to_string()
}

/// A refused run: exit 8, the text `why` on stderr, nothing changed.
fn refuses(q: &Path, inv: Invocation, why: &str) -> Run {
    age_atimes(q);
    let before = snapshot_light(q);
    let run = inv.run();
    run.assert_sane().expect(8);
    assert!(run.err().contains(why), "the refusal says {why:?}\n{}", run.show());
    assert_no_diff(
        &before.compare(&snapshot_light(q), Compare::READ_ONLY),
        "a refused run changed the queue",
        Some(&run),
    );
    run
}

#[test]
fn qmail_send_elsewhere_and_zombies_block_nothing() {
    let name = "qmail_send_elsewhere_and_zombies_block_nothing";
    if !root_or_skip(name) {
        return;
    }
    for (i, case) in LOCK_CASES.into_iter().enumerate() {
        let (tmp, built, q2) = setup(80 + i as u64);
        let q = built.queue.clone();
        let Some(elsewhere) = StandIn::start(Some(&q2.join("lock/sendmutex")), Some("qmail-send"), Some(&q2)) else {
            skipped(name, "neither python3 nor perl");
            return;
        };
        // Other processes merely named like qmail's, working elsewhere.
        let queue2 = StandIn::start(None, Some("qmail-queue"), Some(&q2)).expect("python3 or perl");
        let smtpd = StandIn::start(None, Some("qmail-smtpd"), Some(Path::new("/"))).expect("python3 or perl");
        let bin = qmail_send_bin(&tmp.path().join("bin"));
        // It ran inside the queue, and has exited.
        let zombie = Zombie::start(&q, &bin, tmp.path());
        damage_lock(&q, case);
        let what = format!("{case:?} lock");

        // The check lists both as ignored.
        let check = cmd("qfixq").queue(&q, SPLIT).run();
        check.assert_sane().expect(4);
        let line = processes_line(&check);
        assert!(
            line.contains(&format!("qmail-send pid {} (serving another queue (working in ", elsewhere.pid())),
            "{what}: {line}\n{}",
            check.show()
        );
        assert!(line.contains(&format!("qmail-send pid {} (zombie", zombie.pid)), "{what}: {line}");
        for (p, n) in [(&queue2, "qmail-queue"), (&smtpd, "qmail-smtpd")] {
            let want = format!("{n} pid {} (not using this queue (working in ", p.pid());
            assert!(line.contains(&want), "{what}: {line}");
        }

        // The repair goes ahead (the lock restored first when damaged).
        let live = cmd("qfixq").queue(&q, SPLIT).arg("live").run();
        live.assert_sane().expect(1);
        cmd("qfixq").queue(&q, SPLIT).run().assert_sane().expect(0);
        assert!(fs::symlink_metadata(q.join("lock/sendmutex")).is_ok_and(|m| m.is_file()), "{what}");

        // A removal goes ahead too, and says what it ignored.
        let nulls = built.messages.iter().filter(|m| m.sender.is_empty()).count();
        assert!(nulls > 0);
        let rm = cmd("qkillns").queue(&q, SPLIT).run();
        rm.assert_sane().expect(0);
        assert!(rm.out().contains(&format!("removed {nulls} message(s)")), "{what}\n{}", rm.show());
        assert!(rm.out().contains("serving another queue"), "{what}\n{}", rm.show());

        // --expire finds no qmail-send to signal on this queue.
        let ex = cmd("qkillns").queue(&q, SPLIT).args(["--expire", "-n"]).run();
        ex.assert_sane().expect(0);
        assert!(ex.out().contains("none found running on this queue"), "{what}\n{}", ex.show());
        assert_eq!(elsewhere.comm(), "qmail-send", "{what}: the stand-in is untouched");
        assert!(ended(zombie.pid), "{what}");
        drop(zombie);
        drop(elsewhere);
        drop(queue2);
        drop(smtpd);
    }
}

#[test]
fn the_same_stand_in_inside_the_queue_still_blocks() {
    let name = "the_same_stand_in_inside_the_queue_still_blocks";
    if !root_or_skip(name) {
        return;
    }
    for (i, case) in LOCK_CASES.into_iter().enumerate() {
        let (_tmp, built, _q2) = setup(90 + i as u64);
        let q = built.queue.clone();
        // Only a healthy lock can be held.
        let lock = q.join("lock/sendmutex");
        let Some(inside) =
            StandIn::start((case == LockCase::Healthy).then_some(lock.as_path()), Some("qmail-send"), Some(&q))
        else {
            skipped(name, "neither python3 nor perl");
            return;
        };
        damage_lock(&q, case);
        let pid = inside.pid().to_string();
        let run = refuses(&q, cmd("qfixq").queue(&q, SPLIT).arg("live"), &pid);
        assert!(run.err().contains("qmail-send"), "{case:?}\n{}", run.show());
        // --force never gets past a qmail-send of this queue.
        let why = match case {
            LockCase::Healthy => "qmail-send is running",
            _ => "lock/sendmutex is damaged while a qmail-send runs on this queue",
        };
        let run = refuses(&q, cmd("qfixq").queue(&q, SPLIT).args(["live", "--force"]), why);
        assert!(run.err().contains(&pid), "{case:?}\n{}", run.show());
        refuses(&q, cmd("qfixq").queue(&q, SPLIT).args(["live", "empty", "--force"]), why);
        if case == LockCase::Healthy {
            refuses(&q, cmd("qkillns").queue(&q, SPLIT).arg("--force"), &pid);
            let ex = cmd("qkillns").queue(&q, SPLIT).args(["--expire", "-n"]).run();
            ex.assert_sane().expect(0);
            assert!(ex.out().contains(&format!("pid {pid} (qmail-send, holds lock/sendmutex)")), "{}", ex.show());
        }
        let check = cmd("qfixq").queue(&q, SPLIT).run();
        check.assert_sane().expect(4);
        assert!(processes_line(&check).contains(&format!("qmail-send pid {pid} (")), "{}", check.show());
    }
}

/// Runs `tool args...` as pid 1 of a new pid namespace (`unshare -pf`,
/// with `--mount-proc` when `own_proc`). With its own /proc, it first
/// starts there a qmail-send working in `q2`, a zombie qmail-send that ran
/// in `q`, and, when `inside`, a qmail-send working in `q`, and writes
/// their pids (as the namespace numbers them, which is what its /proc
/// shows) to `<out>/elsewhere`, `zombie` and `inside`. With the host's
/// /proc the caller starts them on the host. Output: (exit code, stdout,
/// stderr).
fn in_pid_namespace(
    own_proc: bool,
    q: &Path,
    q2: &Path,
    bin: &Path,
    out: &Path,
    inside: bool,
    tool_args: &[&std::ffi::OsStr],
) -> (Option<i32>, String, String) {
    let script = r#"
q=$1 q2=$2 bin=$3 out=$4 inside=$5 spawn=$6; shift 6
[ "$spawn" = yes ] || exec "$@"
(cd "$q2" && exec "$bin" 300) &
echo $! > "$out/elsewhere"
(cd / && exec sh -c '(cd "$1" && exec "$2" 0.2) & echo $! > "$3"; exec sleep 300' sh "$q" "$bin" "$out/zombie") &
if [ "$inside" = yes ]; then
    (cd "$q" && exec "$bin" 300) &
    echo $! > "$out/inside"
fi
ready() {
    read -r c < "/proc/$1/comm" && [ "$c" = qmail-send ]
}
n=0
while :; do
    z=; read -r z < "$out/zombie" 2>/dev/null
    st=; [ -n "$z" ] && read -r st < "/proc/$z/stat"
    case "$st" in *") Z "*) zok=1 ;; *) zok= ;; esac
    iok=1; [ "$inside" = yes ] && { ready "$(cat "$out/inside")" || iok=; }
    if ready "$(cat "$out/elsewhere")" && [ -n "$zok" ] && [ -n "$iok" ]; then break; fi
    n=$((n + 1)); [ $n -gt 2000 ] && { echo "stand-ins did not start" >&2; exit 99; }
    sleep 0.01
done
exec "$@"
"#;
    let mut c = Command::new("unshare");
    c.arg("-pf");
    if own_proc {
        c.arg("--mount-proc");
    }
    c.args(["sh", "-c", script, "sh"])
        .arg(q)
        .arg(q2)
        .arg(bin)
        .arg(out)
        .arg(if inside { "yes" } else { "no" })
        .arg(if own_proc { "yes" } else { "no" })
        .args(tool_args)
        .stdin(Stdio::null());
    let o = c.output().expect("unshare");
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Whether `unshare -pf [--mount-proc]` works here.
fn unshare_works(own_proc: bool) -> Result<(), String> {
    if which("unshare").is_none() {
        return Err("no unshare(1)".into());
    }
    let mut c = Command::new("unshare");
    c.arg("-pf");
    if own_proc {
        c.arg("--mount-proc");
    }
    let o = c.args(["sh", "-c", "echo $$"]).output().map_err(|e| format!("unshare: {e}"))?;
    let said = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if o.status.success() && said == "1" {
        Ok(())
    } else {
        Err(format!("unshare -pf does not give a pid namespace here: {}", String::from_utf8_lossy(&o.stderr).trim()))
    }
}

#[test]
fn the_tool_as_pid_one_of_a_pid_namespace() {
    let name = "the_tool_as_pid_one_of_a_pid_namespace";
    if !root_or_skip(name) {
        return;
    }
    for own_proc in [true, false] {
        if let Err(why) = unshare_works(own_proc) {
            skipped(name, &why);
            return;
        }
        let (tmp, built, q2) = setup(if own_proc { 101 } else { 102 });
        let q = built.queue.clone();
        let bin = qmail_send_bin(&tmp.path().join("bin"));
        let out = tmp.path().join("pids");
        fs::create_dir(&out).unwrap();
        let what = if own_proc { "with its own /proc" } else { "with the host's /proc" };
        let qfixq = tool("qfixq");
        let qkillns = tool("qkillns");
        let queue_args = |t: &Path, extra: &[&str]| -> Vec<std::ffi::OsString> {
            let mut v: Vec<std::ffi::OsString> = vec![t.into(), "--queue".into(), q.clone().into()];
            for a in ["--split", &SPLIT.to_string(), "--ids", IDS_ARG] {
                v.push(a.into());
            }
            v.extend(extra.iter().map(|a| a.into()));
            v
        };
        let args = |v: &[std::ffi::OsString]| v.iter().map(|a| a.to_os_string()).collect::<Vec<_>>();

        // With the host's /proc, the stand-ins run on the host, where that
        // /proc sees them.
        let host = (!own_proc).then(|| {
            let e = StandIn::start(None, Some("qmail-send"), Some(&q2)).expect("python3 or perl");
            let z = Zombie::start(&q, &bin, tmp.path());
            let i = StandIn::start(None, Some("qmail-send"), Some(&q)).expect("python3 or perl");
            fs::write(out.join("elsewhere"), e.pid().to_string()).unwrap();
            fs::write(out.join("zombie"), z.pid.to_string()).unwrap();
            fs::write(out.join("inside"), i.pid().to_string()).unwrap();
            (e, z, i)
        });

        // The stand-in working inside the queue blocks the repair.
        let a = args(&queue_args(&qfixq, &["live"]));
        let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        let (code, so, se) = in_pid_namespace(own_proc, &q, &q2, &bin, &out, true, &refs);
        assert_eq!(code, Some(8), "{what}: inside blocks\n{so}\n{se}");
        let pid = fs::read_to_string(out.join("inside")).unwrap().trim().to_string();
        assert!(
            se.contains(&format!("processes work inside the queue: qmail-send pid {pid} (working in ")),
            "{what}\n{se}"
        );
        assert!(!se.contains("pid 1 ("), "{what}: the tool (pid 1) never lists itself\n{se}");
        let host = host.map(|(e, z, i)| {
            drop(i);
            (e, z)
        });

        // Without it, the one in the other queue and the zombie block
        // nothing: the repair and then a removal go ahead.
        let a = args(&queue_args(&qfixq, &["live"]));
        let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        let (code, so, se) = in_pid_namespace(own_proc, &q, &q2, &bin, &out, false, &refs);
        assert_eq!(code, Some(1), "{what}: the repair goes ahead\n{so}\n{se}");
        let line = so.lines().find(|l| l.starts_with("processes:")).unwrap_or_default().to_string();
        assert!(line.contains("(serving another queue (working in "), "{what}: {line}");
        let e = fs::read_to_string(out.join("elsewhere")).unwrap().trim().to_string();
        let z = fs::read_to_string(out.join("zombie")).unwrap().trim().to_string();
        assert!(line.contains(&format!("qmail-send pid {e} (serving another queue")), "{what}: {line}");
        assert!(line.contains(&format!("qmail-send pid {z} (zombie")), "{what}: {line}");
        assert!(!line.contains("pid 1 ("), "{what}: the tool never lists itself: {line}");

        let nulls = built.messages.iter().filter(|m| m.sender.is_empty()).count();
        let a = args(&queue_args(&qkillns, &[]));
        let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        let (code, so, se) = in_pid_namespace(own_proc, &q, &q2, &bin, &out, false, &refs);
        assert_eq!(code, Some(0), "{what}: the removal goes ahead (the lock it holds is its own)\n{so}\n{se}");
        assert!(so.contains(&format!("removed {nulls} message(s)")), "{what}\n{so}\n{se}");
        cmd("qfixq").queue(&q, SPLIT).run().assert_sane().expect(0);
        drop(host);
    }
}

#[test]
fn a_path_with_escape_sequences_in_every_tools_errors() {
    let tmp = scratch(true);
    let base = tmp.path().join("q\x1b[31mred\x07\r");
    let shown = qcommon::error::escape_path(&base);
    assert!(shown.contains("q\\x1b[31mred\\x07\\r"), "{shown}");
    let file = tmp.path().join("f\x1b]2;title\x07");
    fs::write(&file, b"not a queue").unwrap();
    let file_shown = qcommon::error::escape_path(&file);
    let empty = tmp.path().join("e\x1b[2J\x7f");
    fs::create_dir(&empty).unwrap();
    let empty_shown = qcommon::error::escape_path(&empty);
    for tool in ["qfixq", "qstat", "qkillns"] {
        for (path, shown, why) in [
            (&base, &shown, "No such file or directory"),
            (&file, &file_shown, "Not a directory"),
            (&empty, &empty_shown, "is not a qmail queue"),
        ] {
            let mut inv = cmd(tool).arg("--queue").arg(path);
            if tool == "qkillns" {
                inv = inv.arg("-n");
            }
            let run = inv.run();
            // No raw control byte on stdout or stderr.
            run.assert_sane().expect(8);
            let err = run.err();
            assert!(err.starts_with(&format!("{tool}: ")), "{}", run.show());
            assert!(err.contains(shown.as_str()), "the path is shown escaped once ({shown})\n{}", run.show());
            assert!(err.contains(why), "{}", run.show());
            assert!(!err.contains("\\\\x1b"), "escaped twice\n{}", run.show());
        }
    }
    // qstat as a monitoring plugin says the same on stdout.
    let run = cmd("qstat").arg("--check").arg("--queue").arg(&empty).run();
    run.assert_sane().expect(3);
    assert!(run.out().contains(empty_shown.as_str()), "{}", run.show());
    // And a queue that does live there is reported with its path escaped.
    if is_root() {
        let q = tmp.path().join("live\x1b[1m\x1bq");
        build(&q, 5, SPLIT, 7, 0.5);
        for tool in ["qfixq", "qstat", "qkillns"] {
            let mut inv = cmd(tool).queue(&q, SPLIT);
            if tool == "qkillns" {
                inv = inv.arg("-n");
            }
            inv.run().assert_sane().expect(0);
        }
    }
}

#[test]
fn a_showctl_that_forks_a_sleeper_is_killed_with_it() {
    let name = "a_showctl_that_forks_a_sleeper_is_killed_with_it";
    if !root_or_skip(name) {
        return;
    }
    let tmp = scratch(true);
    let home = tmp.path().join("qmail");
    build(&home.join("queue"), 10, SPLIT, 19, 0.2);
    fs::create_dir(home.join("bin")).unwrap();
    let pidfile = tmp.path().join("sleeper.pid");
    let showctl = home.join("bin/qmail-showctl");
    // It prints part of what it knows, starts a sleeper in the
    // background (which keeps its output open) and hangs.
    fs::write(
        &showctl,
        format!("#!/bin/sh\necho 'subdirectory split: 7.'\nsleep 300 &\necho $! > '{}'\nwait\n", pidfile.display()),
    )
    .unwrap();
    fs::set_permissions(&showctl, fs::Permissions::from_mode(0o755)).unwrap();

    // qfixq knows the ids, so it goes on without qmail-showctl.
    let run = cmd("qfixq").arg("--qmail-home").arg(&home).args(["--ids", IDS_ARG]).run();
    run.assert_sane().expect(0);
    let sleeper = read_pid(&pidfile);
    assert!(
        wait_state(sleeper, true),
        "the sleeper qmail-showctl started (pid {sleeper}) outlived the time limit\n{}",
        run.show()
    );
    assert!(
        run.out().contains("qmail-showctl not used:")
            && run.out().contains("was killed, with every process it started"),
        "the run says why qmail-showctl was not used\n{}",
        run.show()
    );
    assert!(run.out().contains("split:     7 (from the buckets on disk"), "{}", run.show());

    // qstat goes on too.
    fs::remove_file(&pidfile).unwrap();
    let run = cmd("qstat").arg("--detail").arg("--qmail-home").arg(&home).run();
    run.assert_sane().expect(0);
    let sleeper = read_pid(&pidfile);
    assert!(wait_state(sleeper, true), "qstat: the sleeper {sleeper} outlived the time limit\n{}", run.show());
}

#[test]
fn ctrl_c_while_showctl_hangs_kills_it_and_its_sleeper() {
    let name = "ctrl_c_while_showctl_hangs_kills_it_and_its_sleeper";
    if !root_or_skip(name) {
        return;
    }
    if !env_resets_sigint() {
        skipped(name, "env --default-signal is missing (coreutils 8.31 or later)");
        return;
    }
    let tmp = scratch(true);
    let home = tmp.path().join("qmail");
    build(&home.join("queue"), 5, SPLIT, 23, 0.2);
    fs::create_dir(home.join("bin")).unwrap();
    let showctl = home.join("bin/qmail-showctl");
    let pids = tmp.path().join("pids");
    // Its own pid, then the sleeper's.
    fs::write(&showctl, format!("#!/bin/sh\necho $$ > '{0}.sh'\nsleep 300 &\necho $! > '{0}'\nwait\n", pids.display()))
        .unwrap();
    fs::set_permissions(&showctl, fs::Permissions::from_mode(0o755)).unwrap();
    // A Ctrl-C at a terminal reaches a process whose SIGINT is at its
    // default; a test run started in the background of a shell inherits it
    // ignored (as a job without job control does), which qfixq rightly
    // keeps: env puts it back first, then becomes qfixq (same pid).
    let mut child = Command::new("env")
        .arg("--default-signal=INT")
        .arg(tool("qfixq"))
        .arg("--qmail-home")
        .arg(&home)
        .args(["--ids", IDS_ARG])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qfixq");
    let sleeper = read_pid(&pids);
    let sh = read_pid(&tmp.path().join("pids.sh"));
    // What a Ctrl-C sends to the terminal's foreground group, which holds
    // qfixq but not qmail-showctl's group.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "qfixq ends as a Ctrl-C ends it: {status}");
    assert!(wait_state(sh, true), "qmail-showctl (pid {sh}) outlived the Ctrl-C");
    assert!(wait_state(sleeper, true), "its sleeper (pid {sleeper}) outlived the Ctrl-C");
}

/// Whether `env --default-signal=INT` works here.
fn env_resets_sigint() -> bool {
    Command::new("env").args(["--default-signal=INT", "true"]).status().is_ok_and(|s| s.success())
}
