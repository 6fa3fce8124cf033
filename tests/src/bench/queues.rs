//! The practice queues the benchmark runs on: the kept base queues (built
//! once, reused between runs: `DIR/<size>/queue` with the builder's default
//! mix, `DIR/<size>-ns10/queue` with 10% null-sender messages) and the
//! scratch queues that destructive cases consume (`DIR/scratch/...`, built
//! and damaged per run, removed after use).
//!
//! A base queue is reused when its marker file (`DIR/<size>/qbench-marker`)
//! names the same spec, or, for a default-mix queue without a marker (one
//! `qbuild --out DIR --messages N` made), when it holds exactly N messages
//! (counted as qmail-qstat counts: entries below the mess buckets).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use qcommon::queue::DEFAULT_SPLIT;
use qtests::{apply_damage, build_queue, BuildSpec, BuiltQueue, Damage};

use crate::measure;

/// Disk space a built queue takes per message (12 GB for 1M messages),
/// with some margin.
const BYTES_PER_MESSAGE: u64 = 13_000;

/// Which kind of practice queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// The builder's default mix (5% null sender).
    Default,
    /// 10% null-sender messages (for qkillns).
    NullSender10,
}

impl Mix {
    fn null_sender(self) -> f64 {
        match self {
            Mix::Default => BuildSpec::default().null_sender,
            Mix::NullSender10 => 0.10,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Mix::Default => "",
            Mix::NullSender10 => "-ns10",
        }
    }
}

/// A message count with its short name (`10k`, `1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub usize);

impl Size {
    /// Parses `10k`, `100k`, `1m` or a plain number.
    pub fn parse(s: &str) -> Result<Size, String> {
        let t = s.trim().to_ascii_lowercase();
        let (digits, mult) = if let Some(d) = t.strip_suffix('k') {
            (d, 1_000)
        } else if let Some(d) = t.strip_suffix('m') {
            (d, 1_000_000)
        } else {
            (t.as_str(), 1)
        };
        let n: usize = digits.parse().map_err(|e| format!("{s:?}: {e}"))?;
        if n == 0 {
            return Err(format!("{s:?}: a queue needs at least one message"));
        }
        Ok(Size(n * mult))
    }

    /// `10k`, `1m`, or the plain number.
    pub fn label(self) -> String {
        let n = self.0;
        if n.is_multiple_of(1_000_000) {
            format!("{}m", n / 1_000_000)
        } else if n.is_multiple_of(1_000) {
            format!("{}k", n / 1_000)
        } else {
            n.to_string()
        }
    }

    /// Whether runs at this size are few (destructive cases run once).
    pub fn is_huge(self) -> bool {
        self.0 >= 1_000_000
    }
}

fn spec(size: Size, mix: Mix) -> BuildSpec {
    BuildSpec {
        messages: size.0,
        split: DEFAULT_SPLIT,
        seed: 1,
        null_sender: mix.null_sender(),
        ids: None,
        keep_manifest: false,
        ..BuildSpec::default()
    }
}

fn marker_text(s: &BuildSpec) -> String {
    format!(
        "qbench practice queue\nmessages {}\nsplit {}\nseed {}\nnull_sender {}\n",
        s.messages, s.split, s.seed, s.null_sender
    )
}

/// Counts the messages of a queue as qmail-qstat does: entries below the
/// mess buckets (no stat).
pub fn count_messages(queue: &Path) -> Result<u64> {
    let mut n = 0;
    let mess = queue.join("mess");
    for b in fs::read_dir(&mess).with_context(|| format!("read {}", mess.display()))? {
        let b = b?;
        if b.file_type()?.is_dir() {
            n += fs::read_dir(b.path())?.count() as u64;
        }
    }
    Ok(n)
}

fn ensure_space(dir: &Path, size: Size, what: &str) -> Result<()> {
    let need = size.0 as u64 * BYTES_PER_MESSAGE + (1 << 30);
    let free = measure::free_bytes(dir)?;
    if free < need {
        bail!(
            "{what}: {} needs about {:.1} GB, only {:.1} GB free on {}",
            size.label(),
            need as f64 / 1e9,
            free as f64 / 1e9,
            dir.display()
        );
    }
    Ok(())
}

