//! The key layout and the channel's messages (see the crate docs), and
//! reading them back. What comes from Redis is input like any other
//! remote string: bounded, free of control characters, or dropped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_triage::{RateBucket, SharedWindow};

/// The longest route and profile kept.
pub(crate) const MAX_ROUTE: usize = 256;
pub(crate) const MAX_PROFILE: usize = 64;

/// What one window is written as.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) message: String,
    /// The key's time to live, in milliseconds: until the window reopens.
    pub(crate) ttl_ms: u64,
}

fn clean(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.bytes().any(|b| b.is_ascii_control())
}

/// A window's key, value, message and TTL under `prefix`; `None` when it
/// has reopened already or has a field that would break the layout.
pub(crate) fn encode(prefix: &str, window: &SharedWindow) -> Option<Encoded> {
    // Rounded up to the millisecond: a replica that wakes a moment early
    // is refused by the window it waited for.
    let millis_up = |d: Duration| d.as_nanos().div_ceil(1_000_000);
    let until = millis_up(window.until.duration_since(UNIX_EPOCH).ok()?);
    let ttl = millis_up(window.until.duration_since(SystemTime::now()).ok()?);
    let fits = |s: &str, max| clean(s, max) && !s.contains('|');
    if ttl == 0 || !fits(&window.route, MAX_ROUTE) || !fits(&window.profile, MAX_PROFILE) {
        return None;
    }
    let bucket = window.bucket.as_str();
    Some(Encoded {
        key: format!("{prefix}win:{}:{bucket}", window.route),
        value: format!("{until}|{}", window.profile),
        message: format!("{}\t{bucket}\t{until}\t{}", window.route, window.profile),
        ttl_ms: u64::try_from(ttl).ok()?,
    })
}

fn window(route: &str, bucket: &str, until_ms: &str, profile: &str) -> Option<SharedWindow> {
    if !clean(route, MAX_ROUTE) || !clean(profile, MAX_PROFILE) {
        return None;
    }
    let until = UNIX_EPOCH.checked_add(Duration::from_millis(until_ms.parse().ok()?))?;
    Some(SharedWindow {
        route: route.to_owned(),
        profile: profile.to_owned(),
        bucket: RateBucket::parse(bucket)?,
        until,
    })
}

/// A channel message (`route\tbucket\tuntil_ms\tprofile`), if well formed.
pub(crate) fn decode_message(payload: &[u8]) -> Option<SharedWindow> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut fields = text.split('\t');
    let (route, bucket, until, profile) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    window(route, bucket, until, profile)
}

/// A key (`{prefix}win:{route}:{bucket}`) and its value
/// (`until_ms|profile`), if well formed.
pub(crate) fn decode_key(prefix: &str, key: &str, value: &str) -> Option<SharedWindow> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("win:")?;
    let (route, bucket) = rest.rsplit_once(':')?;
    let (until, profile) = value.split_once('|')?;
    window(route, bucket, until, profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: u64) -> SharedWindow {
        SharedWindow {
            route: "https://api.openai.com:443".into(),
            profile: "openai".into(),
            bucket: RateBucket::Tokens,
            until: SystemTime::now() + Duration::from_secs(secs),
        }
    }

    #[test]
    fn windows_round_trip_through_keys_and_messages() {
        let w = sample(30);
        let e = encode("triage:prod:", &w).unwrap();
        assert_eq!(e.key, "triage:prod:win:https://api.openai.com:443:tokens");
        assert!(e.ttl_ms > 29_000 && e.ttl_ms <= 30_000, "{}", e.ttl_ms);
        let millis = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        let ceil = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                .div_ceil(1_000_000)
        };
        let from_key = decode_key("triage:prod:", &e.key, &e.value).unwrap();
        let from_message = decode_message(e.message.as_bytes()).unwrap();
        for got in [from_key, from_message] {
            assert_eq!(got.route, w.route);
            assert_eq!(got.profile, w.profile);
            assert_eq!(got.bucket, w.bucket);
            assert_eq!(millis(got.until), ceil(w.until));
            assert!(got.until >= w.until, "never earlier than the window");
        }
    }

    #[test]
    fn malformed_or_hostile_input_is_refused() {
        assert!(encode("p:", &sample(0)).is_none(), "reopened");
        let mut bad = sample(30);
        bad.route = "https://x:443\n".into();
        assert!(encode("p:", &bad).is_none());
        let mut bad = sample(30);
        bad.profile = "a|b".into();
        assert!(encode("p:", &bad).is_none());
        for message in [
            &b"https://a:443\ttokens\t1\topenai\textra"[..],
            b"https://a:443\tnot-a-bucket\t1\topenai",
            b"https://a:443\ttokens\tsoon\topenai",
            b"https://a:443\ttokens\t99999999999999999999999\topenai",
            b"\ttokens\t1\topenai",
            b"https://a:443\ttokens\t1\topen\x1bai",
            b"\xff\xfe",
        ] {
            assert!(decode_message(message).is_none(), "{message:?}");
        }
        let long = "x".repeat(MAX_ROUTE + 1);
        assert!(decode_message(format!("{long}\ttokens\t1\topenai").as_bytes()).is_none());
        assert!(decode_key("p:", "other:win:r:tokens", "1|openai").is_none());
        assert!(decode_key("p:", "p:win:r:tokens", "no-bar").is_none());
    }
}
