//! Envelope codecs: the `todo`/`intd` file qmail-queue writes, the `info`
//! file and the `local`/`remote` recipient lists qmail-send writes.
//! Parsing is strict and says precisely what is wrong; serializing gives
//! the exact bytes qmail writes.

use std::fmt;

/// The longest address qmail accepts in an envelope record.
pub const MAX_ADDRESS: usize = 1003;

/// The double-bounce sender.
pub const DOUBLE_BOUNCE: &[u8] = b"#@[]";

/// What is wrong with an envelope file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The file is empty.
    Empty,
    /// The last record has no terminating NUL (`offset` is where it starts).
    Truncated {
        /// Byte offset of the unterminated record.
        offset: usize,
    },
    /// A record starts with a type byte the file may not hold.
    UnknownRecord {
        /// The type byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// An address longer than [`MAX_ADDRESS`] bytes.
    AddressTooLong {
        /// Its length.
        len: usize,
        /// The record's offset.
        offset: usize,
    },
    /// No `F` (sender) record, or it is not where it must be.
    MissingSender,
    /// More than one `F` record.
    DuplicateSender {
        /// The second one's offset.
        offset: usize,
    },
    /// A todo/intd without any `T` record: nobody to deliver to.
    NoRecipients,
    /// More bytes than the reader was willing to read.
    TooLarge {
        /// The cap.
        cap: usize,
    },
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Empty => write!(f, "empty envelope"),
            EnvelopeError::Truncated { offset } => write!(f, "truncated record at byte {offset} (no terminating NUL)"),
            EnvelopeError::UnknownRecord { byte, offset } => {
                write!(f, "unknown record type {:?} at byte {offset}", crate::error::Escaped(&[*byte]).to_string())
            }
            EnvelopeError::AddressTooLong { len, offset } => {
                write!(f, "address of {len} bytes at byte {offset} (over {MAX_ADDRESS})")
            }
            EnvelopeError::MissingSender => write!(f, "missing F (sender) record"),
            EnvelopeError::DuplicateSender { offset } => write!(f, "second F record at byte {offset}"),
            EnvelopeError::NoRecipients => write!(f, "no T (recipient) record"),
            EnvelopeError::TooLarge { cap } => write!(f, "larger than {cap} bytes"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// One NUL-terminated record: its type byte, its body, its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record<'a> {
    kind: u8,
    body: &'a [u8],
    offset: usize,
}

/// Splits into records. Returns the complete records and, when the data
/// does not end in NUL, the offset of the partial last record.
fn records(data: &[u8]) -> (Vec<Record<'_>>, Option<usize>) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        match data[pos..].iter().position(|&b| b == 0) {
            Some(len) => {
                let rec = &data[pos..pos + len];
                if rec.is_empty() {
                    out.push(Record { kind: 0, body: rec, offset: pos });
                } else {
                    out.push(Record { kind: rec[0], body: &rec[1..], offset: pos });
                }
                pos += len + 1;
            }
            None => return (out, Some(pos)),
        }
    }
    (out, None)
}

fn check_addr(r: &Record<'_>) -> Result<(), EnvelopeError> {
    if r.body.len() > MAX_ADDRESS {
        return Err(EnvelopeError::AddressTooLong { len: r.body.len(), offset: r.offset });
    }
    Ok(())
}

/// The envelope qmail-queue writes to `intd/N` and links as `todo/N`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Todo {
    /// The `u` record (uid of the injecting process), as written.
    pub uid: Option<Vec<u8>>,
    /// The `p` record (its pid), as written.
    pub pid: Option<Vec<u8>>,
    /// The envelope sender (empty: the null sender).
    pub sender: Vec<u8>,
    /// The recipients, in order.
    pub recipients: Vec<Vec<u8>>,
}

