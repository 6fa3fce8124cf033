//! Small queues made by hand for qkillns's tests, numbered as qmail
//! numbers messages (by the inode of the mess file), with each message's
//! files written as qmail-queue and qmail-send leave them; the qkillns
//! command on such a queue; and the comparison of a queue before and
//! after a run (everything kept, or everything but what was removed).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::runner::tool;
use crate::snapshot::{Compare, Snapshot};

/// The split of the hand-made queues.
pub const SPLIT: u32 = 23;

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The files of a message made by hand.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Its number (the inode of its mess file).
    pub number: u64,
    /// Paths relative to the queue, of every file of the message.
    pub files: Vec<PathBuf>,
}

/// A hand-made queue in a scratch directory.
#[derive(Debug)]
pub struct Queue {
    /// Holds everything; removed on drop.
    pub dir: tempfile::TempDir,
    /// The queue directory.
    pub root: PathBuf,
    /// Whether todo and intd are split.
    pub big_todo: bool,
}

fn set_mtime(p: &Path, t: i64) {
    let ts = nix::sys::time::TimeSpec::new(t, 0);
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, p, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
        .unwrap();
}

fn write_mode(p: &Path, data: &[u8], mode: u32) {
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn envelope(kind: u8, addr: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(addr);
    v.push(0);
    v
}

/// Message text as qmail-queue leaves it.
pub fn message_text(sender: &[u8], subject: &str, extra_headers: &str) -> Vec<u8> {
    let mut m = b"Received: (qmail 4242 invoked by uid 0); 1 Jan 2024 00:00:00 -0000\n".to_vec();
    if sender.is_empty() {
        m.extend_from_slice(b"From: MAILER-DAEMON@mail.example\n");
    } else {
        m.extend_from_slice(b"From: ");
        m.extend_from_slice(sender);
        m.push(b'\n');
    }
    m.extend_from_slice(
        format!("Subject: {subject}\n{extra_headers}Date: Mon, 1 Jan 2024 00:00:00 +0000\n\n").as_bytes(),
    );
    m.extend_from_slice(b"Hi. This is the body.\n");
    m
}

impl Default for Queue {
    fn default() -> Queue {
        Queue::new()
    }
}

impl Queue {
    /// An empty healthy queue in `<tmp>/queue`.
    pub fn new() -> Queue {
        Queue::with(false, None)
    }

    /// With the big-todo layout and/or inside a qmail home `<tmp>/home`.
    pub fn with(big_todo: bool, home: Option<&str>) -> Queue {
        let dir = tempfile::tempdir().unwrap();
        let root = match home {
            Some(h) => dir.path().join(h).join("queue"),
            None => dir.path().join("queue"),
        };
        fs::create_dir_all(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o750)).unwrap();
        for d in ["mess", "info", "local", "remote"] {
            for b in 0..SPLIT {
                fs::create_dir_all(root.join(d).join(b.to_string())).unwrap();
            }
        }
        for d in ["todo", "intd"] {
            if big_todo {
                for b in 0..SPLIT {
                    fs::create_dir_all(root.join(d).join(b.to_string())).unwrap();
                }
            } else {
                fs::create_dir_all(root.join(d)).unwrap();
            }
        }
        for d in ["bounce", "pid", "lock"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        write_mode(&root.join("lock/sendmutex"), b"", 0o600);
        write_mode(&root.join("lock/tcpto"), &[0u8; 1024], 0o644);
        nix::unistd::mkfifo(&root.join("lock/trigger"), nix::sys::stat::Mode::from_bits_truncate(0o622)).unwrap();
        Queue { dir, root, big_todo }
    }

    /// qmail's home (the parent of the queue).
    pub fn home(&self) -> PathBuf {
        self.root.parent().unwrap().to_path_buf()
    }

    /// The path of message `n`'s file in `part`, relative to the queue.
    pub fn path(&self, part: &str, n: u64) -> PathBuf {
        let split =
            matches!(part, "mess" | "info" | "local" | "remote") || (self.big_todo && matches!(part, "todo" | "intd"));
        if split {
            PathBuf::from(part).join((n % u64::from(SPLIT)).to_string()).join(n.to_string())
        } else {
            PathBuf::from(part).join(n.to_string())
        }
    }

    /// The mess file, made as qmail-queue makes it; returns N.
    fn mess(&self, text: &[u8], birth: i64) -> u64 {
        let tmp = self.root.join("pid").join(format!("{}.tmp", std::process::id()));
        let mut f = File::create(&tmp).unwrap();
        f.write_all(text).unwrap();
        let n = f.metadata().unwrap().ino();
        drop(f);
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        let rel = self.path("mess", n);
        fs::hard_link(&tmp, self.root.join(&rel)).unwrap();
        fs::remove_file(&tmp).unwrap();
        set_mtime(&self.root.join(&rel), birth);
        n
    }

    /// S5: mess, info (mtime = birth), local and remote as given
    /// (`(address, done)`), and a bounce file when asked.
    pub fn preprocessed(
        &self,
        sender: &[u8],
        local: &[(&[u8], bool)],
        remote: &[(&[u8], bool)],
        subject: &str,
        birth: i64,
        bounce: bool,
    ) -> Msg {
        self.preprocessed_text(sender, local, remote, &message_text(sender, subject, ""), birth, bounce)
    }

    /// As [`Queue::preprocessed`], with the message text given.
    pub fn preprocessed_text(
        &self,
        sender: &[u8],
        local: &[(&[u8], bool)],
        remote: &[(&[u8], bool)],
        text: &[u8],
        birth: i64,
        bounce: bool,
    ) -> Msg {
        let n = self.mess(text, birth);
        let mut files = vec![self.path("mess", n)];
        let info = self.path("info", n);
        write_mode(&self.root.join(&info), &envelope(b'F', sender), 0o600);
        set_mtime(&self.root.join(&info), birth);
        files.push(info);
        for (part, list) in [("local", local), ("remote", remote)] {
            if list.is_empty() {
                continue;
            }
            let mut data = Vec::new();
            for (a, done) in list {
                data.extend(envelope(if *done { b'D' } else { b'T' }, a));
            }
            let p = self.path(part, n);
            write_mode(&self.root.join(&p), &data, 0o600);
            set_mtime(&self.root.join(&p), birth + 60);
            files.push(p);
        }
        if bounce {
            let p = self.path("bounce", n);
            write_mode(&self.root.join(&p), b"<x@y.example>:\nSorry.\n\n", 0o600);
            files.push(p);
        }
        Msg { number: n, files }
    }

    /// S4: mess, intd and todo (one inode).
    pub fn todo(&self, sender: &[u8], recipients: &[&[u8]], subject: &str, birth: i64) -> Msg {
        let n = self.mess(&message_text(sender, subject, ""), birth);
        let mut data = envelope(b'u', b"0");
        data.extend(envelope(b'p', b"4242"));
        data.extend(envelope(b'F', sender));
        for r in recipients {
            data.extend(envelope(b'T', r));
        }
        let intd = self.path("intd", n);
        let todo = self.path("todo", n);
        write_mode(&self.root.join(&intd), &data, 0o644);
        fs::hard_link(self.root.join(&intd), self.root.join(&todo)).unwrap();
        Msg { number: n, files: vec![self.path("mess", n), intd, todo] }
    }

    /// A lone mess file.
    pub fn lone_mess(&self, birth: i64) -> Msg {
        let n = self.mess(&message_text(b"", "lonely", ""), birth);
        Msg { number: n, files: vec![self.path("mess", n)] }
    }

    /// The absolute path of `rel`.
    pub fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Whether `rel` exists (not following a link).
    pub fn exists(&self, rel: &Path) -> bool {
        fs::symlink_metadata(self.root.join(rel)).is_ok()
    }

    /// The files of `m` still present.
    pub fn present(&self, m: &Msg) -> Vec<PathBuf> {
        m.files.iter().filter(|f| self.exists(f)).cloned().collect()
    }

    /// The modification time of `rel`, in seconds.
    pub fn mtime(&self, rel: &Path) -> i64 {
        fs::symlink_metadata(self.root.join(rel)).unwrap().mtime()
    }
}

/// A snapshot of a hand-made queue (see [`crate::snapshot()`]); after
/// [`without`], directory times and link counts are no longer compared.
#[derive(Debug, Clone)]
pub struct Kept {
    snap: Snapshot,
    loose: bool,
}

/// Every path under `root`, without following links.
pub fn snapshot(root: &Path) -> Kept {
    Kept { snap: crate::snapshot::snapshot(root), loose: false }
}

/// The snapshot without the listed paths (relative to the queue), and
/// without directory times (removing a file changes its directory's) nor
/// link counts (a todo/intd pair loses a link when one of its names goes).
pub fn without(s: Kept, gone: &[PathBuf]) -> Kept {
    Kept { snap: s.snap.without(gone), loose: true }
}

/// Asserts two snapshots are equal (inode numbers and access times
/// included), naming the differences.
pub fn assert_same(a: &Kept, b: &Kept) {
    let loose = a.loose || b.loose;
    let what = Compare { links: !loose, dirs: !loose, inodes: true, atimes: true };
    let d = a.snap.compare(&b.snap, what);
    assert!(d.is_empty(), "the queue changed:\n  {}", d.join("\n  "));
}

/// The qkillns binary on `q` (with --split given, so qmail-showctl is
/// never looked for).
pub fn qkillns(q: &Queue) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(tool("qkillns"));
    c.arg("--queue").arg(&q.root).arg("--split").arg(SPLIT.to_string());
    c.env_remove("QTOOLS_ABORT_AFTER_STEP");
    c.timeout(Duration::from_secs(60));
    c
}

/// The files message `n` has in a practice queue of conf-split `split`
/// (flat todo), relative to the queue.
pub fn files_of(queue: &Path, n: u64, split: u32) -> Vec<PathBuf> {
    qcommon::queue::Part::ALL
        .iter()
        .map(|&p| crate::message_path(queue, p, n, split, false))
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .map(|p| p.strip_prefix(queue).unwrap().to_path_buf())
        .collect()
}
