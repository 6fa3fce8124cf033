//! The first pass: the top of the queue (which part directories exist,
//! what else is there, `pid/` leftovers), the unsplit directories whole,
//! the split directories' tops, and a survey of every bucket without
//! stat that finds the files sitting in another bucket than their number
//! says, and the strays.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::bucket::Entry;
use super::{ScanEvent, ScanLayout, Stray, StrayWhy};
use crate::error::{Error, Result};
use crate::queue::{bucket_of, Part, LOST_AND_FOUND};
use crate::safe_fs::{parse_number, Dir, FileKind};

const TOP_LEVEL: [&str; 10] =
    ["pid", "intd", "todo", "bounce", "mess", "info", "local", "remote", "lock", LOST_AND_FOUND];

/// What the top and the part directories hold, before the buckets.
pub(super) struct Tops {
    pub part_dirs: [Option<Arc<Dir>>; 7],
    /// Per bucket: the files of unsplit directories.
    pub flat: Vec<Vec<Entry>>,
    /// Per bucket: files of split directories lying at their top.
    pub misplaced: Vec<Vec<Entry>>,
    /// The buckets to survey: every bucket of every split directory,
    /// extra ones too.
    pub tasks: Vec<(Part, Arc<Dir>, u32)>,
}

/// Lists the top of the queue and of each part directory, reporting the
/// strays found there through `emit`. Fails when the root cannot be listed.
pub(super) fn tops(root: &Dir, layout: ScanLayout, split: u32, emit: &mut dyn FnMut(ScanEvent)) -> Result<Tops> {
    let part_dirs = open_parts(root, emit)?;
    let mut tops = Tops {
        part_dirs,
        flat: (0..split).map(|_| Vec::new()).collect(),
        misplaced: (0..split).map(|_| Vec::new()).collect(),
        tasks: Vec::new(),
    };
    let mut extra_buckets: Vec<(Part, u32)> = Vec::new();
    for part in Part::ALL {
        let Some(pd) = tops.part_dirs[part.index()].clone() else {
            continue;
        };
        match pd.entries() {
            Ok(mut es) => {
                es.sort_by(|a, b| a.name.cmp(&b.name));
                for e in es {
                    part_entry(&pd, part, &e, layout, split, &mut tops, &mut extra_buckets, emit);
                }
            }
            Err(err) => emit(ScanEvent::Error(err)),
        }
    }
    for part in Part::ALL.into_iter().filter(|p| p.is_split(layout.big_todo)) {
        let Some(pd) = tops.part_dirs[part.index()].clone() else {
            continue;
        };
        let buckets = (0..split).chain(extra_buckets.iter().filter(|(p, _)| *p == part).map(|(_, b)| *b));
        tops.tasks.extend(buckets.map(|b| (part, pd.clone(), b)));
    }
    Ok(tops)
}

/// Opens the part directories found at the top of the queue; reports
/// unknown entries, part names that are not directories, `pid/` leftovers.
fn open_parts(root: &Dir, emit: &mut dyn FnMut(ScanEvent)) -> Result<[Option<Arc<Dir>>; 7]> {
    let mut part_dirs: [Option<Arc<Dir>>; 7] = Default::default();
    let mut top = root.entries()?;
    top.sort_by(|a, b| a.name.cmp(&b.name));
    for e in &top {
        let name = e.name.as_bytes();
        if !TOP_LEVEL.iter().any(|t| t.as_bytes() == name) {
            emit(ScanEvent::Stray(stray_at(root, PathBuf::from(&e.name), None, StrayWhy::UnknownTopLevel)));
            continue;
        }
        let part = Part::from_dir(name);
        let kind = e.kind.or_else(|| root.stat(&e.name).ok().map(|s| s.kind));
        if kind != Some(FileKind::Directory) {
            emit(ScanEvent::Stray(stray_at(root, PathBuf::from(&e.name), part, StrayWhy::NotADirectory)));
            continue;
        }
        if name == b"pid" {
            pid_leftovers(root, &e.name, emit);
        }
        if let Some(p) = part {
            match root.open_dir(&e.name) {
                Ok(d) => part_dirs[p.index()] = Some(Arc::new(d)),
                Err(err) => emit(ScanEvent::Error(err)),
            }
        }
    }
    Ok(part_dirs)
}