impl Todo {
    /// Parses strictly: `u` and `p` may come before `F`; exactly one `F`;
    /// then one or more `T`; nothing else.
    pub fn parse(data: &[u8]) -> Result<Todo, EnvelopeError> {
        if data.is_empty() {
            return Err(EnvelopeError::Empty);
        }
        let (recs, partial) = records(data);
        let mut t = Todo::default();
        let mut have_sender = false;
        for r in &recs {
            match r.kind {
                b'u' | b'p' if !have_sender => {
                    let slot = if r.kind == b'u' { &mut t.uid } else { &mut t.pid };
                    if slot.is_some() || r.body.len() > 64 {
                        return Err(EnvelopeError::UnknownRecord { byte: r.kind, offset: r.offset });
                    }
                    *slot = Some(r.body.to_vec());
                }
                b'F' => {
                    if have_sender {
                        return Err(EnvelopeError::DuplicateSender { offset: r.offset });
                    }
                    check_addr(r)?;
                    t.sender = r.body.to_vec();
                    have_sender = true;
                }
                b'T' => {
                    if !have_sender {
                        return Err(EnvelopeError::MissingSender);
                    }
                    check_addr(r)?;
                    t.recipients.push(r.body.to_vec());
                }
                k => return Err(EnvelopeError::UnknownRecord { byte: k, offset: r.offset }),
            }
        }
        if let Some(offset) = partial {
            return Err(EnvelopeError::Truncated { offset });
        }
        if !have_sender {
            return Err(EnvelopeError::MissingSender);
        }
        if t.recipients.is_empty() {
            return Err(EnvelopeError::NoRecipients);
        }
        Ok(t)
    }

    /// The bytes qmail-queue writes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some(u) = &self.uid {
            push_record(&mut v, b'u', u);
        }
        if let Some(p) = &self.pid {
            push_record(&mut v, b'p', p);
        }
        push_record(&mut v, b'F', &self.sender);
        for r in &self.recipients {
            push_record(&mut v, b'T', r);
        }
        v
    }
}

fn push_record(v: &mut Vec<u8>, kind: u8, body: &[u8]) {
    v.push(kind);
    v.extend_from_slice(body);
    v.push(0);
}

/// The `info/B/N` file: `F<sender>\0` and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Info {
    /// The envelope sender (empty: the null sender).
    pub sender: Vec<u8>,
}

impl Info {
    /// Parses strictly.
    pub fn parse(data: &[u8]) -> Result<Info, EnvelopeError> {
        if data.is_empty() {
            return Err(EnvelopeError::Empty);
        }
        let (recs, partial) = records(data);
        let first = match recs.first() {
            Some(r) => r,
            None => return Err(EnvelopeError::Truncated { offset: 0 }),
        };
        if first.kind != b'F' {
            return Err(EnvelopeError::UnknownRecord { byte: first.kind, offset: 0 });
        }
        check_addr(first)?;
        if let Some(r) = recs.get(1) {
            return Err(if r.kind == b'F' {
                EnvelopeError::DuplicateSender { offset: r.offset }
            } else {
                EnvelopeError::UnknownRecord { byte: r.kind, offset: r.offset }
            });
        }
        if let Some(offset) = partial {
            return Err(EnvelopeError::Truncated { offset });
        }
        Ok(Info { sender: first.body.to_vec() })
    }

    /// The bytes qmail-send writes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.sender.len() + 2);
        push_record(&mut v, b'F', &self.sender);
        v
    }

    /// The null sender (a bounce).
    pub fn is_null_sender(&self) -> bool {
        self.sender.is_empty()
    }
}

/// One recipient of a `local`/`remote` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address.
    pub address: Vec<u8>,
    /// True for `D` (delivered), false for `T` (still to do).
    pub done: bool,
}

/// A `local/B/N` or `remote/B/N` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipients {
    /// The complete records, in order.
    pub list: Vec<Recipient>,
    /// Bytes of a partial last record (no NUL) that were dropped; 0 when
    /// the file was whole.
    pub dropped: usize,
}

impl Recipients {
    /// Parses strictly: only `T` and `D` records, each NUL-terminated; an
    /// empty file is an error (qmail never writes one).
    pub fn parse(data: &[u8]) -> Result<Recipients, EnvelopeError> {
        let r = Recipients::parse_salvaging(data)?;
        if r.dropped > 0 {
            return Err(EnvelopeError::Truncated { offset: data.len() - r.dropped });
        }
        Ok(r)
    }

