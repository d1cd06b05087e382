//! Civil time without a date library: HTTP-dates, RFC 3339, and formatting
//! for the escalation packet.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const WEEKDAYS_LONG: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm); `None` before 1970.
fn days_from_civil(year: u32, month: u32, day: u32) -> Option<u64> {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Builds a time from validated fields; `None` if any is out of range.
fn make(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    nanos: u32,
) -> Option<SystemTime> {
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = days * DAY + u64::from(hour) * 3600 + u64::from(min) * 60 + u64::from(sec);
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn digits(s: &str, len: usize) -> Option<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_index(name: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

/// `hh:mm:ss`
fn clock(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.split(':');
    let h = digits(parts.next()?, 2)?;
    let m = digits(parts.next()?, 2)?;
    let sec = digits(parts.next()?, 2)?;
    parts.next().is_none().then_some((h, m, sec))
}

/// Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete
/// RFC 850 and asctime forms.
pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.len() > 64 {
        return None;
    }
    let (weekday, rest) = s.split_once([',', ' '])?;
    if let Some(rest) = rest
        .strip_prefix(' ')
        .filter(|_| s.as_bytes().get(weekday.len()) == Some(&b','))
    {
        if WEEKDAYS.contains(&weekday) {
            // Sun, 06 Nov 1994 08:49:37 GMT
            let mut f = rest.split(' ');
            let day = digits(f.next()?, 2)?;
            let month = month_index(f.next()?)?;
            let year = digits(f.next()?, 4)?;
            let (h, m, sec) = clock(f.next()?)?;
            if f.next()? != "GMT" || f.next().is_some() {
                return None;
            }
            return make(year, month, day, h, m, sec, 0);
        }
        if WEEKDAYS_LONG.contains(&weekday) {
            // Sunday, 06-Nov-94 08:49:37 GMT
            let mut f = rest.split(' ');
            let mut date = f.next()?.split('-');
            let day = digits(date.next()?, 2)?;
            let month = month_index(date.next()?)?;
            let yy = digits(date.next()?, 2)?;
            if date.next().is_some() {
                return None;
            }
            // RFC 9110: a two-digit year more than 50 years ahead is in the past.
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            let (h, m, sec) = clock(f.next()?)?;
            if f.next()? != "GMT" || f.next().is_some() {
                return None;
            }
            return make(year, month, day, h, m, sec, 0);
        }
        return None;
    }
    // Sun Nov  6 08:49:37 1994
    if !WEEKDAYS.contains(&weekday) {
        return None;
    }
    let mut f = rest.split(' ').filter(|p| !p.is_empty());
    let month = month_index(f.next()?)?;
    let day_text = f.next()?;
    if day_text.is_empty() || day_text.len() > 2 || !day_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day: u32 = day_text.parse().ok()?;
    let (h, m, sec) = clock(f.next()?)?;
    let year = digits(f.next()?, 4)?;
    if f.next().is_some() {
        return None;
    }
    make(year, month, day, h, m, sec, 0)
}

/// Parses an RFC 3339 date-time (`2026-02-25T20:02:37Z`, fractions, offsets).
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.len() < 20 || s.len() > 64 || !s.is_ascii() {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let mut d = date.split('-');
    let year = digits(d.next()?, 4)?;
    let month = digits(d.next()?, 2)?;
    let day = digits(d.next()?, 2)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (h, m, sec) = clock(rest.get(..8)?)?;
    let mut rest = &rest[8..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        for (i, b) in frac
            .bytes()
            .take(9)
            .take_while(u8::is_ascii_digit)
            .enumerate()
        {
            nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &frac[n..];
    }
    let base = make(year, month, day, h, m, sec, nanos)?;
    match rest {
        "Z" | "z" => Some(base),
        offset => {
            let (sign, hm) = match offset.as_bytes().first()? {
                b'+' => (1i64, &offset[1..]),
                b'-' => (-1i64, &offset[1..]),
                _ => return None,
            };
            let (oh, om) = hm.split_once(':')?;
            let (oh, om) = (digits(oh, 2)?, digits(om, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let shift = Duration::from_secs(u64::from(oh * 3600 + om * 60));
            // Local time = UTC + offset, so UTC = local − offset.
            if sign > 0 {
                base.checked_sub(shift).filter(|t| *t >= UNIX_EPOCH)
            } else {
                base.checked_add(shift)
            }
        }
    }
}

fn split(t: SystemTime) -> (u64, u32, u32, u64, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / DAY);
    (year, month, day, secs % DAY, since.subsec_millis())
}

/// Writes `2026-11-22T18:42:32.123Z`.
pub(crate) fn write_rfc3339_millis(t: SystemTime, f: &mut impl fmt::Write) -> fmt::Result {
    let (year, month, day, secs, millis) = split(t);
    if year > 9999 {
        return write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }
    // By hand: every failure's packet stamps its time, and the formatting
    // machinery costs ten times as much for these fixed-width digits.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u64::from(month));
    put(8, 2, u64::from(day));
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    put(20, 3, u64::from(millis));
    // Only ASCII digits and punctuation were written.
    f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

/// `2026-11-22T18:42:32.123Z` (times before 1970 print as the epoch).
pub(crate) fn format_rfc3339_millis(t: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    let _ = write_rfc3339_millis(t, &mut out);
    out
}

/// An IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn format_http_date(t: SystemTime) -> String {
    let (year, month, day, secs, _) = split(t);
    let days = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / DAY;
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[((days + 3) % 7) as usize];
    let mut out = String::with_capacity(29);
    let _ = write!(
        out,
        "{weekday}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn http_date_forms() {
        let t = at(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(at(1_445_412_480))
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(at(1_709_164_800))
        );
    }

    #[test]
    fn rfc3339_forms() {
        let t = at(1_772_049_757);
        assert_eq!(parse_rfc3339("2026-02-25T20:02:37Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-02-25t20:02:37z"), Some(t));
        assert_eq!(parse_rfc3339("2026-02-25T21:02:37+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-02-25T19:02:37-01:00"), Some(t));
        assert_eq!(
            parse_rfc3339("2026-02-25T20:02:37.250Z"),
            Some(t + Duration::from_millis(250))
        );
        for bad in [
            "2026-02-25",
            "2026-13-01T00:00:00Z",
            "2026-02-25T20:02:37",
            "1969-12-31T23:59:59Z",
            "2026-02-25T20:02:37.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(
            format_rfc3339_millis(at(1_772_049_757) + Duration::from_millis(7)),
            "2026-02-25T20:02:37.007Z"
        );
        assert_eq!(
            format_http_date(at(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    proptest! {
        #[test]
        fn round_trips(secs in 0u64..253_402_300_799) {
            let t = at(secs);
            prop_assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_millis(t)), Some(t));
            let (y, m, d) = civil_from_days(secs / DAY);
            prop_assert_eq!(days_from_civil(y as u32, m, d), Some(secs / DAY));
        }

        #[test]
        fn stamps_match_the_formatting_machinery(secs in 0u64..400_000_000_000, millis in 0u64..1000) {
            let t = at(secs) + Duration::from_millis(millis);
            let (year, month, day, rest, ms) = split(t);
            let expected = format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
                rest / 3600,
                rest / 60 % 60,
                rest % 60
            );
            prop_assert_eq!(format_rfc3339_millis(t), expected);
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse_http_date(&s);
            let _ = parse_rfc3339(&s);
        }
    }
}
