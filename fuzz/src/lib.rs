//! The properties the fuzz targets check, one function per target. Each
//! takes any bytes and panics when a property fails. The workspace's
//! `tests/tests/fuzz_corpus.rs` includes this file (with `#[path]`) to
//! replay the checked-in corpus as ordinary tests, so it depends on
//! nothing but `qcommon` and `std`.

use qcommon::envelope::{Info, ListCheck, Recipients, Todo, TodoCheck, MAX_ADDRESS};
use qcommon::showctl::parse_showctl;

/// Text meant for a terminal holds no control character.
fn printable(what: &str, text: &str) {
    assert!(!text.chars().any(char::is_control), "{what} holds a control character: {text:?}");
}

/// `todo`/`intd` envelopes: a parsed envelope is well formed, serializes
/// to as many bytes as were parsed (only `u` and `p` may swap places) and
/// parses back to itself.
pub fn check_todo(data: &[u8]) {
    match Todo::parse(data) {
        Ok(t) => {
            assert!(!t.recipients.is_empty(), "a todo without recipients was accepted");
            for a in std::iter::once(&t.sender).chain(&t.recipients) {
                assert!(a.len() <= MAX_ADDRESS, "an address of {} bytes was accepted", a.len());
                assert!(!a.contains(&0), "an address holds a NUL");
            }
            for f in [&t.uid, &t.pid].into_iter().flatten() {
                assert!(f.len() <= 64 && !f.contains(&0), "bad u/p record accepted: {f:?}");
            }
            let b = t.to_bytes();
            assert_eq!(b.len(), data.len(), "serialized length differs from the parsed bytes");
            assert_eq!(Todo::parse(&b).as_ref(), Ok(&t), "round trip");
            if data.starts_with(b"u") || !data.starts_with(b"p") {
                // With the u record first (or neither), the bytes are canonical.
                assert_eq!(b, data, "canonical bytes");
            }
        }
        Err(e) => printable("todo error", &e.to_string()),
    }
    // The streaming check (for envelopes too large to hold) gives the same
    // verdict and error, however the bytes are cut.
    for step in [1, 7, 4096] {
        let mut c = TodoCheck::new();
        data.chunks(step).for_each(|p| c.feed(p));
        let streamed = c.finish();
        match (Todo::parse(data), streamed) {
            (Ok(t), Ok(s)) => {
                assert_eq!((t.sender, t.recipients.len() as u64), (s.sender, s.recipients), "streamed todo")
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "streamed todo error"),
            (a, b) => panic!("strict {a:?}, streamed {b:?}"),
        }
    }
}

/// `info`: accepted only when the bytes are exactly one `F` record.
pub fn check_info(data: &[u8]) {
    match Info::parse(data) {
        Ok(i) => {
            assert!(i.sender.len() <= MAX_ADDRESS);
            assert_eq!(i.to_bytes(), data, "info accepted bytes that are not exactly one F record");
            assert_eq!(Info::parse(&i.to_bytes()).as_ref(), Ok(&i), "round trip");
            assert_eq!(i.is_null_sender(), data == b"F\0");
        }
        Err(e) => printable("info error", &e.to_string()),
    }
}

/// `local`/`remote`: the salvaging parser keeps exactly the complete
/// records (a prefix of the bytes), the strict one accepts exactly what
/// the salvaging one accepts without dropping anything, and the kept
/// records round-trip.
pub fn check_recipients(data: &[u8]) {
    let salvaged = Recipients::parse_salvaging(data);
    let strict = Recipients::parse(data);
    match (&salvaged, &strict) {
        (Ok(s), Ok(p)) => {
            assert_eq!(s.dropped, 0, "strict parse accepted a partial record");
            assert_eq!(s, p);
        }
        (Ok(s), Err(_)) => assert!(s.dropped > 0, "strict parse refused what salvaging kept whole"),
        (Err(_), Ok(_)) => panic!("strict parse accepted what salvaging refused"),
        (Err(e), Err(f)) => {
            printable("recipients error", &e.to_string());
            printable("recipients error", &f.to_string());
        }
    }
    if let Ok(r) = salvaged {
        assert!(!r.list.is_empty(), "an empty list was accepted");
        assert!(r.dropped <= data.len());
        let kept = &data[..data.len() - r.dropped];
        assert_eq!(r.to_bytes(), kept, "the kept records are not the bytes before the partial one");
        if r.dropped > 0 {
            let partial = &data[kept.len()..];
            assert!(matches!(partial[0], b'T' | b'D') && !partial.contains(&0), "bad partial record");
        }
        for x in &r.list {
            assert!(x.address.len() <= MAX_ADDRESS && !x.address.contains(&0));
        }
        let again = Recipients::parse(&r.to_bytes()).expect("kept records parse strictly");
        assert_eq!(again.list, r.list, "round trip");
        assert_eq!(again.pending(), r.pending());
    }
    for step in [1, 7, 4096] {
        let mut c = ListCheck::new();
        data.chunks(step).for_each(|p| c.feed(p));
        match (Recipients::parse_salvaging(data), c.finish()) {
            (Ok(r), Ok(s)) => {
                assert_eq!(r.pending() as u64, s.pending, "streamed pending");
                assert_eq!(r.list.len() as u64, s.pending + s.done, "streamed records");
                assert_eq!((r.dropped as u64, r.to_bytes().len() as u64), (s.dropped, s.kept), "streamed sizes");
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "streamed list error"),
            (a, b) => panic!("strict {a:?}, streamed {b:?}"),
        }
    }
}

/// qmail-showctl's output: never a panic; what is accepted reads back the
/// same from the three lines it stands for; errors are one printable line.
pub fn check_showctl(data: &[u8]) {
    match parse_showctl(data) {
        Ok(f) => {
            assert!(f.split != Some(0), "a split of 0 was accepted");
            assert_eq!(f.ids().is_some(), f.user_ids.is_some() && f.group_ids.is_some());
            let mut text = String::new();
            if let Some(s) = f.split {
                text.push_str(&format!("subdirectory split: {s}.\n"));
            }
            let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            if let Some(u) = f.user_ids {
                text.push_str(&format!("user ids: {}.\n", join(&u)));
            }
            if let Some(g) = f.group_ids {
                text.push_str(&format!("group ids: {}.\n", join(&g)));
            }
            assert_eq!(parse_showctl(text.as_bytes()), Ok(f), "the facts do not read back");
        }
        Err(e) => printable("showctl error", &e),
    }
}
