//! Envelopes of any size qmail accepts: a 20 MB todo (800,000 recipients)
//! and a 20 MB remote list are valid and kept by `qfixq` and `qfixq live`;
//! a partial last record of such a list is cut off with the complete
//! records kept byte for byte; a bad record deep inside a huge todo is
//! named with its offset; `qstat --detail` counts the recipients and
//! `--top` their domains; `qkillns --recipient` finds an address deep in a
//! huge list. Peak memory of every run stays far below the file size.
//! Root only (the queue is owned by qmail's ids).

use std::fs;
use std::path::{Path, PathBuf};

use qcommon::queue::Part;
use qtests::prelude::cross::*;
use qtests::{message_path, BuiltQueue, BuiltState, Where};

const SPLIT: u32 = 5;
/// Recipients of the huge lists.
const HUGE: usize = 800_000;
/// Peak RSS allowed to a run over a queue holding a 20 MB envelope.
const RSS_KB: u64 = 64 * 1024;

/// A built queue with room for one huge envelope.
struct Huge {
    _tmp: tempfile::TempDir,
    built: BuiltQueue,
}

impl Huge {
    fn new(test: &str) -> Option<Huge> {
        if !root_or_skip(test) {
            return None;
        }
        let tmp = scratch(false);
        let built = build(&tmp.path().join("queue"), 24, SPLIT, 4242, 0.0);
        Some(Huge { _tmp: tmp, built })
    }

    fn q(&self) -> &Path {
        &self.built.queue
    }

    fn path(&self, part: Part, n: u64) -> PathBuf {
        message_path(self.q(), part, n, SPLIT, false)
    }

    /// A message not yet preprocessed (todo and intd one inode).
    fn todo_stage(&self) -> u64 {
        self.built.messages.iter().find(|m| m.state == BuiltState::TodoStage).expect("a todo-stage message").number
    }

    /// A preprocessed message with a remote list.
    fn with_remote(&self) -> u64 {
        self.built
            .messages
            .iter()
            .find(|m| m.state == BuiltState::Preprocessed && m.recipients.iter().any(|r| r.1 == Where::Remote))
            .expect("a preprocessed message with a remote list")
            .number
    }

    /// `qfixq` check.
    fn check(&self) -> Run {
        let run = cmd("qfixq").queue(self.q(), SPLIT).run();
        run.assert_sane();
        run
    }

    /// `qfixq live`.
    fn live(&self) -> Run {
        let run = cmd("qfixq").queue(self.q(), SPLIT).arg("live").run();
        run.assert_sane();
        run
    }

    /// Recipients still to do of the built queue, by list (local, remote, todo).
    fn pending(&self) -> (u64, u64, u64) {
        let c = &self.built.counts;
        let todo = self
            .built
            .messages
            .iter()
            .filter(|m| m.state == BuiltState::TodoStage)
            .map(|m| m.recipients.len() as u64)
            .sum();
        (c.local_pending, c.remote_pending, todo)
    }
}

/// The `i`th address of a huge list: 24 bytes, 26 with its record.
fn address(i: usize) -> String {
    format!("r{i:07}@big-example.org")
}

/// `count` records of `kind`, the one at index `needle` (if any) replaced.
fn records(kind: u8, count: usize, needle: Option<(usize, &[u8])>) -> Vec<u8> {
    let mut v = Vec::with_capacity(count * 26);
    for i in 0..count {
        match needle {
            Some((at, rec)) if at == i => v.extend_from_slice(rec),
            _ => {
                v.push(kind);
                v.extend_from_slice(address(i).as_bytes());
                v.push(0);
            }
        }
    }
    v
}

/// A todo: `u`, `p`, the sender, then the recipients.
fn huge_todo(sender: &[u8], needle: Option<(usize, &[u8])>) -> (Vec<u8>, usize) {
    let mut v = b"u0\0p4242\0F".to_vec();
    v.extend_from_slice(sender);
    v.push(0);
    let head = v.len();
    v.extend(records(b'T', HUGE, needle));
    (v, head)
}

fn assert_rss(run: &Run, size: usize) {
    assert!(
        run.max_rss_kb < RSS_KB && run.max_rss_kb * 1024 < size as u64,
        "peak RSS {} kB with a {size}-byte envelope\n{}",
        run.max_rss_kb,
        run.show()
    );
    eprintln!("{}: peak RSS {} kB, {:?}, envelope {size} bytes", run.what, run.max_rss_kb, run.elapsed);
}

