//! The tools' JSON: one writer (serde_json with [`Formatter`]) and one rule
//! for byte strings, so every `--json` document is valid JSON whatever
//! bytes the queue holds.
//!
//! The rule for byte strings (addresses, file names, senders: any bytes):
//! they are JSON strings; valid UTF-8 is kept as it is; each byte that is
//! not part of a valid UTF-8 sequence is written as the escape `\u00XX`
//! of its value (so the byte 0xff is `\u00ff`, while a real `ÿ` in valid
//! UTF-8 is written as the character itself). Control characters, DEL
//! (0x7f), `"` and `\` are escaped as `\uXXXX` or the short JSON escapes.
//! A field that holds bytes is serialized with [`bytes`]; plain text
//! (codes, prose) is an ordinary string, escaped the same way.
//!
//! The documents' shapes are in docs/json.md; each carries
//! `"schema_version":` [`SCHEMA_VERSION`]. The parts every tool prints
//! alike are here too: the layout's decisions ([`LayoutJson`]: split, ids
//! and todo, each a value with its source as a code and in words) and the
//! queuelifetime ([`LifetimeJson`]).

use std::io;

use serde::Serialize;

/// The version of the documents' shapes (docs/json.md): raised when a
/// field is renamed, removed or changes its type; new fields keep it.
pub const SCHEMA_VERSION: u32 = 3;

/// serde_json's compact output, with the byte-string rule above and DEL
/// escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Formatter;

fn escape_del<W: ?Sized + io::Write>(w: &mut W, s: &str) -> io::Result<()> {
    let mut rest = s;
    while let Some(i) = rest.find('\u{7f}') {
        w.write_all(&rest.as_bytes()[..i])?;
        w.write_all(b"\\u007f")?;
        rest = &rest[i + 1..];
    }
    w.write_all(rest.as_bytes())
}

fn escape_char<W: ?Sized + io::Write>(w: &mut W, c: char) -> io::Result<()> {
    match c {
        '"' => w.write_all(b"\\\""),
        '\\' => w.write_all(b"\\\\"),
        '\n' => w.write_all(b"\\n"),
        '\r' => w.write_all(b"\\r"),
        '\t' => w.write_all(b"\\t"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => write!(w, "\\u{:04x}", c as u32),
        c => {
            let mut buf = [0u8; 4];
            w.write_all(c.encode_utf8(&mut buf).as_bytes())
        }
    }
}

impl serde_json::ser::Formatter for Formatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        escape_del(writer, fragment)
    }

    fn write_byte_array<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: &[u8]) -> io::Result<()> {
        writer.write_all(b"\"")?;
        for chunk in value.utf8_chunks() {
            for c in chunk.valid().chars() {
                escape_char(writer, c)?;
            }
            for &b in chunk.invalid() {
                write!(writer, "\\u{b:04x}")?;
            }
        }
        writer.write_all(b"\"")
    }
}

/// Serializes a byte string by the rule above (`#[serde(serialize_with = "qcommon::json::bytes")]`).
pub fn bytes<S: serde::Serializer, B: AsRef<[u8]> + ?Sized>(b: &B, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b.as_ref())
}

/// A byte string that serializes by the rule above.
#[derive(Debug, Clone, Copy)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A decided value with where it came from: `{"value": N, "source":
/// "code", "source_text": "words"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Sourced<T: Serialize> {
    /// The value.
    pub value: T,
    /// Where it came from, a code ([`crate::layout::Source::code`]).
    pub source: &'static str,
    /// The same in words.
    pub source_text: String,
}

/// qmail's numeric ids, or why they could not be decided.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum IdsJson {
    /// Decided.
    Known {
        /// uid of qmailq.
        qmailq: u32,
        /// uid of qmails.
        qmails: u32,
        /// uid of qmailr.
        qmailr: u32,
        /// gid of qmail.
        qmail_gid: u32,
        /// Where they came from, a code.
        source: &'static str,
        /// The same in words.
        source_text: String,
    },
    /// Not decided.
    Unknown {
        /// Why.
        error: String,
    },
}

/// todo's layout and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct TodoJson {
    /// todo and intd are split (the big-todo patch).
    pub big_todo: bool,
    /// Where that came from, a code.
    pub source: &'static str,
    /// The same in words.
    pub source_text: String,
}

