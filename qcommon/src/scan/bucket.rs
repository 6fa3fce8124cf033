//! The second pass's listing: one bucket of every split directory (with
//! the unsplit directories' files and the misplaced files the first pass
//! gave it), grouped into messages and cut into chunks of whole messages.
//! A bucket whose survey listing was kept ([`super::first_pass::Keep`])
//! is not listed again: its files are the ones the survey listed.

use std::sync::{Arc, Mutex};

use nix::errno::Errno;

use super::examine::NumberName;
use super::first_pass::{Keep, Kept};
use super::{Found, ScanLayout, ScannedMessage};
use crate::error::Error;
use crate::queue::{bucket_of, Part};
use crate::safe_fs::{parse_number, Dir, FileKind};

/// A listed message file, before it is stated: small, since a whole
/// bucket of them is held at once.
pub(super) struct Entry {
    pub number: u64,
    pub ino: u64,
    pub bucket: u32,
    pub part: Part,
}

/// `Entry::bucket` of a file directly in its part's directory.
const NO_BUCKET: u32 = u32::MAX;

impl Entry {
    pub fn new(number: u64, part: Part, bucket: Option<u32>, ino: u64) -> Entry {
        Entry { number, ino, bucket: bucket.unwrap_or(NO_BUCKET), part }
    }

    fn found(&self) -> Found {
        let bucket = (self.bucket != NO_BUCKET).then_some(self.bucket);
        Found { part: self.part, bucket, ino: self.ino, stat: None }
    }
}

/// What the first pass leaves for the second.
pub(super) struct Setup {
    pub part_dirs: [Option<Arc<Dir>>; 7],
    /// Per bucket: files found in another bucket (or an extra one).
    pub misplaced: Mutex<Vec<Vec<Entry>>>,
    /// Per bucket: the files of unsplit directories.
    pub flat: Mutex<Vec<Vec<Entry>>>,
    /// Per bucket and part: the survey's listing, when kept.
    pub kept: Mutex<Vec<[Option<Kept>; 7]>>,
    /// Room left for keeping the survey's listings.
    pub keep: Keep,
    pub layout: ScanLayout,
    pub split: u32,
}

/// One bucket, listed: the errors met listing it (delivered before its
/// messages).
pub(super) struct Listed {
    pub errors: Vec<Error>,
}

/// The open directories of one bucket, shared by its chunks.
pub(super) struct BucketCtx {
    pub bucket: u32,
    pub big_todo: bool,
    pub split: u32,
    pub dirs: [Option<Arc<Dir>>; 7],
}

/// Some whole messages of one bucket, as listed.
pub(super) struct Chunk {
    pub ctx: Arc<BucketCtx>,
    pub entries: Vec<Entry>,
}

