//! Text for people: times as ISO 8601 UTC with their age beside them, and
//! untrusted text shown as UTF-8 when the locale is UTF-8 (control
//! characters and invalid bytes still escaped). Only text here; the tools
//! print.
//!
//! This module owns the calendar of every tool: a time in seconds since
//! the epoch as a date and time, in UTC or in the local zone (`TZ`, else
//! /etc/localtime, else UTC), through `jiff`. A time outside (about) the years
//! -9999 to 9999 (a hostile time stamp) is written `@SECONDS`, as
//! `date -d @SECONDS` reads it.

use std::fmt::Write as _;

use jiff::tz::TimeZone;

/// The calendar fields of a time in a zone, and the zone's offset from UTC
/// in seconds; `None` outside jiff's range (about the years -9999 to 9999).
fn civil(t: i64, tz: &TimeZone) -> Option<(jiff::civil::DateTime, i32)> {
    let ts = jiff::Timestamp::from_second(t).ok()?;
    Some((tz.to_datetime(ts), tz.to_offset(ts).seconds()))
}

/// `t` as `date` followed by `time`, each a format of its (year, month,
/// day) and (hour, minute, second); `@t` out of range.
fn stamp(t: i64, tz: &TimeZone, sep: &str, tail: impl FnOnce(i32) -> String) -> String {
    match civil(t, tz) {
        Some((c, off)) => format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}{}",
            c.year(),
            c.month(),
            c.day(),
            c.hour(),
            c.minute(),
            c.second(),
            tail(off)
        ),
        None => format!("@{t}"),
    }
}

/// `t` (seconds since the epoch) as ISO 8601 UTC: `2026-12-05T07:12:00Z`.
pub fn iso_utc(t: i64) -> String {
    stamp(t, &TimeZone::UTC, "T", |_| "Z".into())
}

/// `t` in UTC as `YYYY-MM-DD HH:MM:SS +0000`.
pub fn utc_stamp(t: i64) -> String {
    stamp(t, &TimeZone::UTC, " ", |_| " +0000".into())
}

/// `t` in local time as `YYYY-MM-DD HH:MM:SS +hhmm` (the zone from `TZ`
/// or /etc/localtime; UTC when it cannot be had). The offset is cut to
/// whole minutes.
pub fn local_stamp(t: i64) -> String {
    zone_stamp(t, &TimeZone::system())
}

fn zone_stamp(t: i64, tz: &TimeZone) -> String {
    stamp(t, tz, " ", |off| {
        let m = off / 60;
        format!(" {}{:02}{:02}", if m < 0 { '-' } else { '+' }, m.abs() / 60, m.abs() % 60)
    })
}

/// `t` in UTC as `YYYYMMDDTHHMMSSZ` (names of files and directories).
pub fn compact_utc(t: i64) -> String {
    match civil(t, &TimeZone::UTC) {
        Some((c, _)) => {
            format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", c.year(), c.month(), c.day(), c.hour(), c.minute(), c.second())
        }
        None => format!("@{t}"),
    }
}