    /// Parses, keeping the complete records and counting the bytes of a
    /// partial last record in `dropped` (a write cut short by a full disk).
    /// Other damage is still an error.
    pub fn parse_salvaging(data: &[u8]) -> Result<Recipients, EnvelopeError> {
        if data.is_empty() {
            return Err(EnvelopeError::Empty);
        }
        let (recs, partial) = records(data);
        let mut list = Vec::with_capacity(recs.len());
        for r in &recs {
            let done = match r.kind {
                b'T' => false,
                b'D' => true,
                k => return Err(EnvelopeError::UnknownRecord { byte: k, offset: r.offset }),
            };
            check_addr(r)?;
            list.push(Recipient { address: r.body.to_vec(), done });
        }
        if let Some(off) = partial {
            // The partial record's type byte must still be plausible.
            if !matches!(data[off], b'T' | b'D') {
                return Err(EnvelopeError::UnknownRecord { byte: data[off], offset: off });
            }
            if list.is_empty() {
                return Err(EnvelopeError::Truncated { offset: off });
            }
        }
        Ok(Recipients { list, dropped: partial.map_or(0, |off| data.len() - off) })
    }

    /// The bytes qmail-send writes (only the complete records).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for r in &self.list {
            push_record(&mut v, if r.done { b'D' } else { b'T' }, &r.address);
        }
        v
    }

    /// Recipients not yet delivered.
    pub fn pending(&self) -> usize {
        self.list.iter().filter(|r| !r.done).count()
    }
}

/// Largest todo/intd/local/remote the scan holds parsed in memory (about
/// 2,500 recipients); a larger one is checked by [`TodoCheck`] /
/// [`ListCheck`] in one pass over the file with a fixed buffer, and
/// consumers that need its addresses read them again with
/// [`for_each_record`]. Small, because the scan has up to a few thousand
/// messages in flight: a flood of messages with large lists must not
/// multiply into memory.
pub const WHOLE_CAP: usize = 64 << 10;

/// Buffer size of the streaming passes.
pub const STREAM_BUFFER: usize = 64 << 10;

/// Splits a byte stream fed in pieces into NUL-terminated records, keeping
/// only the first [`MAX_ADDRESS`]` + 1` bytes of each body: memory does not
/// grow with the file or with a record.
#[derive(Debug, Default)]
struct Splitter {
    /// Offset of the next byte fed.
    at: u64,
    /// The record being read: its type byte and offset.
    open: Option<(u8, u64)>,
    /// Its body length so far.
    len: u64,
    /// Its first bytes.
    keep: Vec<u8>,
}

/// One complete record as the splitter hands it out.
struct Rec<'a> {
    kind: u8,
    /// Full body length.
    len: u64,
    /// The body, cut at `MAX_ADDRESS + 1` bytes.
    head: &'a [u8],
    offset: u64,
}

const KEEP: usize = MAX_ADDRESS + 1;

impl Splitter {
    fn feed<E>(&mut self, mut data: &[u8], on: &mut dyn FnMut(Rec<'_>) -> Result<(), E>) -> Result<(), E> {
        while !data.is_empty() {
            let (kind, offset) = match self.open {
                Some(o) => o,
                None => {
                    let (b, off) = (data[0], self.at);
                    data = &data[1..];
                    self.at += 1;
                    if b == 0 {
                        on(Rec { kind: 0, len: 0, head: &[], offset: off })?;
                        continue;
                    }
                    self.open = Some((b, off));
                    self.len = 0;
                    self.keep.clear();
                    (b, off)
                }
            };
            let (seg, end) = match data.iter().position(|&b| b == 0) {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            let room = KEEP.saturating_sub(self.keep.len());
            self.keep.extend_from_slice(&seg[..seg.len().min(room)]);
            self.len += seg.len() as u64;
            let used = seg.len() + usize::from(end);
            self.at += used as u64;
            data = &data[used..];
            if end {
                self.open = None;
                on(Rec { kind, len: self.len, head: &self.keep, offset })?;
            }
        }
        Ok(())
    }

    /// The partial last record: its type byte and offset.
    fn partial(&self) -> Option<(u8, u64)> {
        self.open
    }
}

fn too_long(len: u64, offset: u64) -> Option<EnvelopeError> {
    (len > MAX_ADDRESS as u64).then_some(EnvelopeError::AddressTooLong { len: len as usize, offset: offset as usize })
}

/// What a streaming pass over a todo/intd keeps: no recipient list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TodoSummary {
    /// The `u` record, as written.
    pub uid: Option<Vec<u8>>,
    /// The `p` record, as written.
    pub pid: Option<Vec<u8>>,
    /// The envelope sender.
    pub sender: Vec<u8>,
    /// Number of `T` records.
    pub recipients: u64,
    /// Bytes of the file.
    pub len: u64,
}

/// The strict todo check of [`Todo::parse`], fed in pieces of any size:
/// same verdict, same error, in memory that does not grow with the file.
#[derive(Debug, Default)]
pub struct TodoCheck {
    split: Splitter,
    sum: TodoSummary,
    have_sender: bool,
    err: Option<EnvelopeError>,
}

impl TodoCheck {
    /// A fresh check.
    pub fn new() -> TodoCheck {
        TodoCheck::default()
    }

