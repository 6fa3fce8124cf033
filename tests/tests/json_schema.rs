//! The JSON documents of the three tools against their schema,
//! docs/json.md: every field printed is listed there with its type, every
//! field listed (unless optional) is printed, and the documents are data
//! (numbers as numbers, codes in snake_case, a problem flag on each
//! finding, dry-run counts named as what would happen). Through the real
//! binaries, on damaged practice queues.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use qtests::prelude::cross::*;
use qtests::{apply_damage, Damage};
use serde_json::Value;

const SPLIT: u32 = 7;

/// A documented field: its types and whether it may be absent.
#[derive(Debug)]
struct Field {
    types: BTreeSet<String>,
    optional: bool,
}

/// The table of docs/json.md under `## tool`.
fn schema(tool: &str) -> BTreeMap<String, Field> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/json.md")).unwrap();
    let start = doc.find(&format!("\n## {tool}\n")).unwrap_or_else(|| panic!("## {tool} in docs/json.md"));
    let section = &doc[start + 4..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut m = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let path = cells[0].trim_start_matches("| ").trim_matches('`').to_string();
        let types = cells[1].split(" or ").map(str::to_string).collect();
        let optional = cells.get(2).is_some_and(|c| c.starts_with("*optional*"));
        assert!(m.insert(path.clone(), Field { types, optional }).is_none(), "{tool}: {path} twice");
    }
    assert!(m.len() > 20, "{tool}: the table of docs/json.md was not found");
    m
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `v` at `path` against the schema; records the paths seen.
fn walk(tool: &str, s: &BTreeMap<String, Field>, v: &Value, path: &str, seen: &mut BTreeSet<String>) {
    let element_object = path.ends_with("[]") && v.is_object();
    if !path.is_empty() && !element_object {
        let f = s.get(path).unwrap_or_else(|| panic!("{tool}: {path} is printed but not in docs/json.md"));
        let t = type_of(v);
        let ok = f.types.contains(t) || (t == "integer" && f.types.contains("number"));
        assert!(ok, "{tool}: {path} is {t}, docs/json.md says {:?}: {v}", f.types);
        seen.insert(path.to_string());
    }
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match v {
        Value::Object(o) => {
            let map = s.contains_key(&join("*"));
            for (k, x) in o {
                if map {
                    assert!(
                        k.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                        "{tool}: key {k:?} of {path} is not a snake_case code"
                    );
                }
                walk(tool, s, x, &join(if map { "*" } else { k }), seen);
            }
        }
        Value::Array(a) => {
            if !a.is_empty() {
                seen.insert(format!("{path}[]"));
            }
            a.iter().for_each(|x| walk(tool, s, x, &format!("{path}[]"), seen))
        }
        _ => {}
    }
}

fn parse(run: &Run) -> Value {
    serde_json::from_str(run.out().trim_end()).unwrap_or_else(|e| panic!("not JSON: {e}\n{}", run.show()))
}

/// Checks the documents of `tool`, and that together they print every
/// field that is not optional.
fn conforms(tool: &str, docs: &[Value]) {
    let s = schema(tool);
    let mut seen = BTreeSet::new();
    for d in docs {
        assert_eq!(d["schema_version"], qcommon::json::SCHEMA_VERSION, "{tool}: {d}");
        walk(tool, &s, d, "", &mut seen);
    }
    // A field of an array's elements is required once the array had one.
    let elements_seen = |p: &str| p.match_indices("[]").all(|(i, _)| seen.contains(&p[..i + 2]));
    let missing: Vec<&String> =
        s.iter().filter(|(p, f)| !f.optional && !seen.contains(*p) && elements_seen(p)).map(|(p, _)| p).collect();
    assert!(missing.is_empty(), "{tool}: documented, never printed: {missing:?}");
}

