//! For the unit tests of this crate only: an empty queue in a temporary
//! directory, with every directory a healthy queue has at conf-split 3.

/// The conf-split of [`empty`].
pub const SPLIT: u32 = 3;

/// An empty queue of split [`SPLIT`] in a tempdir (todo and intd split
/// too with `big_todo`).
pub fn empty(big_todo: bool) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let q = t.path();
    for d in ["pid", "bounce", "lock"] {
        std::fs::create_dir(q.join(d)).unwrap();
    }
    for d in ["mess", "info", "local", "remote"] {
        for b in 0..SPLIT {
            std::fs::create_dir_all(q.join(d).join(b.to_string())).unwrap();
        }
    }
    for d in ["todo", "intd"] {
        std::fs::create_dir(q.join(d)).unwrap();
        if big_todo {
            for b in 0..SPLIT {
                std::fs::create_dir(q.join(d).join(b.to_string())).unwrap();
            }
        }
    }
    t
}