/// The kept base queue of `size` and `mix` under `dir`, built now if it is
/// missing or does not match; `log` hears what happens.
pub fn base(dir: &Path, size: Size, mix: Mix, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let home = dir.join(format!("{}{}", size.label(), mix.suffix()));
    let queue = home.join("queue");
    let marker = home.join("qbench-marker");
    let s = spec(size, mix);
    let want = marker_text(&s);
    let have_queue = queue.join("mess").is_dir();
    if have_queue {
        let count = count_messages(&queue)?;
        match fs::read_to_string(&marker) {
            Ok(m) if m.starts_with(&want) && count == size.0 as u64 => {
                log(&format!("reusing {} ({count} messages, marker matches)", queue.display()));
                return Ok(queue);
            }
            Err(_) if mix == Mix::Default && count == size.0 as u64 => {
                log(&format!("adopting {} ({count} messages, as qbuild makes it)", queue.display()));
                fs::write(&marker, format!("{want}adopted: message count matched\n"))?;
                return Ok(queue);
            }
            _ => log(&format!("{} does not match ({count} messages): rebuilding", queue.display())),
        }
        fs::remove_dir_all(&queue).with_context(|| format!("rm -r {}", queue.display()))?;
    }
    let _ = fs::remove_file(&marker);
    fs::create_dir_all(&home).with_context(|| format!("mkdir -p {}", home.display()))?;
    ensure_space(&home, size, "base queue")?;
    log(&format!("building {} ({} messages, null sender {})", queue.display(), size.0, s.null_sender));
    let t0 = Instant::now();
    measure::in_child("build", || build_queue(&queue, &s).map(drop))?;
    measure::sync();
    fs::File::create(&marker)?.write_all(want.as_bytes())?;
    log(&format!("built {} in {:.0} s", queue.display(), t0.elapsed().as_secs_f64()));
    Ok(queue)
}

/// A scratch queue for one destructive run: built fresh, damaged, synced.
#[derive(Debug)]
pub struct Scratch {
    /// Its directory (removed by [`Scratch::remove`] or on drop).
    pub home: PathBuf,
    /// The queue inside it.
    pub queue: PathBuf,
    /// Messages in it after the damage (as qmail-qstat counts them).
    pub messages: u64,
}

impl Scratch {
    /// Builds `DIR/scratch/<name>/queue` with `mix`, then applies `damage`.
    pub fn build(dir: &Path, name: &str, size: Size, mix: Mix, damage: Option<Damage>) -> Result<Scratch> {
        let root = dir.join("scratch");
        let home = root.join(name);
        if home.exists() {
            fs::remove_dir_all(&home).with_context(|| format!("rm -r {}", home.display()))?;
        }
        fs::create_dir_all(&home)?;
        ensure_space(&home, size, "scratch queue")?;
        let queue = home.join("queue");
        let outside = home.join("outside");
        measure::in_child("build and damage", || {
            let built: BuiltQueue = build_queue(&queue, &spec(size, mix))?;
            if let Some(d) = damage {
                apply_damage(&built, d, 1, &outside)?;
            }
            Ok(())
        })?;
        measure::sync();
        let messages = count_messages(&queue)?;
        Ok(Scratch { home, queue, messages })
    }

    /// Removes the scratch queue.
    pub fn remove(mut self) -> Result<()> {
        let home = std::mem::take(&mut self.home);
        fs::remove_dir_all(&home).with_context(|| format!("rm -r {}", home.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.home.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.home);
        }
    }
}

/// Removes scratch queues a killed earlier run left behind.
pub fn clear_scratch(dir: &Path) -> Result<()> {
    let root = dir.join("scratch");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("rm -r {}", root.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("10k"), Ok(Size(10_000)));
        assert_eq!(Size::parse("1M"), Ok(Size(1_000_000)));
        assert_eq!(Size::parse("2500"), Ok(Size(2500)));
        assert!(Size::parse("0").is_err());
        assert!(Size::parse("x").is_err());
        assert_eq!(Size(100_000).label(), "100k");
        assert_eq!(Size(1_000_000).label(), "1m");
        assert_eq!(Size(2500).label(), "2500");
    }

    #[test]
    fn a_qbuild_queue_is_adopted_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        build_queue(&dir.path().join("300/queue"), &spec(Size(300), Mix::Default)).unwrap();
        let mut log = Vec::new();
        for _ in 0..2 {
            base(dir.path(), Size(300), Mix::Default, &mut |s| log.push(s.to_string())).unwrap();
        }
        assert!(log[0].starts_with("adopting"), "{log:?}");
        assert!(log[1].starts_with("reusing"), "{log:?}");
    }

    #[test]
    fn base_queue_is_built_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Vec::new();
        let q = base(dir.path(), Size(200), Mix::NullSender10, &mut |s| log.push(s.to_string())).unwrap();
        assert_eq!(count_messages(&q).unwrap(), 200);
        let q2 = base(dir.path(), Size(200), Mix::NullSender10, &mut |s| log.push(s.to_string())).unwrap();
        assert_eq!(q, q2);
        assert!(log.last().unwrap().starts_with("reusing"), "{log:?}");
    }
}
