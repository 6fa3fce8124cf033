//! Every damage of the catalogue, on a flat and on a big-todo queue: the
//! check reports it (exit 4) and changes nothing at all, `live` repairs it
//! (exit 1), a second check finds nothing (exit 0), every message the
//! policy saves is still there with its content and envelope, every
//! unsalvageable one is in lost+found with its reason, no file content is
//! lost, nothing outside the queue changed, and the queue is healthy.

use std::path::Path;

use qtests::prelude::qfixq::*;
use qtests::snapshot::snapshot;
use qtests::Damage;

const MESSAGES: usize = 40;
const SPLIT: u32 = 23;

/// `--split` when the buckets on disk cannot tell the split: an extra or
/// a missing last bucket, or a bucket replaced by a link. (That qfixq then
/// refuses is tested apart.)
fn split_args(queue: &Path) -> Vec<String> {
    let unclear = ["mess", "info", "local", "remote"].iter().any(|d| {
        let dir = queue.join(d);
        let last = std::fs::symlink_metadata(dir.join((SPLIT - 1).to_string()));
        !last.is_ok_and(|m| m.is_dir()) || std::fs::symlink_metadata(dir.join(SPLIT.to_string())).is_ok()
    });
    if unclear {
        vec!["--split".into(), SPLIT.to_string()]
    } else {
        Vec::new()
    }
}

/// A finding kind the check of `d` must report (qfixq's summary names).
fn expected_kind(d: Damage) -> &'static str {
    match d {
        Damage::CopiedToOtherFs | Damage::CopiedToOtherFsBrokenLinks => "renumber:",
        Damage::MissingBucket => "structure:",
        Damage::WrongBucket => "wrong-bucket:",
        Damage::ExtraBuckets => "extra-bucket:",
        Damage::ZeroByteMess
        | Damage::OrphanInfo
        | Damage::OrphanLocal
        | Damage::OrphanRemote
        | Damage::OrphanTodo
        | Damage::OrphanBounce => "unsalvageable:",
        Damage::S2Leftover | Damage::S3Leftover => "leftover:",
        Damage::EmptyInfo | Damage::GarbledInfo => "sender-lost:",
        Damage::TruncatedLocal | Damage::TruncatedRemote => "partial-record:",
        Damage::StaleBounceBesideTodo => "stale-bounce:",
        Damage::BadOwnersModes | Damage::AllOwnersWrong => "mode:",
        Damage::StrayNames | Damage::StraySubdirs | Damage::SymlinkTrap | Damage::FifoTrap => "stray:",
        Damage::PidLeftovers => "pid-leftover:",
        Damage::MissingLockFiles | Damage::WrongLockFiles => "structure:",
        Damage::BrokenTodoWithIntd | Damage::BrokenTodoPreprocessed => "envelope:",
        Damage::ExtraHardLink => "extra-links:",
    }
}

