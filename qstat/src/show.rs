//! `--show N`: one message. This module owns what is shown of it: its
//! envelope (stage, birth time, bucket, sender, recipients and their
//! states), its damage, every file with its name (owner, mode, size, time;
//! copies in a wrong place and entries that are not regular files too,
//! never followed), then its header and, with `--body`, its body, with
//! every control byte escaped. `--raw` writes the mess file's bytes as
//! they are instead, for a mail reader; `--json` writes all of it as one
//! JSON document (docs/json.md, "qstat --show").

use std::io::{self, Read, Write};

use serde::Serialize;

use qcommon::error::{escape_path, escape_text};
use qcommon::layout::LayoutOptions;
use qcommon::queue::Part;
use qcommon::queue::QueueShape;
use qcommon::safe_fs::{FileKind, Stat};
use qcommon::salvaged::Salvaged;
use qcommon::session::{Access, Session};

use crate::clock::iso_utc;
use crate::exit::ExitCode;
use crate::list::{sender_text, write_recipients};
use crate::message::{open_mess, read, Dirs, Message, ReadOptions};

/// What to show.
#[derive(Debug, Clone)]
pub struct ShowRequest {
    /// Which queue.
    pub layout: LayoutOptions,
    /// The message number.
    pub number: u64,
    /// Add the body.
    pub body: bool,
    /// Write the message bytes as they are, nothing else.
    pub raw: bool,
    /// One JSON document instead of the text.
    pub json: bool,
}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
}

fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten().map(|g| g.name)
}

/// `owner qmailq (100), group qmail (101), mode 0644`.
fn owner_text(st: &Stat) -> String {
    let u = user_name(st.uid).map_or(String::new(), |n| format!("{} ", escape_text(&n)));
    let g = group_name(st.gid).map_or(String::new(), |n| format!("{} ", escape_text(&n)));
    format!("owner {u}({}), group {g}({}), mode {:04o}", st.uid, st.gid, st.perm)
}

fn file_line(w: &mut dyn Write, path: &std::path::Path, st: Option<&Stat>, note: Option<&str>) -> io::Result<()> {
    write!(w, "  {}:", escape_path(path))?;
    if let Some(st) = st {
        let kind = if st.kind == FileKind::Regular { "regular file" } else { st.kind.name() };
        write!(
            w,
            " {kind}, {} bytes, inode {}, links {}, {}, modified {}",
            st.size,
            st.ino,
            st.nlink,
            owner_text(st),
            iso_utc(st.mtime)
        )?;
    }
    if let Some(n) = note {
        write!(w, "; {n}")?;
    }
    writeln!(w)
}

/// Writes message text with control bytes escaped, each line indented,
/// stopping after the header unless `body`.
struct Escaper {
    /// Nothing of the current line written yet.
    line_start: bool,
    /// In the header, the current line so far is one CR (held back: a
    /// CR LF line ends the header too).
    pending_cr: bool,
    in_body: bool,
    body: bool,
}

impl Escaper {
    fn new(body: bool) -> Escaper {
        Escaper { line_start: true, pending_cr: false, in_body: false, body }
    }

