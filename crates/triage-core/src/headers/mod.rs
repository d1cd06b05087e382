//! Pure, typed parsers for the header values that tell when to retry and how
//! much quota is left, and whether a body is a stream ([`is_streaming_media_type`]).
//!
//! Every parser returns `None` ("unknown") for garbage, empty, negative,
//! NaN, exponent, overflowing or over-long (over 256 bytes) input, and for
//! waits above [`MAX_DELAY`]: a bad header never panics and never makes a
//! caller wait without bound. None of them allocates.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use triage_core::headers::{parse_go_duration, parse_retry_after_ms, RetryAfter};
//!
//! assert_eq!(parse_retry_after_ms(b"1500"), Some(Duration::from_millis(1500)));
//! assert_eq!(RetryAfter::parse(b"2").map(|r| r.delay_from(SystemTime::now())), Some(Duration::from_secs(2)));
//! assert_eq!(parse_go_duration("1h2m3.5s"), Some(Duration::from_millis(3_723_500)));
//! assert_eq!(RetryAfter::parse(b"-3"), None);
//! ```

use std::time::Duration;

mod media;
mod message;
mod number;
mod ratelimit;
mod reset;
mod retry_after;

pub use media::is_streaming_media_type;
pub use message::delay_in_message;
pub use number::{
    parse_count, parse_delay_seconds, parse_go_duration, parse_millis, parse_proto_duration,
};
pub use ratelimit::{
    PolicyEntries, PolicyEntry, QuotaUnit, RateLimitEntries, RateLimitEntry, most_restrictive,
    policy_entries, ratelimit_entries,
};
pub use reset::{ResetFormat, parse_reset};
pub use retry_after::{
    RetryAfter, parse_amz_retry_after, parse_retry_after_ms, parse_should_retry,
};

/// The longest wait any parser returns: 366 days. Longer values are
/// "unknown".
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Inputs longer than this are rejected without being scanned.
const MAX_INPUT: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    proptest! {
        #[test]
        fn no_parser_panics_or_exceeds_max_delay(bytes in prop::collection::vec(any::<u8>(), 0..300), s in "\\PC{0,300}") {
            let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let text = String::from_utf8_lossy(&bytes);
            for input in [text.as_ref(), s.as_str()] {
                let b = input.as_bytes();
                let delays = [
                    RetryAfter::parse(b).map(|r| r.delay_from(now)),
                    parse_retry_after_ms(b),
                    parse_amz_retry_after(b),
                    parse_go_duration(input),
                    parse_proto_duration(input),
                    parse_delay_seconds(input),
                    parse_millis(input),
                    parse_reset(b, ResetFormat::Auto, now),
                    parse_reset(b, ResetFormat::EpochSeconds, now),
                    parse_reset(b, ResetFormat::Rfc3339, SystemTime::UNIX_EPOCH),
                    delay_in_message(input),
                    most_restrictive(input).and_then(|e| e.reset),
                ];
                for d in delays.into_iter().flatten() {
                    prop_assert!(d <= MAX_DELAY, "{d:?} from {input:?}");
                }
                let _ = parse_count(b);
                let _ = parse_should_retry(b);
                let _ = is_streaming_media_type(b);
                let _ = policy_entries(input).count();
            }
        }
    }
}
