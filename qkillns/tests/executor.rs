//! `-n` and a live run share one path (the executor): on the same queue,
//! `-n` lists the messages, steps, bytes and counts a live run then
//! reports as done, and the live run leaves none of those files; for
//! queues drawn from a random seed (printed; `QTESTS_SEED=N` repeats a
//! run). And `--expire` skips a damaged message with its own status.

use std::collections::BTreeMap;
use std::path::Path;

use qtests::prelude::qkillns::*;
use qtests::rng::Rng;
use serde_json::Value;

const DAY: i64 = 86_400;

/// The seed: `QTESTS_SEED`, or one drawn from the clock; printed.
fn seed() -> u64 {
    let s = std::env::var("QTESTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    println!("seed {s} (QTESTS_SEED={s} repeats this run)");
    s
}

/// A queue of bounces and other mail, drawn from `rng`.
fn random_queue(rng: &mut Rng) -> Queue {
    let q = Queue::with(rng.chance(0.5), None);
    let t = now();
    for _ in 0..rng.range(5, 40) {
        let age = rng.range(60, 20 * DAY as u64) as i64;
        let done = rng.chance(0.3);
        match rng.below(5) {
            0 => q.todo(b"", &[b"carol@remote.example"], "failure notice", t - age),
            1 => q.preprocessed(b"alice@local.example", &[], &[(b"dave@remote.example", false)], "hi", t - age, false),
            2 => q.preprocessed(b"#@[]", &[(b"postmaster@local.example", false)], &[], "double", t - age, false),
            _ => q.preprocessed(
                b"",
                &[(b"postmaster@local.example", done)],
                &[(b"bob@remote.example", false)],
                "failure notice",
                t - age,
                rng.chance(0.5),
            ),
        };
    }
    q
}

fn json_run(q: &Queue, args: &[&str]) -> Value {
    let out = qkillns(q).arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "qkillns {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// Each listed message: its status, its steps and its bytes (the time
/// `--expire` sets, which follows the clock, as `TARGET`).
fn listed(doc: &Value) -> BTreeMap<u64, (String, Vec<String>, u64)> {
    let target = doc["expire_to"].as_i64().map(|t| format!("set mtime {t} "));
    let step = |s: &Value| {
        let s = s.as_str().unwrap().to_string();
        match &target {
            Some(t) => s.replace(t, "set mtime TARGET "),
            None => s,
        }
    };
    doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let steps = m["steps"].as_array().unwrap().iter().map(step).collect();
            let status = m["status"].as_str().unwrap().to_string();
            (m["number"].as_u64().unwrap(), (status, steps, m["bytes"].as_u64().unwrap()))
        })
        .collect()
}

/// The statuses of `doc`'s messages made live words (`would_remove` is
/// what `removed` is in a live run).
fn as_live(mut l: BTreeMap<u64, (String, Vec<String>, u64)>) -> BTreeMap<u64, (String, Vec<String>, u64)> {
    for (status, _, _) in l.values_mut() {
        *status = status.replace("would_remove", "removed").replace("would_expire", "expired");
    }
    l
}

fn same_counts(dry: &Value, live: &Value, pairs: &[(&str, &str)]) {
    for (d, l) in pairs {
        assert_eq!(dry["summary"][d], live["summary"][l], "summary {d} vs {l}:\n{dry}\n{live}");
    }
}

#[test]
fn dry_run_lists_what_the_live_run_does() {
    if !root_or_skip("dry_run_lists_what_the_live_run_does") {
        return;
    }
    let seed = seed();
    let mut rng = Rng::new(seed);
    for round in 0..4 {
        let q = random_queue(&mut rng);
        // --expire: -n, then live (no qmail-send: none is signalled).
        let dry = json_run(&q, &["-n", "--expire"]);
        let live = json_run(&q, &["--expire"]);
        assert_eq!(as_live(listed(&dry)), listed(&live), "round {round}, --expire");
        same_counts(&dry, &live, &[("would_expire", "expired"), ("already_expired", "already_expired")]);
        // Removal.
        let dry = json_run(&q, &["-n"]);
        let planned = listed(&dry);
        let gone: Vec<String> = planned
            .values()
            .flat_map(|(_, steps, _)| steps.clone())
            .filter_map(|s| s.strip_prefix("unlink ").map(String::from))
            .collect();
        assert!(gone.iter().all(|p| q.exists(Path::new(p))), "round {round}: {gone:?}");
        let live = json_run(&q, &[]);
        assert_eq!(as_live(planned.clone()), listed(&live), "round {round}, removal");
        same_counts(
            &dry,
            &live,
            &[("would_remove", "removed"), ("bytes_would_free", "bytes_freed"), ("selected", "selected")],
        );
        assert_eq!(dry["summary"]["would_remove"].as_u64(), Some(planned.len() as u64));
        let files = gone.iter().filter(|p| q.exists(Path::new(p))).count();
        assert_eq!(files, 0, "round {round}: the live run left files the dry run listed");
        println!("round {round}: {} messages, {} files: listed by -n, removed live", planned.len(), gone.len());
    }
}

#[test]
fn expire_skips_a_damaged_message_as_damaged() {
    if !root_or_skip("expire_skips_a_damaged_message_as_damaged") {
        return;
    }
    let q = Queue::new();
    let t = now();
    let ok = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t - 2 * DAY, false);
    let bad = q.preprocessed(b"", &[], &[(b"a@b.example", false)], "failure notice", t - 2 * DAY, false);
    // An intd beside the info: no state of the queue.
    std::fs::copy(q.abs(&bad.files[1]), q.abs(&q.path("intd", bad.number))).unwrap();
    let before = q.mtime(&bad.files[1]);
    for dry in [true, false] {
        let args: &[&str] = if dry { &["-n", "--expire"] } else { &["--expire"] };
        let doc = json_run(&q, args);
        let l = listed(&doc);
        assert_eq!(l[&bad.number].0, "damaged", "{doc}");
        assert_eq!(l[&ok.number].0, if dry { "would_expire" } else { "expired" }, "{doc}");
        assert_eq!(doc["summary"]["damaged"].as_u64(), Some(1), "{doc}");
        assert_eq!(doc["summary"]["not_preprocessed"].as_u64(), Some(0), "{doc}");
        let out = qkillns(&q).args(["-n", "--expire"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("{}  skipped (damaged)", bad.number)), "{text}");
        assert!(text.contains("skipped 1 selected message(s) damaged"), "{text}");
    }
    assert_eq!(q.mtime(&bad.files[1]), before, "a damaged message is not backdated");
}
