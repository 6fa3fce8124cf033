//! qstat's default output against qmail-qstat's own script (run for real:
//! sh, echo, find, wc, expr) on practice queues, healthy and damaged in
//! every way the builder knows, in the C and UTF-8 locales; and every
//! output mode over every damage: no failure, valid JSON, nothing changed.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use qtests::prelude::qstat::*;
use qtests::{apply_damage, snapshot, Damage};

const LOCALES: [&str; 2] = ["C", "C.UTF-8"];

fn assert_same_as_qmail_qstat(home: &Path, what: &str) {
    assert_same_in(home, what, &LOCALES)
}

fn assert_same_in(home: &Path, what: &str, locales: &[&str]) {
    for &locale in locales {
        let want = qmail_qstat(home, locale);
        let o = qstat().env("LC_ALL", locale).arg("--queue").arg(home.join("queue")).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&want),
            "{what}, LC_ALL={locale}; stderr: {}",
            err(&o)
        );
        assert_eq!(o.status.code(), Some(0), "{what}: {}", err(&o));
        assert!(o.stderr.is_empty(), "{what}: {}", err(&o));
    }
}

#[test]
fn healthy_queues_flat_and_big_todo() {
    for big in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let b = build(t.path(), 150, big, 3);
        assert_same_as_qmail_qstat(t.path(), if big { "big-todo" } else { "flat" });
        let o = run(&b.queue, &[]);
        assert_eq!(
            out(&o),
            format!(
                "messages in queue: {}\nmessages in queue but not yet preprocessed: {}\n",
                b.counts.messages, b.counts.todo
            )
        );
    }
}