/// Reports every entry of `pid/`, sorted by name.
fn pid_leftovers(root: &Dir, name: &OsStr, emit: &mut dyn FnMut(ScanEvent)) {
    let listed = root.open_dir(name).and_then(|d| d.entries().map(|es| (d, es)));
    match listed {
        Ok((d, mut es)) => {
            es.sort_by(|a, b| a.name.cmp(&b.name));
            for pe in es {
                let path = PathBuf::from("pid").join(&pe.name);
                emit(ScanEvent::Stray(stray_at(&d, path, None, StrayWhy::PidLeftover)));
            }
        }
        Err(err) => emit(ScanEvent::Error(err)),
    }
}

/// Sorts one entry at the top of a part directory: a message file (by
/// bucket), a bucket (an extra one is a stray, surveyed too), or a stray.
#[allow(clippy::too_many_arguments)]
fn part_entry(
    pd: &Dir,
    part: Part,
    e: &crate::safe_fs::Entry,
    layout: ScanLayout,
    split: u32,
    tops: &mut Tops,
    extra_buckets: &mut Vec<(Part, u32)>,
    emit: &mut dyn FnMut(ScanEvent),
) {
    let kind = e.kind.or_else(|| pd.stat(&e.name).ok().map(|s| s.kind));
    let rel = PathBuf::from(part.dir()).join(&e.name);
    let is_split = part.is_split(layout.big_todo);
    match (parse_number(e.name.as_bytes()), kind) {
        (Some(n), Some(FileKind::Regular)) => {
            let b = bucket_of(n, split) as usize;
            let to = if is_split { &mut tops.misplaced } else { &mut tops.flat };
            to[b].push(Entry::new(n, part, None, e.ino));
        }
        (Some(n), Some(FileKind::Directory)) if is_split => {
            if n >= u64::from(split) {
                emit(ScanEvent::Stray(stray_at(pd, rel, Some(part), StrayWhy::ExtraBucket(n))));
                if n <= u64::from(u32::MAX) {
                    extra_buckets.push((part, n as u32));
                }
            }
        }
        (Some(_), _) => {
            let why = if is_split { StrayWhy::NotABucket } else { StrayWhy::NotRegular };
            emit(ScanEvent::Stray(stray_at(pd, rel, Some(part), why)));
        }
        (None, _) => {
            let why = if is_split { StrayWhy::NotABucket } else { StrayWhy::NotNumeric };
            emit(ScanEvent::Stray(stray_at(pd, rel, Some(part), why)));
        }
    }
}

/// What the survey finds in one bucket: files of other buckets (with
/// the bucket they belong in) and strays, sorted by name; and, when the
/// listing may be kept, the bucket's own message files.
pub(super) struct Survey {
    pub misplaced: Vec<(u32, Entry)>,
    /// Numbered regular files listed, in mess buckets.
    pub mess_files: u64,
    pub strays: Vec<Stray>,
    pub error: Option<Error>,
    /// The bucket's own message files and the open bucket, for the second
    /// pass to use instead of listing the bucket again: `None` when the
    /// listing failed or was not kept ([`Keep`]).
    pub kept: Option<Kept>,
}

/// A bucket's listing kept from the survey for the second pass.
pub(super) struct Kept {
    pub part: Part,
    pub bucket: u32,
    /// The numbered regular files that belong in this bucket.
    pub entries: Vec<Entry>,
    /// The bucket, open; `None` when too many are open already.
    pub dir: Option<Dir>,
}

/// How much of the survey's listings may be kept for the second pass:
/// message files and open buckets, taken by the surveys as they go, so
/// memory and descriptors stay bounded whatever the size of the queue.
/// A listing that does not fit is listed again by the second pass.
pub(super) struct Keep {
    entries: AtomicUsize,
    dirs: AtomicUsize,
}