/// An age in seconds in at most two units: `3d 4h`, `4h 5m`, `5m 6s`, `6s`.
pub fn short_age(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A time with its age: `2026-12-05T07:12:00Z (3d 4h ago)`, or `(... in the
/// future)` for a time after `now`.
pub fn when(t: i64, now: i64) -> String {
    if t > now {
        format!("{} ({} in the future)", iso_utc(t), short_age(t - now))
    } else {
        format!("{} ({} ago)", iso_utc(t), short_age(now - t))
    }
}

/// Whether the locale is UTF-8: the first of LC_ALL, LC_CTYPE and LANG that
/// is set (and not empty) names a UTF-8 character set (`.UTF-8`, `.utf8`,
/// any case).
pub fn utf8_locale() -> bool {
    locale_is_utf8(|k| std::env::var_os(k))
}

/// [`utf8_locale`] with the environment given by `get`.
pub fn locale_is_utf8(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    for k in ["LC_ALL", "LC_CTYPE", "LANG"] {
        if let Some(v) = get(k).filter(|v| !v.is_empty()) {
            let v = v.to_string_lossy().to_ascii_lowercase();
            let charset = v.split('@').next().unwrap_or("").rsplit_once('.').map(|(_, c)| c.to_string());
            return matches!(charset.as_deref(), Some("utf-8" | "utf8"));
        }
    }
    false
}

/// Characters escaped even in UTF-8 text: controls (C0, DEL, C1), and the
/// bidirectional overrides and isolates, which can make a terminal show
/// text in another order than it is.
fn must_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Untrusted bytes for a terminal. In UTF-8 (`utf8`), valid UTF-8 is kept
/// and only control characters (as `\n`, `\t`, `\r`, `\u{..}`) and
/// invalid bytes (`\xNN`) are escaped; otherwise every byte that is not
/// printable ASCII is escaped, as [`crate::error::Escaped`] does. A
/// backslash is doubled in both.
pub fn display_bytes(bytes: &[u8], utf8: bool) -> String {
    if !utf8 {
        return crate::error::Escaped(bytes).to_string();
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x80 && must_escape(c) => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if must_escape(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_and_ages() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(iso_utc(221_858_481_600), "9000-06-01T12:00:00Z");
        assert_eq!(iso_utc(-62_135_596_800), "0001-01-01T00:00:00Z");
        assert_eq!(iso_utc(i64::MAX), format!("@{}", i64::MAX));
        assert_eq!(utc_stamp(951_782_400), "2000-02-29 00:00:00 +0000");
        assert_eq!(compact_utc(1_795_869_296), "20261128T123456Z");
        assert_eq!(compact_utc(i64::MIN), format!("@{}", i64::MIN));
        let zone = |secs: i32| TimeZone::fixed(jiff::tz::Offset::from_seconds(secs).unwrap());
        assert_eq!(zone_stamp(1_700_000_000, &zone(-5 * 3600)), "2023-11-14 17:13:20 -0500");
        assert_eq!(zone_stamp(1_700_000_000, &zone(5 * 3600 + 45 * 60)), "2023-11-15 03:58:20 +0545");
        assert_eq!(zone_stamp(0, &zone(-(3600 + 30))), "1969-12-31 22:59:30 -0100");
        assert_eq!(zone_stamp(1_700_000_000, &TimeZone::UTC), utc_stamp(1_700_000_000));
        assert_eq!(local_stamp(1_700_000_000).len(), "2023-11-14 22:13:20 +0000".len());
        assert_eq!(short_age(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(short_age(65), "1m 5s");
        assert_eq!(when(1_700_000_000, 1_700_000_000 + 7200 + 60), "2023-11-14T22:13:20Z (2h 1m ago)");
        assert_eq!(when(1_700_000_060, 1_700_000_000), "2023-11-14T22:14:20Z (1m 0s in the future)");
    }

    #[test]
    fn locale() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| std::ffi::OsString::from(v))
        };
        assert!(locale_is_utf8(env(&[("LANG", "en_US.UTF-8")])));
        assert!(locale_is_utf8(env(&[("LC_CTYPE", "de_DE.utf8"), ("LANG", "C")])));
        assert!(!locale_is_utf8(env(&[("LC_ALL", "C"), ("LANG", "en_US.UTF-8")])));
        assert!(locale_is_utf8(env(&[("LC_ALL", ""), ("LANG", "es_ES.UTF-8@euro")])));
        assert!(!locale_is_utf8(env(&[("LANG", "en_US.ISO-8859-1")])));
        assert!(!locale_is_utf8(env(&[])));
    }

    #[test]
    fn display() {
        let s = "\u{a1}Oferta!\x1b[2J\u{202e}\u{85}\\".as_bytes();
        assert_eq!(display_bytes(s, true), "\u{a1}Oferta!\\x1b[2J\\u{202e}\\u{85}\\\\");
        assert_eq!(display_bytes(b"a\xffb\n", true), "a\\xffb\\n");
        assert_eq!(display_bytes("\u{a1}".as_bytes(), false), "\\xc2\\xa1");
    }
}