/// Names and shapes qmail-qstat's `find | wc -w` counts in its own way.
#[test]
fn odd_names_and_shapes_count_as_qmail_qstat_counts() {
    for big in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let b = build(t.path(), 40, big, 4);
        let q = &b.queue;
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("12345"), b"x").unwrap();
        let names: [&[u8]; 9] = [
            b"a b",
            b"tab\there",
            b"new\nline",
            b" lead",
            b"trail ",
            b"nb\xc2\xa0sp",
            b"bad\xffutf8",
            b"\x01\x02",
            b".hidden",
        ];
        use std::os::unix::ffi::OsStrExt;
        for n in names {
            fs::write(q.join("mess/0").join(std::ffi::OsStr::from_bytes(n)), b"").unwrap();
            fs::write(q.join("todo").join(std::ffi::OsStr::from_bytes(n)), b"").unwrap();
        }
        // Nested directories, with odd names too.
        fs::create_dir_all(q.join("mess/1/d 1/d\n2/d3")).unwrap();
        fs::write(q.join("mess/1/d 1/d\n2/d3/f x"), b"").unwrap();
        fs::create_dir_all(q.join("todo/sub dir/deeper")).unwrap();
        // Top of mess: a bucket-like directory with a space, a hidden one, a
        // file, a link to an outside directory, a FIFO.
        fs::create_dir(q.join("mess/x y")).unwrap();
        fs::write(q.join("mess/x y/1"), b"").unwrap();
        fs::create_dir(q.join("mess/.hid")).unwrap();
        fs::write(q.join("mess/.hid/1"), b"").unwrap();
        fs::write(q.join("mess/999"), b"").unwrap();
        symlink(outside.path(), q.join("mess/77")).unwrap();
        nix::unistd::mkfifo(&q.join("mess/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // In buckets: links (one dangling), FIFOs, a socket.
        symlink(outside.path().join("12345"), q.join("mess/2/5")).unwrap();
        symlink("/nonexistent", q.join("mess/2/6")).unwrap();
        nix::unistd::mkfifo(&q.join("mess/3/7"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(q.join("mess/4/sock")).unwrap();
        assert_same_as_qmail_qstat(t.path(), if big { "odd names, big-todo" } else { "odd names, flat" });
        assert_eq!(fs::read(outside.path().join("12345")).unwrap(), b"x");
    }
}

/// Paths (for which `select` holds) whose access time differs from `before`.
fn changed_atimes(
    before: &std::collections::BTreeMap<std::path::PathBuf, i128>,
    q: &Path,
    select: impl Fn(&Path) -> bool,
) -> Vec<String> {
    let now = atimes(q, true);
    before
        .iter()
        .filter(|(p, t)| select(p) && now.get(*p) != Some(t))
        .map(|(p, t)| format!("{}: {t:?} -> {:?}", p.display(), now.get(p)))
        .collect()
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn assert_no_panic(o: &std::process::Output, what: &str) {
    let e = err(o);
    assert!(!e.contains("panicked"), "{what}: {e}");
    assert_ne!(code(o), 101, "{what}: {e}");
}

/// Every damage of the catalogue: the default output is qmail-qstat's;
/// --detail, --json, --prometheus and --check all work; nothing in the
/// queue or outside it changes (and the default count does not even touch
/// an access time).
#[test]
fn every_damage_flat_todo() {
    every_damage(false)
}

#[test]
fn every_damage_big_todo() {
    every_damage(true)
}

/// Each damage of the catalogue in one of the two layouts (alternating, so
/// that each layout meets half of them; the two halves run in parallel).
fn every_damage(big_todo: bool) {
    for (i, &damage) in Damage::ALL.iter().enumerate() {
        let what = damage.name();
        let big = i % 2 == 1;
        if big != big_todo {
            continue;
        }
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let b = build(t.path(), 50, big, 100 + i as u64);
        apply_damage(&b, damage, 9, outside.path()).unwrap_or_else(|e| panic!("{what}: {e:#}"));
        let q = &b.queue;
        let before = snapshot(q);
        let outside_before = snapshot(outside.path());

        // Odd names are worth both locales; the rest, one.
        let names =
            matches!(damage, Damage::StrayNames | Damage::StraySubdirs | Damage::SymlinkTrap | Damage::FifoTrap);
        assert_same_in(t.path(), what, if names { &LOCALES } else { &LOCALES[..1] });
        // (find changes access times of directories: age them after it.)
        age_atimes(q);
        let times = atimes(q, true);
        let o = run(q, &[]);
        assert_eq!(code(&o), 0, "{what}: {}", err(&o));
        assert_eq!(changed_atimes(&times, q, |_| true), Vec::<String>::new(), "{what}: the count changed atimes");

        for args in [
            &["--detail"][..],
            &["--detail", "--top", "3", "--json"],
            &["--detail", "--top", "3", "--prometheus"],
            &["--detail", "--check", "--warning", "10000"],
        ] {
            let what = format!("{what} {args:?}");
            let mut o = run(q, args);
            assert_no_panic(&o, &what);
            if damage == Damage::ExtraBuckets && matches!(code(&o), 3 | 8) {
                // When the buckets on disk disagree, the split is
                // undecidable: said so, exit 8 (3 with --check); --split
                // settles it.
                let e = if args.contains(&"--check") { out(&o) } else { err(&o) };
                assert!(e.contains("--split"), "{what}: {e}");
                o = run(q, &[&["--split", &b.spec_split.to_string()][..], args].concat());
                assert_no_panic(&o, &what);
            }
            if args.contains(&"--check") {
                // The state follows what the scan saw: structure damage is
                // CRITICAL, damaged messages WARNING, else OK (the message
                // count stays under its threshold).
                let line = out(&o);
                assert_eq!(line.lines().count(), 1, "{what}");
                let figure = |label: &str| -> u64 {
                    let p = line.trim_end().split_once(" | ").expect("perfdata").1;
                    let f = p
                        .split(' ')
                        .find(|x| x.starts_with(&format!("{label}=")))
                        .unwrap_or_else(|| panic!("{what}: {label} in {line}"));
                    f[label.len() + 1..].split(';').next().unwrap().parse().expect("a number")
                };
                let (want, word) = if figure("structure_problems") > 0 {
                    (2, "CRITICAL")
                } else if figure("damaged") > 0 {
                    (1, "WARNING")
                } else {
                    (0, "OK")
                };
                assert_eq!(code(&o), want, "{what}: {line} {}", err(&o));
                assert!(line.starts_with(&format!("QSTAT {word} - ")), "{what}: {line}");
                if damage == Damage::MissingBucket {
                    assert_eq!(want, 2, "{what}: a missing bucket is structure damage: {line}");
                }
            } else {
                assert_eq!(code(&o), 0, "{what}: {}", err(&o));
            }
            if args.contains(&"--prometheus") {
                assert!(out(&o).contains("\nqmail_queue_damaged_messages{queue="), "{what}");
            }
            if args.contains(&"--json") {
                let j = Json::parse(&out(&o));
                assert!(j.get("detail").get("messages_scanned").u() > 0, "{what}");
                assert_eq!(j.get("top").get("senders").arr().len(), 3, "{what}");
            }
            if args == ["--detail"] {
                assert!(out(&o).contains("messages found by the scan: "), "{what}: {}", out(&o));
            }
        }
        // Regular files are read with O_NOATIME: their access times stay.
        let files = changed_atimes(&times, q, |p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()));
        assert_eq!(files, Vec::<String>::new(), "{what}: access times of files changed");
        let after = snapshot(q);
        assert_eq!(before.diff(&after), Vec::<String>::new(), "{what}: the queue changed");
        assert!(before.inode_changes(&after).is_empty(), "{what}: inodes changed");
        assert_eq!(outside_before.diff(&snapshot(outside.path())), Vec::<String>::new(), "{what}: outside changed");
    }
}
