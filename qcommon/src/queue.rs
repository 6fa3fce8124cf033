//! The shape of a healthy qmail queue, as docs/queue-format.md gives it: the
//! directories, which are split into buckets, and the owner, group and
//! mode of every directory and message file. Everything that checks or
//! builds a queue reads these tables instead of repeating them.
//! [`QueueShape`] (split and big-todo) names the path of every file of a
//! message.

use std::path::PathBuf;

/// Which of qmail's users owns a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// qmailq (qmail-queue).
    Qmailq,
    /// qmails (qmail-send).
    Qmails,
    /// qmailr (qmail-rspawn / qmail-remote).
    Qmailr,
}

/// The numeric ids qmail was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ids {
    /// uid of qmailq.
    pub qmailq: u32,
    /// uid of qmails.
    pub qmails: u32,
    /// uid of qmailr.
    pub qmailr: u32,
    /// gid of group qmail.
    pub qmail_gid: u32,
}

impl Ids {
    /// Refuses ids that cannot be qmail's: 4294967295 is -1, which chown
    /// takes as "leave unchanged" (a repair would report owners set that it
    /// never set), and 65535 is -1 to the old 16-bit calls.
    pub fn check(&self) -> std::result::Result<(), String> {
        let named = [
            ("qmailq", self.qmailq),
            ("qmails", self.qmails),
            ("qmailr", self.qmailr),
            ("group qmail", self.qmail_gid),
        ];
        for (who, id) in named {
            if id == u32::MAX || id == u32::from(u16::MAX) {
                return Err(format!("{id} is not a usable id for {who}: it means -1 (\"leave unchanged\") to chown"));
            }
        }
        Ok(())
    }

    /// The uid of `o`.
    pub fn uid(&self, o: Owner) -> u32 {
        match o {
            Owner::Qmailq => self.qmailq,
            Owner::Qmails => self.qmails,
            Owner::Qmailr => self.qmailr,
        }
    }
}

/// The default `conf-split`.
pub const DEFAULT_SPLIT: u32 = 23;

/// The files a message can have, one per directory, in qmail's order of
/// creation (mess first, bounce last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// `mess/B/N`: the message itself.
    Mess,
    /// `intd/N`: envelope under construction.
    Intd,
    /// `todo/N`: the committed envelope.
    Todo,
    /// `info/B/N`: the sender, and by its mtime the birth time.
    Info,
    /// `local/B/N`: local recipients.
    Local,
    /// `remote/B/N`: remote recipients.
    Remote,
    /// `bounce/N`: pending failure reports.
    Bounce,
}

impl Part {
    /// All parts, in qmail's order of creation.
    pub const ALL: [Part; 7] =
        [Part::Mess, Part::Intd, Part::Todo, Part::Info, Part::Local, Part::Remote, Part::Bounce];

    /// The order in which a message is removed: the reverse of creation,
    /// with mess last (docs/repair-policy.md, qkillns).
    pub const REMOVAL_ORDER: [Part; 7] =
        [Part::Todo, Part::Intd, Part::Bounce, Part::Local, Part::Remote, Part::Info, Part::Mess];

