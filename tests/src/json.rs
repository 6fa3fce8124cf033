//! A strict JSON checker for the tests of every tool's `--json` output:
//! exactly one value per RFC 8259, no raw control characters in strings
//! (an unescaped file name or Subject line would show up as one). It
//! checks, it does not parse into values: most tests look for their
//! fields as text. [`Json`] reads a document into values, as far as
//! qstat's tests need (it panics on invalid JSON and on duplicate keys).

use std::collections::BTreeMap;

/// Ok when `s` is exactly one valid JSON value (RFC 8259), strings
/// without raw control characters.
pub fn check_json(s: &str) -> Result<(), String> {
    let b = s.trim_end_matches('\n').as_bytes();
    let mut i = 0;
    ws(b, &mut i);
    value(b, &mut i, 0)?;
    ws(b, &mut i);
    if i != b.len() {
        return Err(format!("trailing bytes at {i}: {:?}", String::from_utf8_lossy(&b[i..(i + 40).min(b.len())])));
    }
    Ok(())
}

fn ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
        *i += 1;
    }
}

fn value(b: &[u8], i: &mut usize, depth: usize) -> Result<(), String> {
    if depth > 200 {
        return Err("nested too deep".into());
    }
    let err = |i: usize, what: &str| format!("{what} at byte {i}");
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(());
            }
            loop {
                ws(b, i);
                string(b, i)?;
                ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(err(*i, "expected ':'"));
                }
                *i += 1;
                ws(b, i);
                value(b, i, depth + 1)?;
                ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(());
                    }
                    _ => return Err(err(*i, "expected ',' or '}'")),
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(());
            }
            loop {
                ws(b, i);
                value(b, i, depth + 1)?;
                ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(());
                    }
                    _ => return Err(err(*i, "expected ',' or ']'")),
                }
            }
        }
        Some(b'"') => string(b, i),
        Some(b't') if b[*i..].starts_with(b"true") => {
            *i += 4;
            Ok(())
        }
        Some(b'f') if b[*i..].starts_with(b"false") => {
            *i += 5;
            Ok(())
        }
        Some(b'n') if b[*i..].starts_with(b"null") => {
            *i += 4;
            Ok(())
        }
        Some(c) if *c == b'-' || c.is_ascii_digit() => {
            if b[*i] == b'-' {
                *i += 1;
            }
            let digits = |i: &mut usize| {
                let s = *i;
                while *i < b.len() && b[*i].is_ascii_digit() {
                    *i += 1;
                }
                *i > s
            };
            if b.get(*i) == Some(&b'0') {
                *i += 1;
            } else if !digits(i) {
                return Err(err(*i, "bad number"));
            }
            if b.get(*i) == Some(&b'.') {
                *i += 1;
                if !digits(i) {
                    return Err(err(*i, "bad fraction"));
                }
            }
            if matches!(b.get(*i), Some(b'e' | b'E')) {
                *i += 1;
                if matches!(b.get(*i), Some(b'+' | b'-')) {
                    *i += 1;
                }
                if !digits(i) {
                    return Err(err(*i, "bad exponent"));
                }
            }
            Ok(())
        }
        _ => Err(err(*i, "expected a value")),
    }
}

fn string(b: &[u8], i: &mut usize) -> Result<(), String> {
    if b.get(*i) != Some(&b'"') {
        return Err(format!("expected a string at byte {i}"));
    }
    *i += 1;
    while let Some(&c) = b.get(*i) {
        match c {
            b'"' => {
                *i += 1;
                return Ok(());
            }
            b'\\' => {
                match b.get(*i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => *i += 2,
                    Some(b'u') if b.len() >= *i + 6 && b[*i + 2..*i + 6].iter().all(u8::is_ascii_hexdigit) => *i += 6,
                    _ => return Err(format!("bad escape at byte {i}")),
                }
                continue;
            }
            c if c < 0x20 => return Err(format!("raw control byte {c:#04x} in a string at byte {i}")),
            _ => *i += 1,
        }
    }
    Err("unterminated string".into())
}

/// A JSON value, as far as the tests need.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object (a duplicate key is an error).
    Obj(BTreeMap<String, Json>),
}

impl Json {
    /// Parses one document; panics with a message on invalid JSON.
    pub fn parse(text: &str) -> Json {
        let b = text.trim_end().as_bytes();
        let mut p = 0;
        let v = parse_value(b, &mut p);
        assert_eq!(p, b.len(), "trailing bytes in JSON at {p}: {text}");
        v
    }

