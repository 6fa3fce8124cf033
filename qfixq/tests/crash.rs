//! Crash safety (docs/repair-policy.md, rule 4): qfixq killed right after
//! any one of its steps, then run again, must end with the same queue as an
//! uninterrupted run, and lose no message.
//!
//! With qcommon's `fault-injection` feature (enabled for these tests by
//! qfixq's dev-dependencies), `QTOOLS_ABORT_AFTER_STEP=k` makes qfixq kill
//! itself with SIGKILL right after its k-th step. For each damage, an
//! uninterrupted live run on a fresh copy counts the steps; then for each k
//! (every k up to 40, then every 7th, then the last) the same damaged queue
//! is built afresh, a live run dies after step k, a second live run must
//! finish (exit 0 or 1), and a check must find nothing (exit 0). The result
//! is compared with the policy's outcome for that queue and, when the two
//! builds hold the same mail (victims and contents are seeded, but inode
//! numbers differ), with the uninterrupted run's: the same messages by
//! content with the same envelopes and the same lost+found contents.
//!
//! A last test kills a live run on 2,000 messages at a seeded random moment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use qtests::prelude::qfixq::*;
use qtests::rng::Rng;
use qtests::snapshot::{hash_bytes, snapshot};
use qtests::Damage;

const MESSAGES: usize = 12;
const SPLIT: u32 = 7;

/// Removes finished fixtures in the background: removing directories is
/// slow on some disks (journal waits), and the next build need not wait.
struct Reaper(Vec<std::thread::JoinHandle<()>>);

impl Reaper {
    fn bury(&mut self, fx: Fixture) {
        self.0.push(std::thread::spawn(move || drop(fx)));
        if self.0.len() > 8 {
            let h = self.0.remove(0);
            let _ = h.join();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for h in self.0.drain(..) {
            let _ = h.join();
        }
    }
}

/// `--split` when the buckets on disk cannot tell it.
fn split_args(queue: &Path) -> Vec<String> {
    let unclear = ["mess", "info", "local", "remote"].iter().any(|d| {
        let dir = queue.join(d);
        !std::fs::symlink_metadata(dir.join((SPLIT - 1).to_string())).is_ok_and(|m| m.is_dir())
            || std::fs::symlink_metadata(dir.join(SPLIT.to_string())).is_ok()
    });
    if unclear {
        vec!["--split".into(), SPLIT.to_string()]
    } else {
        Vec::new()
    }
}

/// What lost+found holds, by content: (file name without a `.k` suffix,
/// content hash) -> count; `reason` files (which name message numbers)
/// left out, and the temporary file of a reason whose write a kill cut
/// short (it holds no mail).
fn lost_found_contents(queue: &Path) -> BTreeMap<(String, u64), usize> {
    let mut out = BTreeMap::new();
    for f in regular_files(&queue.join("lost+found")) {
        if f.starts_with(queue.join("lost+found/salvaged")) {
            continue; // compared apart: their names are message numbers
        }
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == "reason" || name.starts_with(".qtools-tmp.") {
            continue;
        }
        let base = match name.split_once('.') {
            Some((b, k)) if k.bytes().all(|c| c.is_ascii_digit()) && !k.is_empty() => b.to_string(),
            _ => name,
        };
        let data = read_nofollow(&f).unwrap_or_default();
        *out.entry((base, hash_bytes(&data))).or_insert(0) += 1;
    }
    out
}

/// The salvage records, by birth time -> count, each checked to name a
/// message of the queue whose mess inode is its number and whose info
/// holds the null sender: none dropped, none duplicated, none stale. (Why
/// the sender was lost is left out: two builds may damage the same
/// message's info differently.)
fn salvage_records(queue: &Path, split: u32) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for f in regular_files(&queue.join("lost+found/salvaged")) {
        let text = String::from_utf8(read_nofollow(&f).unwrap_or_default()).unwrap_or_default();
        let fields: Vec<&str> = text.trim_end().split(' ').collect();
        assert_eq!(fields.len(), 4, "{}: {text:?}", f.display());
        let n: u64 = fields[0].parse().unwrap();
        assert_eq!(f.file_name().unwrap().to_string_lossy(), fields[0], "{text:?}");
        assert_eq!(fields[1], fields[0], "record {text:?}: inode is not the number");
        let mess = queue.join("mess").join((n % u64::from(split)).to_string()).join(n.to_string());
        assert!(mess.is_file(), "record {text:?} names no message");
        let info = queue.join("info").join((n % u64::from(split)).to_string()).join(n.to_string());
        assert_eq!(read_nofollow(&info).unwrap_or_default(), b"F\0", "record {text:?}: info");
        assert!(["info-missing", "info-empty", "info-garbled"].contains(&fields[3]), "{text:?}");
        *out.entry(fields[2].parse().unwrap()).or_insert(0) += 1;
    }
    out
}

