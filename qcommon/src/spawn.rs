//! Running a helper program that must not outlive the tool: this module
//! owns starting it in a process group of its own, reading its output,
//! and killing that whole group — when the program exits (whatever it left
//! behind in the group), when it runs over its time limit, and when a
//! stop signal (SIGINT, SIGTERM, SIGHUP) reaches the tool meanwhile. The
//! group is not the terminal's, so a Ctrl-C at the terminal would not
//! reach the program: the tool notes the signal, kills the group, and then
//! acts on the signal as it would have ([`StopSignals`]).
//!
//! Used for `qmail-showctl` ([`crate::showctl::run`]).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, SigAction, Signal};
use nix::unistd::Pid;

/// How long the output may stay open after the program exited (a child it
/// left behind holding it) before the run gives up on it.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Runs `path` with no arguments, stdin from `/dev/null`, stderr
/// discarded, in a process group of its own, and returns how it exited and
/// at most `cap` bytes of what it printed. Nothing it starts outlives the
/// call (unless it left the group). The error says why nothing could be
/// learnt, in words that follow the program's path in a message.
pub fn run_captured(path: &Path, timeout: Duration, cap: u64) -> Result<(ExitStatus, Vec<u8>), String> {
    let _signals = StopSignals::catch();
    let mut child = spawn_retrying(path).map_err(|e| format!("cannot run it: {e}"))?;
    let Some(mut stdout) = child.stdout.take() else {
        kill_group(&child);
        let _ = child.wait();
        return Err("cannot read its output".to_string());
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = (&mut stdout).take(cap).read_to_end(&mut out);
        let _ = tx.send(r.map(|_| out));
    });
    let status = wait_until(&mut child, timeout)?;
    // The output pipe closes when the program exits, unless it left a child
    // holding it: wait a little for it, never forever.
    match rx.recv_timeout(OUTPUT_GRACE) {
        Ok(Ok(out)) => Ok((status, out)),
        Ok(Err(e)) => Err(format!("cannot read its output: {e}")),
        Err(_) => Err("its output was not closed after it exited".to_string()),
    }
}

/// Spawns `path`, retrying a few times on `ETXTBSY` (a descriptor of the
/// freshly written file still open in a process being forked elsewhere).
fn spawn_retrying(path: &Path) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        // A group of its own (led by the child, numbered by its pid), so
        // that everything it starts can be killed with it.
        let r = Command::new(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20 * tries));
            }
            r => return r,
        }
    }
}

/// The signals that stop a tool from a terminal or a service manager.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// A stop signal that arrived while a helper ran (0: none).
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How many [`StopSignals`] are alive, and the handling they replaced.
static STOP_HANDLING: Mutex<(usize, Vec<(Signal, SigAction)>)> = Mutex::new((0, Vec::new()));

extern "C" fn note_stop_signal(sig: libc::c_int) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
}

/// While one is alive, SIGINT, SIGTERM and SIGHUP (those not ignored) are
/// noted instead of acted on: the helper runs in a process group of its
/// own, which a Ctrl-C at the terminal does not reach, so the wait kills
/// that group first ([`wait_until`]). When the last one is dropped the
/// earlier handling comes back and a noted signal is raised again, so the
/// tool ends (or handles it) as it would have.
///
/// nix has no safe way to change a signal's handling (`sigaction` is
/// `unsafe` there), and signal-hook cannot give the earlier handling back
/// (its handler stays installed once registered), so `sigaction` is called
/// directly.
struct StopSignals;

impl StopSignals {
    fn catch() -> StopSignals {
        use nix::sys::signal::{sigaction, SaFlags, SigHandler, SigSet};
        let mut held = STOP_HANDLING.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            let note = SigAction::new(SigHandler::Handler(note_stop_signal), SaFlags::SA_RESTART, SigSet::empty());
            for sig in STOP_SIGNALS {
                // SAFETY: the handler only stores to an atomic, which is
                // async-signal-safe. No safe wrapper exists (see above).
                let Ok(old) = (unsafe { sigaction(sig, &note) }) else {
                    continue;
                };
                if matches!(old.handler(), SigHandler::SigIgn) {
                    // Ignored (as under nohup): it stays ignored.
                    // SAFETY: puts back the handling that was there (an
                    // ignore, which runs no code); no safe wrapper exists.
                    let _ = unsafe { sigaction(sig, &old) };
                } else {
                    held.1.push((sig, old));
                }
            }
        }
        held.0 += 1;
        StopSignals
    }

    /// True when a stop signal arrived.
    fn caught() -> bool {
        STOP_SIGNAL.load(Ordering::SeqCst) != 0
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let mut held = STOP_HANDLING.lock().unwrap_or_else(|e| e.into_inner());
        held.0 -= 1;
        if held.0 > 0 {
            return;
        }
        for (sig, old) in held.1.drain(..) {
            // SAFETY: puts back the handling found before, which was sound
            // where it was installed; no safe wrapper exists (see
            // `StopSignals`).
            let _ = unsafe { nix::sys::signal::sigaction(sig, &old) };
        }
        let sig = STOP_SIGNAL.swap(0, Ordering::SeqCst);
        if let Ok(sig) = Signal::try_from(sig) {
            let _ = nix::sys::signal::raise(sig);
        }
    }
}

/// Sends SIGKILL to every process in the group `child` leads. Called only
/// while `child` is not yet reaped: its pid, and so the group's number,
/// cannot have been given to another process meanwhile.
fn kill_group(child: &Child) {
    let Ok(pgid) = i32::try_from(child.id()) else {
        return;
    };
    // ESRCH: nothing left in the group.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// Waits for `child` for `timeout` at most. When it exits, whatever is left in
/// its process group is killed before it is reaped; when the deadline
/// passes, or a stop signal arrives, its whole group is killed. Either way
/// the child is reaped.
fn wait_until(child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + timeout;
    let pid = Pid::from_raw(i32::try_from(child.id()).map_err(|_| "its pid is out of range".to_string())?);
    loop {
        // WNOWAIT: see that it exited but leave it unreaped, so its group
        // can still be killed safely.
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => {
                kill_group(child);
                return child.wait().map_err(|e| format!("cannot wait for it: {e}"));
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                kill_group(child);
                let _ = child.wait();
                return Err(format!("cannot wait for it: {e}"));
            }
        }
        if StopSignals::caught() {
            kill_group(child);
            let _ = child.wait();
            return Err("interrupted by a signal; it was killed, with every process it started".to_string());
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            let _ = child.wait();
            return Err(format!(
                "it ran longer than {:.1} s and was killed, with every process it started",
                timeout.as_secs_f64()
            ));
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
    }
}