    /// Feeds `data`; returns false when nothing more is wanted.
    fn feed(&mut self, w: &mut dyn Write, data: &[u8]) -> io::Result<bool> {
        let mut out: Vec<u8> = Vec::with_capacity(data.len() + 64);
        for &b in data {
            if !self.in_body && self.line_start {
                if b == b'\n' {
                    // The blank line that ends the header.
                    w.write_all(&out)?;
                    out.clear();
                    if !self.body {
                        return Ok(false);
                    }
                    self.in_body = true;
                    self.pending_cr = false;
                    w.write_all(b"body:\n")?;
                    continue;
                }
                if b == b'\r' && !self.pending_cr {
                    self.pending_cr = true;
                    continue;
                }
            }
            if self.line_start {
                out.extend_from_slice(b"  ");
                if self.pending_cr {
                    out.extend_from_slice(b"\\r");
                    self.pending_cr = false;
                }
                self.line_start = false;
            }
            match b {
                b'\n' => {
                    out.push(b'\n');
                    self.line_start = true;
                }
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' | 0x20..=0x7e => out.push(b),
                _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        w.write_all(&out)?;
        Ok(true)
    }

    fn finish(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.pending_cr {
            w.write_all(b"  \\r")?;
        }
        if !self.line_start || self.pending_cr {
            w.write_all(b"\n(no newline at the end)\n")?;
        }
        Ok(())
    }
}

/// Runs `--show`, printing to `out` and errors to `err`.
pub fn run(req: &ShowRequest, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<ExitCode> {
    let fatal = |err: &mut dyn Write, text: &str| {
        let _ = writeln!(err, "qstat: {}", escape_text(text));
        Ok(ExitCode::Operational)
    };
    // Read only; the queue root is opened once.
    let session = match Session::open(&req.layout, Access::ReadOnly) {
        Ok(s) => s,
        Err(e) => return fatal(err, &e.to_string()),
    };
    let (layout, root) = (session.layout(), session.root());
    let sl = layout.shape();
    let salvaged = qcommon::salvaged::read_all(root).unwrap_or_else(|_| Salvaged::default());
    let n = req.number;
    let opts = ReadOptions {
        shape: sl,
        search_buckets: true,
        misplaced: false,
        record: salvaged.get(n).copied(),
        parts: None,
    };
    let m = read(root, &mut Dirs::default(), n, &opts, &mut Vec::new());
    if m.is_absent() {
        for e in &m.errors {
            let _ = writeln!(err, "qstat: {}", escape_text(e));
        }
        return fatal(err, &format!("no message {n} in the queue"));
    }
    let regular = m.files.iter().any(Option::is_some)
        || m.others.iter().any(|(_, st, _)| st.is_some_and(|s| s.kind == FileKind::Regular));
    if !regular {
        let what: Vec<String> = m.others.iter().map(|(p, _, w)| format!("{}: {w}", escape_path(p))).collect();
        return fatal(
            err,
            &format!("no message {n} in the queue, only entries that are not message files: {}", what.join("; ")),
        );
    }
    if req.raw {
        let Some(mess) = m.file(Part::Mess) else {
            return fatal(err, &format!("message {n} has no mess file (at {})", sl.path(Part::Mess, n).display()));
        };
        let mut file = match open_mess(root, &mess.rel) {
            Ok(f) => f,
            Err(e) => return fatal(err, &e),
        };
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => out.write_all(&chunk[..k])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    out.flush()?;
                    let errno = qcommon::safe_fs::io_errno(&e);
                    return fatal(err, &qcommon::Error::sys("read", root.path().join(&mess.rel), errno).to_string());
                }
            }
        }
        out.flush()?;
        return Ok(ExitCode::Ok);
    }
    let mut w = io::BufWriter::new(out);
    let code = if req.json {
        write_show_json(&mut w, root, &m, req.body, err)?
    } else {
        write_show(&mut w, root, &m, sl, req.body, err)?
    };
    w.flush()?;
    Ok(code)
}

