//! Time for reports: this module owns the current time and how ages are
//! written; dates (the local-time stamp of `--watch`, ISO 8601 UTC) are
//! [`qcommon::human`]'s, the tools' one calendar.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

pub use qcommon::human::{iso_utc, local_stamp, utc_stamp};

/// An age in seconds as `3d 04h 05m`, `4h 05m 06s`, `5m 06s` or `6s`.
pub fn age_text(secs: i64) -> String {
    if secs < 0 {
        return format!("in the future by {}", age_text(-secs));
    }
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_stamp(0), "1970-01-01 00:00:00 +0000");
        assert_eq!(utc_stamp(951_782_400), "2000-02-29 00:00:00 +0000");
        assert_eq!(utc_stamp(1_700_000_000), "2023-11-14 22:13:20 +0000");
        assert_eq!(utc_stamp(-1), "1969-12-31 23:59:59 +0000");
    }

    #[test]
    fn local_stamp_has_a_zone() {
        let s = local_stamp(1_700_000_000);
        assert_eq!(s.len(), "2023-11-14 22:13:20 +0000".len(), "{s}");
        assert!(s.starts_with("2023-11-1"), "{s}");
    }

    #[test]
    fn ages() {
        assert_eq!(age_text(5), "5s");
        assert_eq!(age_text(65), "1m 05s");
        assert_eq!(age_text(3 * 3600 + 65), "3h 01m 05s");
        assert_eq!(age_text(8 * 86_400 + 2 * 3600 + 13 * 60 + 9), "8d 02h 13m");
        assert_eq!(age_text(-5), "in the future by 5s");
        assert!(now() > 1_600_000_000);
    }
}
