//! qstat through its binary on practice queues: the breakdown against what
//! the builder made, queuelifetime, top lists, JSON, Prometheus, the
//! plugin mode, exit statuses and messages, escaping.

use std::fs;
use std::os::unix::fs::MetadataExt;

use qtests::content::FLOOD_SENDER;
use qtests::prelude::qstat::*;
use qtests::{build_queue, BuildSpec, BuiltState};

#[test]
fn detail_matches_what_was_built() {
    for big in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let b = build(t.path(), 300, big, 21);
        let o = run(&b.queue, &["--detail", "--top", "5", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(o.stderr.is_empty(), "{}", err(&o));
        let j = Json::parse(&out(&o));
        let c = &b.counts;
        assert_eq!(j.get("messages").u(), c.messages);
        assert_eq!(j.get("unpreprocessed").u(), c.todo);
        assert_eq!(j.get("todo_layout").s(), if big { "big_todo" } else { "flat" });
        assert_eq!(j.at("detail.messages_scanned").u(), c.messages);
        assert_eq!(j.at("detail.unpreprocessed").u(), c.todo);
        assert_eq!(j.at("detail.preprocessed").u(), c.messages - c.todo);
        assert_eq!(j.at("detail.other").u(), 0);
        assert_eq!(j.at("detail.recipients_pending.local").u(), c.local_pending);
        assert_eq!(j.at("detail.recipients_pending.remote").u(), c.remote_pending);
        let todo_rcpts: usize =
            b.messages.iter().filter(|m| m.state == BuiltState::TodoStage).map(|m| m.recipients.len()).sum();
        assert_eq!(j.at("detail.recipients_pending.todo").u(), todo_rcpts as u64);
        assert_eq!(j.at("detail.pending_bounces").u(), c.bounce_files);
        assert_eq!(j.at("detail.null_sender.total").u(), c.null_sender);
        assert_eq!(j.at("detail.double_bounce.total").u(), c.double_bounce);
        let null_todo =
            b.messages.iter().filter(|m| m.state == BuiltState::TodoStage && m.sender.is_empty()).count() as u64;
        assert_eq!(j.at("detail.null_sender.from_todo").u(), null_todo);
        assert_eq!(j.at("detail.damaged").u(), 0);
        assert_eq!(j.at("detail.strays").u(), 0);
        // The oldest message and its age basis.
        let oldest = b.messages.iter().min_by_key(|m| (m.birth, m.number)).unwrap();
        assert_eq!(j.at("detail.oldest.number").u(), oldest.number);
        assert_eq!(j.at("detail.oldest.birth").u() as i64, oldest.birth);
        let basis = if oldest.state == BuiltState::Preprocessed { "info_mtime" } else { "mess_mtime" };
        assert_eq!(j.at("detail.oldest.basis").s(), basis);
        // Built long ago (NOW is in 2023): everything preprocessed is past
        // the default queuelifetime.
        assert_eq!(j.at("detail.queuelifetime.seconds").u(), 604_800);
        assert_eq!(j.at("detail.past_queuelifetime").u(), c.messages - c.todo);
        // The flood sender leads.
        let senders = j.at("top.senders").arr();
        assert_eq!(senders.len(), 5);
        assert_eq!(senders[0].get("sender").s(), FLOOD_SENDER);
        let flood = b.messages.iter().filter(|m| m.sender == FLOOD_SENDER.as_bytes()).count() as u64;
        assert_eq!(senders[0].get("messages").u(), flood);
        assert_eq!(j.at("top.senders_counted").u(), c.messages);
        assert_eq!(j.at("top.senders_max_undercount").u(), 0);
        let domains = j.at("top.recipient_domains").arr();
        let pending_total = c.local_pending + c.remote_pending + todo_rcpts as u64;
        assert_eq!(j.at("top.recipients_counted").u(), pending_total);
        assert!(domains[0].get("recipients").u() >= domains[1].get("recipients").u());

        // The text form says the same.
        let o = run(&b.queue, &["--detail", "--top", "2"]);
        let text = out(&o);
        assert!(text.starts_with(&format!(
            "messages in queue: {}\nmessages in queue but not yet preprocessed: {}\n",
            c.messages, c.todo
        )));
        assert!(
            text.contains(&format!("recipients still to do: {} local, {} remote;", c.local_pending, c.remote_pending))
        );
        assert!(text.contains(&format!("null-sender messages: {} (", c.null_sender)), "{text}");
        assert!(text.contains(&format!("messages with a pending bounce: {}\n", c.bounce_files)), "{text}");
        assert!(text.contains(&format!("oldest message: {}, ", oldest.number)), "{text}");
        assert!(text.contains(&format!(" {FLOOD_SENDER}\n")), "{text}");
    }
}

/// queuelifetime from the control file of qmail's home: messages past it,
/// a garbage file (warning, default), an absent one (default).
#[test]
fn queuelifetime_from_control() {
    let t = tempfile::tempdir().unwrap();
    let spec = BuildSpec { messages: 200, seed: 5, ..BuildSpec::default() }; // births in the last week
    let b = build_queue(&t.path().join("queue"), &spec).unwrap();
    fs::create_dir(t.path().join("control")).unwrap();
    let lifetime = 2 * 86_400;
    fs::write(t.path().join("control/queuelifetime"), format!("{lifetime}\n")).unwrap();
    let expired = |now: i64| {
        b.messages.iter().filter(|m| m.state == BuiltState::Preprocessed && now > m.birth + lifetime).count() as u64
    };
    let before = expired(spec.now.max(now()));
    let o = qstat().arg("--qmail-home").arg(t.path()).args(["--detail", "--json"]).output().unwrap();
    let after = expired(now());
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let j = Json::parse(&out(&o));
    assert_eq!(j.at("detail.queuelifetime.seconds").u(), lifetime as u64);
    assert!(j.at("detail.queuelifetime.source_text").s().contains("control/queuelifetime"));
    assert_eq!(j.at("detail.queuelifetime.source").s(), "file");
    let got = j.at("detail.past_queuelifetime").u();
    assert!(before <= got && got <= after, "{before} <= {got} <= {after}");
    assert!(got > 0 && got < b.counts.messages - b.counts.todo, "{got}");

    fs::write(t.path().join("control/queuelifetime"), "a week\n").unwrap();
    let o = qstat().arg("--qmail-home").arg(t.path()).args(["--detail"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(err(&o).contains("qstat: warning: ") && err(&o).contains("does not start with a number"), "{}", err(&o));
    assert!(out(&o).contains("queuelifetime: 604800 s (default: "), "{}", out(&o));

    fs::remove_file(t.path().join("control/queuelifetime")).unwrap();
    let o = qstat().arg("--qmail-home").arg(t.path()).args(["--detail"]).output().unwrap();
    assert!(o.stderr.is_empty(), "{}", err(&o));
    assert!(out(&o).contains("queuelifetime: 604800 s (default: "), "{}", out(&o));
    assert!(out(&o).contains("is absent)"), "{}", out(&o));
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn check_mode() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 60, false, 8);
    let (n, m) = (b.counts.messages, b.counts.todo);
    let check = |args: &[&str]| {
        let o = run(&b.queue, &[&["--check"][..], args].concat());
        let text = out(&o);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        (o.status.code().unwrap(), text)
    };
    let (c, l) = check(&["--warning", "1000", "--critical", "2000"]);
    assert_eq!(c, 0);
    assert_eq!(
        l,
        format!(
            "QSTAT OK - {n} messages in queue, {m} not yet preprocessed | messages={n};1000;2000;0 unpreprocessed={m};;;0\n"
        )
    );
    let (c, l) = check(&["--warning", "10", "--critical", "2000"]);
    assert_eq!(c, 1);
    assert!(l.starts_with(&format!("QSTAT WARNING - {n} messages in queue (warning: 10), ")), "{l}");
    let (c, l) = check(&["--warning", "10", "--critical", "20"]);
    assert_eq!(c, 2);
    assert!(l.starts_with("QSTAT CRITICAL - "), "{l}");
    let (c, l) = check(&["--critical-unpreprocessed", &(m - 1).to_string()]);
    assert_eq!(c, 2, "{l}");
    let (c, _) = check(&["--warning", "@0:10"]);
    assert_eq!(c, 0);
    let (c, l) = check(&["--detail", "--warning", "1000"]);
    assert_eq!(c, 0);
    assert!(l.contains(" oldest_age=") && l.contains(" expired="), "{l}");
    // UNKNOWN: bad options, a missing queue.
    let (c, l) = check(&["--warning", "lots"]);
    assert_eq!(c, 3);
    assert!(l.starts_with("QSTAT UNKNOWN - usage: "), "{l}");
    let (c, l) = check(&["--json"]);
    assert_eq!(c, 3, "{l}");
    let o = qstat().args(["--check", "--queue"]).arg(t.path().join("nowhere")).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let l = out(&o);
    assert!(l.starts_with("QSTAT UNKNOWN - ") && l.contains("nowhere"), "{l}");
    assert_eq!(l.lines().count(), 1);
}

#[test]
fn exit_statuses_and_messages() {
    let t = tempfile::tempdir().unwrap();
    // A queue that does not exist: 8, naming the path, nothing on stdout.
    let missing = t.path().join("no-such-queue");
    let o = run(&missing, &[]);
    assert_eq!(o.status.code(), Some(8));
    assert!(o.stdout.is_empty());
    assert!(err(&o).contains("no-such-queue") && err(&o).contains("ENOENT"), "{}", err(&o));
    let o = qstat().arg("--qmail-home").arg(t.path().join("nohome")).output().unwrap();
    assert_eq!(o.status.code(), Some(8));
    assert!(err(&o).contains("nohome/queue"), "{}", err(&o));
    // Not a qmail queue.
    fs::create_dir(t.path().join("etc")).unwrap();
    let o = run(t.path(), &["--detail"]);
    assert_eq!(o.status.code(), Some(8));
    assert!(err(&o).contains("is not a qmail queue"), "{}", err(&o));
    // Usage errors.
    let o = qstat().args(["--bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(16));
    let o = qstat().args(["--json", "--prometheus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(16));
    let o = qstat().args(["--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("qmail-qstat"));
    // A queue without its mess directory: counted as far as it goes, the
    // error names the path, exit 4.
    let q = t.path().join("queue");
    fs::create_dir_all(q.join("todo")).unwrap();
    fs::create_dir_all(q.join("lock")).unwrap();
    fs::write(q.join("todo/123"), b"").unwrap();
    let o = run(&q, &[]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(out(&o), "messages in queue: 0\nmessages in queue but not yet preprocessed: 1\n");
    assert!(err(&o).contains(&format!("{}: missing", q.join("mess").display())), "{}", err(&o));
    let o = run(&q, &["--json"]);
    assert_eq!(o.status.code(), Some(4));
    let j = Json::parse(&out(&o));
    assert_eq!(j.get("complete"), &Json::Bool(false));
    assert_eq!(j.get("errors").arr().len(), 1);
    let o = run(&q, &["--check", "--warning", "5"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(out(&o).starts_with("QSTAT UNKNOWN - part of the queue could not be read: "), "{}", out(&o));
}

#[test]
fn prometheus_file_is_written_atomically() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 50, false, 9);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qmail.prom");
    fs::write(&file, "stale").unwrap();
    let before_ino = fs::metadata(&file).unwrap().ino();
    let o = run(&b.queue, &["--detail", "--prometheus"]);
    assert_eq!(o.status.code(), Some(0));
    let stdout_text = out(&o);
    let o = qstat().arg("--queue").arg(&b.queue).args(["--detail", "--prometheus"]).arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(o.stdout.is_empty());
    let text = fs::read_to_string(&file).unwrap();
    assert_ne!(fs::metadata(&file).unwrap().ino(), before_ino, "replaced by a rename");
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777 & !0o022, 0o644 & !0o022);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("qmail.prom")], "no temporary file left");
    // Same figures as on stdout (the time stamp and ages may differ by a second).
    fn strip(s: &str) -> Vec<&str> {
        s.lines()
            .filter(|l| {
                !l.starts_with("qmail_queue_scan_timestamp")
                    && !l.starts_with("qmail_queue_last_success_timestamp")
                    && !l.contains("_age_")
            })
            .collect()
    }
    assert_eq!(strip(&text), strip(&stdout_text));
    let q = b.queue.display();
    assert!(text.contains(&format!("\nqmail_queue_messages{{queue=\"{q}\"}} {}\n", b.counts.messages)));
    assert!(text.contains(&format!("\nqmail_queue_unpreprocessed_messages{{queue=\"{q}\"}} {}\n", b.counts.todo)));
    assert!(text.contains("# TYPE qmail_queue_expired_messages gauge\n"));
    // A directory that does not exist: 8.
    let o =
        qstat().arg("--queue").arg(&b.queue).arg("--prometheus").arg(dir.path().join("no/x.prom")).output().unwrap();
    assert_eq!(o.status.code(), Some(8));
    assert!(err(&o).contains("no/x.prom"), "{}", err(&o));
}

/// Untrusted bytes in addresses never reach the terminal raw; JSON stays
/// valid and exact.
#[test]
fn hostile_addresses_are_escaped() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 30, false, 10);
    let m = b.messages.iter().find(|m| m.state == BuiltState::Preprocessed).unwrap();
    let info = qtests::message_path(&b.queue, qcommon::queue::Part::Info, m.number, b.spec_split, false);
    let mtime = fs::metadata(&info).unwrap().modified().unwrap();
    let evil: &[u8] = b"evil\x1b]0;owned\x07\n\xff@x.example";
    let mut data = b"F".to_vec();
    data.extend_from_slice(evil);
    data.push(0);
    fs::write(&info, &data).unwrap();
    fs::File::options().write(true).open(&info).unwrap().set_modified(mtime).unwrap();
    let o = run(&b.queue, &["--top", "100"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07) && !o.stdout.contains(&0xff));
    assert!(out(&o).contains("evil\\x1b]0;owned\\x07\\n\\xff@x.example"), "{}", out(&o));
    let o = run(&b.queue, &["--top", "100", "--json"]);
    let j = Json::parse(&out(&o));
    let found =
        j.at("top.senders").arr().iter().any(|s| s.get("sender").s() == "evil\u{1b}]0;owned\u{7}\n\u{ff}@x.example");
    assert!(found, "{}", out(&o));
}

/// A queue given by a relative path and through a symbolic link works.
#[test]
fn queue_through_a_link() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 20, false, 12);
    std::os::unix::fs::symlink(&b.queue, t.path().join("link")).unwrap();
    let o = qstat().current_dir(t.path()).args(["--queue", "link"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        out(&o),
        format!("messages in queue: 20\nmessages in queue but not yet preprocessed: {}\n", b.counts.todo)
    );
}
