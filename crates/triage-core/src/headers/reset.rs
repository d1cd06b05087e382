//! Rate-limit reset values: relative durations, delta seconds, epoch
//! seconds, RFC 3339 times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::MAX_DELAY;
use super::number::{decimal, decimal_bytes, go_duration, parse_go_duration, text};
use crate::time::parse_rfc3339;

/// How a provider writes its reset headers.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ResetFormat {
    /// A Go duration (`6m0s`), as OpenAI sends it.
    GoDuration,
    /// Seconds from now (Kong, the IETF drafts up to -06).
    DeltaSeconds,
    /// Seconds since the Unix epoch (GitHub).
    EpochSeconds,
    /// An RFC 3339 time (Anthropic).
    Rfc3339,
    /// Guess from the value: a unit letter means a Go duration, a date shape
    /// RFC 3339, an integer of 10 digits or more epoch seconds, otherwise
    /// delta seconds.
    #[default]
    Auto,
}

/// The time from `now` until the reset written in `value`; a reset in the
/// past gives zero.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use triage_core::headers::parse_reset;
/// use triage_core::ResetFormat;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// assert_eq!(parse_reset(b"1800000060", ResetFormat::EpochSeconds, now), Some(Duration::from_secs(60)));
/// assert_eq!(parse_reset(b"6m0s", ResetFormat::GoDuration, now), Some(Duration::from_secs(360)));
/// assert_eq!(parse_reset(b"30", ResetFormat::Auto, now), Some(Duration::from_secs(30)));
/// ```
pub fn parse_reset(value: &[u8], format: ResetFormat, now: SystemTime) -> Option<Duration> {
    // The common forms, straight from the bytes.
    match format {
        ResetFormat::GoDuration => return go_duration(value),
        ResetFormat::DeltaSeconds if value.len() <= super::MAX_INPUT => {
            return decimal_bytes(value.trim_ascii(), 1_000_000_000);
        }
        _ => {}
    }
    let s = text(value)?;
    let format = match format {
        ResetFormat::Auto => guess(s),
        other => other,
    };
    match format {
        ResetFormat::GoDuration => parse_go_duration(s),
        ResetFormat::DeltaSeconds => decimal(s, 1_000_000_000),
        ResetFormat::EpochSeconds => until(UNIX_EPOCH.checked_add(decimal_epoch(s)?)?, now),
        ResetFormat::Rfc3339 => until(parse_rfc3339(s)?, now),
        ResetFormat::Auto => None,
    }
}

fn guess(s: &str) -> ResetFormat {
    let b = s.as_bytes();
    if b.len() >= 20
        && b.get(4) == Some(&b'-')
        && b.get(10).is_some_and(|c| matches!(c, b'T' | b't' | b' '))
    {
        ResetFormat::Rfc3339
    } else if b.iter().any(|c| c.is_ascii_alphabetic()) || s.contains('µ') || s.contains('μ') {
        ResetFormat::GoDuration
    } else if b.iter().take_while(|c| c.is_ascii_digit()).count() >= 10 {
        ResetFormat::EpochSeconds
    } else {
        ResetFormat::DeltaSeconds
    }
}

/// Epoch seconds may exceed MAX_DELAY (they are absolute); parse them with
/// their own bound (year 9999).
fn decimal_epoch(s: &str) -> Option<Duration> {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    if int.is_empty() || int.len() > 12 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    (secs <= 253_402_300_799).then(|| Duration::from_secs(secs))
}

fn until(reset: SystemTime, now: SystemTime) -> Option<Duration> {
    let wait = reset.duration_since(now).unwrap_or(Duration::ZERO);
    (wait <= MAX_DELAY).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format() {
        let now = UNIX_EPOCH + Duration::from_secs(1_772_049_737);
        assert_eq!(
            parse_reset(b"2026-02-25T20:02:37Z", ResetFormat::Rfc3339, now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parse_reset(b"2026-02-25T20:02:37Z", ResetFormat::Auto, now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parse_reset(b"8.64s", ResetFormat::Auto, now),
            Some(Duration::from_millis(8640))
        );
        assert_eq!(
            parse_reset(b"1772049797", ResetFormat::Auto, now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_reset(b"1772049000", ResetFormat::EpochSeconds, now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_reset(b"0", ResetFormat::Auto, now),
            Some(Duration::ZERO)
        );
        // Epoch far beyond MAX_DELAY, garbage, negative.
        assert_eq!(
            parse_reset(b"99999999999", ResetFormat::EpochSeconds, now),
            None
        );
        assert_eq!(parse_reset(b"-1", ResetFormat::Auto, now), None);
        assert_eq!(parse_reset(b"soon", ResetFormat::Auto, now), None);
    }
}
