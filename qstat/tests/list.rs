//! `qstat --list` and `qstat --show N` through the binary on practice
//! queues: every message oldest first with its envelope, the selection
//! options, JSON lines, damaged messages, a message mid-injection, strays
//! and unknown numbers, large envelopes streamed, salvaged messages, the
//! header and body escaped, `--raw`, and that nothing changes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use qcommon::queue::Part;
use qtests::content::FLOOD_SENDER;
use qtests::prelude::qstat::*;
use qtests::{apply_damage, message_path, BuiltMessage, BuiltQueue, BuiltState, Damage, Where};

/// The JSON lines of `-l --json` (plus extra arguments), parsed.
fn list_json(b: &BuiltQueue, extra: &[&str]) -> (Vec<Json>, std::process::Output) {
    let mut args = vec!["-l", "--json"];
    args.extend_from_slice(extra);
    let o = run(&b.queue, &args);
    let v = out(&o).lines().map(Json::parse).collect();
    (v, o)
}

fn numbers(v: &[Json]) -> Vec<u64> {
    v.iter().map(|j| j.get("number").u()).collect()
}

fn flag(j: &Json) -> bool {
    match j {
        Json::Bool(b) => *b,
        _ => panic!("not a bool: {j:?}"),
    }
}

/// Recipients of a built message as the listing gives them:
/// (channel, done, address).
fn built_recipients(m: &BuiltMessage) -> Vec<(String, bool, String)> {
    let mut v: Vec<(String, bool, String)> = m
        .recipients
        .iter()
        .map(|(a, w, done)| {
            let ch = match (m.state, w) {
                (BuiltState::TodoStage, _) => "todo",
                (_, Where::Local) => "local",
                (_, Where::Remote) => "remote",
            };
            (ch.to_string(), *done, String::from_utf8(a.clone()).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn listed_recipients(j: &Json) -> Vec<(String, bool, String)> {
    let mut v: Vec<(String, bool, String)> = j
        .get("recipients")
        .arr()
        .iter()
        .map(|r| (r.get("channel").s().to_string(), flag(r.get("done")), r.get("address").s().to_string()))
        .collect();
    v.sort();
    v
}

/// Every message once, oldest first, each with the envelope, size, stage
/// and birth the builder made; the text form says the same, one line per
/// message and one per recipient; nothing in the queue changes (not even
/// an access time, when root).
#[test]
fn list_gives_every_message_oldest_first_with_its_envelope() {
    for big in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let b = build(t.path(), 250, big, 41);
        age_atimes(&b.queue);
        let before = qtests::snapshot(&b.queue);
        let atimes_before = atimes(&b.queue, true);
        let (v, o) = list_json(&b, &[]);
        assert!(v.iter().all(|j| j.get("schema_version").u() == u64::from(qcommon::json::SCHEMA_VERSION)));
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(o.stderr.is_empty(), "{}", err(&o));
        assert_eq!(v.len(), b.messages.len());
        let mut expected: Vec<&BuiltMessage> = b.messages.iter().collect();
        expected.sort_by_key(|m| (m.birth, m.number));
        assert_eq!(numbers(&v), expected.iter().map(|m| m.number).collect::<Vec<_>>(), "not oldest first");
        for (j, m) in v.iter().zip(&expected) {
            assert_eq!(j.get("birth_unix").u() as i64, m.birth);
            assert!(j.get("birth").s().ends_with('Z') && j.get("birth").s().contains('T'));
            assert_eq!(j.get("size").u(), m.mess_len);
            assert_eq!(j.get("sender").s().as_bytes(), &m.sender[..]);
            let stage = if m.state == BuiltState::TodoStage { "unpreprocessed" } else { "preprocessed" };
            assert_eq!(j.get("stage").s(), stage);
            assert_eq!(flag(j.get("bounce_file")), m.bounce);
            assert_eq!(listed_recipients(j), built_recipients(m), "message {}", m.number);
            assert!(j.get("damaged").arr().is_empty());
            let kind = match &m.sender[..] {
                b"" => "null",
                b"#@[]" => "double_bounce",
                _ => "address",
            };
            assert_eq!(j.get("sender_kind").s(), kind);
        }

        let o = run(&b.queue, &["--list"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        let text = out(&o);
        let heads: Vec<&str> = text.lines().filter(|l| !l.starts_with("  ")).collect();
        assert_eq!(heads.len(), expected.len());
        let rcpts = text.lines().filter(|l| l.starts_with("  ")).count();
        assert_eq!(rcpts, expected.iter().map(|m| m.recipients.len()).sum::<usize>());
        let m = expected[0];
        let sender = format!("<{}>", String::from_utf8_lossy(&m.sender));
        let stage = if m.state == BuiltState::TodoStage { "unpreprocessed" } else { "preprocessed" };
        let fields: Vec<&str> = heads[0].splitn(5, ' ').collect();
        assert_eq!(fields[1..], [m.number.to_string().as_str(), &m.mess_len.to_string(), stage, &sender]);
        let first_rcpts: Vec<&str> = text.lines().skip(1).take_while(|l| l.starts_with("  ")).collect();
        for (a, w, done) in &m.recipients {
            let ch = if m.state == BuiltState::TodoStage {
                "todo"
            } else if *w == Where::Local {
                "local"
            } else {
                "remote"
            };
            let line = format!("  {ch} {} <{}>", if *done { "done" } else { "pending" }, String::from_utf8_lossy(a));
            assert!(first_rcpts.contains(&line.as_str()), "{line} not in {first_rcpts:?}");
        }

        assert!(before.diff(&qtests::snapshot(&b.queue)).is_empty(), "the listing changed the queue");
        if is_root() {
            assert_eq!(atimes_before, atimes(&b.queue, true), "the listing changed an access time");
        }
    }
}

/// --sender, --recipient, --header, --older-than, --younger-than and
/// message numbers select as qkillns's do (all must match); an unknown
/// number is named on stderr with exit 4.
#[test]
fn list_selects_like_qkillns() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 200, false, 43);
    let all: BTreeMap<u64, &BuiltMessage> = b.messages.iter().map(|m| (m.number, m)).collect();
    let sorted = |mut v: Vec<u64>| {
        v.sort_unstable();
        v
    };

    let (v, o) = list_json(&b, &["--sender", &format!("^{}$", regex::escape(FLOOD_SENDER))]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let want: Vec<u64> = b.messages.iter().filter(|m| m.sender == FLOOD_SENDER.as_bytes()).map(|m| m.number).collect();
    assert!(!want.is_empty());
    assert_eq!(sorted(numbers(&v)), sorted(want));

    let (v, _) = list_json(&b, &["--sender", "^$"]);
    let want: Vec<u64> = b.messages.iter().filter(|m| m.sender.is_empty()).map(|m| m.number).collect();
    assert_eq!(sorted(numbers(&v)), sorted(want));

    // A recipient of one message.
    let pick = b.messages.iter().find(|m| !m.recipients.is_empty()).unwrap();
    let addr = String::from_utf8(pick.recipients[0].0.clone()).unwrap();
    let (v, _) = list_json(&b, &["--recipient", &format!("^{}$", regex::escape(&addr))]);
    let want: Vec<u64> =
        b.messages.iter().filter(|m| m.recipients.iter().any(|r| r.0 == addr.as_bytes())).map(|m| m.number).collect();
    assert!(want.contains(&pick.number));
    assert_eq!(sorted(numbers(&v)), sorted(want));

    // Ages: the builder's births are around NOW, years ago; a cut between
    // two births far apart from now.
    let mut births: Vec<i64> = b.messages.iter().map(|m| m.birth).collect();
    births.sort_unstable();
    let i = births.windows(2).position(|w| w[1] - w[0] > 120).expect("two births apart");
    let cut = (births[i] + births[i + 1]) / 2;
    let age = now_secs() - cut;
    let older: Vec<u64> = b.messages.iter().filter(|m| m.birth < cut).map(|m| m.number).collect();
    let (v, _) = list_json(&b, &["--older-than", &format!("{age}s")]);
    assert_eq!(sorted(numbers(&v)), sorted(older.clone()));
    let (v, _) = list_json(&b, &["--younger-than", &format!("{age}s")]);
    assert_eq!(v.len() + older.len(), b.messages.len());
    // With a sender rule the ages are read by the scan itself: the same cut.
    let older_null: Vec<u64> =
        b.messages.iter().filter(|m| m.birth < cut && m.sender.is_empty()).map(|m| m.number).collect();
    let (v, _) = list_json(&b, &["--sender", "^$", "--older-than", &format!("{age}s")]);
    assert_eq!(sorted(numbers(&v)), sorted(older_null));

    // A header: the Subject of one message, read from its mess file.
    let m = b.messages.iter().find(|m| m.state == BuiltState::Preprocessed).unwrap();
    let mess = fs::read(message_path(&b.queue, Part::Mess, m.number, b.spec_split, false)).unwrap();
    let text = String::from_utf8_lossy(&mess);
    let mid = text.lines().find_map(|l| l.strip_prefix("Message-ID: ")).expect("a Message-ID").to_string();
    let (v, _) = list_json(&b, &["--header", &format!("message-id: ^{}$", regex::escape(&mid))]);
    assert_eq!(numbers(&v), vec![m.number]);
    // All must match.
    let (v, _) =
        list_json(&b, &["--header", &format!("Message-ID: ^{}$", regex::escape(&mid)), "--sender", "^nobody$"]);
    assert!(v.is_empty());

    // Numbers, oldest first whatever the order given; one unknown.
    let mut two: Vec<&BuiltMessage> = b.messages.iter().take(2).collect();
    let (a, c) = (two[0].number.to_string(), two[1].number.to_string());
    let (v, o) = list_json(&b, &[&c, &a, "99999999999"]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert!(err(&o).contains("no message 99999999999 in the queue"), "{}", err(&o));
    two.sort_by_key(|m| (m.birth, m.number));
    assert_eq!(numbers(&v), two.iter().map(|m| m.number).collect::<Vec<_>>());
    assert!(all.contains_key(&two[0].number));

    // Bad selections are usage errors naming the option.
    for bad in [&["-l", "--sender", "a("][..], &["-l", "--older-than", "7"], &["--sender", "x"], &["--body"]] {
        let o = run(&b.queue, bad);
        assert_eq!(o.status.code(), Some(16), "{bad:?}: {}", err(&o));
    }
    let o = run(&b.queue, &["-l", "--older-than", "7"]);
    assert!(err(&o).contains("--older-than"), "{}", err(&o));
    let o = run(&b.queue, &["-l", "--detail"]);
    assert_eq!(o.status.code(), Some(16));
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Damaged messages say so (with what is damaged); a message mid-injection
/// (mess and intd, no todo) is listed as being queued with its intd's
/// envelope; a misplaced file is found and read; a number that is only a
/// FIFO or a link is no message (exit 4, named); nothing outside is read.
#[test]
fn list_tells_damaged_and_half_queued_messages() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 120, false, 47);
    let outside = t.path().join("outside");
    let mut touched: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (d, key) in [
        (Damage::S3Leftover, "s3"),
        (Damage::ZeroByteMess, "zero"),
        (Damage::GarbledInfo, "garbled"),
        (Damage::TruncatedRemote, "truncated"),
        (Damage::WrongBucket, "wrong"),
        (Damage::FifoTrap, "fifo"),
        (Damage::SymlinkTrap, "symlink"),
    ] {
        let r = apply_damage(&b, d, 5, &outside).unwrap();
        touched.insert(key, r.touched);
    }
    let (v, o) = list_json(&b, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let by: BTreeMap<u64, &Json> = v.iter().map(|j| (j.get("number").u(), j)).collect();
    let damaged = |n: u64| -> Vec<String> { by[&n].get("damaged").arr().iter().map(|d| d.s().to_string()).collect() };

    let s3 = &touched["s3"];
    assert!(!s3.is_empty());
    for n in s3 {
        let j = by.get(n).unwrap_or_else(|| panic!("half-queued {n} not listed"));
        assert_eq!(j.get("stage").s(), "being_queued", "{j:?}");
        assert!(!j.get("recipients").arr().is_empty(), "{j:?}");
        assert!(j.get("recipients").arr().iter().all(|r| r.get("channel").s() == "todo"));
    }
    for n in &touched["zero"] {
        if by.contains_key(n) {
            assert!(damaged(*n).contains(&"empty mess file".to_string()), "{:?}", damaged(*n));
            assert_eq!(by[n].get("size").u(), 0);
        }
    }
    for n in &touched["garbled"] {
        assert!(damaged(*n).contains(&"unusable info".to_string()), "{:?}", damaged(*n));
        assert_eq!(by[n].get("sender_kind").s(), "unknown");
        assert!(matches!(by[n].get("sender"), Json::Null));
    }
    for n in &touched["truncated"] {
        assert!(damaged(*n).contains(&"truncated local or remote".to_string()), "{:?}", damaged(*n));
    }
    for n in &touched["wrong"] {
        let Some(j) = by.get(n) else { continue };
        assert!(damaged(*n).contains(&"file in a wrong bucket".to_string()), "{:?}", damaged(*n));
        // Its envelope was read where it is.
        let m = b.messages.iter().find(|m| m.number == *n).unwrap();
        if !touched["garbled"].contains(n) && !touched["truncated"].contains(n) && !touched["fifo"].contains(n) {
            assert_eq!(j.get("sender").s().as_bytes(), &m.sender[..], "{j:?}");
            assert_eq!(listed_recipients(j), built_recipients(m));
        }
    }
    // The text form says so too.
    let o = run(&b.queue, &["-l"]);
    let text = out(&o);
    assert!(text.contains(" being_queued <"), "{text}");
    assert!(text.contains("  damaged: "), "{text}");

    // A number whose only entry is a FIFO, or a link: no message.
    let mut strays = Vec::new();
    for part in [Part::Mess, Part::Info] {
        for (e, entry) in qtests::snapshot(&b.queue.join(part.dir())).entries {
            let name = e.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if !matches!(entry.kind, Kind::File | Kind::Dir) && name.parse::<u64>().is_ok() {
                strays.push((name, entry.kind == Kind::Symlink));
            }
        }
    }
    for (name, link) in strays.iter().filter(|(n, _)| !by.contains_key(&n.parse().unwrap())) {
        let o = run(&b.queue, &["-l", name]);
        assert_eq!(o.status.code(), Some(4), "{}", err(&o));
        assert!(out(&o).is_empty());
        let e = err(&o);
        assert!(e.contains(&format!("no message {name} in the queue, only entries that are not message files")), "{e}");
        let o = run(&b.queue, &["--show", name]);
        assert_eq!(o.status.code(), Some(8), "{}", err(&o));
        let e = err(&o);
        let what = if *link { "a symbolic link, not followed" } else { "not a regular file" };
        assert!(e.contains(what), "{e}");
    }
    assert!(!strays.is_empty(), "the traps made no stray");
}

/// A recipient list far larger than the scan holds (64 KiB) is listed
/// whole, streamed from its file, in text and JSON; a salvaged message's
/// sender is lost, not a bounce; an address with control bytes is escaped.
#[test]
fn list_streams_large_envelopes_and_tells_lost_senders() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 60, false, 53);
    let split = b.spec_split;
    let pre: Vec<&BuiltMessage> = b.messages.iter().filter(|m| m.state == BuiltState::Preprocessed).collect();

    // 4000 recipients, about 100 KB, every other one done.
    let big = pre[0];
    let mut data = Vec::new();
    for i in 0..4000 {
        data.push(if i % 2 == 0 { b'T' } else { b'D' });
        data.extend_from_slice(format!("user{i}@large-list.example\0").as_bytes());
    }
    assert!(data.len() > 64 << 10);
    let remote = message_path(&b.queue, Part::Remote, big.number, split, false);
    fs::write(&remote, &data).unwrap();
    let local = message_path(&b.queue, Part::Local, big.number, split, false);
    let _ = fs::remove_file(&local);

    // A salvaged message: the null sender, and a record.
    let lost = pre[1];
    let info = message_path(&b.queue, Part::Info, lost.number, split, false);
    let mtime = fs::metadata(&info).unwrap().mtime();
    fs::write(&info, b"F\0").unwrap();
    let f = fs::File::options().write(true).open(&info).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64)).unwrap();
    let rec = qcommon::salvaged::Record {
        number: lost.number,
        inode: lost.number,
        birth: mtime,
        why: qcommon::salvaged::Why::InfoGarbled,
    };
    fs::create_dir_all(b.queue.join("lost+found/salvaged")).unwrap();
    fs::write(b.queue.join(qcommon::salvaged::record_path(lost.number)), rec.to_bytes()).unwrap();

    // An address with an escape sequence in a third.
    let evil = pre[2];
    let remote3 = message_path(&b.queue, Part::Remote, evil.number, split, false);
    fs::write(&remote3, b"Tx\x1b[31m@evil.example\0").unwrap();
    let _ = fs::remove_file(message_path(&b.queue, Part::Local, evil.number, split, false));

    let (v, o) = list_json(&b, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let by: BTreeMap<u64, &Json> = v.iter().map(|j| (j.get("number").u(), j)).collect();
    let r = by[&big.number].get("recipients").arr();
    assert_eq!(r.len(), 4000);
    assert_eq!(r[3999].get("address").s(), "user3999@large-list.example");
    assert!(flag(r[3999].get("done")) && !flag(r[3998].get("done")));
    assert_eq!(by[&lost.number].get("sender_kind").s(), "lost");
    assert!(matches!(by[&lost.number].get("sender"), Json::Null));
    assert_eq!(by[&evil.number].get("recipients").arr()[0].get("address").s(), "x\u{1b}[31m@evil.example");

    let big_s = big.number.to_string();
    let lost_s = lost.number.to_string();
    let evil_s = evil.number.to_string();
    let o = run(&b.queue, &["-l", &big_s, &lost_s, &evil_s]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert_eq!(text.lines().filter(|l| l.starts_with("  remote ") && l.contains("@large-list.example>")).count(), 4000);
    assert!(text.contains("  remote done <user3999@large-list.example>\n"), "{text}");
    assert!(text.lines().any(|l| l.contains(&format!(" {lost_s} ")) && l.ends_with(" (lost)")), "{text}");
    assert!(text.contains("  remote pending <x\\x1b[31m@evil.example>\n"), "{text}");
    assert!(!text.contains('\x1b'));

    // Salvaged messages are not bounces for --sender '^$'.
    let (v, _) = list_json(&b, &["--sender", "^$"]);
    assert!(!numbers(&v).contains(&lost.number));
}

/// --show N --json: one document (one line) with the --list fields, the
/// files with their status as numbers, the header as a byte string (the
/// body only with --body); errors as in the text form.
#[test]
fn show_json_gives_one_document() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 30, false, 61);
    let split = b.spec_split;
    let m = b.messages.iter().find(|m| m.state == BuiltState::Preprocessed && !m.recipients.is_empty()).unwrap();
    let mess_path = message_path(&b.queue, Part::Mess, m.number, split, false);
    let mut text = b"X-Evil: a\x1b[2J\xffb\r\n".to_vec();
    text.extend_from_slice(&fs::read(&mess_path).unwrap());
    text.extend_from_slice(b"last body line \x07\n");
    fs::write(&mess_path, &text).unwrap();
    let before = qtests::snapshot(&b.queue);
    let n = m.number.to_string();

    let o = run(&b.queue, &["--show", &n, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o).lines().count(), 1, "{}", out(&o));
    let j = Json::parse(&out(&o));
    assert_eq!(j.get("schema_version").u(), u64::from(qcommon::json::SCHEMA_VERSION));
    assert_eq!(j.get("number").u(), m.number);
    assert_eq!(j.get("stage").s(), "preprocessed");
    assert_eq!(j.get("size").u(), text.len() as u64);
    assert_eq!(j.get("sender").s(), String::from_utf8_lossy(&m.sender));
    assert_eq!(listed_recipients(&j), built_recipients(m));
    let header = j.get("header").s();
    // The byte rule: ESC as itself (escaped in the JSON text), 0xff as U+00FF.
    assert!(header.starts_with("X-Evil: a\x1b[2J\u{ff}b\r\n"), "{header:?}");
    assert!(!header.contains("last body line"), "{header:?}");
    assert!(!out(&o).contains('\x1b'), "raw control bytes in the JSON text");
    assert!(matches!(j.get("files"), Json::Arr(_)));
    let mess_rel = format!("mess/{}/{n}", m.number % u64::from(split));
    let mess = j.get("files").arr().iter().find(|f| f.get("path").s() == mess_rel).expect("the mess file is listed");
    let st = mess.get("stat");
    assert_eq!(st.get("kind").s(), "regular_file");
    assert_eq!(st.get("size").u(), text.len() as u64);
    assert_eq!(st.get("inode").u(), m.number);
    assert_eq!(st.get("mode").u(), u64::from(fs::metadata(&mess_path).unwrap().mode() & 0o7777));
    assert!(!flag(mess.get("misplaced")));
    assert!(!out(&o).contains("\"body\""), "no body without --body");

    let o = run(&b.queue, &["--show", &n, "--json", "--body"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let j = Json::parse(&out(&o));
    assert!(j.get("body").s().ends_with("last body line \u{7}\n"), "{:?}", j.get("body"));
    assert!(j.get("header").s().ends_with('\n') && !j.get("body").s().starts_with('\n'));
    assert!(before.diff(&qtests::snapshot(&b.queue)).is_empty(), "--show --json changed the queue");

    // Unknown number: nothing on stdout, exit 8, as the text form.
    let o = run(&b.queue, &["--show", "99999999999", "--json"]);
    assert_eq!(o.status.code(), Some(8));
    assert!(o.stdout.is_empty());
    // --raw writes bytes, not JSON.
    let o = run(&b.queue, &["--show", &n, "--json", "--raw"]);
    assert_eq!(o.status.code(), Some(16));
}

/// --show N: the envelope, damage, every file with owner and mode, the
/// header (escaped), the body only with --body, and --raw the bytes as
/// they are; a misplaced file and a message mid-injection say so; an
/// unknown number is exit 8.
#[test]
fn show_gives_one_message() {
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 40, false, 59);
    let split = b.spec_split;
    let m = b.messages.iter().find(|m| m.state == BuiltState::Preprocessed && !m.recipients.is_empty()).unwrap();
    let mess_path = message_path(&b.queue, Part::Mess, m.number, split, false);
    // A header with an escape sequence, and a body.
    let mut text = fs::read(&mess_path).unwrap();
    text.splice(0..0, b"X-Evil: a\x1b[2Jb\r\n".iter().copied());
    text.extend_from_slice(b"last body line \x07\n");
    fs::write(&mess_path, &text).unwrap();
    let before = qtests::snapshot(&b.queue);
    let n = m.number.to_string();

    let o = run(&b.queue, &["--show", &n]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let s = out(&o);
    assert!(s.starts_with(&format!("message: {n}\nstage: preprocessed\nbirth: ")), "{s}");
    assert!(s.contains(&format!("sender: <{}>\n", String::from_utf8_lossy(&m.sender))), "{s}");
    assert!(s.contains(&format!("size: {}\n", text.len())), "{s}");
    assert!(s.contains(&format!("bucket: {} (split {split})\n", m.number % u64::from(split))), "{s}");
    for (a, _, done) in &m.recipients {
        let state = if *done { "done" } else { "pending" };
        assert!(s.contains(&format!(" {state} <{}>\n", String::from_utf8_lossy(a))), "{s}");
    }
    let mode = fs::metadata(&mess_path).unwrap().mode() & 0o7777;
    let mess_rel = format!("mess/{}/{n}", m.number % u64::from(split));
    assert!(s.contains(&format!("  {mess_rel}: regular file, {} bytes, inode {n}, ", text.len())), "{s}");
    assert!(s.contains(&format!("mode {mode:04o}")), "{s}");
    assert!(s.contains(&format!("  info/{}/{n}: regular file", m.number % u64::from(split))), "{s}");
    assert!(s.contains("header:\n  X-Evil: a\\x1b[2Jb\\r\n"), "{s}");
    assert!(!s.contains('\x1b') && !s.contains('\x07'));
    assert!(!s.contains("body:") && !s.contains("last body line"), "{s}");

    let o = run(&b.queue, &["--show", &n, "--body"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let s = out(&o);
    assert!(s.contains("\nbody:\n"), "{s}");
    assert!(s.contains("  last body line \\x07\n"), "{s}");

    let o = run(&b.queue, &["--show", &n, "--raw"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(o.stdout, text, "--raw is not the message bytes");
    assert!(before.diff(&qtests::snapshot(&b.queue)).is_empty(), "--show changed the queue");

    // Unknown number.
    let o = run(&b.queue, &["--show", "99999999999"]);
    assert_eq!(o.status.code(), Some(8));
    assert!(err(&o).contains("no message 99999999999 in the queue"), "{}", err(&o));
    assert!(o.stdout.is_empty());

    // Mid-injection: mess and intd, no todo.
    let r = apply_damage(&b, Damage::S3Leftover, 3, &t.path().join("outside")).unwrap();
    let k = r.touched[0].to_string();
    let o = run(&b.queue, &["--show", &k]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let s = out(&o);
    assert!(s.contains("stage: being_queued"), "{s}");
    assert!(s.contains(&format!("  intd/{k}: regular file")), "{s}");
    assert!(s.contains("  todo pending <"), "{s}");

    // A file in a wrong bucket is found and named.
    let info = message_path(&b.queue, Part::Info, m.number, split, false);
    let wrong_bucket = (m.number + 1) % u64::from(split);
    let moved = b.queue.join(format!("info/{wrong_bucket}/{n}"));
    fs::rename(&info, &moved).unwrap();
    let o = run(&b.queue, &["--show", &n]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let s = out(&o);
    assert!(s.contains("damaged: file in a wrong bucket"), "{s}");
    assert!(s.contains(&format!("  info/{wrong_bucket}/{n}: regular file")) && s.contains("in a wrong place"), "{s}");
    assert!(s.contains(&format!("sender: <{}>\n", String::from_utf8_lossy(&m.sender))), "{s}");

    // Options that need --show.
    let o = run(&b.queue, &["--raw"]);
    assert_eq!(o.status.code(), Some(16));
    let o = run(&b.queue, &["--show", &n, "--raw", "--body"]);
    assert_eq!(o.status.code(), Some(16));
}

/// Beside a qmail-send at work: a thread removes messages as qmail-send
/// does while `--list` runs again and again; every run succeeds with
/// nothing on stderr, lists only built messages, each once, oldest first,
/// and a message removed between the passes is left out, not an error.
#[test]
fn list_works_while_messages_go() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let t = tempfile::tempdir().unwrap();
    let b = build(t.path(), 400, false, 61);
    let (q, split) = (b.queue.clone(), b.spec_split);
    let built: BTreeMap<u64, i64> = b.messages.iter().map(|m| (m.number, m.birth)).collect();
    let victims: Vec<(u64, bool)> = b.messages.iter().map(|m| (m.number, m.state == BuiltState::TodoStage)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let remover = {
        let (q, done) = (q.clone(), done.clone());
        std::thread::spawn(move || {
            for (i, (n, todo)) in victims.iter().enumerate() {
                let parts: &[Part] = if *todo {
                    &[Part::Todo, Part::Intd, Part::Mess]
                } else {
                    &[Part::Bounce, Part::Local, Part::Remote, Part::Info, Part::Mess]
                };
                for &p in parts {
                    let _ = fs::remove_file(message_path(&q, p, *n, split, false));
                }
                if i % 4 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut runs = 0;
    while !done.load(Ordering::SeqCst) || runs < 2 {
        let o = run(&q, &["-l", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(o.stderr.is_empty(), "{}", err(&o));
        let v: Vec<Json> = out(&o).lines().map(Json::parse).collect();
        let mut last = (i64::MIN, 0);
        for j in &v {
            let n = j.get("number").u();
            assert!(built.contains_key(&n), "{n} was never built");
            let key = (built[&n], n);
            assert!(key > last, "not oldest first, or twice: {n}");
            last = key;
        }
        runs += 1;
    }
    remover.join().unwrap();
    let o = run(&q, &["-l"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(o.stdout.is_empty(), "{}", out(&o));
}
