//! Waits that providers write into error messages ("Please try again in
//! 1.146s.", "Please retry after 6 seconds.").

use std::time::Duration;

use super::number::{decimal, parse_go_duration};

const PHRASES: [&str; 4] = ["try again in", "retry in", "retry after", "replenished in"];
const SCAN: usize = 4096;

/// The wait written in an error message, if any.
///
/// ```
/// use std::time::Duration;
/// use triage_core::headers::delay_in_message;
/// assert_eq!(delay_in_message("Please try again in 1.146s. Visit ..."), Some(Duration::from_millis(1146)));
/// assert_eq!(delay_in_message("Please retry after 6 seconds."), Some(Duration::from_secs(6)));
/// assert_eq!(delay_in_message("Quota will be replenished in 2.12 days."), Some(Duration::from_secs(183_168)));
/// assert_eq!(delay_in_message("Internal error"), None);
/// ```
pub fn delay_in_message(msg: &str) -> Option<Duration> {
    let bytes = &msg.as_bytes()[..msg.len().min(SCAN)];
    let mut from = 0;
    while from < bytes.len() {
        let (at, phrase) = PHRASES
            .iter()
            .filter_map(|p| find_ignore_case(&bytes[from..], p.as_bytes()).map(|i| (from + i, *p)))
            .min_by_key(|(i, _)| *i)?;
        let after = at + phrase.len();
        if let Some(d) = wait_at(&bytes[after..]) {
            return Some(d);
        }
        from = after;
    }
    None
}

fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// ` 1.146s`, ` 6m0s`, ` 20ms`, ` 6 seconds`, ` 2.12 days`.
fn wait_at(rest: &[u8]) -> Option<Duration> {
    let rest = std::str::from_utf8(rest.get(..rest.len().min(64))?)
        .or_else(|e| std::str::from_utf8(&rest[..e.valid_up_to()]))
        .ok()?;
    let rest = rest.trim_start();
    let number_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    if number_len == 0 {
        return None;
    }
    let number = rest[..number_len].trim_end_matches('.');
    let tail = &rest[number_len..];
    // A Go-style duration glued to the number: 1.146s, 6m0s, 20ms.
    let glued_len = tail
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'.')
        .count();
    if glued_len > 0 {
        let token = rest[..number_len + glued_len].trim_end_matches('.');
        return parse_go_duration(token);
    }
    let word = tail.trim_start();
    let word_len = word.bytes().take_while(u8::is_ascii_alphabetic).count();
    let unit: u128 = match word[..word_len].to_ascii_lowercase().trim_end_matches('s') {
        "second" | "sec" => 1_000_000_000,
        "millisecond" | "m" => 1_000_000,
        "minute" | "min" => 60_000_000_000,
        "hour" => 3_600_000_000_000,
        "day" => 86_400_000_000_000,
        _ => return None,
    };
    decimal(number, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_messages() {
        let ms = Duration::from_millis;
        assert_eq!(delay_in_message("Please try again in 20ms."), Some(ms(20)));
        assert_eq!(
            delay_in_message("Please try again in 6m0s."),
            Some(ms(360_000))
        );
        assert_eq!(
            delay_in_message("Please retry in 47.88s."),
            Some(ms(47_880))
        );
        assert_eq!(
            delay_in_message("Try again in 26 seconds."),
            Some(ms(26_000))
        );
        assert_eq!(
            delay_in_message("please RETRY AFTER 86400 seconds"),
            Some(ms(86_400_000))
        );
        assert_eq!(
            delay_in_message("retry after a while, or try again in 1 minute"),
            Some(ms(60_000))
        );
        assert_eq!(delay_in_message("retry in 99999999 days"), None);
        assert_eq!(delay_in_message("try again in"), None);
    }
}
