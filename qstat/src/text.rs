//! The human-readable output: qmail-qstat's two lines, byte for byte, then
//! the breakdown and top lists when asked. Every untrusted name or address
//! is escaped ([`qcommon::error::Escaped`]).

use std::io::{self, Write};

use qcommon::error::Escaped;

use crate::count::Counts;
use crate::detail::{BySource, Detail, TopLists};
use crate::report::Report;

/// qmail-qstat's output.
pub fn write_counts(w: &mut dyn Write, c: &Counts) -> io::Result<()> {
    writeln!(w, "messages in queue: {}", c.messages)?;
    writeln!(w, "messages in queue but not yet preprocessed: {}", c.unpreprocessed)
}

/// The whole report.
pub fn write_report(w: &mut dyn Write, r: &Report) -> io::Result<()> {
    write_counts(w, &r.counts)?;
    if let Some(d) = &r.detail {
        write_detail(w, d, r.time)?;
    }
    if let Some(t) = &r.top {
        write_top(w, t)?;
    }
    Ok(())
}

fn by_source(b: &BySource) -> String {
    format!("{} ({} preprocessed, from info; {} not yet preprocessed, from todo)", b.total(), b.info, b.todo)
}

/// The breakdown.
pub fn write_detail(w: &mut dyn Write, d: &Detail, now: i64) -> io::Result<()> {
    writeln!(w, "split: {} ({}); todo: {}", d.split, d.split_source, if d.big_todo { "big-todo" } else { "flat" })?;
    writeln!(w, "messages found by the scan: {}", d.messages)?;
    writeln!(w, "  preprocessed: {}", d.preprocessed)?;
    writeln!(w, "  not yet preprocessed: {}", d.unpreprocessed)?;
    writeln!(w, "  neither (no todo and no info: being queued, or leftovers): {}", d.other)?;
    writeln!(
        w,
        "recipients still to do: {} local, {} remote; {} in todo files (not yet preprocessed)",
        d.local_pending, d.remote_pending, d.todo_recipients
    )?;
    writeln!(w, "messages with a pending bounce: {}", d.pending_bounce)?;
    writeln!(w, "null-sender messages: {}", by_source(&d.null_sender))?;
    match &d.salvaged_unknown {
        None => {
            writeln!(w, "salvaged messages (sender lost; qfixq wrote the null sender, not bounces): {}", d.salvaged)?
        }
        Some(e) => writeln!(w, "salvaged messages: unknown ({e})")?,
    }
    writeln!(w, "double-bounce messages: {}", by_source(&d.double_bounce))?;
    match &d.oldest {
        Some(o) => writeln!(
            w,
            "oldest message: {}, born {}, from its {}",
            o.number,
            qcommon::human::when(o.birth, now),
            o.basis.name()
        )?,
        None => writeln!(w, "oldest message: none")?,
    }
    if let Some(l) = &d.lifetime {
        writeln!(w, "queuelifetime: {} s ({})", l.seconds, l.source_text())?;
    }
    writeln!(w, "messages past queuelifetime: {}", d.past_lifetime)?;
    if d.damage.is_empty() {
        writeln!(w, "damaged messages: {}", d.damaged)?;
    } else {
        let reasons: Vec<String> = d.damage.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        writeln!(w, "damaged messages: {} ({})", d.damaged, reasons.join(", "))?;
    }
    writeln!(w, "entries that are not message files: {}", d.strays)?;
    Ok(())
}

/// How a sender is shown: `<>` for the null sender.
pub fn sender_text(s: &[u8]) -> String {
    if s.is_empty() {
        "<>".to_string()
    } else {
        Escaped(s).to_string()
    }
}

/// How a domain is shown: `(no domain)` for an address without `@`.
pub fn domain_text(s: &[u8]) -> String {
    if s.is_empty() {
        "(no domain)".to_string()
    } else {
        Escaped(s).to_string()
    }
}

fn approx(undercount: u64) -> String {
    if undercount == 0 {
        String::new()
    } else {
        format!("; too many to count exactly, each may be up to {undercount} low")
    }
}

/// The top lists.
pub fn write_top(w: &mut dyn Write, t: &TopLists) -> io::Result<()> {
    writeln!(w, "top senders (messages, of {}{}):", t.sender_total, approx(t.sender_undercount))?;
    for (s, n) in &t.senders {
        writeln!(w, "{n:>9} {}", sender_text(s))?;
    }
    writeln!(
        w,
        "top recipient domains (recipients still to do, of {}{}):",
        t.domain_total,
        approx(t.domain_undercount)
    )?;
    for (s, n) in &t.domains {
        writeln!(w, "{n:>9} {}", domain_text(s))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_qmail_qstat_lines() {
        let mut v = Vec::new();
        write_counts(&mut v, &Counts { messages: 12, unpreprocessed: 3 }).unwrap();
        assert_eq!(v, b"messages in queue: 12\nmessages in queue but not yet preprocessed: 3\n");
    }

    #[test]
    fn untrusted_text_is_escaped() {
        assert_eq!(sender_text(b""), "<>");
        assert_eq!(sender_text(b"a\x1b[31m@b"), "a\\x1b[31m@b");
        assert_eq!(domain_text(b""), "(no domain)");
        let t = TopLists {
            senders: vec![(b"x\ny@z".to_vec(), 3)],
            sender_total: 3,
            domains: vec![(b"z".to_vec(), 3)],
            domain_total: 3,
            ..TopLists::default()
        };
        let mut v = Vec::new();
        write_top(&mut v, &t).unwrap();
        let s = String::from_utf8(v).unwrap();
        assert!(s.contains("        3 x\\ny@z\n"), "{s}");
        assert_eq!(s.lines().count(), 4);
    }
}