fn write_show(
    w: &mut dyn Write,
    root: &qcommon::safe_fs::Dir,
    m: &Message,
    sl: QueueShape,
    body: bool,
    err: &mut dyn Write,
) -> io::Result<ExitCode> {
    let mut code = ExitCode::Ok;
    let model = m.model();
    writeln!(w, "message: {}", m.number)?;
    writeln!(w, "stage: {}", model.stage.name())?;
    match model.birth {
        Some(b) => writeln!(w, "birth: {} ({})", iso_utc(b.time), b.basis.name())?,
        None => writeln!(w, "birth: unknown")?,
    }
    writeln!(w, "bucket: {} (split {})", m.bucket, sl.split)?;
    match m.size() {
        Some(s) => writeln!(w, "size: {s}")?,
        None => writeln!(w, "size: unknown (no mess file)")?,
    }
    writeln!(w, "sender: {}", sender_text(&model))?;
    writeln!(w, "recipients:")?;
    write_recipients(w, root, &model, "  ")?;
    if !m.damage.is_empty() {
        writeln!(w, "damaged: {}", m.damage.join(", "))?;
    }
    for note in &m.notes {
        writeln!(w, "note: {}", escape_text(note))?;
    }
    for e in &m.errors {
        writeln!(w, "error: {}", escape_text(e))?;
        let _ = writeln!(err, "qstat: {}", escape_text(e));
        code = ExitCode::Incomplete;
    }
    writeln!(w, "files:")?;
    for f in m.files.iter().flatten() {
        let note = f.misplaced.then_some("in a wrong place (qfixq live moves it)");
        file_line(w, &f.rel, Some(&f.stat), note)?;
    }
    for (p, st, note) in &m.others {
        file_line(w, p, st.as_ref(), Some(note))?;
    }
    writeln!(w, "header:")?;
    let Some(mess) = m.file(Part::Mess) else {
        writeln!(w, "  (no mess file)")?;
        return Ok(code);
    };
    let mut file = match open_mess(root, &mess.rel) {
        Ok(f) => f,
        Err(e) => {
            writeln!(w, "  error: {}", escape_text(&e))?;
            let _ = writeln!(err, "qstat: {}", escape_text(&e));
            return Ok(ExitCode::Incomplete);
        }
    };
    let mut esc = Escaper::new(body);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => {
                esc.finish(w)?;
                break;
            }
            Ok(k) => {
                if !esc.feed(w, &chunk[..k])? {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let errno = qcommon::safe_fs::io_errno(&e);
                let text = qcommon::Error::sys("read", root.path().join(&mess.rel), errno).to_string();
                writeln!(w, "  error: {}", escape_text(&text))?;
                let _ = writeln!(err, "qstat: {}", escape_text(&text));
                return Ok(ExitCode::Incomplete);
            }
        }
    }
    if body && !esc.in_body {
        writeln!(w, "body:")?;
    }
    Ok(code)
}

/// A file's status in `--show --json`.
#[derive(Serialize)]
struct StatJson {
    kind: String,
    size: u64,
    inode: u64,
    links: u64,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
}

impl From<&Stat> for StatJson {
    fn from(st: &Stat) -> Self {
        StatJson {
            kind: st.kind.name().replace(' ', "_"),
            size: st.size,
            inode: st.ino,
            links: st.nlink,
            uid: st.uid,
            gid: st.gid,
            mode: st.perm,
            mtime: st.mtime,
        }
    }
}

/// One file (or entry under the message's name) in `--show --json`.
#[derive(Serialize)]
struct FileJson<'a> {
    #[serde(serialize_with = "qcommon::json::bytes")]
    path: &'a [u8],
    stat: Option<StatJson>,
    misplaced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

/// The end of the `--show --json` document: the files, the header and
/// (with `--body`) the body.
#[derive(Serialize)]
struct ShowTailJson<'a> {
    files: Vec<FileJson<'a>>,
    #[serde(serialize_with = "qcommon::json::bytes")]
    header: &'a [u8],
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_bytes")]
    body: Option<&'a [u8]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mess_error: Option<String>,
}

fn opt_bytes<S: serde::Serializer>(b: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => qcommon::json::bytes(b, s),
        None => s.serialize_none(),
    }
}

/// Where the header of a message ends and its body starts: after the
/// first empty line (`\n` or `\r\n`), as the text form reads it.
fn header_end(data: &[u8]) -> Option<(usize, usize)> {
    let blank_at = |i: usize| match &data[i..] {
        [b'\n', ..] => Some(i + 1),
        [b'\r', b'\n', ..] => Some(i + 2),
        _ => None,
    };
    if let Some(b) = blank_at(0) {
        return Some((0, b));
    }
    data.iter().enumerate().filter(|(_, &c)| c == b'\n').find_map(|(i, _)| blank_at(i + 1).map(|b| (i + 1, b)))
}