/// The layout's decisions, as every tool's header prints them.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutJson {
    /// conf-split.
    pub split: Sourced<u32>,
    /// qmail's ids.
    pub ids: IdsJson,
    /// todo's layout.
    pub todo: TodoJson,
}

impl LayoutJson {
    /// The decisions of `layout`; texts escaped as the text reports print
    /// them.
    pub fn of(layout: &crate::layout::Layout) -> LayoutJson {
        let text = |s: &crate::layout::Source| crate::error::escape_text(&layout.source_text(s));
        LayoutJson {
            split: Sourced {
                value: layout.split.value,
                source: layout.split.source.code(),
                source_text: text(&layout.split.source),
            },
            ids: match &layout.ids {
                Ok(d) => IdsJson::Known {
                    qmailq: d.value.qmailq,
                    qmails: d.value.qmails,
                    qmailr: d.value.qmailr,
                    qmail_gid: d.value.qmail_gid,
                    source: d.source.code(),
                    source_text: text(&d.source),
                },
                Err(e) => IdsJson::Unknown { error: crate::error::escape_text(e) },
            },
            todo: TodoJson {
                big_todo: layout.big_todo.value,
                source: layout.big_todo.source.code(),
                source_text: text(&layout.big_todo.source),
            },
        }
    }
}

/// The queuelifetime in use: `{"seconds": N, "source": "file" or
/// "default", "source_text": "words"}`.
#[derive(Debug, Clone, Serialize)]
pub struct LifetimeJson {
    /// Its value.
    pub seconds: u64,
    /// `file` or `default`.
    pub source: &'static str,
    /// The same in words (the file, or why the default).
    pub source_text: String,
}

impl From<&crate::lifetime::Lifetime> for LifetimeJson {
    fn from(l: &crate::lifetime::Lifetime) -> Self {
        LifetimeJson { seconds: l.seconds, source: l.source_code(), source_text: l.source_text() }
    }
}

/// Writes `v` as compact JSON to `w`.
pub fn write<W: io::Write, T: Serialize + ?Sized>(w: W, v: &T) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, Formatter);
    v.serialize(&mut ser).map_err(io::Error::other)
}

/// `v` as compact JSON text.
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    let mut out = Vec::with_capacity(128);
    // Writing to a Vec fails only when a value cannot be serialized (a
    // map with non-string keys), which the tools' types never are.
    write(&mut out, v).expect("JSON of an in-memory value");
    String::from_utf8(out).expect("the formatter writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct T<'a> {
        text: &'a str,
        #[serde(serialize_with = "bytes")]
        raw: &'a [u8],
    }

    #[test]
    fn byte_rule_and_escapes() {
        let t = T { text: "a\"b\\c\n\u{1}\u{7f}é", raw: b"we\"ird\xff@x\x1b\x7f.\xc3\xa9" };
        assert_eq!(to_string(&t), r#"{"text":"a\"b\\c\n\u0001\u007fé","raw":"we\"ird\u00ff@x\u001b\u007f.é"}"#);
        assert_eq!(to_string(&Bytes(b"")), "\"\"");
        assert_eq!(to_string(&Bytes(b"bad\xff\xc3")), "\"bad\\u00ff\\u00c3\"");
    }

    #[test]
    fn sourced_values_and_ids() {
        let s = Sourced { value: 23u32, source: "option", source_text: "option --split".into() };
        assert_eq!(to_string(&s), r#"{"value":23,"source":"option","source_text":"option --split"}"#);
        let ids = IdsJson::Unknown { error: "no \x1b".into() };
        assert_eq!(to_string(&ids), r#"{"error":"no \u001b"}"#);
        let ids = IdsJson::Known {
            qmailq: 1,
            qmails: 2,
            qmailr: 3,
            qmail_gid: 4,
            source: "passwd",
            source_text: "the user database".into(),
        };
        assert_eq!(
            to_string(&ids),
            r#"{"qmailq":1,"qmails":2,"qmailr":3,"qmail_gid":4,"source":"passwd","source_text":"the user database"}"#
        );
        let l = crate::lifetime::Lifetime {
            seconds: 60,
            source: crate::lifetime::LifetimeSource::Default("x is absent".into()),
        };
        assert_eq!(
            to_string(&LifetimeJson::from(&l)),
            r#"{"seconds":60,"source":"default","source_text":"default: x is absent"}"#
        );
    }
}