impl Keep {
    /// Room for `entries` message files and `dirs` open buckets.
    pub fn new(entries: usize, dirs: usize) -> Keep {
        Keep { entries: AtomicUsize::new(entries), dirs: AtomicUsize::new(dirs) }
    }

    fn take(room: &AtomicUsize, n: usize) -> bool {
        room.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(n)).is_ok()
    }
}

/// Lists bucket `b` of the split directory `pd` without stat; keeps its
/// own message files when `keep` has room for them.
pub(super) fn survey_bucket(part: Part, pd: &Dir, b: u32, split: u32, keep: &Keep) -> Survey {
    let mut survey = Survey { misplaced: Vec::new(), mess_files: 0, strays: Vec::new(), error: None, kept: None };
    let d = match pd.open_dir(OsStr::new(&b.to_string())) {
        Ok(d) => d,
        Err(_) => return survey, // missing, or not a directory: reported with the split directory
    };
    let base = PathBuf::from(part.dir()).join(b.to_string());
    let extra = b >= split;
    let mut strays: Vec<(PathBuf, StrayWhy)> = Vec::new();
    let mut own: Vec<Entry> = Vec::new();
    let r = d.for_each_entry(|name, kind, ino| {
        let bytes = name.to_bytes();
        let kind = kind.or_else(|| d.stat(OsStr::from_bytes(bytes)).ok().map(|s| s.kind));
        match (parse_number(bytes), kind) {
            (Some(n), Some(FileKind::Regular)) => {
                survey.mess_files += u64::from(part == Part::Mess);
                let right = bucket_of(n, split);
                if extra || right != b {
                    survey.misplaced.push((right, Entry::new(n, part, Some(b), ino)));
                } else {
                    own.push(Entry::new(n, part, Some(b), ino));
                }
            }
            (Some(_), None) => {} // vanished
            (Some(_), Some(_)) => strays.push((base.join(OsStr::from_bytes(bytes)), StrayWhy::NotRegular)),
            (None, _) => strays.push((base.join(OsStr::from_bytes(bytes)), StrayWhy::NotNumeric)),
        }
    });
    survey.error = r.err();
    strays.sort_by(|a, b| a.0.cmp(&b.0));
    let (strays, regular_now) = confirm_strays(&d, part, strays);
    survey.strays = strays;
    // A numbered entry that is a regular file by now is a message file:
    // the second pass gets it whether or not the listing is kept.
    for (n, ino) in regular_now {
        let right = bucket_of(n, split);
        if extra || right != b {
            survey.misplaced.push((right, Entry::new(n, part, Some(b), ino)));
        } else {
            own.push(Entry::new(n, part, Some(b), ino));
        }
    }
    if survey.error.is_none() && !extra && Keep::take(&keep.entries, own.len()) {
        own.shrink_to_fit();
        let dir = Keep::take(&keep.dirs, 1).then_some(d);
        survey.kept = Some(Kept { part, bucket: b, entries: own, dir });
    }
    survey
}

/// The strays still there, with their stat, and the numbered entries
/// (number and inode) that are regular files by now: no strays, but
/// message files.
fn confirm_strays(d: &Dir, part: Part, strays: Vec<(PathBuf, StrayWhy)>) -> (Vec<Stray>, Vec<(u64, u64)>) {
    let mut out = Vec::new();
    let mut regular = Vec::new();
    for (path, why) in strays {
        let name = path.file_name().expect("joined").to_owned();
        let stat = d.stat(&name).ok();
        if why == StrayWhy::NotRegular {
            if let Some(s) = stat.filter(|s| s.kind == FileKind::Regular) {
                if let Some(n) = parse_number(name.as_bytes()) {
                    regular.push((n, s.ino));
                }
                continue;
            }
        }
        if stat.is_some() || why == StrayWhy::NotNumeric {
            out.push(Stray { path, part: Some(part), stat, why });
        }
    }
    (out, regular)
}

fn stray_at(dir: &Dir, rel: PathBuf, part: Option<Part>, why: StrayWhy) -> Stray {
    let name = rel.file_name().map(|n| n.to_owned()).unwrap_or_default();
    Stray { stat: dir.stat(&name).ok(), path: rel, part, why }
}