    /// True once the verdict is an error: the rest of the file need not
    /// be read (a 2 GB file of zeros fails at its first bytes).
    pub fn failed(&self) -> bool {
        self.err.is_some()
    }

    /// Feeds the next bytes of the file. After the first error the rest
    /// is ignored.
    pub fn feed(&mut self, data: &[u8]) {
        if self.err.is_some() {
            return;
        }
        let (sum, have_sender) = (&mut self.sum, &mut self.have_sender);
        let r = self.split.feed(data, &mut |r: Rec<'_>| -> Result<(), EnvelopeError> {
            let bad = EnvelopeError::UnknownRecord { byte: r.kind, offset: r.offset as usize };
            match r.kind {
                b'u' | b'p' if !*have_sender => {
                    let slot = if r.kind == b'u' { &mut sum.uid } else { &mut sum.pid };
                    if slot.is_some() || r.len > 64 {
                        return Err(bad);
                    }
                    *slot = Some(r.head.to_vec());
                }
                b'F' => {
                    if *have_sender {
                        return Err(EnvelopeError::DuplicateSender { offset: r.offset as usize });
                    }
                    if let Some(e) = too_long(r.len, r.offset) {
                        return Err(e);
                    }
                    sum.sender = r.head.to_vec();
                    *have_sender = true;
                }
                b'T' => {
                    if !*have_sender {
                        return Err(EnvelopeError::MissingSender);
                    }
                    if let Some(e) = too_long(r.len, r.offset) {
                        return Err(e);
                    }
                    sum.recipients += 1;
                }
                _ => return Err(bad),
            }
            Ok(())
        });
        self.err = r.err();
    }

    /// The verdict once the whole file was fed.
    pub fn finish(self) -> Result<TodoSummary, EnvelopeError> {
        if self.split.at == 0 {
            return Err(EnvelopeError::Empty);
        }
        if let Some(e) = self.err {
            return Err(e);
        }
        if let Some((_, offset)) = self.split.partial() {
            return Err(EnvelopeError::Truncated { offset: offset as usize });
        }
        if !self.have_sender {
            return Err(EnvelopeError::MissingSender);
        }
        if self.sum.recipients == 0 {
            return Err(EnvelopeError::NoRecipients);
        }
        Ok(TodoSummary { len: self.split.at, ..self.sum })
    }
}

/// What a streaming pass over a local/remote list keeps: counts only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListSummary {
    /// `T` records (still to do).
    pub pending: u64,
    /// `D` records (done).
    pub done: u64,
    /// Bytes of the complete records (what a repair keeps).
    pub kept: u64,
    /// Bytes of a partial last record; 0 when the file is whole.
    pub dropped: u64,
}

/// The check of [`Recipients::parse_salvaging`], fed in pieces of any
/// size: same verdict, same error, counts instead of the list.
#[derive(Debug, Default)]
pub struct ListCheck {
    split: Splitter,
    sum: ListSummary,
    err: Option<EnvelopeError>,
}

impl ListCheck {
    /// A fresh check.
    pub fn new() -> ListCheck {
        ListCheck::default()
    }

