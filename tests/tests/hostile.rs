//! Hostile queues: every kind of trap a careless or malicious writer can
//! leave in a queue, and every tool in every mode run over it. No run may
//! change anything outside the queue (canaries keep their content, owner,
//! mode, times), hang, grow its memory past 200 MB, or put a raw control
//! byte on a terminal; the check names every oddity on a line of its own;
//! the queue root given as a symbolic link works.
//!
//! The hostile queue holds: symbolic links as a bucket (`local/B`, from the
//! symlink-trap damage), as message files (`mess/B/N`, `todo/N`, the info
//! of a live message), as lock files (`lock/tcpto`, `lock/trigger`, and in
//! one variant `lock/sendmutex`, pointing at a file the test holds locked)
//! and as a whole split directory (`remote`); hard links from outside to a
//! mess and to the info of a null-sender message; FIFOs, a socket and
//! character devices (`/dev/zero`'s and `/dev/null`'s numbers) where
//! message files belong; a 2 GB sparse info, remote and mess; names with
//! newlines, escape sequences and invalid UTF-8 (also as a link target); a
//! directory nested 1,000 deep in a bucket; messages numbered past 2^63
//! and 2^64 - 1, and a name past 2^64.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use qcommon::queue::Part;
use qtests::json::check_json;
use qtests::prelude::cross::*;
use qtests::{apply_damage, message_path, BuiltQueue, BuiltState, Damage};

const SPLIT: u32 = 7;
const GIB2: u64 = 2 << 30;
/// Past 2^63.
const BIG: u64 = 9_300_000_000_000_000_000;

/// A hostile queue, its canaries and what the check must name.
struct Hostile {
    _tmp: tempfile::TempDir,
    /// The queue itself.
    real: PathBuf,
    /// A symbolic link to it: what the tools are given.
    link: PathBuf,
    /// Every canary lives here.
    outside: PathBuf,
    built: BuiltQueue,
    /// (escaped path relative to the queue, a word its line must hold).
    oddities: Vec<(String, &'static str)>,
    /// A null-sender message whose info is hard-linked from outside.
    linked_null: u64,
    /// The outside canary the test holds locked (sendmutex variant).
    _held: Option<nix::fcntl::Flock<File>>,
    /// The canaries before any run.
    canaries: Snapshot,
}

fn esc(p: &Path) -> String {
    qcommon::error::escape_path(p)
}

fn path(b: &BuiltQueue, part: Part, n: u64) -> PathBuf {
    message_path(&b.queue, part, n, SPLIT, false)
}

fn rel(b: &BuiltQueue, part: Part, n: u64) -> PathBuf {
    path(b, part, n).strip_prefix(&b.queue).expect("in the queue").to_path_buf()
}

fn is_file(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.nlink() == 1)
}

/// A number no file of the queue uses, in bucket `b`.
fn unused(q: &Path, b: u32, salt: u64) -> u64 {
    let mut n = 900_000 * u64::from(SPLIT) + u64::from(b) + salt * u64::from(SPLIT);
    loop {
        let taken = ["mess", "info", "local", "remote"]
            .iter()
            .any(|d| fs::symlink_metadata(q.join(d).join(b.to_string()).join(n.to_string())).is_ok())
            || ["todo", "intd", "bounce"].iter().any(|d| fs::symlink_metadata(q.join(d).join(n.to_string())).is_ok());
        if !taken {
            return n;
        }
        n += u64::from(SPLIT);
    }
}

/// Writes a queue file with qmail's owner for its part (when root).
fn put(p: &Path, data: &[u8], part: Part) {
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    fs::set_permissions(p, fs::Permissions::from_mode(part.file_perm())).unwrap();
    if is_root() {
        let uid = IDS.uid(part.file_owner());
        std::os::unix::fs::lchown(p, Some(uid), Some(IDS.qmail_gid)).unwrap();
    }
}

