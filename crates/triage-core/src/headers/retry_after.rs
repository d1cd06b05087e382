//! The server's retry hints: `Retry-After`, `retry-after-ms`,
//! `x-amz-retry-after`, `x-should-retry` and `Stripe-Should-Retry`.

use std::time::{Duration, SystemTime};

use super::number::{server_wait, text};
use crate::time::parse_http_date;

/// A parsed `Retry-After` value (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// delay-seconds (fractional seconds accepted, as the Stainless SDKs do).
    Delay(Duration),
    /// An HTTP-date.
    Date(SystemTime),
}

impl RetryAfter {
    /// Parses a header value: seconds first, then an HTTP-date. Seconds
    /// over [`MAX_DELAY`](super::MAX_DELAY), or too many to hold, are capped
    /// to it (a wait too long, never no wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// use triage_core::headers::RetryAfter;
    /// assert_eq!(RetryAfter::parse(b"120"), Some(RetryAfter::Delay(Duration::from_secs(120))));
    /// assert!(matches!(RetryAfter::parse(b"Wed, 21 Oct 2015 07:28:00 GMT"), Some(RetryAfter::Date(_))));
    /// assert_eq!(RetryAfter::parse(b"soon"), None);
    /// assert_eq!(
    ///     RetryAfter::parse(b"99999999999999999999999"),
    ///     Some(RetryAfter::Delay(triage_core::headers::MAX_DELAY))
    /// );
    /// ```
    pub fn parse(value: &[u8]) -> Option<RetryAfter> {
        let s = text(value)?;
        if let Some(delay) = server_wait(s, 1_000_000_000) {
            return Some(RetryAfter::Delay(delay));
        }
        let date = parse_http_date(s)?;
        Some(RetryAfter::Date(date))
    }

    /// The wait from `now`; a date in the past gives zero. A date further
    /// ahead than [`MAX_DELAY`](super::MAX_DELAY) is capped to it.
    pub fn delay_from(self, now: SystemTime) -> Duration {
        match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::Date(t) => t
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(super::MAX_DELAY),
        }
    }
}

/// `retry-after-ms` / `x-ms-retry-after-ms`: decimal milliseconds.
///
/// A wait over [`MAX_DELAY`](super::MAX_DELAY) (or too large to hold) is
/// capped to it, as for `Retry-After` and `x-amz-retry-after`: the retry
/// rules then stop the call as a wait too long.
pub fn parse_retry_after_ms(value: &[u8]) -> Option<Duration> {
    text(value).and_then(|s| server_wait(s, 1_000_000))
}

/// `x-amz-retry-after`: integer milliseconds.
pub fn parse_amz_retry_after(value: &[u8]) -> Option<Duration> {
    text(value)
        .filter(|s| !s.contains('.'))
        .and_then(|s| server_wait(s, 1_000_000))
}

/// `x-should-retry` / `Stripe-Should-Retry`: `true` or `false` (ASCII
/// case-insensitive).
pub fn parse_should_retry(value: &[u8]) -> Option<bool> {
    let s = text(value)?;
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            RetryAfter::parse(b"1.5"),
            Some(RetryAfter::Delay(Duration::from_millis(1500)))
        );
        let date = RetryAfter::parse(b"Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480 - 30);
        assert_eq!(date.delay_from(now), Duration::from_secs(30));
        assert_eq!(
            date.delay_from(now + Duration::from_secs(60)),
            Duration::ZERO
        );
        for bad in [&b"-5"[..], b"1e3", b"NaN", b"", &[0xff, 0xfe]] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad:?}");
        }
        assert_eq!(RetryAfter::parse(&[b'1'; 300]), None);
        // A well-formed wait past the parsers' bound is the bound: too long
        // to honour, never dropped.
        for long in [
            &b"1000000000000"[..],
            b"31622401",
            b"99999999999999999999999.5",
        ] {
            assert_eq!(
                RetryAfter::parse(long),
                Some(RetryAfter::Delay(crate::headers::MAX_DELAY)),
                "{long:?}"
            );
        }
    }

    #[test]
    fn millisecond_hints() {
        assert_eq!(
            parse_retry_after_ms(b"1500"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after_ms(b"20.5"),
            Some(Duration::from_micros(20_500))
        );
        assert_eq!(
            parse_amz_retry_after(b"2500"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_amz_retry_after(b"2.5"), None);
        let huge = b"99999999999999999999999999";
        assert_eq!(parse_retry_after_ms(huge), Some(crate::headers::MAX_DELAY));
        assert_eq!(parse_amz_retry_after(huge), Some(crate::headers::MAX_DELAY));
        assert_eq!(parse_retry_after_ms(b"1e5"), None);
    }

    #[test]
    fn should_retry() {
        assert_eq!(parse_should_retry(b"true"), Some(true));
        assert_eq!(parse_should_retry(b" FALSE "), Some(false));
        assert_eq!(parse_should_retry(b"1"), None);
    }
}
