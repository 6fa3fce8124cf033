//! `--json`: the report as one JSON document on one line (so that
//! `--watch --json` gives one document per line). This module owns the
//! document's shape and its escaping.
//!
//! Strings are the bytes of names and addresses: valid UTF-8 is kept (with
//! `"`, `\` and control characters escaped as JSON requires), and each
//! byte that is not part of valid UTF-8 is written as `\u00XX`, its value
//! (so `\u00ff` may stand for the byte 0xff or for the character ÿ; the
//! text output, which escapes every such byte as `\xff`, tells them apart).

use std::fmt::Write as _;

use crate::detail::{BySource, Detail, TopLists};
use crate::report::Report;

/// Appends `bytes` as a JSON string literal.
pub fn string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            let _ = write!(out, "\\u{:04x}", b);
        }
    }
    out.push('"');
}

fn key(out: &mut String, k: &str) {
    string(out, k.as_bytes());
    out.push(':');
}

fn num(out: &mut String, k: &str, v: impl std::fmt::Display) {
    key(out, k);
    let _ = write!(out, "{v},");
}

fn text(out: &mut String, k: &str, v: &[u8]) {
    key(out, k);
    string(out, v);
    out.push(',');
}

/// Removes a trailing comma before closing `close`.
fn close(out: &mut String, c: char) {
    if out.ends_with(',') {
        out.pop();
    }
    out.push(c);
    out.push(',');
}

fn by_source(out: &mut String, k: &str, b: &BySource) {
    key(out, k);
    out.push('{');
    num(out, "total", b.total());
    num(out, "from_info", b.info);
    num(out, "from_todo", b.todo);
    close(out, '}');
}

fn detail(out: &mut String, d: &Detail, now: i64) {
    key(out, "detail");
    out.push('{');
    num(out, "split", d.split);
    text(out, "split_source", d.split_source.as_bytes());
    key(out, "big_todo");
    out.push_str(if d.big_todo { "true," } else { "false," });
    num(out, "messages_scanned", d.messages);
    num(out, "preprocessed", d.preprocessed);
    num(out, "unpreprocessed", d.unpreprocessed);
    num(out, "other", d.other);
    key(out, "recipients_pending");
    out.push('{');
    num(out, "local", d.local_pending);
    num(out, "remote", d.remote_pending);
    num(out, "todo", d.todo_recipients);
    close(out, '}');
    num(out, "pending_bounces", d.pending_bounce);
    by_source(out, "null_sender", &d.null_sender);
    key(out, "salvaged");
    match &d.salvaged_unknown {
        None => {
            out.push_str(&d.salvaged.to_string());
            out.push(',');
        }
        Some(_) => out.push_str("null,"),
    }
    by_source(out, "double_bounce", &d.double_bounce);
    key(out, "oldest");
    match &d.oldest {
        Some(o) => {
            out.push('{');
            num(out, "number", o.number);
            num(out, "birth", o.birth);
            num(out, "age_seconds", now - o.birth);
            text(out, "basis", o.basis.name().as_bytes());
            close(out, '}');
        }
        None => out.push_str("null,"),
    }
    if let Some(l) = &d.lifetime {
        key(out, "queuelifetime");
        out.push('{');
        num(out, "seconds", l.seconds);
        text(out, "source", l.source_text().as_bytes());
        close(out, '}');
    }
    num(out, "past_queuelifetime", d.past_lifetime);
    num(out, "damaged", d.damaged);
    key(out, "damage");
    out.push('{');
    for (r, n) in &d.damage {
        num(out, r, n);
    }
    close(out, '}');
    num(out, "strays", d.strays);
    num(out, "unreadable", d.unreadable);
    close(out, '}');
}

fn top(out: &mut String, t: &TopLists) {
    key(out, "top");
    out.push('{');
    key(out, "senders");
    out.push('[');
    for (s, n) in &t.senders {
        out.push('{');
        text(out, "sender", s);
        num(out, "messages", n);
        close(out, '}');
    }
    close(out, ']');
    num(out, "senders_counted", t.sender_total);
    num(out, "senders_max_undercount", t.sender_undercount);
    key(out, "recipient_domains");
    out.push('[');
    for (s, n) in &t.domains {
        out.push('{');
        text(out, "domain", s);
        num(out, "recipients", n);
        close(out, '}');
    }
    close(out, ']');
    num(out, "recipients_counted", t.domain_total);
    num(out, "domains_max_undercount", t.domain_undercount);
    close(out, '}');
}

/// The report as one line of JSON, with a newline.
pub fn render(r: &Report) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::from("{");
    text(&mut out, "queue", r.queue.as_os_str().as_bytes());
    num(&mut out, "time", r.time);
    num(&mut out, "messages", r.counts.messages);
    num(&mut out, "unpreprocessed", r.counts.unpreprocessed);
    text(&mut out, "todo_layout", if r.big_todo { b"big-todo" } else { b"flat" });
    key(&mut out, "complete");
    out.push_str(if r.complete() { "true," } else { "false," });
    key(&mut out, "errors");
    out.push('[');
    for e in &r.errors {
        string(&mut out, e.as_bytes());
        out.push(',');
    }
    close(&mut out, ']');
    key(&mut out, "warnings");
    out.push('[');
    for e in &r.warnings {
        string(&mut out, e.as_bytes());
        out.push(',');
    }
    close(&mut out, ']');
    if let Some(d) = &r.detail {
        detail(&mut out, d, r.time);
    }
    if let Some(t) = &r.top {
        top(&mut out, t);
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8]) -> String {
        let mut o = String::new();
        string(&mut o, b);
        o
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(s(b"plain@example.org"), "\"plain@example.org\"");
        assert_eq!(s(b"q\"b\\s"), "\"q\\\"b\\\\s\"");
        assert_eq!(s(b"a\nb\x01\x7f"), "\"a\\nb\\u0001\\u007f\"");
        assert_eq!(s("é".as_bytes()), "\"é\"");
        assert_eq!(s(b"bad\xff\xc3"), "\"bad\\u00ff\\u00c3\"");
    }

    #[test]
    fn document_shape() {
        let r = Report {
            queue: "/q".into(),
            time: 5,
            counts: crate::count::Counts { messages: 2, unpreprocessed: 1 },
            big_todo: false,
            detail: Some(Detail::default()),
            top: Some(TopLists { senders: vec![(vec![], 2)], ..TopLists::default() }),
            errors: vec!["x".into()],
            warnings: vec![],
        };
        let j = render(&r);
        assert!(j.starts_with("{\"queue\":\"/q\",\"time\":5,\"messages\":2,\"unpreprocessed\":1,"), "{j}");
        assert!(j.contains("\"complete\":false,\"errors\":[\"x\"],\"warnings\":[]"), "{j}");
        assert!(j.contains("\"oldest\":null"), "{j}");
        assert!(j.contains("\"damage\":{}"), "{j}");
        assert!(j.contains("\"senders\":[{\"sender\":\"\",\"messages\":2}]"), "{j}");
        assert!(j.ends_with("}}\n"), "{j}");
        assert!(!j.contains(",}") && !j.contains(",]"), "{j}");
        assert_eq!(j.lines().count(), 1);
    }
}