/// Lists bucket `b` of every split directory and cuts its messages into
/// chunks of `per_chunk` whole messages.
pub(super) fn list_bucket(b: u32, setup: &Setup, per_chunk: usize) -> (Listed, Vec<Chunk>) {
    let mut errors = Vec::new();
    let mut entries: Vec<Entry> = std::mem::take(&mut setup.flat.lock().expect("scan setup")[b as usize]);
    entries.append(&mut setup.misplaced.lock().expect("scan setup")[b as usize]);
    let mut dirs: [Option<Arc<Dir>>; 7] = Default::default();
    for part in Part::ALL {
        let Some(pd) = &setup.part_dirs[part.index()] else {
            continue;
        };
        if !part.is_split(setup.layout.big_todo) {
            dirs[part.index()] = Some(pd.clone());
            continue;
        }
        let kept = setup.kept.lock().expect("scan setup")[b as usize][part.index()].take();
        let listed = match kept {
            Some(k) => {
                entries.extend(k.entries);
                match k.dir {
                    Some(d) => Ok(Some(d)),
                    None => open_split(pd, b),
                }
            }
            None => list_split(pd, part, b, setup.split, &mut entries),
        };
        match listed {
            Ok(Some(d)) => dirs[part.index()] = Some(Arc::new(d)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    entries.sort_unstable_by_key(|e| (e.number, e.part));
    let ctx = Arc::new(BucketCtx { bucket: b, big_todo: setup.layout.big_todo, split: setup.split, dirs });
    (Listed { errors }, cut(entries, &ctx, per_chunk))
}

/// Lists bucket `b` of the split directory `pd` into `entries` (numbered
/// regular files that belong there). `Ok(None)`: no such bucket.
fn list_split(pd: &Dir, part: Part, b: u32, split: u32, entries: &mut Vec<Entry>) -> Result<Option<Dir>, Error> {
    let Some(d) = open_split(pd, b)? else {
        return Ok(None);
    };
    d.for_each_entry(|name, kind, ino| {
        if kind.is_some() && kind != Some(FileKind::Regular) {
            return;
        }
        if let Some(n) = parse_number(name.to_bytes()) {
            if bucket_of(n, split) == b {
                entries.push(Entry::new(n, part, Some(b), ino));
            }
        }
    })?;
    Ok(Some(d))
}

/// Opens bucket `b` of the split directory `pd`. `Ok(None)`: no such bucket.
fn open_split(pd: &Dir, b: u32) -> Result<Option<Dir>, Error> {
    match pd.open_dir(NumberName::default().of(u64::from(b))) {
        Ok(d) => Ok(Some(d)),
        // Missing: structure damage; a link or a file: reported with
        // the split directory's entries in the first pass.
        Err(e) if matches!(e.errno(), Some(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Cuts entries sorted by number into chunks of `per_chunk` whole messages.
fn cut(entries: Vec<Entry>, ctx: &Arc<BucketCtx>, per_chunk: usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<Entry> = Vec::new();
    let mut in_chunk = 0;
    for e in entries {
        if chunk.last().is_some_and(|l: &Entry| l.number != e.number) {
            in_chunk += 1;
            if in_chunk >= per_chunk.max(1) {
                chunks.push(Chunk { ctx: ctx.clone(), entries: std::mem::take(&mut chunk) });
                in_chunk = 0;
            }
        }
        chunk.push(e);
    }
    if !chunk.is_empty() {
        chunks.push(Chunk { ctx: ctx.clone(), entries: chunk });
    }
    chunks
}

/// Groups entries (sorted by number) into messages, each in the box it
/// is delivered in: a message is large (its files' stats, its parsed
/// envelopes), and is then never copied again on its way to the tool.
// The box is what the tool gets (`ScanEvent::Message`): boxing here saves
// the copy out of the vector, which is what clippy's `vec_box` weighs.
#[allow(clippy::vec_box)]
pub(super) fn group(entries: Vec<Entry>, split: u32) -> Vec<Box<ScannedMessage>> {
    let mut out: Vec<Box<ScannedMessage>> = Vec::with_capacity(distinct_numbers(&entries));
    for e in entries {
        if out.last().map(|m| m.number) != Some(e.number) {
            out.push(Box::new(ScannedMessage { number: e.number, ..Default::default() }));
        }
        let m = out.last_mut().expect("pushed");
        let found = e.found();
        let slot = &mut m.files[found.part.index()];
        match slot {
            None => *slot = Some(found),
            Some(cur) => {
                // Prefer the file in its right place.
                let right = right_place(found.part, found.bucket, e.number, split);
                if right && !right_place(cur.part, cur.bucket, e.number, split) {
                    let old = std::mem::replace(cur, found);
                    m.extra.push(old);
                } else {
                    m.extra.push(found);
                }
            }
        }
    }
    out
}

/// How many messages entries sorted by number make.
fn distinct_numbers(entries: &[Entry]) -> usize {
    entries.windows(2).filter(|w| w[0].number != w[1].number).count() + usize::from(!entries.is_empty())
}

fn right_place(part: Part, bucket: Option<u32>, n: u64, split: u32) -> bool {
    match bucket {
        Some(b) => b == bucket_of(n, split),
        None => !matches!(part, Part::Mess | Part::Info | Part::Local | Part::Remote),
    }
}

/// Whether `f` is in the bucket (or unsplit directory) `ctx` holds open.
pub(super) fn in_ctx<'a>(ctx: &'a BucketCtx, f: &Found) -> Option<&'a Dir> {
    let here = if f.part.is_split(ctx.big_todo) { f.bucket == Some(ctx.bucket) } else { f.bucket.is_none() };
    if here {
        ctx.dirs[f.part.index()].as_deref()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_group_into_boxed_messages_the_right_copy_first() {
        // Split 3: 5 belongs in bucket 2, 7 in bucket 1, 9 in bucket 0.
        let entries = vec![
            Entry::new(5, Part::Mess, Some(2), 5),
            Entry::new(5, Part::Info, Some(0), 50),
            Entry::new(5, Part::Info, Some(2), 51),
            Entry::new(7, Part::Mess, Some(1), 7),
            Entry::new(9, Part::Remote, Some(0), 90),
        ];
        assert_eq!(distinct_numbers(&entries), 3);
        assert_eq!(distinct_numbers(&[]), 0);
        let msgs = group(entries, 3);
        assert_eq!(msgs.capacity(), 3, "one allocation for the chunk's messages");
        assert_eq!(msgs.iter().map(|m| m.number).collect::<Vec<_>>(), vec![5, 7, 9]);
        // The info in its right bucket is the message's; the other an extra.
        let info = msgs[0].file(Part::Info).unwrap();
        assert_eq!((info.bucket, info.ino), (Some(2), 51));
        assert_eq!(msgs[0].extra.len(), 1);
        assert_eq!(msgs[0].extra[0].bucket, Some(0));
        assert!(msgs[1].has(Part::Mess) && !msgs[1].has(Part::Info));
        assert!(msgs[2].has(Part::Remote) && !msgs[2].has(Part::Mess));
    }
}
