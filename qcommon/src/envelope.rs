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
}