    /// True once the verdict is an error: the rest of the file need not
    /// be read (a 2 GB file of zeros fails at its first bytes).
    pub fn failed(&self) -> bool {
        self.err.is_some()
    }

    /// Feeds the next bytes of the file. After the first error the rest
    /// is ignored.
    pub fn feed(&mut self, data: &[u8]) {
        if self.err.is_some() {
            return;
        }
        let sum = &mut self.sum;
        let r = self.split.feed(data, &mut |r: Rec<'_>| -> Result<(), EnvelopeError> {
            let count = match r.kind {
                b'T' => &mut sum.pending,
                b'D' => &mut sum.done,
                k => return Err(EnvelopeError::UnknownRecord { byte: k, offset: r.offset as usize }),
            };
            if let Some(e) = too_long(r.len, r.offset) {
                return Err(e);
            }
            *count += 1;
            sum.kept = r.offset + r.len + 2;
            Ok(())
        });
        self.err = r.err();
    }

    /// The verdict once the whole file was fed (a partial last record is
    /// counted in `dropped`, as [`Recipients::parse_salvaging`] does).
    pub fn finish(self) -> Result<ListSummary, EnvelopeError> {
        if self.split.at == 0 {
            return Err(EnvelopeError::Empty);
        }
        if let Some(e) = self.err {
            return Err(e);
        }
        let mut sum = self.sum;
        if let Some((kind, off)) = self.split.partial() {
            if !matches!(kind, b'T' | b'D') {
                return Err(EnvelopeError::UnknownRecord { byte: kind, offset: off as usize });
            }
            if sum.pending + sum.done == 0 {
                return Err(EnvelopeError::Truncated { offset: off as usize });
            }
            sum.dropped = self.split.at - off;
        }
        Ok(sum)
    }
}

/// Reads `r` to its end with a fixed buffer and calls `f` with the type
/// byte and body of each complete record (a body longer than
/// [`MAX_ADDRESS`] is cut there), until `f` returns false. For consumers
/// that need the addresses of a list too large to hold.
pub fn for_each_record(mut r: impl std::io::Read, mut f: impl FnMut(u8, &[u8]) -> bool) -> std::io::Result<()> {
    let mut buf = vec![0u8; STREAM_BUFFER];
    let mut split = Splitter::default();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let stop = split.feed(&buf[..n], &mut |rec: Rec<'_>| {
            let body = &rec.head[..rec.head.len().min(MAX_ADDRESS)];
            if f(rec.kind, body) {
                Ok(())
            } else {
                Err(())
            }
        });
        if stop.is_err() {
            return Ok(());
        }
    }
}

/// Streams the records of the envelope at `rel` (relative to the queue
/// root `root`, opened without following any link) through
/// [`for_each_record`]: the addresses of a list too large to hold.
pub fn read_records(
    root: &crate::safe_fs::Dir,
    rel: &std::path::Path,
    f: impl FnMut(u8, &[u8]) -> bool,
) -> crate::Result<()> {
    let (file, _) = root.open_regular_beneath(rel)?;
    for_each_record(file, f).map_err(|e| crate::Error::sys("read", root.path().join(rel), crate::safe_fs::io_errno(&e)))
}

/// A todo/intd as the scan gives it: parsed whole when it is small, else
/// checked by a streaming pass that kept no recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TodoEnvelope {
    /// Parsed (at most [`WHOLE_CAP`] bytes).
    Whole(Todo),
    /// Checked in one pass (larger): read the recipients again from the file.
    Large(TodoSummary),
}

impl TodoEnvelope {
    /// The envelope sender.
    pub fn sender(&self) -> &[u8] {
        match self {
            TodoEnvelope::Whole(t) => &t.sender,
            TodoEnvelope::Large(s) => &s.sender,
        }
    }

    /// Number of recipients.
    pub fn recipient_count(&self) -> u64 {
        match self {
            TodoEnvelope::Whole(t) => t.recipients.len() as u64,
            TodoEnvelope::Large(s) => s.recipients,
        }
    }