fn is_code(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

#[test]
fn json_documents_match_their_schema() {
    if !root_or_skip("json_documents_match_their_schema") {
        return;
    }
    let tmp = scratch(false);
    let queue = tmp.path().join("queue");
    let built = build(&queue, 150, SPLIT, 61, 0.2);
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for (i, d) in
        [Damage::ZeroByteMess, Damage::WrongBucket, Damage::GarbledInfo, Damage::StrayNames].into_iter().enumerate()
    {
        apply_damage(&built, d, 61 + i as u64, &outside).unwrap();
    }

    // qstat: the full document.
    let run = cmd("qstat").queue(&queue, SPLIT).args(["--detail", "--top", "3", "--json"]).run();
    run.assert_sane().expect(0);
    let st = parse(&run);
    assert!(st["detail"]["damaged"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["detail"]["split"]["value"], SPLIT);
    assert_eq!(st["detail"]["split"]["source"], "option");
    for (code, n) in st["detail"]["damage"].as_object().unwrap() {
        assert!(is_code(code) && n.as_u64().unwrap() > 0, "{code}: {n}");
        assert!(st["detail"]["damage_text"][code].as_str().is_some_and(|t| t.contains(' ')), "{code}: {st}");
    }

    // qstat --list: one document per line; --show N: one document.
    let run = cmd("qstat").queue(&queue, SPLIT).args(["--list", "--json"]).run();
    run.assert_sane().expect_any(&[0, 4]);
    let lines: Vec<Value> =
        run.out().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {e}\n{l}"))).collect();
    assert!(lines.len() > 100, "{}", run.show());
    let damaged = lines.iter().find(|l| !l["damage"].as_array().unwrap().is_empty()).expect("a damaged message");
    for l in &lines {
        assert!(is_code(l["stage"].as_str().unwrap()) && is_code(l["sender_kind"].as_str().unwrap()), "{l}");
        assert!(l["damage"].as_array().unwrap().iter().all(|c| is_code(c.as_str().unwrap())), "{l}");
    }
    let mut shown = Vec::new();
    for (l, body) in [(&lines[0], false), (damaged, true)] {
        let n = l["number"].as_u64().unwrap().to_string();
        let mut args = vec!["--show", n.as_str(), "--json"];
        if body {
            args.push("--body");
        }
        let run = cmd("qstat").queue(&queue, SPLIT).args(&args).run();
        run.assert_sane().expect_any(&[0, 4]);
        let d = parse(&run);
        assert_eq!(d["number"], l["number"], "{d}");
        assert!(d["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["stat"].is_null() || is_code(f["stat"]["kind"].as_str().unwrap())));
        assert_eq!(d.get("body").is_some(), body, "{d}");
        shown.push(d);
    }
    conforms("qstat --list", &lines);
    conforms("qstat --show", &shown);

    // qkillns: a dry run of each work, then a real removal.
    let dry = cmd("qkillns").queue(&queue, SPLIT).args(["-n", "--json"]).run();
    dry.assert_sane().expect_any(&[0, 4, 8]);
    let dry = parse(&dry);
    let would = dry["summary"]["would_remove"].as_u64().expect("a dry run says would_remove");
    assert!(would > 0, "{dry}");
    for key in ["removed", "bytes_freed", "expired", "would_expire"] {
        assert!(dry["summary"].get(key).is_none(), "a dry removal has no {key}: {dry}");
    }
    assert!(dry["summary"]["bytes_would_free"].as_u64().unwrap() > 0);
    let statuses: BTreeSet<&str> =
        dry["messages"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap()).collect();
    assert!(statuses.contains("would_remove") && statuses.iter().all(|s| is_code(s)), "{statuses:?}");
    let expire = cmd("qkillns").queue(&queue, SPLIT).args(["-n", "--expire", "--json"]).run();
    expire.assert_sane().expect_any(&[0, 4, 8]);
    let expire = parse(&expire);
    assert!(expire["queuelifetime"]["seconds"].is_u64() && is_code(expire["qmail_send"]["state"].as_str().unwrap()));
    assert_eq!(expire["split"]["value"], SPLIT);
    assert!(expire["summary"]["would_expire"].is_u64() && expire["summary"].get("would_remove").is_none(), "{expire}");
    let live = cmd("qkillns").queue(&queue, SPLIT).args(["--json"]).run();
    live.assert_sane().expect_any(&[0, 4, 8]);
    let live = parse(&live);
    assert_eq!(live["summary"]["removed"].as_u64(), Some(would), "{live}");
    assert!(live["summary"].get("would_remove").is_none());
    let refusal = cmd("qkillns").arg("--queue").arg(tmp.path().join("nowhere")).arg("--json").run();
    let refusal = parse(&refusal);
    assert!(refusal["error"].is_string() && refusal["tool"] == "qkillns", "{refusal}");
    conforms("qkillns", &[dry, expire, live]);

    // qfixq: a check, then a repair.
    let check = cmd("qfixq").queue(&queue, SPLIT).arg("--json").run();
    check.assert_sane().expect(4);
    let ck = parse(&check);
    assert_eq!(ck["mode"], "check");
    assert_eq!((ck["split"]["value"].as_u64(), ck["split"]["source"].as_str()), (Some(SPLIT as u64), Some("option")));
    assert!(ck["disk"]["blocks_used_pct"].is_number(), "{ck}");
    let findings = ck["findings"].as_array().unwrap();
    let problems = findings.iter().filter(|f| f["problem"] == true).count() as u64;
    assert_eq!(ck["summary"]["problems"].as_u64(), Some(problems));
    assert_eq!(ck["summary"]["findings"].as_u64(), Some(findings.len() as u64));
    let by_kind: u64 = ck["summary"]["by_kind"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(by_kind, problems);
    for f in findings {
        assert!(is_code(f["kind"].as_str().unwrap()), "{f}");
        for s in f["steps"].as_array().unwrap() {
            assert!(is_code(s["op"].as_str().unwrap()) && s["status"] == "planned", "{s}");
        }
    }
    let repair = cmd("qfixq").queue(&queue, SPLIT).args(["--json", "live"]).run();
    repair.assert_sane().expect_any(&[1, 4]);
    let rp = parse(&repair);
    assert_eq!(rp["mode"], "live");
    conforms("qfixq", &[ck, rp]);
    // After the repair, qstat's schema once more (with nothing damaged).
    let run = cmd("qstat").queue(&queue, SPLIT).args(["--detail", "--top", "3", "--json"]).run();
    run.assert_sane().expect(0);
    conforms("qstat", &[st, parse(&run)]);
}
