//! Decimal numbers and durations: seconds, milliseconds, Go-style and
//! protobuf durations, counts.

use std::time::Duration;

use super::{MAX_DELAY, MAX_INPUT};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Trims ASCII whitespace and checks the length bound; `None` for invalid
/// UTF-8 or an over-long input.
pub(super) fn text(value: &[u8]) -> Option<&str> {
    if value.len() > MAX_INPUT {
        return None;
    }
    std::str::from_utf8(value.trim_ascii()).ok()
}

/// A run of ASCII digits as a `u64`; `None` when empty, not all digits, or
/// too large.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A non-negative decimal `123` or `123.456` times `unit_nanos`, bounded by
/// [`MAX_DELAY`]. At most 20 integer digits; fraction digits past the ninth
/// are ignored.
pub(super) fn decimal(s: &str, unit_nanos: u128) -> Option<Duration> {
    decimal_bytes(s.as_bytes(), unit_nanos)
}

/// [`decimal`] on bytes (no UTF-8 check: anything but digits and one dot is
/// refused anyway).
pub(super) fn decimal_bytes(s: &[u8], unit_nanos: u128) -> Option<Duration> {
    // Integer arithmetic on u64 digits: a value too large for them is far
    // beyond MAX_DELAY in any unit.
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], Some(&s[dot + 1..])),
        None => (s, None),
    };
    let mut nanos = u128::from(digits(int)?).checked_mul(unit_nanos)?;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let kept = &frac[..frac.len().min(9)];
        let scale = 10u128.pow(kept.len() as u32);
        let f = u128::from(digits(kept)?);
        nanos = nanos.checked_add(f * unit_nanos / scale)?;
    }
    to_duration(nanos)
}

/// A server's wait: a well-formed [`decimal`] (digits, at most one dot
/// with digits after it) that says more than [`MAX_DELAY`], or more than
/// the arithmetic holds, is [`MAX_DELAY`] — a wait too long to honour,
/// which stops the call (`wait_too_long`) — never dropped as if no wait
/// had been asked.
pub(super) fn server_wait(s: &str, unit_nanos: u128) -> Option<Duration> {
    let well_formed = {
        let b = s.as_bytes();
        let (int, frac) = match b.iter().position(|&c| c == b'.') {
            Some(dot) => (&b[..dot], Some(&b[dot + 1..])),
            None => (b, None),
        };
        !int.is_empty()
            && int.iter().all(u8::is_ascii_digit)
            && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
    };
    if !well_formed {
        return None;
    }
    Some(decimal(s, unit_nanos).unwrap_or(MAX_DELAY))
}

pub(super) fn to_duration(nanos: u128) -> Option<Duration> {
    if nanos > MAX_DELAY.as_nanos() {
        return None;
    }
    // Within MAX_DELAY, so within u64 nanoseconds (584 years).
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// Decimal seconds, integer or fractional: `120`, `1.5`, `0`.
///
/// ```
/// use std::time::Duration;
/// use triage_core::headers::parse_delay_seconds;
/// assert_eq!(parse_delay_seconds("1.5"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_delay_seconds("-1"), None);
/// ```
pub fn parse_delay_seconds(s: &str) -> Option<Duration> {
    text(s.as_bytes()).and_then(|s| decimal(s, NANOS_PER_SEC))
}

/// Decimal milliseconds, integer or fractional: `1500`, `250.5`.
pub fn parse_millis(s: &str) -> Option<Duration> {
    text(s.as_bytes()).and_then(|s| decimal(s, 1_000_000))
}

/// A Go `time.Duration` string, as OpenAI writes its rate-limit resets:
/// `1s`, `6m0s`, `12ms`, `8.64s`, `1h2m3.5s`, `0s` (and `0`). Units `h`, `m`,
/// `s`, `ms`, `us`, `µs`, `ns`.
///
/// ```
/// use std::time::Duration;
/// use triage_core::headers::parse_go_duration;
/// assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
/// assert_eq!(parse_go_duration("8.64s"), Some(Duration::from_millis(8640)));
/// assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
/// assert_eq!(parse_go_duration("12"), None);
/// ```
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    go_duration(s.as_bytes())
}

