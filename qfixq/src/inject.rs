//! Giving one message to qmail's own `bin/qmail-queue`: the message on
//! descriptor 0 (the mess file itself, opened without following links),
//! the envelope on descriptor 1 (a pipe: `F<sender>\0`, then
//! `T<recipient>\0` for each recipient, then an extra `\0`). qmail-queue
//! exits 0 when it has queued the message; 11 to 40 are permanent
//! failures, every other code a temporary one (qmail-queue(8)).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qcommon::envelope::read_records;
use qcommon::safe_fs::Dir;

/// Where the recipients of an envelope come from.
#[derive(Debug)]
pub enum Rcpts<'a> {
    /// Held in memory: every one is injected.
    Held(Vec<&'a [u8]>),
    /// The `T` records of an envelope file (todo, intd, local, remote)
    /// under `dir`, read again record by record: a list of any size.
    File {
        /// The directory the path is relative to.
        dir: &'a Dir,
        /// The file.
        path: PathBuf,
    },
}

/// How qmail-queue answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Exit 0: the message is queued.
    Accepted,
    /// Exit 11 to 40: qmail-queue will never take this message as it is.
    Permanent(String),
    /// Anything else (including a qmail-queue that could not be started or
    /// was killed): try again later.
    Temporary(String),
}

/// What qmail-queue(8) says of its exit code.
pub fn meaning(code: i32) -> &'static str {
    match code {
        11 => "address too long",
        31 => "mail server permanently refuses to send the message to any recipients",
        51 => "out of memory",
        52 => "timeout",
        53 => "write error; e.g., disk full",
        54 => "unable to read the message or envelope",
        55 => "unable to read a configuration file",
        56 => "problem making a network connection",
        61 => "problem with the qmail home directory",
        62 => "problem with the queue directory",
        63 => "problem with queue/pid",
        64 => "problem with queue/mess",
        65 => "problem with queue/intd",
        66 => "problem with queue/todo",
        71 => "mail server temporarily refuses the message",
        72..=74 => "connection to the mail server failed",
        81 => "internal bug; e.g., segmentation fault",
        82 => "mail server refuses the message",
        91 => "envelope format error",
        12..=30 | 32..=40 => "permanent error",
        _ => "temporary error",
    }
}

/// Writes the envelope; fails with the first write or read error.
fn write_envelope(w: &mut impl Write, sender: &[u8], lists: &[Rcpts<'_>]) -> Result<(), String> {
    let io = |e: std::io::Error| format!("writing the envelope to qmail-queue: {e}");
    w.write_all(b"F").map_err(io)?;
    w.write_all(sender).map_err(io)?;
    w.write_all(b"\0").map_err(io)?;
    for l in lists {
        match l {
            Rcpts::Held(v) => {
                for a in v {
                    w.write_all(b"T").map_err(io)?;
                    w.write_all(a).map_err(io)?;
                    w.write_all(b"\0").map_err(io)?;
                }
            }
            Rcpts::File { dir, path } => {
                let mut err = None;
                read_records(dir, path, |kind, a| {
                    if kind != b'T' {
                        return true;
                    }
                    let r = w.write_all(b"T").and_then(|_| w.write_all(a)).and_then(|_| w.write_all(b"\0"));
                    match r {
                        Ok(()) => true,
                        Err(e) => {
                            err = Some(e);
                            false
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
                if let Some(e) = err {
                    return Err(io(e));
                }
            }
        }
    }
    w.write_all(b"\0").map_err(io)?;
    w.flush().map_err(io)
}

/// Runs `qmail_queue` with `mess` on descriptor 0 and the envelope on
/// descriptor 1, and waits for its answer.
pub fn inject(qmail_queue: &Path, mess: File, sender: &[u8], lists: &[Rcpts<'_>]) -> Answer {
    let shown = qcommon::error::escape_path(qmail_queue);
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Answer::Temporary(format!("cannot make a pipe for {shown}: {e}")),
    };
    // A process group of its own: a Ctrl-C at the terminal reaches qfixq
    // only, which lets this injection end and stops between two messages.
    let spawned = Command::new(qmail_queue).stdin(Stdio::from(mess)).stdout(Stdio::from(r)).process_group(0).spawn();
    // The Command (and with it our copy of the read end) is gone here.
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Answer::Temporary(format!("cannot run {shown}: {e}")),
    };
    let mut pipe = BufWriter::with_capacity(64 << 10, File::from(w));
    let written = write_envelope(&mut pipe, sender, lists);
    drop(pipe);
    let status = match child.wait() {
        Ok(s) => s,
        Err(e) => return Answer::Temporary(format!("waiting for {shown}: {e}")),
    };
    match status.code() {
        Some(0) => match written {
            // qmail-queue stops reading at the extra NUL: it cannot have
            // accepted a shorter envelope.
            Ok(()) => Answer::Accepted,
            Err(e) => Answer::Temporary(format!("{shown} exited 0 but {e}")),
        },
        Some(c @ 11..=40) => Answer::Permanent(format!("{shown} exited {c} ({})", meaning(c))),
        Some(c) => Answer::Temporary(format!(
            "{shown} exited {c} ({}){}",
            meaning(c),
            written.err().map(|e| format!("; {e}")).unwrap_or_default()
        )),
        None => Answer::Temporary(format!("{shown} was killed ({status})")),
    }
}
