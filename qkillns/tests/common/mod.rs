//! Test support: small realistic queues made by hand (numbered as qmail
//! numbers them: by the inode of the mess file), tree snapshots, a JSON
//! checker and stand-in processes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SPLIT: u32 = 23;

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns true (and prints the skip line) when not root.
pub fn skip_unless_root() -> bool {
    if !is_root() {
        println!("skipped: needs root");
        return true;
    }
    false
}

/// The parts a message has, by directory name.
#[derive(Debug, Clone)]
pub struct Msg {
    pub number: u64,
    /// Paths relative to the queue, of every file of the message.
    pub files: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct Queue {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub big_todo: bool,
}

fn set_mtime(p: &Path, t: i64) {
    let ts = nix::sys::time::TimeSpec::new(t, 0);
    nix::sys::stat::utimensat(None, p, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink).unwrap();
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

    pub fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    pub fn exists(&self, rel: &Path) -> bool {
        fs::symlink_metadata(self.root.join(rel)).is_ok()
    }

    /// The files of `m` still present.
    pub fn present(&self, m: &Msg) -> Vec<PathBuf> {
        m.files.iter().filter(|f| self.exists(f)).cloned().collect()
    }

    pub fn mtime(&self, rel: &Path) -> i64 {
        fs::symlink_metadata(self.root.join(rel)).unwrap().mtime()
    }
}

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub ino: u64,
    /// Regular files: size, mtime (ns), atime (ns), content.
    pub size: u64,
    pub mtime: (i64, i64),
    pub atime: (i64, i64),
    pub content: Option<Vec<u8>>,
    /// Directories: mtime (ns) (their atime changes when listed).
    pub dir_mtime: (i64, i64),
}

/// Every path under `root` (relative), without following links.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let m = fs::symlink_metadata(&abs).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "link"
        } else {
            "other"
        };
        let content = if ft.is_file() {
            // Read with O_NOATIME so the snapshot itself changes nothing.
            use std::io::Read;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(&abs).unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            Some(v)
        } else {
            None
        };
        let node = Node {
            kind: kind.into(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            nlink: m.nlink(),
            ino: m.ino(),
            size: if ft.is_file() { m.size() } else { 0 },
            mtime: if ft.is_file() { (m.mtime(), m.mtime_nsec()) } else { (0, 0) },
            atime: if ft.is_file() { (m.atime(), m.atime_nsec()) } else { (0, 0) },
            content,
            dir_mtime: if ft.is_dir() { (m.mtime(), m.mtime_nsec()) } else { (0, 0) },
        };
        if ft.is_dir() {
            for e in fs::read_dir(&abs).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
        out.insert(rel, node);
    }
    out
}

/// The snapshot without the listed paths and without directory times
/// (removing a file changes its directory's mtime).
pub fn without(mut s: BTreeMap<PathBuf, Node>, gone: &[PathBuf]) -> BTreeMap<PathBuf, Node> {
    for g in gone {
        s.remove(g);
    }
    for n in s.values_mut() {
        n.dir_mtime = (0, 0);
        // A todo/intd pair loses a link when one of its names goes.
        n.nlink = 0;
    }
    s
}

/// Asserts two snapshots are equal, naming the first difference.
pub fn assert_same(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>) {
    for (k, v) in a {
        match b.get(k) {
            None => panic!("{} vanished", k.display()),
            Some(w) => assert_eq!(v, w, "{} changed", k.display()),
        }
    }
    for k in b.keys() {
        assert!(a.contains_key(k), "{} appeared", k.display());
    }
}

/// The qkillns binary on `q` (with --split given, so qmail-showctl is
/// never looked for).
pub fn qkillns(q: &Queue) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("qkillns").unwrap();
    c.arg("--queue").arg(&q.root).arg("--split").arg(SPLIT.to_string());
    c.env_remove("QTOOLS_ABORT_AFTER_STEP");
    c.timeout(Duration::from_secs(60));
    c
}

/// A stand-in process (perl): optionally holds `lock` with flock, calls
/// itself `name` (perl sets the process name with prctl when `$0` is
/// assigned), and appends `ALRM` to `log` on each SIGALRM. `None` when perl
/// is missing.
pub struct StandIn {
    pub child: Child,
    pub log: PathBuf,
}

impl StandIn {
    pub fn start(dir: &Path, lock: Option<&Path>, name: Option<&str>) -> Option<StandIn> {
        let script = r#"
use Fcntl qw(:flock);
my ($lock, $log, $ready, $name) = @ARGV;
$0 = $name if $name ne '-';
$SIG{ALRM} = sub { open(my $f, '>>', $log) or die; print $f "ALRM\n"; close $f; };
our $L;
if ($lock ne '-') { open($L, '<', $lock) or die "open: $!"; flock($L, LOCK_EX) or die "flock: $!"; }
open(my $r, '>', $ready) or die; close $r;
my $end = time + 60;
while (time < $end) { sleep 1; }
"#;
        let log = dir.join(format!("standin-{}.log", rand_tag()));
        let ready = dir.join(format!("standin-{}.ready", rand_tag()));
        let child = Command::new("perl")
            .arg("-e")
            .arg(script)
            .arg(lock.map_or("-".into(), |p| p.display().to_string()))
            .arg(&log)
            .arg(&ready)
            .arg(name.unwrap_or("-"))
            .spawn()
            .ok()?;
        let start = Instant::now();
        while !ready.exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "stand-in did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(StandIn { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to a few seconds for `n` SIGALRMs to be logged.
    pub fn alarms(&self, n: usize) -> usize {
        let start = Instant::now();
        loop {
            let got = fs::read_to_string(&self.log).map(|s| s.lines().count()).unwrap_or(0);
            if got >= n || start.elapsed() > Duration::from_secs(5) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_tag() -> String {
    format!("{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos())
}