/// [`parse_go_duration`] on the bytes of a header value.
pub(super) fn go_duration(value: &[u8]) -> Option<Duration> {
    if value.len() > MAX_INPUT {
        return None;
    }
    let mut rest = value.trim_ascii();
    if rest == b"0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let n = rest
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        if n == 0 {
            return None;
        }
        let (number, tail) = rest.split_at(n);
        // The unit, by its first byte: ns, us, µs (U+00B5), μs (U+03BC),
        // ms, s, m, h.
        let (unit, len) = match tail {
            [b'n', b's', ..] => (1u128, 2),
            [b'u', b's', ..] => (1_000, 2),
            [0xC2, 0xB5, b's', ..] | [0xCE, 0xBC, b's', ..] => (1_000, 3),
            [b'm', b's', ..] => (1_000_000, 2),
            [b's', ..] => (NANOS_PER_SEC, 1),
            [b'm', ..] => (60 * NANOS_PER_SEC, 1),
            [b'h', ..] => (3600 * NANOS_PER_SEC, 1),
            _ => return None,
        };
        total = total.checked_add(decimal_bytes(number, unit)?.as_nanos())?;
        rest = &tail[len..];
    }
    to_duration(total)
}

/// A protobuf `Duration` in its JSON form: `"37s"`, `"29.723877525s"`.
pub fn parse_proto_duration(s: &str) -> Option<Duration> {
    let s = text(s.as_bytes())?;
    s.strip_suffix('s').and_then(|n| decimal(n, NANOS_PER_SEC))
}

/// A count for a limit or remaining header: a non-negative integer. Azure's
/// `-1` ("unknown"), any negative, fractional or over-long value is `None`.
pub fn parse_count(value: &[u8]) -> Option<u64> {
    if value.len() > MAX_INPUT {
        return None;
    }
    digits(value.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("1s"), Some(ms(1000)));
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("20ms"), Some(ms(20)));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(ms(3_723_500)));
        assert_eq!(parse_go_duration("1.5us"), Some(Duration::from_nanos(1500)));
        assert_eq!(parse_go_duration("3µs"), Some(Duration::from_micros(3)));
        assert_eq!(
            parse_go_duration("3\u{3bc}s"),
            Some(Duration::from_micros(3))
        );
        assert_eq!(parse_go_duration(" 1m30s "), Some(ms(90_000)));
        for bad in [
            "", "s", "1s2", "-1s", "1x", "1.s", "1e3s", "NaN", "inf", "1 s",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_go_duration("9000h"), None, "over MAX_DELAY");
    }

    #[test]
    fn decimals_and_counts() {
        assert_eq!(parse_delay_seconds("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_delay_seconds(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_delay_seconds("0.1234567891"),
            Some(Duration::from_nanos(123_456_789))
        );
        for bad in [
            "",
            "-1",
            "1e3",
            "NaN",
            "inf",
            "1.",
            ".5",
            "123456789012345678901234567890",
            "1000000000000",
        ] {
            assert_eq!(parse_delay_seconds(bad), None, "{bad}");
        }
        assert_eq!(parse_millis("250.5"), Some(Duration::from_micros(250_500)));
        assert_eq!(
            parse_proto_duration("29.723877525s"),
            Some(Duration::new(29, 723_877_525))
        );
        assert_eq!(parse_proto_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(parse_proto_duration("37"), None);
        assert_eq!(parse_count(b"4999"), Some(4999));
        assert_eq!(parse_count(b"-1"), None);
        assert_eq!(parse_count(b"99.5"), None);
        assert_eq!(parse_count(&[b'1'; 300]), None);
    }

    proptest! {
        #[test]
        fn whole_seconds_parse(n in 0u64..=MAX_DELAY.as_secs()) {
            prop_assert_eq!(parse_delay_seconds(&n.to_string()), Some(Duration::from_secs(n)));
        }

        #[test]
        fn go_components_sum(h in 0u64..100, m in 0u64..60, s in 0u64..60) {
            let expected = Duration::from_secs(h * 3600 + m * 60 + s);
            prop_assert_eq!(parse_go_duration(&format!("{h}h{m}m{s}s")), Some(expected));
        }
    }
}
