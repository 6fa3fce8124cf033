//! On a practice queue from the project's builder (realistic mail in every
//! state, numbered as qmail numbers it): exactly the null-sender messages
//! of its manifest go, and nothing else changes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use qtests::json::check_json;
use qtests::prelude::qkillns::*;
use qtests::{build_queue, BuildSpec};

#[test]
fn exactly_the_manifest_null_senders_go() {
    if !root_or_skip("exactly_the_manifest_null_senders_go") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let queue = t.path().join("queue");
    let spec = BuildSpec {
        messages: 400,
        split: SPLIT,
        null_sender: 0.15,
        double_bounce: 0.05,
        seed: 42,
        ..Default::default()
    };
    let built = build_queue(&queue, &spec).unwrap();
    let null: BTreeSet<u64> = built.messages.iter().filter(|m| m.sender.is_empty()).map(|m| m.number).collect();
    let double: BTreeSet<u64> = built.messages.iter().filter(|m| m.sender == b"#@[]").map(|m| m.number).collect();
    assert!(null.len() > 20 && !double.is_empty(), "{} null, {} double", null.len(), double.len());
    let q = Queue { dir: t, root: queue.clone(), big_todo: false };

    // The dry run lists exactly them, as JSON.
    let before = snapshot(&queue);
    let out = qkillns(&q).args(["-n", "--json", "--double"]).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    check_json(&text).unwrap_or_else(|e| panic!("{e}"));
    for n in null.iter().chain(&double) {
        assert!(text.contains(&format!("{{\"number\":{n},\"status\":\"would_remove\"")), "{n} missing");
    }
    assert!(text.contains(&format!("\"selected\":{}", null.len() + double.len())), "{text}");
    assert_same(&before, &snapshot(&queue));

    // The removal takes exactly them (without --double: the null senders).
    let gone: Vec<PathBuf> = null.iter().flat_map(|&n| files_of(&queue, n, SPLIT)).collect();
    let rest = without(snapshot(&queue), &gone);
    let out = qkillns(&q).arg("-q").assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("removed {} message(s)", null.len())), "{text}");
    for &n in &null {
        assert!(files_of(&queue, n, SPLIT).is_empty(), "{n} left: {:?}", files_of(&queue, n, SPLIT));
    }
    assert_same(&rest, &without(snapshot(&queue), &[]));
}