fn mknod_char(p: &Path, major: u32, minor: u32) {
    nix::sys::stat::mknod(
        p,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(major.into(), minor.into()),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
}

fn hostile(seed: u64, sendmutex_link: bool) -> Hostile {
    // On tmpfs: making and removing a thousand directories on a busy disk
    // waits on its journal.
    let tmp = scratch(true);
    let real = tmp.path().join("real").join("queue");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    let built = build(&real, 48, SPLIT, seed, 0.35);
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let q = real.clone();
    let mut odd: Vec<(String, &'static str)> = Vec::new();

    // Canaries.
    let canary = outside.join("canary.txt");
    fs::write(&canary, b"canary: never read through a link, never changed\n").unwrap();
    let cdir = outside.join("canary-dir");
    fs::create_dir(&cdir).unwrap();
    for n in [7u64, 14, 21] {
        fs::write(cdir.join(n.to_string()), b"Fcanary@outside.example\0").unwrap();
    }
    let cfifo = outside.join("canary-fifo");
    nix::unistd::mkfifo(&cfifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let csend = outside.join("sendmutex-canary");
    fs::write(&csend, b"").unwrap();

    // The catalogue's traps and strange names (their canaries go outside too).
    let dmg = outside.join("damage");
    for d in [Damage::SymlinkTrap, Damage::FifoTrap, Damage::StrayNames, Damage::StraySubdirs] {
        apply_damage(&built, d, seed, &dmg).unwrap_or_else(|e| panic!("damage {}: {e:#}", d.name()));
    }

    // Victims among preprocessed messages still whole after the damages.
    let whole = |n: u64| {
        [Part::Mess, Part::Info].iter().all(|p| is_file(&path(&built, *p, n)))
            && fs::symlink_metadata(path(&built, Part::Bounce, n)).is_err()
    };
    let pre: Vec<&qtests::BuiltMessage> =
        built.messages.iter().filter(|m| m.state == BuiltState::Preprocessed && whole(m.number)).collect();
    let nulls: Vec<u64> = pre.iter().filter(|m| m.sender.is_empty()).map(|m| m.number).collect();
    let others: Vec<u64> = pre.iter().filter(|m| !m.sender.is_empty()).map(|m| m.number).collect();
    assert!(nulls.len() >= 3 && others.len() >= 5, "not enough victims: {} null, {} other", nulls.len(), others.len());
    // One whose recipients stay in the queue (remote goes outside below,
    // and the trap made one local bucket a link).
    let real_local = |n: u64| {
        let bucket = q.join("local").join((n % u64::from(SPLIT)).to_string());
        fs::symlink_metadata(&bucket).is_ok_and(|m| m.is_dir()) && is_file(&path(&built, Part::Local, n))
    };
    let with_local = *others[3..].iter().find(|n| real_local(**n)).expect("a message with local recipients");

    // A hard link from outside to the info of a null-sender message (which
    // --expire would backdate) and to a mess.
    let linked_null = nulls[0];
    fs::hard_link(path(&built, Part::Info, linked_null), outside.join("hardlinked-info")).unwrap();
    odd.push((esc(&rel(&built, Part::Info, linked_null)), "links"));
    fs::hard_link(path(&built, Part::Mess, others[0]), outside.join("hardlinked-mess")).unwrap();
    odd.push((esc(&rel(&built, Part::Mess, others[0])), "links"));

    // The info of a live message as a link to the canary.
    let p = path(&built, Part::Info, others[1]);
    fs::remove_file(&p).unwrap();
    symlink(&canary, &p).unwrap();
    odd.push((esc(&rel(&built, Part::Info, others[1])), "symbolic link"));

    // 2 GB sparse files: an info, a remote, and a null-sender mess whose
    // header never ends.
    let p = path(&built, Part::Info, with_local);
    File::options().write(true).open(&p).unwrap().set_len(GIB2).unwrap();
    odd.push((esc(&rel(&built, Part::Info, with_local)), "larger than"));
    let p = path(&built, Part::Remote, others[2]);
    if is_file(&p) {
        File::options().write(true).open(&p).unwrap().set_len(GIB2).unwrap();
    }
    let p = path(&built, Part::Mess, nulls[1]);
    fs::write(&p, b"Received: (qmail 1 invoked for bounce); 1 Jan 2025 00:00:00 -0000\nSubject: zeros follow\nX-Pad: ")
        .unwrap();
    File::options().write(true).open(&p).unwrap().set_len(GIB2).unwrap();

    // Device nodes (root only): /dev/zero's numbers as a live message's
    // info (a read would never end), /dev/null's as a local file.
    if is_root() {
        let victim = *others[3..].iter().find(|n| **n != with_local).expect("a victim");
        let p = path(&built, Part::Info, victim);
        fs::remove_file(&p).unwrap();
        mknod_char(&p, 1, 5);
        odd.push((esc(&rel(&built, Part::Info, victim)), "character device"));
        // In a bucket that is a directory (the trap made one a link).
        let b =
            (0..SPLIT).find(|b| fs::symlink_metadata(q.join("local").join(b.to_string())).is_ok_and(|m| m.is_dir()));
        let n = unused(&q, b.expect("a local bucket"), 1);
        mknod_char(&path(&built, Part::Local, n), 1, 3);
        odd.push((esc(&rel(&built, Part::Local, n)), "character device"));
    }

    // A socket and a FIFO where message files belong.
    let n = unused(&q, 3, 2);
    let sp = path(&built, Part::Mess, n);
    drop(std::os::unix::net::UnixListener::bind(&sp).unwrap_or_else(|e| panic!("bind {}: {e}", sp.display())));
    odd.push((esc(&rel(&built, Part::Mess, n)), "socket"));
    let n = unused(&q, 4, 3);
    nix::unistd::mkfifo(&path(&built, Part::Todo, n), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    odd.push((esc(&rel(&built, Part::Todo, n)), "named pipe"));

    // Names with escape sequences, as a link (its target too) and a file.
    let evil_link = PathBuf::from("mess/5").join(OsStr::from_bytes(b"\x1b]2;owned\x07"));
    symlink(OsStr::from_bytes(b"\x1b[2J\x1b[31m/etc/shadow\r\n"), q.join(&evil_link)).unwrap();
    odd.push((esc(&evil_link), "symbolic link"));
    let evil_file = PathBuf::from("info/6").join(OsStr::from_bytes(b"evil\rname\x9b\xff"));
    fs::write(q.join(&evil_file), b"F\0").unwrap();
    odd.push((esc(&evil_file), "not a message number"));

    // A directory nested 1,000 deep in a bucket, a file at the bottom.
    let deep = PathBuf::from("mess/1/deep");
    let mut d = q.join(&deep);
    fs::create_dir(&d).unwrap();
    for _ in 0..1000 {
        d.push("d");
        fs::create_dir(&d).unwrap();
    }
    fs::write(d.join("1"), b"Received: at the bottom\n\nhello\n").unwrap();
    odd.push((esc(&deep), "directory"));

    // Numbers past 2^63 and 2^64 - 1 (whole messages, not yet
    // preprocessed), a name past 2^64.
    let text = b"Received: (qmail 77 invoked by uid 0); 1 Jan 2025 00:00:00 -0000\nSubject: big\n\nbig\n";
    for n in [BIG, u64::MAX] {
        put(&path(&built, Part::Mess, n), text, Part::Mess);
        put(&path(&built, Part::Intd, n), b"u0\0p77\0Fbig@example.org\0Tsomeone@example.net\0", Part::Intd);
        fs::hard_link(path(&built, Part::Intd, n), path(&built, Part::Todo, n)).unwrap();
        odd.push((esc(&rel(&built, Part::Mess, n)), "inode"));
    }
    let past = PathBuf::from(format!("mess/{}/18446744073709551616", 18_446_744_073_709_551_616u128 % 7));
    put(&q.join(&past), text, Part::Mess);
    odd.push((esc(&past), "not a message number"));

    // Last, the links that replace whole directories and lock files.
    let rdir = outside.join("remote-dir");
    fs::rename(q.join("remote"), &rdir).unwrap();
    symlink(&rdir, q.join("remote")).unwrap();
    odd.push(("remote".into(), "symbolic link"));
    let trig = q.join("lock/trigger");
    fs::remove_file(&trig).unwrap();
    symlink(&cfifo, &trig).unwrap();
    odd.push(("lock/trigger".into(), "symbolic link"));
    odd.push(("lock/tcpto".into(), "symbolic link"));
    let mut held = None;
    if sendmutex_link {
        let sm = q.join("lock/sendmutex");
        fs::remove_file(&sm).unwrap();
        symlink(&csend, &sm).unwrap();
        odd.push(("lock/sendmutex".into(), "symbolic link"));
        held = Some(hold_flock(&csend));
    }

    // The queue root as a link, as /var/qmail/queue often is.
    let link = tmp.path().join("queue");
    symlink(&real, &link).unwrap();

    // Canaries' access times well before their modification times: any
    // read through a link shows.
    age_atimes(&outside);
    let canaries = snapshot_light(&outside);
    Hostile { _tmp: tmp, real, link, outside, built, oddities: odd, linked_null, _held: held, canaries }
}

impl Hostile {
    /// A tool run on the queue through its symbolic link.
    fn cmd(&self, name: &str) -> Invocation {
        cmd(name).queue(&self.link, SPLIT)
    }

    /// No canary changed, not even its access time (a hard-linked
    /// canary's link count may drop when its queue name goes).
    fn assert_canaries(&self, run: &Run) {
        let now = snapshot_light(&self.outside);
        let d = self.canaries.compare(&now, Compare::CANARY);
        assert_no_diff(&d, "a canary outside the queue changed", Some(run));
    }

    /// Files in the queue that are neither regular files nor directories
    /// (outside lost+found), but the trigger FIFO.
    fn specials(&self) -> Vec<String> {
        let t = snapshot_light(&self.real);
        t.entries
            .iter()
            .filter(|(p, n)| {
                !matches!(n.kind, Kind::File | Kind::Dir)
                    && !p.starts_with("lost+found")
                    && *p != Path::new("lock/trigger")
            })
            .map(|(p, n)| format!("{} ({:?})", esc(p), n.kind))
            .collect()
    }

    fn mess_count(&self) -> usize {
        numeric_files(&self.real.join("mess")).len()
    }
}

/// A read-only run: nothing in the queue changes, not even an access time.
fn read_only(h: &Hostile, inv: Invocation, codes: &[i32]) -> Run {
    age_atimes(&h.real);
    let before = snapshot_light(&h.real);
    let run = inv.run();
    run.assert_sane().expect_any(codes);
    h.assert_canaries(&run);
    let d = before.compare(&snapshot_light(&h.real), Compare::READ_ONLY);
    assert_no_diff(&d, "a read-only run changed the queue", Some(&run));
    run
}

#[test]
fn qfixq_check_names_every_oddity_and_changes_nothing() {
    if !root_or_skip("qfixq_check_names_every_oddity_and_changes_nothing") {
        return;
    }
    let h = hostile(11, true);
    // Grouped by kind, then every finding (--all).
    let grouped = read_only(&h, h.cmd("qfixq"), &[4]);
    assert!(grouped.out().contains("what live will do"), "{}", grouped.show());
    let run = read_only(&h, h.cmd("qfixq").arg("--all"), &[4]);
    let out = run.out();
    assert!(out.contains("(a symbolic link)"), "the header says the root is a link\n{}", run.show());
    for (p, word) in &h.oddities {
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with(&format!("{p}:"))).collect();
        assert!(!lines.is_empty(), "no line for {p}\n{}", run.show());
        assert!(lines.iter().any(|l| l.contains(word)), "the line for {p} does not say {word:?}: {lines:?}");
    }
    let run = read_only(&h, h.cmd("qfixq").arg("--json"), &[4]);
    check_json(&run.out()).unwrap_or_else(|e| panic!("invalid JSON: {e}\n{}", run.show()));
    read_only(&h, h.cmd("qfixq").arg("--quiet").arg("--threads").arg("1"), &[4]);
}

#[test]
fn qfixq_live_clears_every_trap_and_touches_nothing_outside() {
    if !root_or_skip("qfixq_live_clears_every_trap_and_touches_nothing_outside") {
        return;
    }
    let h = hostile(12, true);
    let run = h.cmd("qfixq").arg("live").run();
    run.assert_sane().expect(1);
    h.assert_canaries(&run);
    assert_no_diff(&h.specials(), "links, pipes, sockets or devices left in the queue", Some(&run));
    // The lock file is a regular file now, never the canary it pointed at.
    let sm = fs::symlink_metadata(h.real.join("lock/sendmutex")).unwrap();
    assert!(sm.is_file(), "lock/sendmutex is not a regular file");
    // The message numbered past 2^63 is saved under its inode.
    let saved: Vec<(u64, PathBuf)> = numeric_files(&h.real.join("mess"))
        .into_iter()
        .filter(|(_, p)| read_nofollow(p).is_ok_and(|d| d.ends_with(b"Subject: big\n\nbig\n")))
        .collect();
    assert_eq!(saved.len(), 2, "both big-numbered messages kept: {saved:?}\n{}", run.show());
    for (n, p) in &saved {
        assert_eq!(fs::metadata(p).unwrap().ino(), *n, "{} renumbered to its inode", p.display());
    }
    // The 1,000-deep directory went to lost+found whole.
    assert!(!h.real.join("mess/1/deep").exists());
    let again = h.cmd("qfixq").run();
    again.assert_sane().expect(0);
    let again = h.cmd("qfixq").arg("live").run();
    again.assert_sane().expect(0);
    h.assert_canaries(&again);
}

#[test]
fn qfixq_live_empty_removes_mail_not_canaries() {
    if !root_or_skip("qfixq_live_empty_removes_mail_not_canaries") {
        return;
    }
    let h = hostile(13, true);
    let run = h.cmd("qfixq").arg("live").arg("empty").run();
    run.assert_sane().expect(1);
    h.assert_canaries(&run);
    assert_no_diff(&h.specials(), "links, pipes, sockets or devices left in the queue", Some(&run));
    assert_eq!(h.mess_count(), 0, "messages left after live empty\n{}", run.show());
    h.cmd("qfixq").run().assert_sane().expect(0);
}

#[test]
fn qstat_in_every_mode_reads_only() {
    if !root_or_skip("qstat_in_every_mode_reads_only") {
        return;
    }
    let h = hostile(14, true);
    let run = read_only(&h, h.cmd("qstat"), &[0, 4]);
    assert!(run.out().starts_with("messages in queue: "), "{}", run.show());
    read_only(&h, h.cmd("qstat").arg("--detail"), &[0, 4]);
    read_only(&h, h.cmd("qstat").args(["--detail", "--top", "5"]), &[0, 4]);
    let run = read_only(&h, h.cmd("qstat").args(["--json", "--detail", "--top", "3"]), &[0, 4]);
    check_json(&run.out()).unwrap_or_else(|e| panic!("invalid JSON: {e}\n{}", run.show()));
    read_only(&h, h.cmd("qstat").args(["--prometheus", "--detail"]), &[0, 4]);
    read_only(&h, h.cmd("qstat").arg("--check"), &[0, 1, 2, 3]);
}

#[test]
fn qkillns_dry_runs_read_only() {
    if !root_or_skip("qkillns_dry_runs_read_only") {
        return;
    }
    let h = hostile(15, true);
    // The hostile queue holds messages whose envelopes cannot be read:
    // each is named and left alone, and the status says so (exit 4).
    // -v: every message listed (the plain listing shows the first ten).
    let run = read_only(&h, h.cmd("qkillns").args(["-n", "-v"]), &[4]);
    assert!(run.err().contains("left alone"), "{}", run.show());
    assert!(run.out().contains(&h.linked_null.to_string()), "the null-sender message is listed\n{}", run.show());
    read_only(&h, h.cmd("qkillns").arg("-n"), &[4]);
    read_only(&h, h.cmd("qkillns").args(["-n", "--double", "-v"]), &[4]);
    read_only(&h, h.cmd("qkillns").args(["-n", "--header", "Subject: ."]), &[4]);
    let run = read_only(&h, h.cmd("qkillns").args(["-n", "--json", "--header", "X-Pad: x"]), &[4]);
    check_json(&run.out()).unwrap_or_else(|e| panic!("invalid JSON: {e}\n{}", run.show()));
    read_only(&h, h.cmd("qkillns").args(["-n", "--expire"]), &[4]);
}

#[test]
fn qkillns_refuses_a_linked_sendmutex_and_removes_beside_traps() {
    if !root_or_skip("qkillns_refuses_a_linked_sendmutex_and_removes_beside_traps") {
        return;
    }
    // lock/sendmutex is a link: the lock cannot be taken safely; refused.
    let h = hostile(16, true);
    let run = read_only(&h, h.cmd("qkillns"), &[8]);
    assert!(run.err().contains("sendmutex"), "{}", run.show());

    let h = hostile(17, false);
    let nulls = h.built.messages.iter().filter(|m| m.sender.is_empty()).count();
    assert!(nulls > 3);
    let run = h.cmd("qkillns").run();
    // Done; the messages it could not read are left alone: exit 4.
    run.assert_sane().expect(4);
    h.assert_canaries(&run);
    // The null-sender message hard-linked from outside is gone from the
    // queue; its outside name keeps the content.
    assert!(!path(&h.built, Part::Mess, h.linked_null).exists(), "{}", run.show());
    assert!(fs::symlink_metadata(h.outside.join("hardlinked-info")).unwrap().nlink() == 1);
    // Nothing selected remains.
    let again = h.cmd("qkillns").arg("-n").run();
    again.assert_sane().expect(4);
    assert!(!again.out().contains(&h.linked_null.to_string()), "{}", again.show());
}

#[test]
fn qkillns_expire_never_backdates_a_file_linked_from_outside() {
    if !root_or_skip("qkillns_expire_never_backdates_a_file_linked_from_outside") {
        return;
    }
    let h = hostile(18, true);
    // A fake qmail-send: a process that ignores SIGALRM.
    let Some(fake) = StandIn::start(None, None, None) else {
        skipped("qkillns_expire_never_backdates_a_file_linked_from_outside", "neither python3 nor perl");
        return;
    };
    let info = path(&h.built, Part::Info, h.linked_null);
    let before = fs::symlink_metadata(&info).unwrap().mtime();
    let run = h.cmd("qkillns").args(["--expire", "--pid", &fake.pid().to_string()]).run();
    run.assert_sane().expect_any(&[0, 4, 8]);
    h.assert_canaries(&run);
    assert_eq!(fs::symlink_metadata(&info).unwrap().mtime(), before, "{}", run.show());
    assert!(run.err().contains(&h.linked_null.to_string()), "the refusal names the message\n{}", run.show());
    // Other null-sender messages were backdated.
    let backdated = h
        .built
        .messages
        .iter()
        .filter(|m| m.sender.is_empty() && m.number != h.linked_null && m.state == BuiltState::Preprocessed)
        .filter(|m| {
            let p = path(&h.built, Part::Info, m.number);
            fs::symlink_metadata(&p).is_ok_and(|md| md.is_file() && md.mtime() < m.birth)
        })
        .count();
    assert!(backdated > 0, "no message was backdated\n{}", run.show());
}

/// A qmail home around a healthy queue, with `bin/qmail-showctl` the
/// given shell script of the given mode.
fn home_with_showctl(script: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let tmp = scratch(true);
    let home = tmp.path().join("qmail");
    build(&home.join("queue"), 10, SPLIT, 19, 0.2);
    fs::create_dir(home.join("bin")).unwrap();
    let p = home.join("bin/qmail-showctl");
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    (tmp, home)
}

#[test]
fn qmail_showctl_is_run_only_when_safe_and_never_trusted_blindly() {
    if !root_or_skip("qmail_showctl_is_run_only_when_safe_and_never_trusted_blindly") {
        return;
    }
    // Writable by others: never run (it would run as root).
    let (tmp, home) = home_with_showctl("#!/bin/sh\ntouch \"$(dirname \"$0\")/../../ran\"\n", 0o777);
    let run = cmd("qfixq").arg("--qmail-home").arg(&home).args(["--ids", IDS_ARG]).run();
    run.assert_sane().expect(0);
    assert!(!tmp.path().join("ran").exists(), "a world-writable qmail-showctl was run\n{}", run.show());
    assert!(run.out().contains("writable by group or others"), "{}", run.show());

    // Output with escape sequences and junk: the three lines are used,
    // nothing raw reaches the terminal.
    let script = "#!/bin/sh\nprintf 'qmail home directory: \\033]2;owned\\007/var/qmail.\\n'\n\
                  printf 'subdirectory split: 7.\\nuser ids: 1, 2, 3, 0, 5, 7001, 7003, 7002.\\n'\n\
                  printf 'group ids: 9, 7004.\\nbadmailfrom: \\033[2J\\377\\n'\n";
    let (_tmp, home) = home_with_showctl(script, 0o755);
    for tool in ["qfixq", "qstat", "qkillns"] {
        let mut inv = cmd(tool).arg("--qmail-home").arg(&home);
        if tool == "qkillns" {
            inv = inv.arg("-n");
        }
        let run = inv.run();
        run.assert_sane().expect(0);
        if tool == "qfixq" {
            assert!(run.out().contains("split:     7 (from"), "{}", run.show());
            assert!(run.out().contains("qmailq=7001 qmails=7002 qmailr=7003 qmail gid=7004"), "{}", run.show());
        }
    }

    // One that never ends: killed after its time limit, the run goes on.
    let (_tmp, home) = home_with_showctl("#!/bin/sh\nexec sleep 1000\n", 0o755);
    let run = cmd("qfixq").arg("--qmail-home").arg(&home).args(["--ids", IDS_ARG]).run();
    run.assert_sane().expect(0);
    assert!(run.elapsed < std::time::Duration::from_secs(30), "{}", run.show());
}