fn check_damage(d: Damage, big_todo: bool, seed: u64) {
    let what = format!("{} on a {} queue", d.name(), if big_todo { "big-todo" } else { "flat" });
    let fx = build(MESSAGES, SPLIT, big_todo, seed, &[d]);
    let q = fx.queue();
    let args = split_args(q);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let live_args: Vec<&str> = args.iter().copied().chain(["live"]).collect();

    let frozen = freeze(&fx);
    let fates = expected_fates(q, big_todo);
    let census = census(q, big_todo);
    assert!(fates.values().flatten().filter(|f| matches!(f, Fate::Saved(_))).count() >= MESSAGES / 2, "{what}: oracle");

    let check = qfixq(q, &args);
    check.expect(4, &format!("{what}: check"));
    let summary = check.out().lines().last().unwrap_or_default().to_string();
    assert!(summary.contains(expected_kind(d)), "{what}: summary lacks {}\n{}", expected_kind(d), check.show());
    assert_frozen(&fx, &frozen, &format!("{what}: check"), Some(&check));

    let live = qfixq(q, &live_args);
    live.expect(1, &format!("{what}: live"));
    assert!(live.done_steps() > 0, "{what}: live did nothing\n{}", live.show());
    assert_same(&frozen.outside, &snapshot(&fx.outside), &format!("{what}: a canary outside changed"), Some(&live));

    let again = qfixq(q, &args);
    again.expect(0, &format!("{what}: second check"));
    assert!(again.out().contains("summary: no problems found"), "{what}\n{}", again.show());

    assert_none(&check_fates(&fates, q, big_todo), &format!("{what}: messages"), Some(&live));
    assert_none(&check_census(&census, q), &format!("{what}: file contents"), Some(&live));
    assert_none(&check_healthy(q, SPLIT, big_todo, &frozen.queue), &format!("{what}: queue health"), Some(&live));

    // A live run on the repaired queue changes nothing.
    let settled = freeze(&fx);
    let live2 = qfixq(q, &live_args);
    live2.expect(0, &format!("{what}: live on the repaired queue"));
    assert_frozen(&fx, &settled, &format!("{what}: live on the repaired queue"), Some(&live2));
}

fn run_damage(d: Damage) {
    if !root_or_skip(d.name()) {
        return;
    }
    let seed = 100 + d as u64;
    check_damage(d, false, seed);
    check_damage(d, true, seed);
}

macro_rules! damage_tests {
    ($($name:ident => $damage:ident,)*) => {
        $(
            #[test]
            fn $name() {
                run_damage(Damage::$damage);
            }
        )*

        /// The list above covers the whole catalogue.
        #[test]
        fn every_damage_has_a_test() {
            let listed = [$(Damage::$damage),*];
            for d in Damage::ALL {
                assert!(listed.contains(d), "no test for damage {}", d.name());
            }
        }
    };
}

damage_tests! {
    copied_to_other_fs => CopiedToOtherFs,
    copied_to_other_fs_broken_links => CopiedToOtherFsBrokenLinks,
    missing_bucket => MissingBucket,
    wrong_bucket => WrongBucket,
    extra_buckets => ExtraBuckets,
    zero_byte_mess => ZeroByteMess,
    orphan_info => OrphanInfo,
    orphan_local => OrphanLocal,
    orphan_remote => OrphanRemote,
    orphan_todo => OrphanTodo,
    orphan_bounce => OrphanBounce,
    s2_leftover => S2Leftover,
    s3_leftover => S3Leftover,
    empty_info => EmptyInfo,
    garbled_info => GarbledInfo,
    truncated_local => TruncatedLocal,
    truncated_remote => TruncatedRemote,
    stale_bounce_beside_todo => StaleBounceBesideTodo,
    bad_owners_modes => BadOwnersModes,
    stray_names => StrayNames,
    stray_subdirs => StraySubdirs,
    symlink_trap => SymlinkTrap,
    fifo_trap => FifoTrap,
    pid_leftovers => PidLeftovers,
    missing_lock_files => MissingLockFiles,
    wrong_lock_files => WrongLockFiles,
    broken_todo_with_intd => BrokenTodoWithIntd,
    broken_todo_preprocessed => BrokenTodoPreprocessed,
    extra_hard_link => ExtraHardLink,
    all_owners_wrong => AllOwnersWrong,
}

fn stacked(ds: &[Damage], seed: u64) {
    for big_todo in [false, true] {
        let fx = build(60, SPLIT, big_todo, seed, ds);
        let q = fx.queue();
        let frozen = freeze(&fx);
        let fates = expected_fates(q, big_todo);
        let census = census(q, big_todo);
        let check = qfixq(q, &[]);
        check.expect(4, "stacked: check");
        assert_frozen(&fx, &frozen, "stacked: check", Some(&check));
        let live = qfixq(q, &["live"]);
        live.expect(1, "stacked: live");
        qfixq(q, &[]).expect(0, "stacked: second check");
        assert_none(&check_fates(&fates, q, big_todo), "stacked: messages", Some(&live));
        assert_none(&check_census(&census, q), "stacked: file contents", Some(&live));
        assert_none(&check_healthy(q, SPLIT, big_todo, &frozen.queue), "stacked: health", Some(&live));
        assert_same(&frozen.outside, &snapshot(&fx.outside), "stacked: outside", Some(&live));
    }
}

