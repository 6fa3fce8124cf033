//! Helpers shared by qstat's integration tests: the binary, practice
//! queues from the builder, qmail-qstat's own script, a small JSON reader.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use qtests::{build_queue, BuildSpec, BuiltQueue};

/// A fixed "now" for built queues' birth times.
pub const NOW: i64 = 1_700_000_000;

/// The qstat binary, with a fixed environment.
pub fn qstat() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("qstat").expect("qstat binary");
    c.env("LC_ALL", "C").env_remove("POSIXLY_CORRECT");
    c
}

/// Runs qstat with `args` on the queue at `queue`.
pub fn run(queue: &Path, args: &[&str]) -> Output {
    qstat().arg("--queue").arg(queue).args(args).output().expect("run qstat")
}

/// stdout as text.
pub fn out(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

/// stderr as text (lossy).
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds `messages` messages at `dir/queue` (qmail's home is `dir`).
pub fn build(dir: &Path, messages: usize, big_todo: bool, seed: u64) -> BuiltQueue {
    let spec = BuildSpec { messages, big_todo, seed, now: NOW, ..BuildSpec::default() };
    build_queue(&dir.join("queue"), &spec).expect("build queue")
}

/// qmail-qstat as notqmail ships it, with the big-todo patch's test of
/// `queue/todo/0`, run in qmail's home `home` with the real sh, find,
/// echo, wc and expr.
pub const QMAIL_QSTAT: &str = r#"cd "$1" || exit 111
messdirs=`echo queue/mess/* | wc -w`
messfiles=`find queue/mess/* -print | wc -w`
if test -d "queue/todo/0"
then
tododirs=`echo queue/todo/* | wc -w`
todofiles=`find queue/todo/* -print | wc -w`
else
tododirs=`echo queue/todo | wc -w`
todofiles=`find queue/todo -print | wc -w`
fi
echo messages in queue: `expr $messfiles - $messdirs`
echo messages in queue but not yet preprocessed: `expr $todofiles - $tododirs`
"#;

/// The output of qmail-qstat's script for the queue `home/queue`.
pub fn qmail_qstat(home: &Path, locale: &str) -> Vec<u8> {
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(QMAIL_QSTAT)
        .arg("qmail-qstat")
        .arg(home)
        .env("LC_ALL", locale)
        .env_remove("POSIXLY_CORRECT")
        .output()
        .expect("run sh");
    o.stdout
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Access times of every path below `root` (not following links),
/// listing directories with O_NOATIME so that looking changes nothing.
pub fn atimes(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    use nix::fcntl::OFlag;
    use std::os::unix::ffi::OsStrExt;
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
        m.insert(p.clone(), (md.atime(), md.atime_nsec()));
        if md.is_dir() {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NOATIME | OFlag::O_CLOEXEC;
            let Ok(mut d) = nix::dir::Dir::open(&p, flags, nix::sys::stat::Mode::empty()) else { continue };
            for e in d.iter().flatten() {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    stack.push(p.join(std::ffi::OsStr::from_bytes(n)));
                }
            }
        }
    }
    m
}

/// Sets the access time of every path below `root` to long ago, so that
/// any read without O_NOATIME would show (relatime updates an atime older
/// than the mtime).
pub fn age_atimes(root: &Path) {
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for p in atimes(root).keys() {
        let Ok(md) = std::fs::symlink_metadata(p) else { continue };
        if md.is_file() || md.is_dir() {
            if let Ok(f) = std::fs::File::open(p) {
                let _ = f.set_times(std::fs::FileTimes::new().set_accessed(old));
            }
        }
    }
}

/// A JSON value, as far as the tests need.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    /// Parses one document; panics with a message on invalid JSON.
    pub fn parse(text: &str) -> Json {
        let b = text.trim_end().as_bytes();
        let mut p = 0;
        let v = value(b, &mut p);
        assert_eq!(p, b.len(), "trailing bytes in JSON at {p}: {text}");
        v
    }

    /// The member `k` of an object (panics when absent).
    pub fn get(&self, k: &str) -> &Json {
        match self {
            Json::Obj(m) => m.get(k).unwrap_or_else(|| panic!("no member {k:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }

    /// A member path like `detail.null_sender.total`.
    pub fn at(&self, path: &str) -> &Json {
        path.split('.').fold(self, |v, k| v.get(k))
    }

    /// As an unsigned number.
    pub fn u(&self) -> u64 {
        match self {
            Json::Num(n) if *n >= 0.0 && n.fract() == 0.0 => *n as u64,
            _ => panic!("not an unsigned number: {self:?}"),
        }
    }

    pub fn s(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }

    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("not an array: {self:?}"),
        }
    }
}

fn ws(b: &[u8], p: &mut usize) {
    while *p < b.len() && matches!(b[*p], b' ' | b'\t' | b'\n' | b'\r') {
        *p += 1;
    }
}

fn value(b: &[u8], p: &mut usize) -> Json {
    ws(b, p);
    assert!(*p < b.len(), "unexpected end of JSON");
    let v = match b[*p] {
        b'{' => {
            *p += 1;
            let mut m = BTreeMap::new();
            ws(b, p);
            if b[*p] == b'}' {
                *p += 1;
            } else {
                loop {
                    ws(b, p);
                    let Json::Str(k) = string(b, p) else { unreachable!() };
                    ws(b, p);
                    assert_eq!(b[*p], b':', "expected : at {p}");
                    *p += 1;
                    let v = value(b, p);
                    assert!(m.insert(k.clone(), v).is_none(), "duplicate key {k}");
                    ws(b, p);
                    match b[*p] {
                        b',' => *p += 1,
                        b'}' => {
                            *p += 1;
                            break;
                        }
                        c => panic!("expected , or }} at {p}, found {:?}", c as char),
                    }
                }
            }
            Json::Obj(m)
        }
        b'[' => {
            *p += 1;
            let mut a = Vec::new();
            ws(b, p);
            if b[*p] == b']' {
                *p += 1;
            } else {
                loop {
                    a.push(value(b, p));
                    ws(b, p);
                    match b[*p] {
                        b',' => *p += 1,
                        b']' => {
                            *p += 1;
                            break;
                        }
                        c => panic!("expected , or ] at {p}, found {:?}", c as char),
                    }
                }
            }
            Json::Arr(a)
        }
        b'"' => string(b, p),
        b't' if b[*p..].starts_with(b"true") => {
            *p += 4;
            Json::Bool(true)
        }
        b'f' if b[*p..].starts_with(b"false") => {
            *p += 5;
            Json::Bool(false)
        }
        b'n' if b[*p..].starts_with(b"null") => {
            *p += 4;
            Json::Null
        }
        _ => {
            let start = *p;
            while *p < b.len() && matches!(b[*p], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                *p += 1;
            }
            let t = std::str::from_utf8(&b[start..*p]).unwrap();
            Json::Num(t.parse().unwrap_or_else(|_| panic!("bad number {t:?} at {start}")))
        }
    };
    ws(b, p);
    v
}

fn string(b: &[u8], p: &mut usize) -> Json {
    assert_eq!(b[*p], b'"', "expected a string at {p}");
    *p += 1;
    let mut s = String::new();
    loop {
        let c = b[*p];
        match c {
            b'"' => {
                *p += 1;
                return Json::Str(s);
            }
            b'\\' => {
                let e = b[*p + 1];
                *p += 2;
                match e {
                    b'"' => s.push('"'),
                    b'\\' => s.push('\\'),
                    b'/' => s.push('/'),
                    b'n' => s.push('\n'),
                    b'r' => s.push('\r'),
                    b't' => s.push('\t'),
                    b'b' => s.push('\u{8}'),
                    b'f' => s.push('\u{c}'),
                    b'u' => {
                        let h = std::str::from_utf8(&b[*p..*p + 4]).unwrap();
                        let n = u32::from_str_radix(h, 16).expect("hex escape");
                        s.push(char::from_u32(n).expect("no surrogates expected"));
                        *p += 4;
                    }
                    _ => panic!("bad escape at {p}"),
                }
            }
            0..=0x1f => panic!("raw control character in a JSON string at {p}"),
            _ => {
                let len = match c {
                    0..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                s.push_str(std::str::from_utf8(&b[*p..*p + len]).expect("JSON must be UTF-8"));
                *p += len;
            }
        }
    }
}
