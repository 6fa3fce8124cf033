//! Check and live share one path (the executor): the steps a check lists
//! as planned are the steps a live run on the same queue lists as done,
//! none more, none fewer, none failed; for damages and splits drawn from a
//! random seed (printed; `QTESTS_SEED=N` repeats a run).

use std::path::Path;

use qtests::prelude::qfixq::*;
use qtests::rng::Rng;
use qtests::Damage;

const MESSAGES: usize = 30;

/// The seed: `QTESTS_SEED`, or one drawn from the clock; printed.
fn seed() -> u64 {
    let s = std::env::var("QTESTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    println!("seed {s} (QTESTS_SEED={s} repeats this run)");
    s
}

/// `--split` when the buckets on disk cannot tell the split (as in
/// damages.rs).
fn split_args(queue: &Path, split: u32) -> Vec<String> {
    let unclear = ["mess", "info", "local", "remote"].iter().any(|d| {
        let dir = queue.join(d);
        let last = std::fs::symlink_metadata(dir.join((split - 1).to_string()));
        !last.is_ok_and(|m| m.is_dir()) || std::fs::symlink_metadata(dir.join(split.to_string())).is_ok()
    });
    if unclear {
        vec!["--split".into(), split.to_string()]
    } else {
        Vec::new()
    }
}

/// The run's name for its quarantine (`lost+found/<time>-<pid>`, and the
/// `.qtools-lost+found.<pid>` it is made under) differs from run to run:
/// the same in every step text here.
fn same_run_names(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("lost+found") {
        let (head, tail) = rest.split_at(i + "lost+found".len());
        out.push_str(head);
        let sep = tail.chars().next();
        if matches!(sep, Some('/') | Some('.')) {
            let end = tail[1..].find(['/', ' ', ')']).map_or(tail.len(), |k| k + 1);
            out.push(sep.unwrap_or('/'));
            out.push_str("RUN");
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The step texts of a JSON report with this status, sorted (the scan
/// delivers messages in no fixed order), run names made the same.
fn steps(run: &Run, status: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.show()));
    let mut v: Vec<String> = doc["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings\n{}", run.show()))
        .iter()
        .flat_map(|f| f["steps"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["status"] == status)
        .map(|s| same_run_names(s["text"].as_str().unwrap()))
        .collect();
    v.sort();
    v
}

fn same_plan(damages: &[Damage], split: u32, big_todo: bool, seed: u64) {
    let names: Vec<&str> = damages.iter().map(|d| d.name()).collect();
    let what = format!("{names:?}, split {split}, big todo {big_todo}, seed {seed}");
    let Ok(fx) = try_build(MESSAGES, split, big_todo, seed, damages) else {
        println!("{what}: the damages do not compose; skipped");
        return;
    };
    let q = fx.queue();
    let args = split_args(q, split);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--json");
    let check = qfixq(q, &args);
    let planned = steps(&check, "planned");
    assert!(!planned.is_empty(), "{what}: the check plans nothing\n{}", check.show());
    assert!(steps(&check, "done").is_empty() && steps(&check, "failed").is_empty(), "{what}: {}", check.show());
    args.push("live");
    let live = qfixq(q, &args);
    assert_eq!(steps(&live, "failed"), Vec::<String>::new(), "{what}: live\n{}", live.show());
    assert!(steps(&live, "planned").is_empty(), "{what}: live\n{}", live.show());
    let done = steps(&live, "done");
    assert_eq!(done, planned, "{what}: live did other than the check planned\n{}\n{}", check.show(), live.show());
    println!("{what}: the {} planned steps done, none other", done.len());
}

#[test]
fn live_carries_out_exactly_the_checks_plan() {
    if !root_or_skip("live_carries_out_exactly_the_checks_plan") {
        return;
    }
    let seed = seed();
    let mut rng = Rng::new(seed);
    for round in 0..6u64 {
        let count = 1 + rng.index(2);
        let damages = rng.choose(Damage::ALL, count);
        let split = *rng.pick(&[1, 7, 23]);
        let big_todo = rng.chance(0.5);
        same_plan(&damages, split, big_todo, seed.wrapping_add(round));
    }
}

#[test]
fn run_names_are_made_the_same_and_nothing_else() {
    assert_eq!(
        same_run_names("rename mess/3/10 -> lost+found/20261205T100000Z-4242/mess/10"),
        "rename mess/3/10 -> lost+found/RUN/mess/10"
    );
    assert_eq!(same_run_names("mkdir .qtools-lost+found.4242 mode 0700"), "mkdir .qtools-lost+found.RUN mode 0700");
    assert_eq!(same_run_names("unlink mess/3/10"), "unlink mess/3/10");
}
