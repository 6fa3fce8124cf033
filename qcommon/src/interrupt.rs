//! The interrupt flag of a run that changes the queue. SIGINT, SIGTERM
//! and SIGHUP ask it to stop between two steps (every step is whole, so
//! what is left is a state the same command finishes when run again); a
//! second signal ends the process at once with the exit status the tool
//! chose. The scanner looks at the flag between chunks of messages, so a
//! run stops promptly even while its threads wait for the disk.
//!
//! Built on signal-hook: its handlers only set atomics, and it installs
//! them with `SA_RESTART`, so no read or write in flight fails with EINTR.
//! Runs that change nothing do not install it: a signal ends them at once,
//! as the default action does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handlers: the first of SIGINT, SIGTERM or SIGHUP sets the
/// flag; any of them after that ends the process with `second_signal_exit`.
pub fn install(second_signal_exit: i32) -> std::io::Result<()> {
    let f = flag();
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Registered before the flag is set by the same signal: it fires
        // only when an earlier signal already set it.
        signal_hook::flag::register_conditional_shutdown(sig, second_signal_exit, Arc::clone(f))?;
        signal_hook::flag::register(sig, Arc::clone(f))?;
    }
    Ok(())
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Asks for a stop, as a signal would (tests, and a tool that must stop
/// its own run).
pub fn request() {
    flag().store(true, Ordering::SeqCst);
}

// Tested through the binaries (qfixq/tests/signals.rs): the flag is
// process-wide, and setting it here would stop the scans of the other
// unit tests running in the same process.