    /// The member `k` of an object (panics when absent).
    pub fn get(&self, k: &str) -> &Json {
        match self {
            Json::Obj(m) => m.get(k).unwrap_or_else(|| panic!("no member {k:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }

    /// A member path like `detail.null_sender.total`.
    pub fn at(&self, path: &str) -> &Json {
        path.split('.').fold(self, |v, k| v.get(k))
    }

    /// As an unsigned number.
    pub fn u(&self) -> u64 {
        match self {
            Json::Num(n) if *n >= 0.0 && n.fract() == 0.0 => *n as u64,
            _ => panic!("not an unsigned number: {self:?}"),
        }
    }

    /// As a string.
    pub fn s(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }

    /// As an array.
    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("not an array: {self:?}"),
        }
    }
}

fn skip_ws(b: &[u8], p: &mut usize) {
    while *p < b.len() && matches!(b[*p], b' ' | b'\t' | b'\n' | b'\r') {
        *p += 1;
    }
}

fn parse_value(b: &[u8], p: &mut usize) -> Json {
    skip_ws(b, p);
    assert!(*p < b.len(), "unexpected end of JSON");
    let v = match b[*p] {
        b'{' => {
            *p += 1;
            let mut m = BTreeMap::new();
            skip_ws(b, p);
            if b[*p] == b'}' {
                *p += 1;
            } else {
                loop {
                    skip_ws(b, p);
                    let Json::Str(k) = parse_string(b, p) else { unreachable!() };
                    skip_ws(b, p);
                    assert_eq!(b[*p], b':', "expected : at {p}");
                    *p += 1;
                    let v = parse_value(b, p);
                    assert!(m.insert(k.clone(), v).is_none(), "duplicate key {k}");
                    skip_ws(b, p);
                    match b[*p] {
                        b',' => *p += 1,
                        b'}' => {
                            *p += 1;
                            break;
                        }
                        c => panic!("expected , or }} at {p}, found {:?}", c as char),
                    }
                }
            }
            Json::Obj(m)
        }
        b'[' => {
            *p += 1;
            let mut a = Vec::new();
            skip_ws(b, p);
            if b[*p] == b']' {
                *p += 1;
            } else {
                loop {
                    a.push(parse_value(b, p));
                    skip_ws(b, p);
                    match b[*p] {
                        b',' => *p += 1,
                        b']' => {
                            *p += 1;
                            break;
                        }
                        c => panic!("expected , or ] at {p}, found {:?}", c as char),
                    }
                }
            }
            Json::Arr(a)
        }
        b'"' => parse_string(b, p),
        b't' if b[*p..].starts_with(b"true") => {
            *p += 4;
            Json::Bool(true)
        }
        b'f' if b[*p..].starts_with(b"false") => {
            *p += 5;
            Json::Bool(false)
        }
        b'n' if b[*p..].starts_with(b"null") => {
            *p += 4;
            Json::Null
        }
        _ => {
            let start = *p;
            while *p < b.len() && matches!(b[*p], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                *p += 1;
            }
            let t = std::str::from_utf8(&b[start..*p]).unwrap();
            Json::Num(t.parse().unwrap_or_else(|_| panic!("bad number {t:?} at {start}")))
        }
    };
    skip_ws(b, p);
    v
}

fn parse_string(b: &[u8], p: &mut usize) -> Json {
    assert_eq!(b[*p], b'"', "expected a string at {p}");
    *p += 1;
    let mut s = String::new();
    loop {
        let c = b[*p];
        match c {
            b'"' => {
                *p += 1;
                return Json::Str(s);
            }
            b'\\' => {
                let e = b[*p + 1];
                *p += 2;
                match e {
                    b'"' => s.push('"'),
                    b'\\' => s.push('\\'),
                    b'/' => s.push('/'),
                    b'n' => s.push('\n'),
                    b'r' => s.push('\r'),
                    b't' => s.push('\t'),
                    b'b' => s.push('\u{8}'),
                    b'f' => s.push('\u{c}'),
                    b'u' => {
                        let h = std::str::from_utf8(&b[*p..*p + 4]).unwrap();
                        let n = u32::from_str_radix(h, 16).expect("hex escape");
                        s.push(char::from_u32(n).expect("no surrogates expected"));
                        *p += 4;
                    }
                    _ => panic!("bad escape at {p}"),
                }
            }
            0..=0x1f => panic!("raw control character in a JSON string at {p}"),
            _ => {
                let len = match c {
                    0..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                s.push_str(std::str::from_utf8(&b[*p..*p + len]).expect("JSON must be UTF-8"));
                *p += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_json;

    #[test]
    fn accepts_json_and_rejects_the_rest() {
        assert!(check_json(r#"{"a": [1, -2.5e3, true, null, "x\u0001"], "b": {}}"#).is_ok());
        assert!(check_json("{\"a\": \"raw\u{1}byte\"}").is_err());
        assert!(check_json(r#"{"a": 1} {"b": 2}"#).is_err());
        assert!(check_json(r#"{"a" 1}"#).is_err());
        assert!(check_json(r#"["unterminated"#).is_err());
        assert!(check_json(&"[".repeat(500)).is_err());
    }
}
