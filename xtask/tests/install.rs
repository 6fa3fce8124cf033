//! install.sh, run for real into a staging directory (DESTDIR) with
//! stand-in binaries (BINSRC), so no release build is needed.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct Stage {
    dir: tempfile::TempDir,
}

impl Stage {
    fn new() -> Stage {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bins")).unwrap();
        for t in ["qfixq", "qstat", "qkillns"] {
            let p = dir.path().join("bins").join(t);
            fs::write(&p, format!("#!/bin/sh\necho {t}\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
        }
        Stage { dir }
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("dest")
    }

    fn run(&self, prefix: &str, args: &[&str]) -> Output {
        Command::new("sh")
            .arg(root().join("install.sh"))
            .args(args)
            .env("DESTDIR", self.dest())
            .env("PREFIX", prefix)
            .env("BINSRC", self.dir.path().join("bins"))
            .env_remove("MANDIR")
            .env_remove("DATADIR")
            .env_remove("BINDIR")
            .env_remove("DOCDIR")
            .output()
            .unwrap()
    }

    fn ok(&self, prefix: &str, args: &[&str]) -> String {
        let out = self.run(prefix, args);
        assert!(out.status.success(), "install.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every file below DESTDIR, relative to it, with its mode.
    fn files(&self) -> BTreeSet<(String, u32)> {
        let mut v = BTreeSet::new();
        walk(&self.dest(), &self.dest(), &mut v);
        v
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<(String, u32)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            walk(base, &e.path(), out);
        } else {
            let rel = e.path().strip_prefix(base).unwrap().display().to_string();
            out.insert((format!("/{rel}"), m.permissions().mode() & 0o7777));
        }
    }
}

fn names(files: &BTreeSet<(String, u32)>) -> BTreeSet<String> {
    files.iter().map(|(n, _)| n.clone()).collect()
}

#[test]
fn installs_under_usr_local_and_uninstalls_exactly_its_files() {
    let s = Stage::new();
    // Files of someone else, beside ours.
    for other in ["usr/local/bin/qmail-other", "usr/local/share/man/man8/other.8"] {
        let p = s.dest().join(other);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "not ours\n").unwrap();
    }
    let before = s.files();
    let listed: BTreeSet<String> = s
        .ok("/usr/local", &["list"])
        .lines()
        .map(|l| l.strip_prefix(&s.dest().display().to_string()).unwrap().to_string())
        .collect();
    s.ok("/usr/local", &["--no-build"]);
    let after = s.files();
    let ours: BTreeSet<(String, u32)> = after.difference(&before).cloned().collect();
    assert_eq!(names(&ours), listed, "install puts in place exactly what list prints");
    for t in ["qfixq", "qstat", "qkillns"] {
        for (path, mode) in [
            (format!("/usr/local/bin/{t}"), 0o755),
            (format!("/usr/local/share/man/man8/{t}.8"), 0o644),
            (format!("/usr/local/share/bash-completion/completions/{t}"), 0o644),
            (format!("/usr/local/share/zsh/site-functions/_{t}"), 0o644),
            (format!("/usr/local/share/fish/vendor_completions.d/{t}.fish"), 0o644),
        ] {
            assert!(ours.contains(&(path.clone(), mode)), "{path} mode {mode:o} missing from {ours:?}");
        }
        let page = fs::read(s.dest().join(format!("usr/local/share/man/man8/{t}.8"))).unwrap();
        assert_eq!(page, fs::read(root().join(format!("docs/man/{t}.8"))).unwrap());
    }
    assert!(ours.contains(&("/usr/local/share/doc/qmail-queue-tools/repair.md".into(), 0o644)), "{ours:?}");
    // A second install replaces the same files.
    s.ok("/usr/local", &["--no-build"]);
    assert_eq!(s.files(), after);
    let out = s.ok("/usr/local", &["uninstall"]);
    assert_eq!(out.lines().filter(|l| l.starts_with("removed ")).count(), ours.len(), "{out}");
    assert_eq!(s.files(), before, "uninstall leaves the other files alone");
    assert!(!s.dest().join("usr/local/share/doc/qmail-queue-tools").exists());
    // Uninstalling again finds nothing to do.
    assert_eq!(s.ok("/usr/local", &["uninstall"]), "");
}

#[test]
fn a_qmail_home_prefix_puts_binaries_beside_qmails_own() {
    let s = Stage::new();
    s.ok("/var/qmail", &["--no-build"]);
    let files = names(&s.files());
    for want in [
        "/var/qmail/bin/qfixq",
        "/var/qmail/bin/qkillns",
        "/var/qmail/man/man8/qstat.8",
        "/var/qmail/doc/qmail-queue-tools/runbook.md",
        "/usr/local/share/bash-completion/completions/qfixq",
        "/usr/local/share/zsh/site-functions/_qstat",
    ] {
        assert!(files.contains(want), "{want} missing from {files:?}");
    }
    assert!(!files.iter().any(|f| f.starts_with("/var/qmail/share")), "{files:?}");
    s.ok("/var/qmail", &["uninstall"]);
    assert!(s.files().is_empty());
}

#[test]
fn dry_run_changes_nothing_and_a_missing_binary_stops_install() {
    let s = Stage::new();
    let out = s.ok("/usr/local", &["--no-build", "-n"]);
    assert!(out.contains("install -m 0755"), "{out}");
    assert!(s.files().is_empty());
    fs::remove_file(s.dir.path().join("bins/qstat")).unwrap();
    let out = s.run("/usr/local", &["--no-build"]);
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("qstat is missing"));
    let bad = s.run("/usr/local", &["--bogus"]);
    assert_eq!(bad.status.code(), Some(16));
}
