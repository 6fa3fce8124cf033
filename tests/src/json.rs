//! A strict JSON checker for the tests of every tool's `--json` output:
//! exactly one value per RFC 8259, no raw control characters in strings
//! (an unescaped file name or Subject line would show up as one). It
//! checks, it does not parse into values: the tests look for their fields
//! as text.

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