/// `"key":value` of qstat's JSON under `recipients_pending`.
fn pending_json(out: &str) -> String {
    let at = out.find("\"recipients_pending\":").expect("recipients_pending in the JSON");
    let end = at + out[at..].find('}').expect("end of recipients_pending");
    out[at..=end].to_string()
}

#[test]
fn a_20_mb_todo_is_valid_kept_and_counted() {
    let Some(h) = Huge::new("a_20_mb_todo_is_valid_kept_and_counted") else { return };
    let n = h.todo_stage();
    let todo = h.path(Part::Todo, n);
    let (data, _) = huge_todo(b"flood@example.net", None);
    assert!(data.len() > 20_000_000, "{}", data.len());
    // Written in place: the intd (the same inode) holds it too.
    fs::write(&todo, &data).unwrap();
    let size = data.len();
    drop(data);

    let run = h.check();
    run.expect(0);
    assert_rss(&run, size);
    let run = h.live();
    run.expect(0);
    assert_rss(&run, size);
    assert_eq!(fs::metadata(&todo).unwrap().len() as usize, size);
    assert_eq!(huge_todo(b"flood@example.net", None).0, fs::read(&todo).unwrap(), "the todo is unchanged");
    assert_eq!(fs::read(h.path(Part::Intd, n)).unwrap().len(), size, "the intd is unchanged");

    let (local, remote, todo_rc) = h.pending();
    let run = cmd("qstat").queue(h.q(), SPLIT).args(["--detail", "--top", "3", "--json"]).run();
    run.assert_sane().expect(0);
    assert_rss(&run, size);
    let out = run.out();
    let want = todo_rc - h.built.messages.iter().find(|m| m.number == n).unwrap().recipients.len() as u64 + HUGE as u64;
    assert_eq!(
        pending_json(&out),
        format!("\"recipients_pending\":{{\"local\":{local},\"remote\":{remote},\"todo\":{want}}}"),
        "{out}"
    );
    assert!(out.contains(&format!("{{\"domain\":\"big-example.org\",\"recipients\":{HUGE}}}")), "{out}");
}

#[test]
fn a_20_mb_remote_list_is_valid_kept_and_counted() {
    let Some(h) = Huge::new("a_20_mb_remote_list_is_valid_kept_and_counted") else { return };
    let n = h.with_remote();
    let remote = h.path(Part::Remote, n);
    let before = fs::read(&remote).unwrap();
    let old = before.iter().filter(|&&b| b == 0).count() as u64;
    let old_pending = before.split(|&b| b == 0).filter(|r| r.first() == Some(&b'T')).count() as u64;
    // 800,001 recipients: one already delivered, then 800,000 to do.
    let mut data = b"Dfirst@big-example.org\0".to_vec();
    data.extend(records(b'T', HUGE, None));
    fs::write(&remote, &data).unwrap();
    let size = data.len();
    assert!(size > 20_000_000);

    let run = h.check();
    run.expect(0);
    assert_rss(&run, size);
    let run = h.live();
    run.expect(0);
    assert_rss(&run, size);
    assert!(fs::read(&remote).unwrap() == data, "the remote list is unchanged");
    let _ = old;

    let (local, remote_pending, todo) = h.pending();
    let run = cmd("qstat").queue(h.q(), SPLIT).args(["--detail", "--json"]).run();
    run.assert_sane().expect(0);
    assert_rss(&run, size);
    let want = remote_pending - old_pending + HUGE as u64;
    assert_eq!(
        pending_json(&run.out()),
        format!("\"recipients_pending\":{{\"local\":{local},\"remote\":{want},\"todo\":{todo}}}")
    );
}

#[test]
fn a_partial_last_record_of_a_20_mb_remote_list_is_cut_off() {
    let Some(h) = Huge::new("a_partial_last_record_of_a_20_mb_remote_list_is_cut_off") else { return };
    let n = h.with_remote();
    let remote = h.path(Part::Remote, n);
    let complete = records(b'T', HUGE + 1, None);
    let mut data = complete.clone();
    data.extend_from_slice(b"Tcut@big-exa");
    fs::write(&remote, &data).unwrap();
    let size = data.len();
    drop(data);
    let rel = format!("remote/{}/{n}", n % u64::from(SPLIT));

    let run = h.check();
    run.expect(4);
    assert_rss(&run, size);
    let out = run.out();
    assert!(out.contains("partial last record (12 bytes)"), "{}", run.show());
    assert!(out.contains(&format!("dropped; {} complete records kept", HUGE + 1)), "{}", run.show());
    assert!(
        out.contains(&format!("write {rel} (the first {} bytes of {rel}, mode 0600)", complete.len())),
        "the check shows the step live carries out\n{}",
        run.show()
    );
    assert_eq!(fs::metadata(&remote).unwrap().len() as usize, size, "a check changes nothing");

    let run = h.live();
    run.expect(1);
    assert_rss(&run, size);
    assert!(fs::read(&remote).unwrap() == complete, "the complete records are kept byte for byte");
    let names: Vec<_> = fs::read_dir(remote.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|x| x.parse::<u64>().is_err())
        .collect();
    assert!(names.is_empty(), "no temporary file left: {names:?}");
    h.check().expect(0);
}

