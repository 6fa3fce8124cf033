//! The fuzz targets' corpus, replayed as ordinary tests: every file under
//! `tests/fuzz-corpus/<target>/` goes through the same property checks as
//! the cargo-fuzz target of that name (`fuzz/src/lib.rs`, included here),
//! and so do a few thousand seeded mutations of each (bit flips, byte
//! insertions and deletions, splices of two inputs), so that a regression
//! in a codec fails the build without a fuzzer. See `fuzz/README.md` for
//! the long runs.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

use qtests::rng::Rng;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus").join(target);
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("entry").path();
            let d = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, d)
        })
        .collect();
    v.sort();
    assert!(v.len() >= 10, "the {target} corpus holds only {} inputs", v.len());
    v
}

/// One seeded mutation of `a` (maybe spliced with `b`).
fn mutate(rng: &mut Rng, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    let interesting = [0u8, b'F', b'T', b'D', b'u', b'p', b'@', b'\n', b'.', b',', b' ', b'9', 0xff, 0x1b];
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.index(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.index(v.len() + 1);
                v.insert(i, *rng.pick(&interesting));
            }
            2 if !v.is_empty() => {
                let i = rng.index(v.len());
                v.remove(i);
            }
            3 if !v.is_empty() => {
                let i = rng.index(v.len());
                v.truncate(i);
            }
            4 => {
                let i = rng.index(v.len() + 1);
                let j = rng.index(b.len() + 1);
                v.truncate(i);
                v.extend_from_slice(&b[j..]);
            }
            _ => {
                let i = rng.index(v.len() + 1);
                let n = rng.index(v.len().min(64) + 1);
                let chunk: Vec<u8> = v[..n].to_vec();
                v.splice(i..i, chunk);
            }
        }
    }
    v
}

fn replay(target: &str, check: fn(&[u8])) {
    let inputs = corpus(target);
    for (p, d) in &inputs {
        let r = std::panic::catch_unwind(|| check(d));
        assert!(r.is_ok(), "{target}: {} fails its properties", p.display());
    }
    let mut rng = Rng::new(0x5eed ^ target.len() as u64);
    for i in 0..20_000 {
        let a = &inputs[rng.index(inputs.len())].1;
        let b = &inputs[rng.index(inputs.len())].1;
        let m = mutate(&mut rng, a, b);
        let r = std::panic::catch_unwind(|| check(&m));
        assert!(r.is_ok(), "{target}: mutation {i} fails its properties: {:?}", qcommon::error::Escaped(&m));
    }
}

#[test]
fn todo_corpus() {
    replay("todo", checks::check_todo);
}

#[test]
fn info_corpus() {
    replay("info", checks::check_info);
}

#[test]
fn recipients_corpus() {
    replay("recipients", checks::check_recipients);
}

#[test]
fn showctl_corpus() {
    replay("showctl", checks::check_showctl);
}
