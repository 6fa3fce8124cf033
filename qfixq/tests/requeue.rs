//! `qfixq requeue`, through the real binary, on practice queues, with a
//! stand-in for qmail's bin/qmail-queue (perl) that records each message
//! and envelope it is given into a directory (a record appears whole, by
//! rename, only once the stand-in has read the envelope's final NUL: it
//! is what qmail-queue accepting a message is).
//!
//! The stand-in obeys, for the crash tests: `QQ_KILL_BEFORE=j` kills its
//! parent (qfixq) with SIGKILL during its j-th call, before accepting;
//! `QQ_KILL_AFTER=j` after accepting, before qfixq hears the answer;
//! `QQ_EXIT=c` refuses every message with exit c; `QQ_SLEEP=s` takes s
//! seconds over each message (so that a signal finds the run under way).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qcommon::envelope::{Info, Recipients, Todo};
use qcommon::queue::Part;
use qtests::prelude::qfixq::*;
use qtests::snapshot::hash_bytes;
use qtests::Damage;

const STAND_IN: &str = r#"#!/usr/bin/perl
use strict; use warnings;
my $dir = $ENV{QQ_RECORD} or exit 61;
binmode STDIN;
my $msg = do { local $/; <STDIN> };
$msg = '' unless defined $msg;
open(my $efh, '<&=', 1) or exit 54;
binmode $efh;
my $env = do { local $/; <$efh> };
$env = '' unless defined $env;
my $n = 0;
if (open(my $c, '<', "$dir/.count")) { $n = <$c> // 0; chomp $n; close $c; }
$n++;
open(my $c, '>', "$dir/.count") or exit 63; print $c "$n\n"; close $c;
if (($ENV{QQ_KILL_BEFORE} // 0) == $n) { kill 'KILL', getppid(); exit 75; }
select(undef, undef, undef, $ENV{QQ_SLEEP}) if $ENV{QQ_SLEEP};
exit $ENV{QQ_EXIT} if $ENV{QQ_EXIT};
exit 54 unless $env =~ /\AF[^\0]*\0(?:T[^\0]*\0)*\0\z/;
my $tmp = "$dir/.tmp.$$";
mkdir $tmp or exit 53;
open(my $m, '>', "$tmp/msg") or exit 53; binmode $m; print $m $msg; close $m or exit 53;
open(my $e, '>', "$tmp/env") or exit 53; binmode $e; print $e $env; close $e or exit 53;
rename $tmp, "$dir/$n" or exit 53;
if (($ENV{QQ_KILL_AFTER} // 0) == $n) { kill 'KILL', getppid(); }
exit 0;
"#;

/// A practice queue to requeue from, a qmail home with the stand-in,
/// and the directory of its records.
struct Setup {
    fx: Fixture,
    home: PathBuf,
    records: PathBuf,
}

fn setup(messages: usize, seed: u64, damages: &[Damage]) -> Option<Setup> {
    if std::process::Command::new("perl").arg("-e1").status().map(|s| !s.success()).unwrap_or(true) {
        println!("skipped: perl is needed for the qmail-queue stand-in");
        return None;
    }
    let fx = build(messages, 7, false, seed, damages);
    let home = fx.tmp.path().join("home");
    std::fs::create_dir_all(home.join("bin")).unwrap();
    let qq = home.join("bin/qmail-queue");
    std::fs::write(&qq, STAND_IN).unwrap();
    std::fs::set_permissions(&qq, std::fs::Permissions::from_mode(0o755)).unwrap();
    let records = fx.tmp.path().join("records");
    std::fs::create_dir(&records).unwrap();
    Some(Setup { fx, home, records })
}

fn requeue(s: &Setup, args: &[&str], env: &[(&str, &str)]) -> Run {
    let inv = qfixq_invocation().arg("requeue").args(args);
    let inv = inv.arg("--qmail-home").arg(&s.home).arg("--ids").arg(IDS_ARG).arg("--split").arg("7");
    run_with_env(inv.env("QQ_RECORD", &s.records), args, env)
}

fn from(s: &Setup) -> String {
    s.fx.queue().to_string_lossy().into_owned()
}

/// (sender, sorted recipients).
type Env = (Vec<u8>, Vec<Vec<u8>>);

fn parse_env(data: &[u8]) -> Env {
    assert!(data.ends_with(b"\0\0") || data == b"F\0\0", "envelope without its final NUL: {data:?}");
    let recs: Vec<&[u8]> = data[..data.len() - 1].split(|&b| b == 0).filter(|r| !r.is_empty()).collect();
    assert_eq!(recs[0][0], b'F', "{data:?}");
    let mut rc: Vec<Vec<u8>> = recs[1..]
        .iter()
        .map(|r| {
            assert_eq!(r[0], b'T');
            r[1..].to_vec()
        })
        .collect();
    rc.sort();
    (recs[0][1..].to_vec(), rc)
}

/// Every record: message content hash -> the envelopes it came with.
fn records(s: &Setup) -> BTreeMap<u64, Vec<Env>> {
    let mut out: BTreeMap<u64, Vec<Env>> = BTreeMap::new();
    for e in std::fs::read_dir(&s.records).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let msg = std::fs::read(e.path().join("msg")).unwrap();
        let env = std::fs::read(e.path().join("env")).unwrap();
        out.entry(hash_bytes(&msg)).or_default().push(parse_env(&env));
    }
    out
}

/// What the source holds: content hash -> what requeue must inject
/// (None: it must stay, its bounce pending).
fn expected(queue: &Path) -> BTreeMap<u64, Option<Env>> {
    let idx = index(queue, false);
    let mut out = BTreeMap::new();
    for m in idx.msgs.values() {
        let Some(mess) = m.part(Part::Mess) else { continue };
        let key = hash_bytes(&mess.data);
        if let Some(t) = m.part(Part::Todo) {
            let t = Todo::parse(&t.data).unwrap();
            let mut rc = t.recipients.clone();
            rc.sort();
            out.insert(key, Some((t.sender, rc)));
            continue;
        }
        if m.part(Part::Bounce).is_some() {
            out.insert(key, None);
            continue;
        }
        let info = Info::parse(&m.part(Part::Info).expect("info").data).unwrap();
        let mut rc = Vec::new();
        for p in [Part::Local, Part::Remote] {
            if let Some(f) = m.part(p) {
                rc.extend(Recipients::parse(&f.data).unwrap().list.into_iter().filter(|r| !r.done).map(|r| r.address));
            }
        }
        rc.sort();
        out.insert(key, Some((info.sender, rc)));
    }
    out
}

/// Checks the end state: every message injected with its envelope (at
/// most `dups` of them twice, none more), the injected ones gone from the
/// source, the others there, no marker left.
fn verify(s: &Setup, want: &BTreeMap<u64, Option<Env>>, dups: usize, run: &Run) {
    let got = records(s);
    let mut twice = 0;
    for (key, w) in want {
        let recs = got.get(key).cloned().unwrap_or_default();
        match w {
            None => assert!(recs.is_empty(), "a message with a pending bounce was injected\n{}", run.show()),
            Some(_) if recs.iter().all(|e| e.1.is_empty()) && recs.is_empty() => {
                // Nothing left to deliver: never injected, only removed.
                assert!(w.as_ref().unwrap().1.is_empty(), "message {key:x} never arrived\n{}", run.show());
            }
            Some(env) => {
                assert!(!recs.is_empty(), "message {key:x} never arrived\n{}", run.show());
                for r in &recs {
                    assert_eq!(r, env, "message {key:x} arrived with another envelope\n{}", run.show());
                }
                assert!(recs.len() <= 2, "message {key:x} arrived {} times\n{}", recs.len(), run.show());
                if recs.len() == 2 {
                    twice += 1;
                }
            }
        }
    }
    assert!(got.keys().all(|k| want.contains_key(k)), "a record of an unknown message\n{}", run.show());
    assert!(twice <= dups, "{twice} messages arrived twice (allowed {dups})\n{}", run.show());
    let left = expected(s.fx.queue());
    for (key, w) in &left {
        assert!(w.is_none(), "message {key:x} is still in the source\n{}", run.show());
    }
    let markers = s.fx.queue().join("lost+found/requeued");
    let n = std::fs::read_dir(&markers).map(|r| r.count()).unwrap_or(0);
    assert_eq!(n, 0, "markers left in {}\n{}", markers.display(), run.show());
}

fn steps_of(run: &Run) -> usize {
    let out = run.out();
    let line = out.lines().find(|l| l.contains("step(s) carried out")).unwrap_or_else(|| panic!("{}", run.show()));
    let k = line.rsplit("; ").next().unwrap();
    k.split(' ').next().unwrap().parse().unwrap()
}

fn injected_of(run: &Run) -> usize {
    let out = run.out();
    let line = out.lines().find(|l| l.starts_with("injected ")).unwrap_or_else(|| panic!("{}", run.show()));
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn list_only_changes_nothing_and_live_injects_every_message() {
    if !root_or_skip("requeue list") {
        return;
    }
    let Some(s) = setup(40, 5, &[]) else { return };
    let want = expected(s.fx.queue());
    let frozen = freeze(&s.fx);
    let list = requeue(&s, &["--from", &from(&s)], &[]);
    let pending_bounces = want.values().filter(|w| w.is_none()).count();
    list.expect(if pending_bounces > 0 { 4 } else { 0 }, "list only");
    assert_frozen(&s.fx, &frozen, "requeue without live", Some(&list));
    assert_eq!(records(&s).len(), 0, "list only ran qmail-queue\n{}", list.show());
    let would = list.out().lines().filter(|l| l.contains("  would inject: ")).count();
    let nonempty = want.values().filter(|w| w.as_ref().is_some_and(|e| !e.1.is_empty())).count();
    assert_eq!(would, nonempty, "{}", list.show());

    let live = requeue(&s, &["live", "--from", &from(&s)], &[]);
    live.expect(if pending_bounces > 0 { 4 } else { 0 }, "live");
    assert_eq!(injected_of(&live), nonempty, "{}", live.show());
    verify(&s, &want, 0, &live);
    // A rerun finds nothing more to inject.
    let again = requeue(&s, &["live", "--from", &from(&s)], &[]);
    assert_eq!(injected_of(&again), 0, "{}", again.show());
    verify(&s, &want, 0, &again);
}

#[test]
fn a_crash_at_every_step_loses_nothing_and_doubles_only_the_one_in_flight() {
    if !root_or_skip("requeue crash") {
        return;
    }
    const SEED: u64 = 21;
    const N: usize = 10;
    let Some(s) = setup(N, SEED, &[]) else { return };
    let full = requeue(&s, &["live", "--from", &from(&s)], &[]);
    let steps = steps_of(&full);
    let calls = injected_of(&full);
    assert!(steps > 10 && calls > 3, "{}", full.show());
    drop(s);
    // (environment of the crashed run, duplicates allowed)
    let mut cases: Vec<(String, String, usize)> = Vec::new();
    for k in 1..=steps {
        cases.push(("QTOOLS_ABORT_AFTER_STEP".into(), k.to_string(), 0));
    }
    for j in 1..=calls {
        cases.push(("QQ_KILL_BEFORE".into(), j.to_string(), 0));
        cases.push(("QQ_KILL_AFTER".into(), j.to_string(), 1));
    }
    for (var, val, dups) in cases {
        let Some(s) = setup(N, SEED, &[]) else { return };
        let want = expected(s.fx.queue());
        let crashed = requeue(&s, &["live", "--from", &from(&s)], &[(&var, &val)]);
        assert_eq!(crashed.signal(), Some(9), "{var}={val}: the run must die\n{}", crashed.show());
        let rerun = requeue(&s, &["live", "--from", &from(&s)], &[]);
        assert!(matches!(rerun.code(), Some(0 | 4)), "{var}={val}: rerun\n{}", rerun.show());
        verify(&s, &want, dups, &rerun);
    }
}

#[test]
fn bad_input_is_refused_or_left_and_reported() {
    if !root_or_skip("requeue bad input") {
        return;
    }
    let Some(s) = setup(12, 9, &[]) else { return };
    let q = s.fx.queue().to_path_buf();
    let idx = index(&q, false);
    let mut nums = idx.msgs.keys().copied();
    // A lone mess (its envelope lost), and a message being queued (mess
    // and intd only, no todo).
    let lone = nums.next().unwrap();
    let queued = nums.next().unwrap();
    for (n, keep_intd) in [(lone, false), (queued, true)] {
        let m = &idx.msgs[&n];
        for p in [Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce, Part::Intd] {
            if let Some(f) = m.part(p) {
                if !(keep_intd && p == Part::Intd) {
                    std::fs::remove_file(&f.path).unwrap();
                }
            }
        }
        if keep_intd && m.part(Part::Intd).is_none() {
            let intd = q.join("intd").join(n.to_string());
            std::fs::write(&intd, b"u0\0p42\0Fa@b.example\0").unwrap();
        }
    }
    // Usage errors.
    requeue(&s, &[], &[]).expect(16, "requeue without a source");
    requeue(&s, &["live", "live", "--from", &from(&s)], &[]).expect(16, "two words");
    requeue(&s, &["--from", &from(&s), "--to", ""], &[]).expect(16, "empty --to");
    // The live queue itself as the source: refused.
    std::os::unix::fs::symlink(&q, s.home.join("queue")).unwrap();
    let same = requeue(&s, &["live", "--from", &from(&s)], &[]);
    same.expect(8, "--from the live queue");
    assert!(same.err().contains("is the live queue"), "{}", same.show());
    std::fs::remove_file(s.home.join("queue")).unwrap();
    // qmail-queue refuses for a while: the run stops, nothing changes
    // (lost+found/requeued, made on the first live run, made here first).
    std::fs::create_dir_all(q.join("lost+found/requeued")).unwrap();
    std::fs::set_permissions(q.join("lost+found"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let frozen = freeze(&s.fx);
    let tmp = requeue(&s, &["live", "--from", &from(&s)], &[("QQ_EXIT", "53")]);
    tmp.expect(8, "temporary failure");
    assert!(tmp.err().contains("exited 53 (write error; e.g., disk full)"), "{}", tmp.show());
    assert_frozen(&s.fx, &frozen, "after a temporary failure", Some(&tmp));
    // The source's lock held: refused.
    let lockf = std::fs::File::open(q.join("lock/sendmutex")).unwrap();
    let held = nix::fcntl::Flock::lock(lockf, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let busy = requeue(&s, &["live", "--from", &from(&s)], &[]);
    busy.expect(8, "lock held");
    assert!(busy.err().contains("lock/sendmutex is held"), "{}", busy.show());
    drop(held);
    // Without --to the two stay, reported; exit 4.
    let live = requeue(&s, &["live", "--from", &from(&s)], &[]);
    live.expect(4, "live");
    let out = live.out();
    assert!(out.contains(&format!("{lone}  left: no usable envelope: a lone mess file")), "{out}");
    assert!(out.contains(&format!("{queued}  left: no usable envelope: mess and intd only")), "{out}");
    assert!(index(&q, false).msgs.contains_key(&lone));
    // With --to they go there, with the null sender.
    let before = records(&s).len();
    let to = requeue(&s, &["live", "--from", &from(&s), "--to", "postmaster@example.org"], &[]);
    assert!(matches!(to.code(), Some(0 | 4)), "{}", to.show());
    assert_eq!(records(&s).len(), before + 2, "{}", to.show());
    let idx2 = index(&q, false);
    assert!(!idx2.msgs.contains_key(&lone) && !idx2.msgs.contains_key(&queued), "{}", to.show());
    let got = records(&s);
    let to_pm = got.values().flatten().filter(|e| e.0.is_empty() && e.1 == vec![b"postmaster@example.org".to_vec()]);
    assert_eq!(to_pm.count(), 2, "{}", to.show());
}

#[test]
fn lost_found_items_are_requeued_once_and_salvaged_senders_reported() {
    if !root_or_skip("requeue lost+found") {
        return;
    }
    let Some(s) = setup(30, 13, &[Damage::S3Leftover, Damage::EmptyInfo]) else { return };
    let q = s.fx.queue().to_path_buf();
    // The offline repair: S3 leftovers go to lost+found, empty infos are
    // salvaged with the null sender.
    let fix = qfixq(&q, &["live"]);
    assert!(matches!(fix.code(), Some(1)), "{}", fix.show());
    let salvaged: Vec<u64> = std::fs::read_dir(q.join("lost+found/salvaged"))
        .map(|r| r.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect())
        .unwrap_or_default();
    assert!(!salvaged.is_empty(), "no salvaged message: the test proves nothing\n{}", fix.show());
    let list = requeue(&s, &["--from", &from(&s)], &[]);
    for n in &salvaged {
        let line = list.out().lines().find(|l| l.starts_with(&format!("{n}  "))).map(str::to_string);
        let line = line.unwrap_or_else(|| panic!("{n} not listed\n{}", list.show()));
        assert!(line.contains("would inject: from <>") && line.contains("sender lost"), "{line}");
    }
    // lost+found items: listed, then requeued once.
    // The items with an intd (S3 leftovers) have an envelope; the others
    // (an info emptied, recipients unknown) have none: left, exit 4.
    let reasons: Vec<PathBuf> = regular_files(&q.join("lost+found"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "reason"))
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    let (items, others): (Vec<PathBuf>, Vec<PathBuf>) = reasons.into_iter().partition(|d| d.join("intd").is_file());
    assert!(!items.is_empty(), "no lost+found item\n{}", fix.show());
    let code = if others.is_empty() { 0 } else { 4 };
    let frozen = freeze(&s.fx);
    let l = requeue(&s, &["--from", &from(&s), "--lost-found"], &[]);
    l.expect(code, "list lost+found");
    assert_eq!(l.out().matches("  left: no usable envelope").count(), others.len(), "{}", l.show());
    assert_frozen(&s.fx, &frozen, "list lost+found", Some(&l));
    assert_eq!(l.out().matches("  would inject: ").count(), items.len(), "{}", l.show());
    let live = requeue(&s, &["live", "--from", &from(&s), "--lost-found"], &[]);
    live.expect(code, "lost+found live");
    assert_eq!(records(&s).len(), items.len(), "{}", live.show());
    for it in &items {
        assert!(it.join("requeued").is_file(), "{} not marked", it.display());
        let msg = std::fs::read(it.join("mess")).unwrap();
        let intd = Todo::parse(&std::fs::read(it.join("intd")).unwrap()).unwrap();
        let got = records(&s);
        let envs = got.get(&hash_bytes(&msg)).unwrap_or_else(|| panic!("{} not injected", it.display()));
        let mut rc = intd.recipients.clone();
        rc.sort();
        assert_eq!(envs, &vec![(intd.sender.clone(), rc)]);
    }
    // A rerun injects nothing again; a name that is no item is reported.
    let again = requeue(&s, &["live", "--from", &from(&s), "--lost-found"], &[]);
    again.expect(code, "rerun");
    assert_eq!(records(&s).len(), items.len(), "{}", again.show());
    assert!(again.out().contains("already requeued"), "{}", again.show());
    let bad = requeue(&s, &["live", "--from", &from(&s), "--lost-found", "nosuchrun/123", "../x"], &[]);
    bad.expect(4, "bad item names");
    assert!(bad.out().contains("nosuchrun/123  left: no such item"), "{}", bad.show());
    assert!(bad.out().contains("../x  left: not RUN or RUN/N"), "{}", bad.show());
    // Finally the queue itself, salvaged messages included.
    let want = expected(&q);
    let rest = requeue(&s, &["live", "--from", &from(&s)], &[]);
    assert!(matches!(rest.code(), Some(0 | 4)), "{}", rest.show());
    assert!(rest.out().contains("sender lost"), "{}", rest.show());
    let left = expected(&q);
    assert!(left.values().all(Option::is_none), "{}", rest.show());
    let got = records(&s);
    for (k, w) in &want {
        if let Some(env) = w {
            if !env.1.is_empty() {
                assert_eq!(got.get(k), Some(&vec![env.clone()]), "{}", rest.show());
            }
        }
    }
}

#[test]
fn lost_found_crash_at_every_point_marks_each_item_once() {
    if !root_or_skip("requeue lost+found crash") {
        return;
    }
    // A practice queue repaired offline: its S3 leftovers are lost+found items.
    let prepare = || -> Option<(Setup, Vec<PathBuf>)> {
        let s = setup(20, 17, &[Damage::S3Leftover])?;
        qfixq(s.fx.queue(), &["live"]).expect(1, "repair");
        let items: Vec<PathBuf> = regular_files(&s.fx.queue().join("lost+found"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "intd"))
            .map(|p| p.parent().unwrap().to_path_buf())
            .collect();
        Some((s, items))
    };
    let Some((_, items)) = prepare() else { return };
    let k = items.len();
    assert!(k >= 2, "{k} items: the test proves nothing");
    let mut cases = Vec::new();
    for j in 1..=k {
        cases.push(("QTOOLS_ABORT_AFTER_STEP", j, 0));
        cases.push(("QQ_KILL_BEFORE", j, 0));
        cases.push(("QQ_KILL_AFTER", j, 1));
    }
    for (var, j, dups) in cases {
        let (s, items) = prepare().unwrap();
        let args = ["live", "--from", &from(&s), "--lost-found"];
        let crashed = requeue(&s, &args, &[(var, &j.to_string())]);
        assert_eq!(crashed.signal(), Some(9), "{var}={j}\n{}", crashed.show());
        let rerun = requeue(&s, &args, &[]);
        rerun.expect(0, &format!("{var}={j}: rerun"));
        let got = records(&s);
        let mut twice = 0;
        for it in &items {
            assert!(it.join("requeued").is_file(), "{var}={j}: {} not marked\n{}", it.display(), rerun.show());
            let n = got.get(&hash_bytes(&std::fs::read(it.join("mess")).unwrap())).map_or(0, Vec::len);
            assert!((1..=2).contains(&n), "{var}={j}: {} arrived {n} times\n{}", it.display(), rerun.show());
            twice += usize::from(n == 2);
        }
        assert!(twice <= dups, "{var}={j}: {twice} items arrived twice\n{}", rerun.show());
    }
}

#[test]
fn envelopes_too_large_to_hold_are_streamed_whole() {
    if !root_or_skip("requeue large envelopes") {
        return;
    }
    let Some(s) = setup(30, 23, &[]) else { return };
    let q = s.fx.queue().to_path_buf();
    let idx = index(&q, false);
    let todo_msg = idx.msgs.values().find(|m| m.part(Part::Todo).is_some()).expect("a todo-stage message");
    let pre_msg = idx
        .msgs
        .values()
        .find(|m| m.part(Part::Remote).is_some() && m.part(Part::Bounce).is_none())
        .expect("a message with a remote list");
    // 3,000 recipients (about 100 KB: more than the scan holds).
    let many: Vec<Vec<u8>> = (0..3000).map(|i| format!("user{i:05}@many.example").into_bytes()).collect();
    // The todo (one inode with intd): rewritten in place.
    let t = Todo::parse(&todo_msg.part(Part::Todo).unwrap().data).unwrap();
    let mut data = b"u0\0p42\0F".to_vec();
    data.extend_from_slice(&t.sender);
    data.push(0);
    for a in &many {
        data.push(b'T');
        data.extend_from_slice(a);
        data.push(0);
    }
    std::fs::write(&todo_msg.part(Part::Todo).unwrap().path, &data).unwrap();
    // The remote list: every second one done.
    let mut list = Vec::new();
    for (i, a) in many.iter().enumerate() {
        list.push(if i % 2 == 0 { b'T' } else { b'D' });
        list.extend_from_slice(a);
        list.push(0);
    }
    std::fs::write(&pre_msg.part(Part::Remote).unwrap().path, &list).unwrap();
    let local_pending: Vec<Vec<u8>> = pre_msg
        .part(Part::Local)
        .map(|f| Recipients::parse(&f.data).unwrap().list.into_iter().filter(|r| !r.done).map(|r| r.address).collect())
        .unwrap_or_default();
    let live = requeue(&s, &["live", "--from", &from(&s)], &[]);
    assert!(matches!(live.code(), Some(0 | 4)), "{}", live.show());
    let got = records(&s);
    let env = &got[&hash_bytes(&todo_msg.part(Part::Mess).unwrap().data)];
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].1, many, "todo recipients");
    let env = &got[&hash_bytes(&pre_msg.part(Part::Mess).unwrap().data)];
    let info = Info::parse(&pre_msg.part(Part::Info).unwrap().data).unwrap();
    let mut want: Vec<Vec<u8>> = many.iter().step_by(2).cloned().chain(local_pending).collect();
    want.sort();
    assert_eq!(env, &vec![(info.sender, want)], "remote pending recipients");
}

#[test]
fn a_stop_signal_ends_the_run_between_two_messages() {
    if !root_or_skip("requeue signal") {
        return;
    }
    let Some(s) = setup(30, 31, &[]) else { return };
    let want = expected(s.fx.queue());
    let mut cmd = std::process::Command::new(binary());
    cmd.args(["requeue", "live", "--from", &from(&s), "--qmail-home"]).arg(&s.home);
    cmd.args(["--ids", IDS_ARG, "--split", "7"]).env("QQ_RECORD", &s.records).env("QQ_SLEEP", "0.2");
    cmd.env_remove("QTOOLS_ABORT_AFTER_STEP").stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Once two messages are in, stop it as an administrator would.
    while records(&s).len() < 2 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let stopped = Run { args: vec!["(signalled)".into()], status: out.status, stdout: out.stdout, stderr: out.stderr };
    assert_eq!(stopped.code(), Some(32), "{}", stopped.show());
    assert!(stopped.out().contains("interrupted"), "{}", stopped.show());
    let n = records(&s).len();
    assert!(n < want.len(), "the signal stopped nothing\n{}", stopped.show());
    let rerun = requeue(&s, &["live", "--from", &from(&s)], &[]);
    assert!(matches!(rerun.code(), Some(0 | 4)), "{}", rerun.show());
    // The message under way when the signal came was finished: none twice.
    verify(&s, &want, 0, &rerun);
}