    /// The parsed form, when it is held.
    pub fn whole(&self) -> Option<&Todo> {
        match self {
            TodoEnvelope::Whole(t) => Some(t),
            TodoEnvelope::Large(_) => None,
        }
    }
}

/// A local/remote list as the scan gives it: parsed whole when it is
/// small, else counted by a streaming pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEnvelope {
    /// Parsed (at most [`WHOLE_CAP`] bytes).
    Whole(Recipients),
    /// Checked in one pass (larger): read the addresses again from the file.
    Large(ListSummary),
}

impl ListEnvelope {
    /// Recipients still to do.
    pub fn pending(&self) -> u64 {
        match self {
            ListEnvelope::Whole(r) => r.pending() as u64,
            ListEnvelope::Large(s) => s.pending,
        }
    }

    /// Complete records.
    pub fn records(&self) -> u64 {
        match self {
            ListEnvelope::Whole(r) => r.list.len() as u64,
            ListEnvelope::Large(s) => s.pending + s.done,
        }
    }

    /// Bytes of a partial last record (0: the file is whole).
    pub fn dropped(&self) -> u64 {
        match self {
            ListEnvelope::Whole(r) => r.dropped as u64,
            ListEnvelope::Large(s) => s.dropped,
        }
    }

    /// Bytes of the complete records.
    pub fn kept(&self) -> u64 {
        match self {
            ListEnvelope::Whole(r) => r.list.iter().map(|x| x.address.len() as u64 + 2).sum(),
            ListEnvelope::Large(s) => s.kept,
        }
    }

    /// The parsed form, when it is held.
    pub fn whole(&self) -> Option<&Recipients> {
        match self {
            ListEnvelope::Whole(r) => Some(r),
            ListEnvelope::Large(_) => None,
        }
    }
}

