//! `--json`: the report as one JSON document on one line (so that
//! `--watch --json` gives one document per line). This module owns the
//! document's shape (docs/json.md); [`qcommon::json`] writes it, with its
//! rule for byte strings (valid UTF-8 kept, each other byte `\u00XX`).

use std::collections::BTreeMap;

use qcommon::json::{LifetimeJson, Sourced};
use serde::Serialize;

use crate::detail::{reason, BySource, Detail, TopLists};
use crate::report::Report;

#[derive(Serialize)]
struct BySourceJson {
    total: u64,
    from_info: u64,
    from_todo: u64,
}

fn by_source(b: &BySource) -> BySourceJson {
    BySourceJson { total: b.total(), from_info: b.info, from_todo: b.todo }
}

#[derive(Serialize)]
struct Pending {
    local: u64,
    remote: u64,
    todo: u64,
}

#[derive(Serialize)]
struct OldestJson {
    number: u64,
    birth: i64,
    age_seconds: i64,
    basis: &'static str,
    basis_text: &'static str,
}

#[derive(Serialize)]
struct DetailJson {
    split: Sourced<u32>,
    big_todo: bool,
    messages_scanned: u64,
    preprocessed: u64,
    unpreprocessed: u64,
    other: u64,
    recipients_pending: Pending,
    pending_bounces: u64,
    null_sender: BySourceJson,
    salvaged: Option<u64>,
    double_bounce: BySourceJson,
    oldest: Option<OldestJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queuelifetime: Option<LifetimeJson>,
    past_queuelifetime: u64,
    damaged: u64,
    damage: BTreeMap<String, u64>,
    damage_text: BTreeMap<String, &'static str>,
    strays: u64,
    unreadable: u64,
}

fn detail(d: &Detail, now: i64) -> DetailJson {
    DetailJson {
        split: Sourced { value: d.split, source: d.split_source_code, source_text: d.split_source.clone() },
        big_todo: d.big_todo,
        messages_scanned: d.messages,
        preprocessed: d.preprocessed,
        unpreprocessed: d.unpreprocessed,
        other: d.other,
        recipients_pending: Pending { local: d.local_pending, remote: d.remote_pending, todo: d.todo_recipients },
        pending_bounces: d.pending_bounce,
        null_sender: by_source(&d.null_sender),
        salvaged: d.salvaged_unknown.is_none().then_some(d.salvaged),
        double_bounce: by_source(&d.double_bounce),
        oldest: d.oldest.map(|o| OldestJson {
            number: o.number,
            birth: o.birth,
            age_seconds: now - o.birth,
            basis: o.basis.code(),
            basis_text: o.basis.name(),
        }),
        queuelifetime: d.lifetime.as_ref().map(LifetimeJson::from),
        past_queuelifetime: d.past_lifetime,
        damaged: d.damaged,
        damage: d.damage.iter().map(|(r, n)| (reason::code(r), *n)).collect(),
        damage_text: d.damage.keys().map(|r| (reason::code(r), *r)).collect(),
        strays: d.strays,
        unreadable: d.unreadable,
    }
}

#[derive(Serialize)]
struct SenderJson<'a> {
    #[serde(serialize_with = "qcommon::json::bytes")]
    sender: &'a [u8],
    messages: u64,
}

#[derive(Serialize)]
struct DomainJson<'a> {
    #[serde(serialize_with = "qcommon::json::bytes")]
    domain: &'a [u8],
    recipients: u64,
}

#[derive(Serialize)]
struct TopJson<'a> {
    senders: Vec<SenderJson<'a>>,
    senders_counted: u64,
    senders_max_undercount: u64,
    recipient_domains: Vec<DomainJson<'a>>,
    recipients_counted: u64,
    domains_max_undercount: u64,
}

fn top(t: &TopLists) -> TopJson<'_> {
    TopJson {
        senders: t.senders.iter().map(|(s, n)| SenderJson { sender: s, messages: *n }).collect(),
        senders_counted: t.sender_total,
        senders_max_undercount: t.sender_undercount,
        recipient_domains: t.domains.iter().map(|(s, n)| DomainJson { domain: s, recipients: *n }).collect(),
        recipients_counted: t.domain_total,
        domains_max_undercount: t.domain_undercount,
    }
}

#[derive(Serialize)]
struct ReportJson<'a> {
    schema_version: u32,
    #[serde(serialize_with = "qcommon::json::bytes")]
    queue: &'a [u8],
    time: i64,
    messages: u64,
    unpreprocessed: u64,
    todo_layout: &'static str,
    complete: bool,
    errors: &'a [String],
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<DetailJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top: Option<TopJson<'a>>,
}

/// The report as one line of JSON, with a newline.
pub fn render(r: &Report) -> String {
    use std::os::unix::ffi::OsStrExt;
    let doc = ReportJson {
        schema_version: qcommon::json::SCHEMA_VERSION,
        queue: r.queue.as_os_str().as_bytes(),
        time: r.time,
        messages: r.counts.messages,
        unpreprocessed: r.counts.unpreprocessed,
        todo_layout: if r.big_todo { "big_todo" } else { "flat" },
        complete: r.complete(),
        errors: &r.errors,
        warnings: &r.warnings,
        detail: r.detail.as_ref().map(|d| detail(d, r.time)),
        top: r.top.as_ref().map(top),
    };
    let mut s = qcommon::json::to_string(&doc);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_shape() {
        let mut d = Detail::default();
        d.damage.insert(reason::EMPTY_MESS, 3);
        let r = Report {
            queue: <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/q\xff").into(),
            time: 5,
            counts: crate::count::Counts { messages: 2, unpreprocessed: 1 },
            big_todo: false,
            detail: Some(d),
            top: Some(TopLists { senders: vec![(b"a\x7f\xff".to_vec(), 2)], ..TopLists::default() }),
            errors: vec!["x".into()],
            warnings: vec![],
            count_errors: 0,
            structure: None,
        };
        let j = render(&r);
        assert!(
            j.starts_with(
                "{\"schema_version\":3,\"queue\":\"/q\\u00ff\",\"time\":5,\"messages\":2,\"unpreprocessed\":1,"
            ),
            "{j}"
        );
        assert!(j.contains("\"complete\":false,\"errors\":[\"x\"],\"warnings\":[]"), "{j}");
        assert!(j.contains("\"oldest\":null"), "{j}");
        assert!(
            j.contains("\"damage\":{\"empty_mess\":3},\"damage_text\":{\"empty_mess\":\"empty mess file\"}"),
            "{j}"
        );
        assert!(j.contains("\"senders\":[{\"sender\":\"a\\u007f\\u00ff\",\"messages\":2}]"), "{j}");
        assert!(j.ends_with("}}\n"), "{j}");
        assert_eq!(j.lines().count(), 1);
    }
}