/// Which file contents sit together in one message: (content hash of
/// each part, by part) -> count. Two builds whose damages hit the same
/// contents but gave a garbled info to different messages hold the same
/// mail and the same files, yet not the same messages: their outcomes
/// differ rightly (a garbled info is replaced in a salvaged message, set
/// aside with an unsalvageable one).
fn pairing(queue: &Path, big_todo: bool) -> BTreeMap<Vec<Option<u64>>, usize> {
    let mut out = BTreeMap::new();
    for m in index(queue, big_todo).msgs.values() {
        let key: Vec<Option<u64>> = m.parts.iter().map(|f| f.as_ref().map(|f| hash_bytes(&f.data))).collect();
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// The end state compared across runs.
#[derive(Debug, PartialEq)]
struct Outcome {
    envs: BTreeMap<u64, Vec<Env>>,
    lost: BTreeMap<(String, u64), usize>,
    salvaged: BTreeMap<i64, usize>,
}

fn outcome(queue: &Path, split: u32, big_todo: bool) -> Outcome {
    Outcome {
        envs: actual_envs(queue, big_todo).unwrap_or_else(|e| panic!("repaired queue: {e:?}")),
        lost: lost_found_contents(queue),
        salvaged: salvage_records(queue, split),
    }
}

/// The k to try out of `total` steps.
fn sample(total: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = (1..=total.min(40)).collect();
    ks.extend((47..total).step_by(7));
    if total > 40 {
        ks.push(total);
    }
    ks.dedup();
    ks
}

fn crash_test(d: Damage, big_todo: bool) {
    crash_test_all(&[d], big_todo);
}

/// The crash test of several damages together.
fn crash_test_all(damages: &[Damage], big_todo: bool) {
    let d = damages[0];
    if !root_or_skip(d.name()) {
        return;
    }
    let seed = 500 + damages.iter().map(|d| *d as u64).sum::<u64>();
    let names: Vec<&str> = damages.iter().map(|d| d.name()).collect();
    let what = format!("{} ({})", names.join("+"), if big_todo { "big-todo" } else { "flat" });
    let mut reaper = Reaper(Vec::new());

    // The uninterrupted run.
    let fx = build(MESSAGES, SPLIT, big_todo, seed, damages);
    let q = fx.queue();
    let args = split_args(q);
    let mut live: Vec<&str> = args.iter().map(String::as_str).collect();
    let check = live.clone();
    // --all: every step is counted from its `done:` line.
    live.extend(["--all", "live"]);
    let ref_fates = expected_fates(q, big_todo);
    let ref_census = census(q, big_todo).files;
    let ref_pairs = pairing(q, big_todo);
    let run = qfixq(q, &live);
    run.expect(1, &format!("{what}: uninterrupted live"));
    let total = run.done_steps();
    assert!(total > 0, "{what}: no steps\n{}", run.show());
    qfixq(q, &check).expect(0, &format!("{what}: check after the uninterrupted run"));
    assert_none(&check_fates(&ref_fates, q, big_todo), &format!("{what}: uninterrupted run"), Some(&run));
    let reference = outcome(q, SPLIT, big_todo);
    reaper.bury(fx);

    let started = Instant::now();
    let ks = sample(total);
    let mut compared = 0;
    for &k in &ks {
        let what = format!("{what}, killed after step {k} of {total}");
        let fx = build(MESSAGES, SPLIT, big_todo, seed, damages);
        let q = fx.queue();
        let fates = expected_fates(q, big_todo);
        let census = census(q, big_todo);
        let pairs = pairing(q, big_todo);
        let before = snapshot(q);
        let outside = snapshot(&fx.outside);

        let ks = k.to_string();
        let first = qfixq_env(q, &live, &[("QTOOLS_ABORT_AFTER_STEP", ks.as_str())]);
        match first.signal() {
            Some(9) => {}
            _ => assert!(
                first.code() == Some(1) && first.done_steps() < k,
                "{what}: expected death by SIGKILL\n{}",
                first.show()
            ),
        }
        let second = qfixq(q, &live);
        assert!(
            matches!(second.code(), Some(0 | 1)),
            "{what}: the run after the crash must finish\n{}\n{}",
            first.show(),
            second.show()
        );
        let third = qfixq(q, &check);
        if third.code() != Some(0) {
            panic!("{what}: check after the rerun\n{}\n{}\n{}", first.show(), second.show(), third.show());
        }
        let ctx = format!("{}\n{}", first.show(), second.show());
        let fail = |errors: Vec<String>, title: &str| {
            if !errors.is_empty() {
                panic!("{what}: {title}:\n  {}\n{ctx}", errors.join("\n  "));
            }
        };
        fail(check_fates(&fates, q, big_todo), "messages");
        fail(check_census(&census, q), "file contents");
        fail(check_healthy(q, SPLIT, big_todo, &before), "queue health");
        fail(snapshot(&fx.outside).diff(&outside), "outside the queue");
        // The damage picks its victims by number, so two builds hold the
        // same mail only when the numbers came out in the same order.
        // Every salvage record names a live message with the null sender,
        // compared or not.
        salvage_records(q, SPLIT);
        if fates == ref_fates && census.files == ref_census && pairs == ref_pairs {
            let got = outcome(q, SPLIT, big_todo);
            if got != reference {
                panic!("{what}: differs from the uninterrupted run\nwant {reference:?}\ngot {got:?}\n{ctx}");
            }
            compared += 1;
        }
        reaper.bury(fx);
    }
    println!(
        "{what}: {total} steps, killed after {} of them ({:?}), {compared} compared with the uninterrupted run, in {:?}",
        ks.len(),
        if ks.len() == total { "all".to_string() } else { "k <= 40, then every 7th, and the last".to_string() },
        started.elapsed()
    );
}

macro_rules! crash_tests {
    ($($name:ident => $damage:ident, $big:expr;)*) => {
        $(
            #[test]
            fn $name() {
                crash_test(Damage::$damage, $big);
            }
        )*
    };
}

crash_tests! {
    crash_wrong_bucket => WrongBucket, false;
    crash_wrong_bucket_big_todo => WrongBucket, true;
    crash_extra_buckets => ExtraBuckets, false;
    crash_garbled_info => GarbledInfo, false;
    crash_empty_info => EmptyInfo, false;
    crash_missing_bucket => MissingBucket, false;
    crash_truncated_remote => TruncatedRemote, false;
    crash_truncated_local => TruncatedLocal, false;
    crash_broken_todo_with_intd => BrokenTodoWithIntd, false;
    crash_broken_todo_preprocessed => BrokenTodoPreprocessed, false;
    crash_pid_leftovers => PidLeftovers, false;
    crash_missing_lock_files => MissingLockFiles, false;
    crash_wrong_lock_files => WrongLockFiles, false;
    crash_bad_owners_modes => BadOwnersModes, false;
    crash_all_owners_wrong => AllOwnersWrong, false;
    crash_stray_names => StrayNames, false;
    crash_stray_subdirs => StraySubdirs, false;
    crash_symlink_trap => SymlinkTrap, false;
    crash_fifo_trap => FifoTrap, false;
    crash_zero_byte_mess => ZeroByteMess, false;
    crash_orphan_info => OrphanInfo, false;
    crash_orphan_todo => OrphanTodo, false;
    crash_s3_leftover => S3Leftover, false;
    crash_s2_leftover => S2Leftover, false;
    crash_orphan_local => OrphanLocal, false;
    crash_orphan_remote => OrphanRemote, false;
    crash_orphan_bounce => OrphanBounce, false;
    crash_extra_buckets_big_todo => ExtraBuckets, true;
    crash_broken_todo_with_intd_big_todo => BrokenTodoWithIntd, true;
    crash_stale_bounce_beside_todo => StaleBounceBesideTodo, false;
}

#[test]
fn crash_copied_to_other_fs() {
    crash_test(Damage::CopiedToOtherFs, false);
}

#[test]
fn crash_copied_to_other_fs_broken_links() {
    crash_test(Damage::CopiedToOtherFsBrokenLinks, true);
}

#[test]
fn crash_extra_hard_link() {
    crash_test(Damage::ExtraHardLink, false);
}

/// Kills a live run on 2,000 renumbered messages at a seeded random moment
/// between 20 and 300 ms, then reruns it: every message is intact.
#[test]
fn sigkill_at_a_random_moment() {
    if !root_or_skip("sigkill_at_a_random_moment") {
        return;
    }
    let seed = 2024;
    let fx = build(2000, 23, false, seed, &[Damage::CopiedToOtherFs]);
    let q = fx.queue();
    let fates = expected_fates(q, false);
    let census = census(q, false);
    let before = snapshot(q);
    let delay = Rng::new(seed).range(20, 300);

    let mut child = std::process::Command::new(binary())
        .arg("--queue")
        .arg(q)
        .args(["--ids", IDS_ARG, "live"])
        .env_remove("QTOOLS_ABORT_AFTER_STEP")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qfixq");
    std::thread::sleep(Duration::from_millis(delay));
    let finished = child.try_wait().expect("wait").is_some();
    let _ = child.kill();
    let status = child.wait().expect("wait");
    println!("killed after {delay} ms: {status:?} (finished before the kill: {finished})");

    let second = qfixq(q, &["live"]);
    assert!(matches!(second.code(), Some(0 | 1)), "rerun after SIGKILL\n{}", second.show());
    qfixq(q, &[]).expect(0, "check after the rerun");
    assert_none(&check_fates(&fates, q, false), "messages after SIGKILL and rerun", Some(&second));
    assert_none(&check_census(&census, q), "file contents after SIGKILL and rerun", Some(&second));
    assert_none(&check_healthy(q, 23, false, &before), "queue health after SIGKILL and rerun", Some(&second));
}

/// One randomized case: random damages from the catalogue, a random
/// conf-split from 1 to 1009, random big-todo, then one to three live runs
/// each killed after a random step, then a run to the end. The end state
/// must be the policy's, healthy, with every message's content, and equal
/// to an uninterrupted run's when the two builds hold the same mail.
/// Returns a line describing the case.
fn random_case(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let split = match rng.below(10) {
        0..=4 => rng.range(1, 31),
        5..=7 => rng.range(31, 301),
        _ => rng.range(301, 1010),
    } as u32;
    let big_todo = rng.chance(0.3);
    let mut damages: Vec<Damage> = Vec::new();
    if rng.chance(0.6) {
        damages.push(*rng.pick(&[Damage::CopiedToOtherFs, Damage::CopiedToOtherFsBrokenLinks]));
    }
    for _ in 0..rng.range(1, 6) {
        let d = *rng.pick(Damage::ALL);
        if !damages.contains(&d) && !matches!(d, Damage::CopiedToOtherFs | Damage::CopiedToOtherFsBrokenLinks) {
            damages.push(d);
        }
    }
    // Catalogue order: the copies first, as a real recovery meets them.
    damages.sort_by_key(|d| Damage::ALL.iter().position(|x| x == d));
    let messages = rng.range(30, 301) as usize;
    let kills = rng.range(1, 3) as usize;
    let s = split.to_string();
    let live = ["--split", s.as_str(), "--all", "live"];
    let check = ["--split", s.as_str()];

    // The uninterrupted run. A damage that does not compose with the
    // others on this queue is left out (the builder says which).
    let fx = loop {
        match try_build(messages, split, big_todo, seed, &damages) {
            Ok(fx) => break fx,
            Err(d) => damages.retain(|x| *x != d),
        }
    };
    let names: Vec<&str> = damages.iter().map(|d| d.name()).collect();
    let what = format!(
        "seed {seed}: split {split}{}, {messages} messages, damages {names:?}",
        if big_todo { " big-todo" } else { "" }
    );
    let q = fx.queue();
    let ref_fates = expected_fates(q, big_todo);
    let ref_census = census(q, big_todo).files;
    let ref_pairs = pairing(q, big_todo);
    let run = qfixq(q, &live);
    assert!(matches!(run.code(), Some(0 | 1)), "{what}: uninterrupted live\n{}", run.show());
    let total = run.done_steps().max(1);
    qfixq(q, &check).expect(0, &format!("{what}: check after the uninterrupted run"));
    let reference = outcome(q, split, big_todo);
    drop(fx);

    // The same queue, killed `kills` times at random steps.
    let fx = build(messages, split, big_todo, seed, &damages);
    let q = fx.queue();
    let fates = expected_fates(q, big_todo);
    let census = census(q, big_todo);
    let pairs = pairing(q, big_todo);
    let before = snapshot(q);
    let outside = snapshot(&fx.outside);
    let mut shown = Vec::new();
    let mut ks = Vec::new();
    for _ in 0..kills {
        if rng.chance(0.3) {
            // SIGKILL at a moment, not after a step: it may land inside
            // one (between a step's system calls), as a real kill does.
            let ms = rng.range(1, 80);
            let mut child = std::process::Command::new(binary())
                .arg("--queue")
                .arg(q)
                .args(["--ids", IDS_ARG])
                .args(live)
                .env_remove("QTOOLS_ABORT_AFTER_STEP")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start qfixq");
            std::thread::sleep(Duration::from_millis(ms));
            let _ = child.kill();
            let st = child.wait().expect("wait");
            ks.push(format!("{ms}ms"));
            shown.push(format!("qfixq live killed after {ms} ms: {st:?}"));
            continue;
        }
        let k = rng.range(1, total as u64 + 1).to_string();
        let r = qfixq_env(q, &live, &[("QTOOLS_ABORT_AFTER_STEP", k.as_str())]);
        ks.push(k);
        shown.push(r.show());
        if r.signal() != Some(9) {
            // Finished before step k: nothing left to kill.
            assert!(matches!(r.code(), Some(0 | 1)), "{what}: killed run\n{}", shown.join("\n"));
            break;
        }
    }
    let last = qfixq(q, &live);
    shown.push(last.show());
    let ctx = || format!("{what}, killed after steps {ks:?} of {total}\n{}", shown.join("\n"));
    assert!(matches!(last.code(), Some(0 | 1)), "the run after the crashes must finish: {}", ctx());
    let third = qfixq(q, &check);
    assert!(third.code() == Some(0), "check after the rerun: {}\n{}", ctx(), third.show());
    let fail = |errors: Vec<String>, title: &str| {
        if !errors.is_empty() {
            panic!("{title}:\n  {}\n{}", errors.join("\n  "), ctx());
        }
    };
    fail(check_fates(&fates, q, big_todo), "messages");
    fail(check_census(&census, q), "file contents");
    fail(check_healthy(q, split, big_todo, &before), "queue health");
    fail(snapshot(&fx.outside).diff(&outside), "outside the queue");
    salvage_records(q, split);
    let compared = fates == ref_fates && census.files == ref_census && pairs == ref_pairs;
    if compared {
        let got = outcome(q, split, big_todo);
        if got != reference {
            panic!("differs from the uninterrupted run\nwant {reference:?}\ngot {got:?}\n{}", ctx());
        }
    }
    format!("{what}: {total} steps, killed after {ks:?}, compared with the uninterrupted run: {compared}")
}

/// Randomized crash-and-damage cases for about 45 seconds (set
/// `QTOOLS_RANDOM_CRASH_SECS` for longer, as before a release, and
/// `QTOOLS_TEST_SEED` to repeat a run: the seed is printed, and every
/// failure names its case's seed).
#[test]
fn random_damage_random_kills() {
    if !root_or_skip("random_damage_random_kills") {
        return;
    }
    let base = std::env::var("QTOOLS_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    let secs = std::env::var("QTOOLS_RANDOM_CRASH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45u64);
    println!("random_damage_random_kills: seed {base} for {secs} s (QTOOLS_TEST_SEED={base} repeats it)");
    let started = Instant::now();
    let mut cases = 0u64;
    while cases == 0 || started.elapsed() < Duration::from_secs(secs) {
        let line = random_case(base + cases);
        println!("  {line}");
        cases += 1;
    }
    println!("random_damage_random_kills: {cases} cases in {:?}", started.elapsed());
}

/// Salvage records written and moved by the two halves of renumbering.
#[test]
fn crash_copied_to_other_fs_with_lost_senders() {
    crash_test_all(&[Damage::CopiedToOtherFs, Damage::MissingBucket, Damage::GarbledInfo], false);
}

/// A kill inside the rewrite of a lock file (between the write of its
/// temporary file and the rename) leaves `lock/.qtools-tmp.*`: the next
/// run removes it; anything else in lock/ is not qfixq's and stays.
#[test]
fn a_lock_file_rewrite_killed_midway_is_cleaned_up() {
    if !root_or_skip("a_lock_file_rewrite_killed_midway_is_cleaned_up") {
        return;
    }
    let fx = build(20, SPLIT, false, 8, &[]);
    let q = fx.queue();
    std::fs::write(q.join("lock/.qtools-tmp.4242.1"), vec![0u8; 1024]).unwrap();
    std::fs::write(q.join("lock/notes"), b"the admin's").unwrap();
    let check = qfixq(q, &[]);
    check.expect(4, "check");
    assert!(check.out().contains("lock/.qtools-tmp.4242.1"), "{}", check.show());
    qfixq(q, &["live"]).expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    assert!(!q.join("lock/.qtools-tmp.4242.1").exists());
    assert_eq!(std::fs::read(q.join("lock/notes")).unwrap(), b"the admin's");
}

/// A kill inside the write of a salvage record (between its temporary
/// file and the rename) leaves `lost+found/salvaged/.qtools-tmp.*`: the
/// next run removes it (the random crash test met one, seed 152132762);
/// a record and anything else there stay.
#[test]
fn a_salvage_record_write_killed_midway_is_cleaned_up() {
    if !root_or_skip("a_salvage_record_write_killed_midway_is_cleaned_up") {
        return;
    }
    let fx = build(20, SPLIT, false, 9, &[]);
    let q = fx.queue();
    let salvaged = q.join("lost+found/salvaged");
    std::fs::create_dir_all(&salvaged).unwrap();
    std::fs::write(salvaged.join(".qtools-tmp.4242.7"), b"12 12 1700000000 info-garb").unwrap();
    std::fs::write(salvaged.join("notes"), b"the admin's").unwrap();
    let check = qfixq(q, &[]);
    check.expect(4, "check");
    assert!(check.out().contains("lost+found/salvaged/.qtools-tmp.4242.7"), "{}", check.show());
    qfixq(q, &["live"]).expect(1, "live");
    qfixq(q, &[]).expect(0, "check after live");
    assert!(!salvaged.join(".qtools-tmp.4242.7").exists());
    assert_eq!(std::fs::read(salvaged.join("notes")).unwrap(), b"the admin's");
}