    /// Index into per-part arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The directory under the queue.
    pub fn dir(self) -> &'static str {
        match self {
            Part::Mess => "mess",
            Part::Intd => "intd",
            Part::Todo => "todo",
            Part::Info => "info",
            Part::Local => "local",
            Part::Remote => "remote",
            Part::Bounce => "bounce",
        }
    }

    /// Whether the directory is split into buckets.
    pub fn is_split(self, big_todo: bool) -> bool {
        match self {
            Part::Mess | Part::Info | Part::Local | Part::Remote => true,
            Part::Todo | Part::Intd => big_todo,
            Part::Bounce => false,
        }
    }

    /// Owner of the message file.
    pub fn file_owner(self) -> Owner {
        match self {
            Part::Mess | Part::Intd | Part::Todo => Owner::Qmailq,
            _ => Owner::Qmails,
        }
    }

    /// Mode of the message file.
    pub fn file_perm(self) -> u32 {
        match self {
            Part::Mess | Part::Intd | Part::Todo => 0o644,
            _ => 0o600,
        }
    }

    /// Whether the file's group must be qmail. mess, intd and todo keep the
    /// group of the process that queued the message (by design of
    /// qmail-queue); only group and world write bits are cleared on them.
    pub fn group_is_qmail(self) -> bool {
        !matches!(self, Part::Mess | Part::Intd | Part::Todo)
    }

    /// Owner and mode of the directory (and of each of its buckets).
    pub fn dir_spec(self) -> (Owner, u32) {
        match self {
            Part::Mess => (Owner::Qmailq, 0o750),
            Part::Todo => (Owner::Qmailq, 0o750),
            Part::Intd => (Owner::Qmailq, 0o700),
            _ => (Owner::Qmails, 0o700),
        }
    }

    /// Parses a directory name.
    pub fn from_dir(name: &[u8]) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.dir().as_bytes() == name)
    }
}

/// The directories at the top of the queue that are not a message part.
pub const OTHER_DIRS: [(&str, Owner, u32); 2] = [("pid", Owner::Qmailq, 0o700), ("lock", Owner::Qmailq, 0o750)];

/// The queue directory itself.
pub const QUEUE_DIR_SPEC: (Owner, u32) = (Owner::Qmailq, 0o750);

/// Where quarantined files go, under the queue (qmail never looks there).
pub const LOST_AND_FOUND: &str = "lost+found";

/// The lock files in `lock/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFile {
    /// `lock/sendmutex`: empty regular file, qmails 0600.
    Sendmutex,
    /// `lock/tcpto`: 1024 bytes, qmailr 0644.
    Tcpto,
    /// `lock/trigger`: named pipe, qmails 0622.
    Trigger,
}

impl LockFile {
    /// All lock files.
    pub const ALL: [LockFile; 3] = [LockFile::Sendmutex, LockFile::Tcpto, LockFile::Trigger];

    /// Name in `lock/`.
    pub fn name(self) -> &'static str {
        match self {
            LockFile::Sendmutex => "sendmutex",
            LockFile::Tcpto => "tcpto",
            LockFile::Trigger => "trigger",
        }
    }

    /// Owner and mode.
    pub fn spec(self) -> (Owner, u32) {
        match self {
            LockFile::Sendmutex => (Owner::Qmails, 0o600),
            LockFile::Tcpto => (Owner::Qmailr, 0o644),
            LockFile::Trigger => (Owner::Qmails, 0o622),
        }
    }

    /// Size of tcpto when made.
    pub const TCPTO_SIZE: u64 = 1024;
}

/// The bucket of message `n` in a split of `split`.
pub fn bucket_of(n: u64, split: u32) -> u32 {
    (n % u64::from(split)) as u32
}

/// The shape of one queue: its split and whether todo and intd are split
/// too (the big-todo patch). It names the place of every file of a
/// message (docs/queue-format.md, "The files of message N"): the one
/// place where a path inside the queue is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueShape {
    /// conf-split (a split of 0 is taken as 1).
    pub split: u32,
    /// todo and intd are split too.
    pub big_todo: bool,
}

impl QueueShape {
    /// The bucket of message `n`: `n mod split`.
    pub fn bucket(&self, n: u64) -> u32 {
        bucket_of(n, self.split.max(1))
    }

    /// Whether `part`'s directory is split into buckets in this queue.
    pub fn is_split(&self, part: Part) -> bool {
        part.is_split(self.big_todo)
    }

    /// The bucket `part`'s file of message `n` belongs in (`None`: directly
    /// in the part's directory).
    pub fn bucket_for(&self, part: Part, n: u64) -> Option<u32> {
        self.is_split(part).then(|| self.bucket(n))
    }

    /// The directory holding `part`'s file of message `n`, relative to the
    /// queue root: `mess/B`, `todo` (or `todo/B` with big-todo), `bounce`.
    pub fn dir(&self, part: Part, n: u64) -> PathBuf {
        part_dir_at(part, self.bucket_for(part, n))
    }