/// `--show --json`: the message as one JSON document on one line: the
/// fields of a `--list --json` line, then its files, its header and, with
/// `body`, its body (byte strings). Errors go to `err` as well.
fn write_show_json(
    w: &mut dyn Write,
    root: &qcommon::safe_fs::Dir,
    m: &Message,
    body: bool,
    err: &mut dyn Write,
) -> io::Result<ExitCode> {
    use std::os::unix::ffi::OsStrExt;
    let mut code = ExitCode::Ok;
    for e in &m.errors {
        let _ = writeln!(err, "{}", qcommon::cli::said("qstat", e));
        code = ExitCode::Incomplete;
    }
    write!(w, "{{\"schema_version\":{},", qcommon::json::SCHEMA_VERSION)?;
    w.write_all(crate::list::json_head(m).as_bytes())?;
    w.write_all(b",")?;
    crate::list::json_recipients(w, root, m)?;
    let mut files: Vec<FileJson<'_>> = m
        .files
        .iter()
        .flatten()
        .map(|f| FileJson {
            path: f.rel.as_os_str().as_bytes(),
            stat: Some(StatJson::from(&f.stat)),
            misplaced: f.misplaced,
            note: None,
        })
        .collect();
    files.extend(m.others.iter().map(|(p, st, note)| FileJson {
        path: p.as_os_str().as_bytes(),
        stat: st.as_ref().map(StatJson::from),
        misplaced: false,
        note: Some(note.as_str()),
    }));
    // The mess file: its header, and with `body` all of it.
    let mut data = Vec::new();
    let mut mess_error = None;
    if let Some(mess) = m.file(Part::Mess) {
        match open_mess(root, &mess.rel) {
            Ok(mut file) => {
                let mut chunk = vec![0u8; 64 << 10];
                loop {
                    match file.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(k) => {
                            data.extend_from_slice(&chunk[..k]);
                            if !body && header_end(&data).is_some() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let errno = qcommon::safe_fs::io_errno(&e);
                            mess_error =
                                Some(qcommon::Error::sys("read", root.path().join(&mess.rel), errno).to_string());
                            break;
                        }
                    }
                }
            }
            Err(e) => mess_error = Some(escape_text(&e)),
        }
    }
    if let Some(e) = &mess_error {
        let _ = writeln!(err, "{}", qcommon::cli::said("qstat", e));
        code = ExitCode::Incomplete;
    }
    let (head, rest) = match header_end(&data) {
        Some((h, b)) => (&data[..h], &data[b..]),
        None => (&data[..], &data[data.len()..]),
    };
    let tail = ShowTailJson { files, header: head, body: body.then_some(rest), mess_error };
    let j = qcommon::json::to_string(&tail);
    // The document is open: the tail's fields join it.
    writeln!(w, ",{}", &j[1..])?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &[u8], body: bool) -> String {
        let mut v = Vec::new();
        let mut e = Escaper::new(body);
        // Fed in small pieces: a blank line may straddle two reads.
        for c in text.chunks(3) {
            if !e.feed(&mut v, c).unwrap() {
                break;
            }
        }
        if body {
            e.finish(&mut v).unwrap();
        }
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn header_then_body_escaped() {
        let msg = b"Subject: hi\x1b[31m\n\tfolded\nX: y\n\nbody \x07line\nlast";
        assert_eq!(shown(msg, false), "  Subject: hi\\x1b[31m\n  \tfolded\n  X: y\n");
        assert_eq!(
            shown(msg, true),
            "  Subject: hi\\x1b[31m\n  \tfolded\n  X: y\nbody:\n  body \\x07line\n  last\n(no newline at the end)\n"
        );
        assert_eq!(shown(b"A: b\r\n\r\nx\r\n", true), "  A: b\\r\nbody:\n  x\\r\n");
    }

    #[test]
    fn header_ends_at_the_first_empty_line() {
        assert_eq!(header_end(b"A: b\n\nbody\n"), Some((5, 6)));
        assert_eq!(header_end(b"A: b\r\n\r\nx"), Some((6, 8)));
        assert_eq!(header_end(b"\nbody"), Some((0, 1)));
        assert_eq!(header_end(b"A: b\nC: d\n"), None);
        assert_eq!(header_end(b""), None);
        // A CR inside a line ends nothing.
        assert_eq!(header_end(b"A: b\n\rX\n\n"), Some((8, 9)));
    }
}
