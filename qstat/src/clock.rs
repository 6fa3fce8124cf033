//! Time for reports: this module owns the current time, the local-time
//! stamp of `--watch` and of the oldest message, and how ages are written.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `t` in local time as `YYYY-MM-DD HH:MM:SS +hhmm` (the zone from `TZ` or
/// /etc/localtime; UTC when it cannot be had).
pub fn local_stamp(t: i64) -> String {
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    let tt = t as libc::time_t;
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // re-entrant form and fills `tm` when it returns non-null.
    let ok = unsafe { !libc::localtime_r(&tt, tm.as_mut_ptr()).is_null() };
    if !ok {
        return utc_stamp(t);
    }
    // SAFETY: initialised by localtime_r (or zeroed, which is valid too).
    let tm = unsafe { tm.assume_init() };
    let off = tm.tm_gmtoff / 60;
    let sign = if off < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off.abs() / 60,
        off.abs() % 60
    )
}

/// `t` in UTC as `YYYY-MM-DD HH:MM:SS +0000`.
pub fn utc_stamp(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// `t` in UTC as ISO 8601: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar, counting in 400-year eras of 146097 days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year, from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

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
