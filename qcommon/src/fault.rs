//! Fault injection for tests (the `fault-injection` feature): crash points
//! that prove a tool survives a kill or a bug at any moment. Without the
//! feature every function here does nothing.
//!
//! - `QTOOLS_ABORT_AFTER_STEP=k`: the mutator kills the process with
//!   SIGKILL right after its k-th step (see [`crate::mutator`]).
//! - `QTOOLS_SKIP_STEP=VERB`: the mutator reports every step of that verb
//!   (`chmod`, `chown`, ...) done without carrying it out.
//! - `QTOOLS_PANIC_AT=NAME`: [`panic_point`] panics at the place named
//!   `NAME` (`scan-worker`: in a scan thread, while it examines messages;
//!   `scan-sink`: on the main thread, while it takes the scan's messages),
//!   to prove that a panic in any thread ends the process promptly.

/// Panics when `QTOOLS_PANIC_AT` names `point` (tests only).
#[cfg(feature = "fault-injection")]
pub fn panic_point(point: &str) {
    use std::sync::OnceLock;
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var("QTOOLS_PANIC_AT").ok()).as_deref() == Some(point) {
        panic!("fault injection: panic at {point}");
    }
}

/// Panics when `QTOOLS_PANIC_AT` names `point` (tests only).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn panic_point(_point: &str) {}