#[test]
fn a_bad_record_deep_in_a_huge_todo_is_named_with_its_offset() {
    let Some(h) = Huge::new("a_bad_record_deep_in_a_huge_todo_is_named_with_its_offset") else { return };
    let n = h.todo_stage();
    let at = 600_000;
    let (data, head) = huge_todo(b"a@example.org", Some((at, b"Xnot-a-recipient\0")));
    fs::write(h.path(Part::Todo, n), &data).unwrap();
    let size = data.len();
    drop(data);
    let offset = head + at * 26;
    assert!(offset > 15_000_000);

    let run = h.check();
    run.expect(4);
    assert_rss(&run, size);
    let want = format!("todo broken: unknown record type \"X\" at byte {offset}");
    assert!(run.out().contains(&want), "wanted {want:?}\n{}", run.show());
}

#[test]
fn qkillns_finds_a_recipient_deep_in_a_huge_list() {
    let Some(h) = Huge::new("qkillns_finds_a_recipient_deep_in_a_huge_list") else { return };
    // A bounce (null sender) to 800,000 recipients, one of them near the end.
    let n = h.todo_stage();
    let needle = b"Tneedle@deep.example\0";
    let (data, _) = huge_todo(b"", Some((HUGE - 3, needle)));
    fs::write(h.path(Part::Todo, n), &data).unwrap();
    let size = data.len();
    drop(data);

    let run = cmd("qkillns").queue(h.q(), SPLIT).args(["-n", "--recipient", "^needle@deep\\.example$"]).run();
    run.assert_sane().expect(0);
    assert_rss(&run, size);
    let listed = |run: &Run| run.out().lines().any(|l| l.starts_with(&format!("{n} ")));
    assert!(listed(&run), "the message is selected\n{}", run.show());
    assert!(run.out().contains(&format!("+{} more", HUGE)), "its recipients are counted\n{}", run.show());

    let run = cmd("qkillns").queue(h.q(), SPLIT).args(["-n", "--recipient", "^nobody@deep\\.example$"]).run();
    run.assert_sane().expect(0);
    assert!(!listed(&run), "no recipient matches: not selected\n{}", run.show());

    let run = cmd("qkillns").queue(h.q(), SPLIT).args(["-n", "--json", "--recipient", "needle@deep"]).run();
    run.assert_sane().expect(0);
    let out = run.out();
    qtests::json::check_json(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(
        out.contains(&format!(
            "\"recipients_not_listed\":[{{\"file\":\"todo/{n}\",\"list\":\"todo\",\"count\":{HUGE}}}]"
        )),
        "{out}"
    );
}

#[test]
fn a_20_mb_remote_list_linked_from_outside_is_replaced_by_a_copy() {
    let Some(h) = Huge::new("a_20_mb_remote_list_linked_from_outside_is_replaced_by_a_copy") else { return };
    let n = h.with_remote();
    let remote = h.path(Part::Remote, n);
    let data = records(b'T', HUGE, None);
    fs::write(&remote, &data).unwrap();
    let size = data.len();
    let outside = h.q().parent().unwrap().join("outside-link");
    fs::hard_link(&remote, &outside).unwrap();
    use std::os::unix::fs::MetadataExt;
    let old_ino = fs::metadata(&remote).unwrap().ino();

    let run = h.check();
    run.expect(4);
    assert!(run.out().contains("extra hard links") || run.out().contains("hard links"), "{}", run.show());
    let run = h.live();
    run.expect(1);
    assert_rss(&run, size);
    let now = fs::metadata(&remote).unwrap();
    assert_ne!(now.ino(), old_ino, "a fresh copy took its place");
    assert_eq!(now.nlink(), 1);
    assert!(fs::read(&remote).unwrap() == data, "the copy holds every record");
    assert!(fs::read(&outside).unwrap() == data, "the outside name keeps its file untouched");
    h.check().expect(0);
}
