//! JSON text for `--json`: this module owns escaping, so every document
//! qkillns prints is valid JSON whatever bytes the queue holds.
//!
//! Byte strings (addresses, which may be any bytes) are written as JSON
//! strings: valid UTF-8 sequences are kept as they are; each byte that is
//! not part of a valid UTF-8 sequence is written as `\u00XX`, the code
//! point of the same value (so `\xff` shows as `\u00ff`, i.e. `ÿ`). Control
//! characters, `"` and `\` are escaped as JSON requires.

use std::fmt::Write;

/// Appends `s` as a JSON string (with its quotes).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        push_char(out, c);
    }
    out.push('"');
}

/// Appends a byte string as a JSON string (see the module notes for bytes
/// that are not UTF-8).
pub fn push_bytes(out: &mut String, b: &[u8]) {
    out.push('"');
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(out, c);
        }
        for &x in chunk.invalid() {
            let _ = write!(out, "\\u{:04x}", x);
        }
    }
    out.push('"');
}

fn push_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => out.push(c),
    }
}

/// A JSON string of `s`, as a new `String`.
pub fn string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    push_str(&mut o, s);
    o
}

/// A JSON string of the bytes `b`, as a new `String`.
pub fn bytes(b: &[u8]) -> String {
    let mut o = String::with_capacity(b.len() + 2);
    push_bytes(&mut o, b);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(string("é"), "\"é\"");
    }

    #[test]
    fn non_utf8_bytes_become_code_points() {
        assert_eq!(bytes(b"a\xffb"), "\"a\\u00ffb\"");
        assert_eq!(bytes("é".as_bytes()), "\"é\"");
        assert_eq!(bytes(b"\x1b[1m"), "\"\\u001b[1m\"");
        assert_eq!(bytes(b""), "\"\"");
    }
}
