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
//! `"schema_version":` [`SCHEMA_VERSION`].

use std::io;

use serde::Serialize;

/// The version of the documents' shapes (docs/json.md): raised when a
/// field is renamed, removed or changes its type; new fields keep it.
pub const SCHEMA_VERSION: u32 = 2;

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
}