    /// The path of `part`'s file of message `n`, relative to the queue
    /// root: `mess/B/N`, `todo/N` or `todo/B/N`, `info/B/N`, `bounce/N`.
    pub fn path(&self, part: Part, n: u64) -> PathBuf {
        part_path_at(part, self.bucket_for(part, n), n)
    }

    /// Whether a file of `part` for message `n` found in `bucket` (`None`:
    /// directly in the part's directory) is where this queue puts it.
    pub fn is_in_place(&self, part: Part, bucket: Option<u32>, n: u64) -> bool {
        bucket == self.bucket_for(part, n)
    }
}

/// The directory `part/B` (or `part` without a bucket), relative to the
/// queue root.
pub fn part_dir_at(part: Part, bucket: Option<u32>) -> PathBuf {
    let mut p = PathBuf::from(part.dir());
    if let Some(b) = bucket {
        p.push(b.to_string());
    }
    p
}

/// The path `part/B/N` (or `part/N` without a bucket) of message `n`,
/// relative to the queue root, wherever the file was found.
pub fn part_path_at(part: Part, bucket: Option<u32>, n: u64) -> PathBuf {
    let mut p = part_dir_at(part, bucket);
    p.push(n.to_string());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_queue_format() {
        assert_eq!(Part::Mess.dir_spec(), (Owner::Qmailq, 0o750));
        assert_eq!(Part::Info.dir_spec(), (Owner::Qmails, 0o700));
        assert_eq!(Part::Bounce.dir_spec(), (Owner::Qmails, 0o700));
        assert!(!Part::Todo.is_split(false) && Part::Todo.is_split(true));
        assert!(!Part::Bounce.is_split(true));
        assert_eq!(Part::REMOVAL_ORDER.last(), Some(&Part::Mess));
        assert_eq!(Part::from_dir(b"remote"), Some(Part::Remote));
        assert_eq!(Part::from_dir(b"pid"), None);
        assert_eq!(bucket_of(100, 23), 8);
        for (i, p) in Part::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
    }

    #[test]
    fn shape_names_every_path() {
        let flat = QueueShape { split: 23, big_todo: false };
        let big = QueueShape { split: 23, big_todo: true };
        let p = |s: QueueShape, part| s.path(part, 100).to_string_lossy().into_owned();
        assert_eq!(p(flat, Part::Mess), "mess/8/100");
        assert_eq!(p(flat, Part::Todo), "todo/100");
        assert_eq!(p(flat, Part::Intd), "intd/100");
        assert_eq!(p(big, Part::Todo), "todo/8/100");
        assert_eq!(p(big, Part::Intd), "intd/8/100");
        assert_eq!(p(big, Part::Info), "info/8/100");
        assert_eq!(p(big, Part::Local), "local/8/100");
        assert_eq!(p(big, Part::Remote), "remote/8/100");
        assert_eq!(p(big, Part::Bounce), "bounce/100");
        assert_eq!(flat.dir(Part::Mess, 100), PathBuf::from("mess/8"));
        assert_eq!(flat.dir(Part::Bounce, 100), PathBuf::from("bounce"));
        assert!(flat.is_in_place(Part::Mess, Some(8), 100));
        assert!(!flat.is_in_place(Part::Mess, Some(9), 100));
        assert!(!flat.is_in_place(Part::Mess, None, 100));
        assert!(flat.is_in_place(Part::Todo, None, 100));
        assert!(!flat.is_in_place(Part::Todo, Some(8), 100));
        assert!(big.is_in_place(Part::Todo, Some(8), 100));
        assert_eq!(part_path_at(Part::Info, Some(3), 100), PathBuf::from("info/3/100"));
        // A split of 0 is taken as 1: everything in bucket 0.
        assert_eq!(QueueShape { split: 0, big_todo: false }.bucket(100), 0);
    }
}