/// Sorts a parsed sender: null, double bounce, or an address.
pub fn is_double_bounce(sender: &[u8]) -> bool {
    sender == DOUBLE_BOUNCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn todo_round_trip() {
        let t = Todo {
            uid: Some(b"0".to_vec()),
            pid: Some(b"4242".to_vec()),
            sender: b"a@example.org".to_vec(),
            recipients: vec![b"Lb@example.net".to_vec(), b"Rc@example.com".to_vec()],
        };
        let b = t.to_bytes();
        assert_eq!(b, b"u0\0p4242\0Fa@example.org\0TLb@example.net\0TRc@example.com\0");
        assert_eq!(Todo::parse(&b).unwrap(), t);
    }

    #[test]
    fn todo_errors_are_precise() {
        assert_eq!(Todo::parse(b""), Err(EnvelopeError::Empty));
        assert_eq!(Todo::parse(b"u0\0Fa\0Tb"), Err(EnvelopeError::Truncated { offset: 6 }));
        assert_eq!(Todo::parse(b"u0\0Fa\0Xb\0"), Err(EnvelopeError::UnknownRecord { byte: b'X', offset: 6 }));
        assert_eq!(Todo::parse(b"u0\0Tb\0"), Err(EnvelopeError::MissingSender));
        assert_eq!(Todo::parse(b"u0\0p1\0"), Err(EnvelopeError::MissingSender));
        assert_eq!(Todo::parse(b"Fa\0"), Err(EnvelopeError::NoRecipients));
        assert_eq!(Todo::parse(b"Fa\0Fb\0Tc\0"), Err(EnvelopeError::DuplicateSender { offset: 3 }));
        let mut long = b"F".to_vec();
        long.extend(std::iter::repeat_n(b'x', 1004));
        long.extend_from_slice(b"\0Ta\0");
        assert_eq!(Todo::parse(&long), Err(EnvelopeError::AddressTooLong { len: 1004, offset: 0 }));
        // 1003 bytes is still fine.
        let mut ok = b"F".to_vec();
        ok.extend(std::iter::repeat_n(b'x', 1003));
        ok.extend_from_slice(b"\0Ta\0");
        assert!(Todo::parse(&ok).is_ok());
        assert!(Todo::parse(b"\0Fa\0Tb\0").is_err());
    }

    #[test]
    fn info_is_one_f_record() {
        assert_eq!(Info::parse(b"F\0").unwrap(), Info { sender: vec![] });
        assert!(Info::parse(b"F\0").unwrap().is_null_sender());
        assert_eq!(Info::parse(b"Fa@b\0").unwrap().sender, b"a@b");
        assert_eq!(Info::parse(b""), Err(EnvelopeError::Empty));
        assert_eq!(Info::parse(b"Fa@b"), Err(EnvelopeError::Truncated { offset: 0 }));
        assert_eq!(Info::parse(b"Ta\0"), Err(EnvelopeError::UnknownRecord { byte: b'T', offset: 0 }));
        assert_eq!(Info::parse(b"Fa\0Fb\0"), Err(EnvelopeError::DuplicateSender { offset: 3 }));
        assert_eq!(Info::parse(b"Fa\0x"), Err(EnvelopeError::Truncated { offset: 3 }));
        let i = Info { sender: b"#@[]".to_vec() };
        assert_eq!(Info::parse(&i.to_bytes()).unwrap(), i);
        assert!(is_double_bounce(&i.sender));
    }

    #[test]
    fn recipients_salvage_partial_last_record() {
        let r = Recipients::parse(b"Ta@b\0Dc@d\0").unwrap();
        assert_eq!(r.list.len(), 2);
        assert_eq!(r.pending(), 1);
        assert!(r.list[1].done);
        assert_eq!(r.to_bytes(), b"Ta@b\0Dc@d\0");
        assert_eq!(Recipients::parse(b"Ta@b\0Tc@"), Err(EnvelopeError::Truncated { offset: 5 }));
        let s = Recipients::parse_salvaging(b"Ta@b\0Tc@").unwrap();
        assert_eq!((s.list.len(), s.dropped), (1, 3));
        assert_eq!(s.to_bytes(), b"Ta@b\0");
        assert_eq!(Recipients::parse_salvaging(b"Tc@"), Err(EnvelopeError::Truncated { offset: 0 }));
        assert_eq!(Recipients::parse_salvaging(b""), Err(EnvelopeError::Empty));
        assert_eq!(
            Recipients::parse_salvaging(b"Ta\0Fb\0"),
            Err(EnvelopeError::UnknownRecord { byte: b'F', offset: 3 })
        );
        assert!(Recipients::parse_salvaging(b"Ta\0\x00\x00\x00").is_err());
    }

    /// Feeds `data` to a streaming check in pieces of `step` bytes.
    fn todo_streamed(data: &[u8], step: usize) -> Result<TodoSummary, EnvelopeError> {
        let mut c = TodoCheck::new();
        data.chunks(step.max(1)).for_each(|p| c.feed(p));
        c.finish()
    }

    fn list_streamed(data: &[u8], step: usize) -> Result<ListSummary, EnvelopeError> {
        let mut c = ListCheck::new();
        data.chunks(step.max(1)).for_each(|p| c.feed(p));
        c.finish()
    }

    /// The streaming checks agree with the strict parsers on `data`, for
    /// every way of cutting it in the given piece sizes.
    fn agree(data: &[u8]) {
        for step in [1, 2, 3, 5, 7, 64, 1000, 1005, usize::MAX] {
            let strict = Todo::parse(data);
            let streamed = todo_streamed(data, step);
            match (&strict, &streamed) {
                (Ok(t), Ok(s)) => {
                    assert_eq!(
                        (&t.uid, &t.pid, &t.sender, t.recipients.len() as u64, data.len() as u64),
                        (&s.uid, &s.pid, &s.sender, s.recipients, s.len),
                        "todo {data:?} step {step}"
                    );
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "todo {data:?} step {step}"),
                _ => panic!("todo {data:?} step {step}: strict {strict:?}, streamed {streamed:?}"),
            }
            let strict = Recipients::parse_salvaging(data);
            let streamed = list_streamed(data, step);
            match (&strict, &streamed) {
                (Ok(r), Ok(s)) => {
                    let whole = ListEnvelope::Whole(r.clone());
                    let large = ListEnvelope::Large(*s);
                    assert_eq!(
                        (whole.pending(), whole.records(), whole.dropped(), whole.kept()),
                        (large.pending(), large.records(), large.dropped(), large.kept()),
                        "list {data:?} step {step}"
                    );
                    assert_eq!(s.kept as usize, r.to_bytes().len());
                    assert_eq!(&data[..s.kept as usize], &r.to_bytes()[..]);
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "list {data:?} step {step}"),
                _ => panic!("list {data:?} step {step}: strict {strict:?}, streamed {streamed:?}"),
            }
        }
    }

    #[test]
    fn streaming_checks_agree_with_the_strict_parsers() {
        let long = |n: usize, kind: u8| {
            let mut v = vec![kind];
            v.extend(std::iter::repeat_n(b'x', n));
            v.push(0);
            v
        };
        let mut cases: Vec<Vec<u8>> = [
            &b""[..],
            b"\0",
            b"\0\0",
            b"u0\0p4242\0Fa@example.org\0TLb@example.net\0TRc@example.com\0",
            b"u0\0Fa\0Tb",
            b"u0\0Fa\0Xb\0",
            b"u0\0Tb\0",
            b"u0\0p1\0",
            b"Fa\0",
            b"Fa\0Fb\0Tc\0",
            b"\0Fa\0Tb\0",
            b"u0\0u1\0Fa\0Tb\0",
            b"Fa\0u0\0Tb\0",
            b"F\0T\0",
            b"Ta@b\0Dc@d\0",
            b"Ta@b\0Tc@",
            b"Tc@",
            b"Ta\0Fb\0",
            b"Ta\0\x00\x00\x00",
            b"Ta\0Xpartial",
            b"Ta\0D",
            b"T",
            b"X",
            b"Fa",
        ]
        .iter()
        .map(|c| c.to_vec())
        .collect();
        for (n, kind) in [(1003, b'F'), (1004, b'F'), (1003, b'T'), (1004, b'T'), (64, b'u'), (65, b'p'), (5000, b'D')]
        {
            for prefix in [&b""[..], b"Fs\0", b"Ta\0"] {
                let mut v = prefix.to_vec();
                v.extend(long(n, kind));
                v.extend_from_slice(b"Tz\0");
                cases.push(v.clone());
                v.extend_from_slice(b"Tpart");
                cases.push(v);
            }
        }
        for c in &cases {
            agree(c);
        }
    }

    /// Random envelopes, mostly well formed, with damage here and there;
    /// the seed is printed so that a failure can be replayed.
    #[test]
    fn streaming_checks_agree_on_random_envelopes() {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        println!("seed {seed}");
        let mut x = seed;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m.max(1)
        };
        for _ in 0..400 {
            let mut v = Vec::new();
            let todo = next(2) == 0;
            if todo {
                v.extend_from_slice(b"u0\0p77\0F");
                v.extend(std::iter::repeat_n(b's', next(20) as usize));
                v.push(0);
            }
            for _ in 0..next(40) {
                v.push(match next(10) {
                    0 if !todo => b'D',
                    _ => b'T',
                });
                let len = if next(30) == 0 { 1000 + next(10) as usize } else { next(40) as usize };
                v.extend(std::iter::repeat_n(b'a', len));
                v.push(0);
            }
            // Damage: flip, cut or insert a byte.
            match next(5) {
                0 if !v.is_empty() => {
                    let i = next(v.len() as u64) as usize;
                    v[i] = [0, b'X', b'F', b'T', b'u'][next(5) as usize];
                }
                1 if !v.is_empty() => v.truncate(next(v.len() as u64) as usize),
                2 => v.insert(next(v.len() as u64 + 1) as usize, 0),
                _ => {}
            }
            agree(&v);
        }
    }

    #[test]
    fn records_stream_back_out() {
        let data = b"Ta@b\0Dc@d\0Te@f";
        let mut got = Vec::new();
        for_each_record(&data[..], |k, a| {
            got.push((k, a.to_vec()));
            true
        })
        .unwrap();
        assert_eq!(got, vec![(b'T', b"a@b".to_vec()), (b'D', b"c@d".to_vec())]);
        let mut first = Vec::new();
        for_each_record(&data[..], |_, a| {
            first.push(a.to_vec());
            false
        })
        .unwrap();
        assert_eq!(first, vec![b"a@b".to_vec()]);
    }
}
