//! Races: while a tool runs, a harness thread swaps message files for
//! decoys and back, thousands of times, with `renameat2(RENAME_EXCHANGE)`
//! (atomic: the name always exists). The decoys are a symbolic link to an
//! outside canary and a hard link of another outside canary. Whatever the
//! scan saw, the change that follows is verified on the open descriptor:
//! it must be refused when the name holds something else, reported, and
//! the run must go on. No canary may change (content, owner, mode, times),
//! no message content may be lost, and once the harness stops a rerun
//! leaves a healthy queue.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use qcommon::queue::Part;
use qtests::prelude::cross::*;
use qtests::{message_path, BuiltQueue, BuiltState};

const SPLIT: u32 = 7;

struct Swapper {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// Exchanges each target with a fresh decoy, pass after pass: a target
/// holds its decoy during one pass over the others, its original during
/// the next, so whatever the tool saw at its scan has a fair chance of
/// being something else when it makes its change.
fn start_swapper(targets: Vec<PathBuf>, stash: PathBuf, canary_file: PathBuf, canary_link_target: PathBuf) -> Swapper {
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let (s, c) = (stop.clone(), swaps.clone());
    let handle = std::thread::spawn(move || {
        let mut k = 0u64;
        let mut swapped = vec![false; targets.len()];
        let back = |t: &Path, decoy: &Path| {
            if renameat2(AT_FDCWD, decoy, AT_FDCWD, t, RenameFlags::RENAME_EXCHANGE).is_err() {
                // The tool removed or moved the decoy (and may have
                // written a new file there): the original goes back.
                let _ = fs::rename(decoy, t);
            }
        };
        while !s.load(Ordering::Relaxed) {
            for (i, t) in targets.iter().enumerate() {
                k += 1;
                let decoy = stash.join(format!("decoy-{i}"));
                if swapped[i] {
                    back(t, &decoy);
                    swapped[i] = false;
                    c.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let _ = fs::remove_file(&decoy);
                let made = if k.is_multiple_of(3) {
                    fs::hard_link(&canary_file, &decoy)
                } else {
                    symlink(&canary_link_target, &decoy)
                };
                if made.is_ok() && renameat2(AT_FDCWD, &decoy, AT_FDCWD, t, RenameFlags::RENAME_EXCHANGE).is_ok() {
                    swapped[i] = true;
                }
            }
        }
        for (i, t) in targets.iter().enumerate() {
            if swapped[i] {
                back(t, &stash.join(format!("decoy-{i}")));
            }
        }
    });
    Swapper { stop, swaps, handle: Some(handle) }
}

impl Swapper {
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("swapper");
        }
        self.swaps.load(Ordering::Relaxed)
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Content hashes of every mess file (in the queue or in lost+found).
fn mess_contents(queue: &Path) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for (p, n) in snapshot_light(queue).entries {
        let in_mess =
            p.starts_with("mess") || (p.starts_with("lost+found") && p.file_name().is_some_and(|f| f == "mess"));
        if n.kind == Kind::File && in_mess {
            *out.entry(n.hash.unwrap_or(0)).or_insert(0) += 1;
        }
    }
    out
}

struct Setup {
    _tmp: tempfile::TempDir,
    built: BuiltQueue,
    queue: PathBuf,
    outside: PathBuf,
    stash: PathBuf,
    canary_file: PathBuf,
    canary_target: PathBuf,
}

fn setup(seed: u64) -> Setup {
    let tmp = scratch(true);
    let queue = tmp.path().join("queue");
    let built = build(&queue, 40, SPLIT, seed, 0.5);
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    // Not a valid envelope: no tool may take it for one.
    let canary_file = outside.join("hard-canary");
    fs::write(&canary_file, b"canary reached through a hard link\n").unwrap();
    fs::set_permissions(&canary_file, fs::Permissions::from_mode(0o640)).unwrap();
    let canary_target = outside.join("link-canary");
    fs::write(&canary_target, b"canary reached through a symbolic link\n").unwrap();
    fs::set_permissions(&canary_target, fs::Permissions::from_mode(0o604)).unwrap();
    age_atimes(&outside);
    let stash = tmp.path().join("stash");
    fs::create_dir(&stash).unwrap();
    Setup { _tmp: tmp, built, queue, outside, stash, canary_file, canary_target }
}

/// Wrong owner and mode on each target, as after a careless restore.
fn damage(targets: &[PathBuf]) {
    for t in targets {
        let Ok(m) = fs::symlink_metadata(t) else { continue };
        if m.is_file() && m.nlink() == 1 {
            std::os::unix::fs::lchown(t, Some(20_000), Some(20_000)).unwrap();
            fs::set_permissions(t, fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
}

fn refusals(run: &Run) -> usize {
    run.out().lines().filter(|l| l.contains("changed since it was scanned")).count()
}

#[test]
fn qfixq_live_refuses_swapped_entries_and_goes_on() {
    if !root_or_skip("qfixq_live_refuses_swapped_entries_and_goes_on") {
        return;
    }
    let s = setup(21);
    // Wrong owners and modes everywhere, besides those of the targets.
    qtests::apply_damage(&s.built, qtests::Damage::BadOwnersModes, 21, &s.stash.join("unused")).expect("damage");
    let targets: Vec<PathBuf> = s
        .built
        .messages
        .iter()
        .filter(|m| m.state == BuiltState::Preprocessed)
        .map(|m| message_path(&s.queue, Part::Info, m.number, SPLIT, false))
        .collect();
    assert!(targets.len() >= 20);
    let canaries = snapshot_light(&s.outside);
    let mess_before = mess_contents(&s.queue);
    let start = Instant::now();
    let (mut refused, mut swaps, mut rounds) = (0, 0, 0);
    // Rounds until the race has been hit a few times (it is, in the first
    // round or two) over thousands of swaps; at most 12 rounds or 40 s.
    while rounds < 12 && (refused < 3 || rounds < 3 || swaps < 5000) && start.elapsed() < Duration::from_secs(40) {
        rounds += 1;
        damage(&targets);
        let sw = start_swapper(targets.clone(), s.stash.clone(), s.canary_file.clone(), s.canary_target.clone());
        let run = cmd("qfixq").queue(&s.queue, SPLIT).args(["live", "--threads", "2"]).run();
        swaps += sw.finish();
        run.assert_sane().expect_any(&[1, 4]);
        let d = canaries.compare(&snapshot_light(&s.outside), Compare::CANARY);
        assert_no_diff(&d, "a canary outside the queue changed", Some(&run));
        refused += refusals(&run);
        println!(
            "round {rounds}: exit {:?}, {} refused, {} lines",
            run.code,
            refusals(&run),
            run.out().lines().count()
        );
    }
    println!("{rounds} rounds, {swaps} swaps, {refused} changes refused");
    assert!(swaps > 1000, "the harness swapped only {swaps} times");
    assert!(refused > 0, "the race was never hit in {rounds} rounds ({swaps} swaps)");
    // The harness has stopped: a rerun finishes the job, a check is clean.
    let run = cmd("qfixq").queue(&s.queue, SPLIT).arg("live").run();
    run.assert_sane().expect_any(&[0, 1]);
    cmd("qfixq").queue(&s.queue, SPLIT).run().assert_sane().expect(0);
    assert_eq!(mess_contents(&s.queue), mess_before, "a message's content was lost");
    let d = canaries.compare(&snapshot_light(&s.outside), Compare::CANARY);
    assert_no_diff(&d, "a canary outside the queue changed", Some(&run));
}

#[test]
fn qkillns_expire_never_backdates_a_swapped_in_canary() {
    if !root_or_skip("qkillns_expire_never_backdates_a_swapped_in_canary") {
        return;
    }
    let s = setup(22);
    let Some(fake) = StandIn::start(None, None, None) else {
        skipped("qkillns_expire_never_backdates_a_swapped_in_canary", "neither python3 nor perl");
        return;
    };
    let nulls: Vec<&qtests::BuiltMessage> =
        s.built.messages.iter().filter(|m| m.state == BuiltState::Preprocessed && m.sender.is_empty()).collect();
    let targets: Vec<PathBuf> =
        nulls.iter().map(|m| message_path(&s.queue, Part::Info, m.number, SPLIT, false)).collect();
    assert!(targets.len() >= 8, "{} null-sender messages", targets.len());
    let canaries = snapshot_light(&s.outside);
    let (mut swaps, mut refused) = (0, 0);
    for round in 0..4 {
        // Young again, so that every round has something to backdate.
        let now = std::time::SystemTime::now();
        for t in &targets {
            if fs::symlink_metadata(t).is_ok_and(|m| m.is_file() && m.nlink() == 1) {
                fs::File::options().write(true).open(t).unwrap().set_modified(now).unwrap();
            }
        }
        let sw = start_swapper(targets.clone(), s.stash.clone(), s.canary_file.clone(), s.canary_target.clone());
        let run = cmd("qkillns").queue(&s.queue, SPLIT).args(["--expire", "--pid", &fake.pid().to_string()]).run();
        swaps += sw.finish();
        run.assert_sane().expect_any(&[0, 4, 8]);
        refused += run.err().lines().filter(|l| l.contains("changed since it was scanned")).count();
        let d = canaries.compare(&snapshot_light(&s.outside), Compare::CANARY);
        assert_no_diff(&d, &format!("round {round}: a canary outside the queue changed"), Some(&run));
    }
    println!("{swaps} swaps, {refused} changes refused");
    assert!(swaps > 1000, "the harness swapped only {swaps} times");
    // Every original info is back in place, a regular file with one link.
    for t in &targets {
        let m = fs::symlink_metadata(t).unwrap();
        assert!(m.is_file() && m.nlink() == 1, "{} is not the original info", t.display());
    }
}

#[test]
fn a_race_never_sets_aside_a_file_the_scan_did_not_see() {
    if !root_or_skip("a_race_never_sets_aside_a_file_the_scan_did_not_see") {
        return;
    }
    for round in 0..8 {
        // A fresh queue each round: what a round leaves behind (a message
        // whose mess went to lost+found while its info was a decoy) is no
        // reason for the next to move an info.
        let s = setup(30 + round);
        let targets: Vec<PathBuf> = s
            .built
            .messages
            .iter()
            .filter(|m| m.state == BuiltState::Preprocessed)
            .map(|m| message_path(&s.queue, Part::Info, m.number, SPLIT, false))
            .collect();
        let inodes: Vec<u64> = targets.iter().map(|t| fs::symlink_metadata(t).unwrap().ino()).collect();
        damage(&targets);
        let sw = start_swapper(targets.clone(), s.stash.clone(), s.canary_file.clone(), s.canary_target.clone());
        let run = cmd("qfixq").queue(&s.queue, SPLIT).args(["live", "--threads", "2"]).run();
        sw.finish();
        run.assert_sane();
        // The harness put every original back where it was, whatever the
        // tool did to the decoys: an original that is not there was moved
        // or removed by the tool, although no finding could be about it
        // (each is a valid info beside its mess and recipients).
        let out = run.out();
        let moved: Vec<String> = targets
            .iter()
            .zip(&inodes)
            .filter(|(t, ino)| fs::symlink_metadata(t).map(|m| m.ino()).ok() != Some(**ino))
            .map(|(t, _)| {
                let rel = t.strip_prefix(&s.queue).unwrap().to_string_lossy().into_owned();
                let lines: Vec<&str> = out.lines().filter(|l| l.contains(&rel)).collect();
                format!("{rel}:\n    {}", lines.join("\n    "))
            })
            .collect();
        assert!(moved.is_empty(), "round {round}: original info files moved by qfixq:\n{}", moved.join("\n"));
    }
}
