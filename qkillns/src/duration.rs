//! Durations on the command line (`--older-than`, `--younger-than`) and
//! ages in listings: this module owns their syntax.
//!
//! A duration is one or more `<number><unit>` terms, units `w` (week),
//! `d` (day), `h` (hour), `m` (minute), `s` (second), e.g. `36h`, `2d`,
//! `90m`, `1w`, `1d12h`. A bare number is refused: `7` could mean days or
//! seconds, and guessing wrong would remove the wrong mail.

/// Parses a duration into seconds.
pub fn parse(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; use e.g. 36h, 2d, 90m, 30s, 1w or 1d12h".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            'w' | 'W' => 7 * 86_400,
            'd' | 'D' => 86_400,
            'h' | 'H' => 3_600,
            'm' | 'M' => 60,
            's' | 'S' => 1,
            _ => return Err(format!("{text:?}: unknown unit {c:?}; units are w, d, h, m, s (e.g. 1d12h)")),
        };
        if digits.is_empty() {
            return Err(format!("{text:?}: unit {c:?} without a number before it"));
        }
        let n: u64 = digits.parse().map_err(|_| format!("{text:?}: number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: duration too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{text:?}: {digits} has no unit; write e.g. {digits}d, {digits}h or {digits}s"));
    }
    if total > i64::MAX as u64 {
        return Err(format!("{text:?}: duration too large"));
    }
    Ok(total)
}

/// An age in seconds, short and readable: `40s`, `12m`, `5h12m`, `2d03h`.
/// Negative ages (a time stamp in the future) show as `-` followed by the
/// age.
pub fn format_age(secs: i64) -> String {
    if secs < 0 {
        return format!("-{}", format_age(secs.saturating_neg()));
    }
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse("36h"), Ok(36 * 3600));
        assert_eq!(parse("2d"), Ok(2 * 86_400));
        assert_eq!(parse("90m"), Ok(5400));
        assert_eq!(parse("30s"), Ok(30));
        assert_eq!(parse("1w"), Ok(604_800));
        assert_eq!(parse("1d12h"), Ok(86_400 + 12 * 3600));
        assert_eq!(parse("1w2d3h4m5s"), Ok(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5));
        assert_eq!(parse(" 0s "), Ok(0));
    }

    #[test]
    fn mistakes_are_refused() {
        assert!(parse("").is_err());
        assert!(parse("7").unwrap_err().contains("no unit"));
        assert!(parse("2x").unwrap_err().contains("unknown unit"));
        assert!(parse("d").unwrap_err().contains("without a number"));
        assert!(parse("1d2").is_err());
        assert!(parse("-1d").is_err());
        assert!(parse("99999999999999999999d").is_err());
        assert!(parse("999999999999999w").is_err());
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(40), "40s");
        assert_eq!(format_age(12 * 60 + 5), "12m05s");
        assert_eq!(format_age(5 * 3600 + 12 * 60), "5h12m");
        assert_eq!(format_age(2 * 86_400 + 3 * 3600 + 59), "2d03h");
        assert_eq!(format_age(-90), "-1m30s");
    }
}
