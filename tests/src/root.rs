//! Whether the tests run as root, and the one way a test that needs root
//! says it was skipped (`skipped: TEST: REASON`, the line CI greps for).

/// Whether we run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints the skip line.
pub fn skipped(test: &str, reason: &str) {
    println!("skipped: {test}: {reason}");
}

/// True when root; prints a skip line naming `test` otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        true
    } else {
        skipped(test, "needs root (queues owned by qmail's ids, mounts, device nodes)");
        false
    }
}