/// Several damages at once, as a real full disk leaves them.
#[test]
fn stacked_damages() {
    if !root_or_skip("stacked_damages") {
        return;
    }
    stacked(
        &[
            Damage::CopiedToOtherFs,
            Damage::WrongBucket,
            Damage::GarbledInfo,
            Damage::TruncatedRemote,
            Damage::BrokenTodoWithIntd,
            Damage::PidLeftovers,
            Damage::StrayNames,
            Damage::MissingLockFiles,
            Damage::StaleBounceBesideTodo,
        ],
        77,
    );
}

/// The same with wrong owners and modes too. When bad-owners-modes picks
/// the intd of a broken-todo victim, this meets the bug of
/// `broken_todo_with_intd_and_a_wrong_intd_mode` (so it fails only now and
/// then: the victims depend on inode numbers).
#[test]
fn stacked_damages_with_bad_modes() {
    if !root_or_skip("stacked_damages_with_bad_modes") {
        return;
    }
    let ds = [
        Damage::CopiedToOtherFs,
        Damage::WrongBucket,
        Damage::GarbledInfo,
        Damage::TruncatedRemote,
        Damage::BrokenTodoWithIntd,
        Damage::PidLeftovers,
        Damage::BadOwnersModes,
        Damage::StrayNames,
        Damage::MissingLockFiles,
    ];
    for seed in 1..=6 {
        stacked(&ds, seed);
    }
}

/// A broken todo is made anew from its valid intd while the intd's mode is
/// wrong too; then the same after a copy to another filesystem (the
/// message is renumbered as well).
#[test]
fn broken_todo_with_intd_and_a_wrong_intd_mode() {
    if !root_or_skip("broken_todo_with_intd_and_a_wrong_intd_mode") {
        return;
    }
    for copied in [false, true] {
        let fx = build_in(scratch(!copied), 30, SPLIT, false, 13, &[Damage::BrokenTodoWithIntd]);
        let q = fx.queue();
        for n in &fx.reports[0].touched {
            let intd = q.join("intd").join(n.to_string());
            std::fs::set_permissions(&intd, std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
        }
        if copied {
            qtests::apply_damage(&fx.built, Damage::CopiedToOtherFs, 13, &fx.outside).expect("copy");
        }
        let frozen = freeze(&fx);
        let fates = expected_fates(q, false);
        let census = census(q, false);
        let live = qfixq(q, &["live"]);
        live.expect(1, "live");
        qfixq(q, &[]).expect(0, "second check");
        assert_none(&check_fates(&fates, q, false), "messages", Some(&live));
        assert_none(&check_census(&census, q), "file contents", Some(&live));
        assert_none(&check_healthy(q, SPLIT, false, &frozen.queue), "health", Some(&live));
    }
}

/// Extra numeric buckets make the split ambiguous: without `--split` (and
/// without qmail-showctl) qfixq must stop with exit 8, say what it saw, and
/// change nothing (docs/repair-policy.md, qfixq).
#[test]
fn extra_buckets_without_split_is_ambiguous() {
    if !root_or_skip("extra_buckets_without_split_is_ambiguous") {
        return;
    }
    let fx = build(MESSAGES, SPLIT, false, 5, &[Damage::ExtraBuckets]);
    let frozen = freeze(&fx);
    for args in [&[][..], &["live"][..]] {
        let r = qfixq(fx.queue(), args);
        r.expect(8, "extra buckets without --split");
        assert!(r.err().contains("split"), "the refusal names the split\n{}", r.show());
        assert_frozen(&fx, &frozen, "extra buckets without --split", Some(&r));
    }
}
