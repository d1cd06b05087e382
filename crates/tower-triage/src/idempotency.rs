//! Idempotency keys: which requests get one ([`IdempotencyKeys`]), and the
//! keys the layer mints.
//!
//! A POST that failed in a way that leaves its fate unknown (a 500, a 502
//! or 504, a connection lost after the request went out) may have been
//! processed: sending it again may charge twice. An API that honours an
//! idempotency key answers a repeat of a key it has seen with its first
//! answer, so a POST that carries one is safe to send again. The layer
//! mints one key per logical request and sends it on every attempt, and the
//! idempotency gate lets such a request be retried.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use http::{HeaderMap, HeaderName, HeaderValue};
use triage_core::Profile;

/// Which requests get an idempotency key minted by the layer
/// ([`TriageLayer::idempotency_keys`](crate::TriageLayer::idempotency_keys)).
///
/// A key is minted for a request whose method is not idempotent (POST,
/// PATCH), when retries are on and the request carries no value in the
/// header yet: a key the caller set is never replaced. The same key goes
/// out on every attempt of the request, and the escalation packet names it
/// ([`Packet::idempotency_key`](triage_core::Packet::idempotency_key)).
///
/// ```
/// use http::HeaderName;
/// use tower_triage::{IdempotencyKeys, TriageLayer};
///
/// // An API of your own that honours `X-Idempotency-Key`.
/// let layer = TriageLayer::new()
///     .idempotency_keys(IdempotencyKeys::Header(HeaderName::from_static("x-idempotency-key")));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdempotencyKeys {
    /// Into the header the call's profile names
    /// ([`Profile::idempotency_key_header`]): `Idempotency-Key` for
    /// [`Profile::stripe`], none for the others. The default.
    #[default]
    FromProfile,
    /// Into this header, for every API.
    Header(HeaderName),
    /// Never: only a key the caller set counts.
    Off,
}

impl IdempotencyKeys {
    /// The header a key goes into for a call under `profile`, if any.
    pub(crate) fn header<'a>(&'a self, profile: &'a Profile) -> Option<&'a HeaderName> {
        match self {
            IdempotencyKeys::FromProfile => profile.idempotency_key_header(),
            IdempotencyKeys::Header(name) => Some(name),
            IdempotencyKeys::Off => None,
        }
    }
}

/// The header a caller's key is recognised in whatever the settings.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Puts a fresh key into `headers` under `name`, unless a value is there
/// already (the caller's key is never replaced). For a request whose
/// method is not idempotent (`Method::is_idempotent`).
pub(crate) fn mint_into(headers: &mut HeaderMap, name: &HeaderName) {
    if !headers.contains_key(name) {
        headers.insert(name.clone(), mint());
    }
}

/// The key the request carries: in `name` (the settings' header), else in
/// `Idempotency-Key`.
pub(crate) fn key_of<'a>(
    headers: &'a HeaderMap,
    name: Option<&HeaderName>,
) -> Option<&'a HeaderValue> {
    name.and_then(|name| headers.get(name))
        .or_else(|| headers.get(IDEMPOTENCY_KEY))
}

thread_local! {
    /// A keyed hash seeded from the operating system's random source (per
    /// thread), and a counter: each key hashes a fresh count, so keys are
    /// unpredictable without the seed and distinct within the thread.
    static MINT: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
}

/// A fresh key: a version 4 UUID (122 random bits, lower-case hex), the
/// form Stripe's own libraries send.
pub(crate) fn mint() -> HeaderValue {
    let (high, low) = MINT.with(|(seed, count)| {
        let n = count.get();
        count.set(n.wrapping_add(1));
        (seed.hash_one((n, 0u8)), seed.hash_one((n, 1u8)))
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_version_4_uuids_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let key = mint();
            let text = key.to_str().unwrap();
            assert_eq!(text.len(), 36, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{text}"
            );
            assert!(
                text.bytes()
                    .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{text}"
            );
            assert_eq!(&text[14..15], "4", "version: {text}");
            assert!(
                matches!(&text[19..20], "8" | "9" | "a" | "b"),
                "variant: {text}"
            );
            assert!(seen.insert(text.to_owned()), "a key came twice: {text}");
        }
    }

    #[test]
    fn keys_from_two_threads_differ() {
        let here = mint();
        let there = std::thread::spawn(mint).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn a_key_is_minted_only_where_none_is() {
        let name = HeaderName::from_static("idempotency-key");
        let mut headers = HeaderMap::new();
        mint_into(&mut headers, &name);
        let minted = headers[&name].clone();
        mint_into(&mut headers, &name);
        assert_eq!(headers[&name], minted, "a key in place is kept");
        let mut own = HeaderMap::new();
        own.insert(&name, HeaderValue::from_static("caller-key-1"));
        mint_into(&mut own, &name);
        assert_eq!(own[&name], "caller-key-1");
        assert_eq!(own.len(), 1);
    }

    #[test]
    fn the_header_follows_the_settings() {
        let custom = HeaderName::from_static("x-once");
        assert_eq!(
            IdempotencyKeys::FromProfile.header(Profile::stripe()),
            Some(&IDEMPOTENCY_KEY)
        );
        assert_eq!(
            IdempotencyKeys::FromProfile.header(Profile::generic()),
            None
        );
        assert_eq!(
            IdempotencyKeys::Header(custom.clone()).header(Profile::generic()),
            Some(&custom)
        );
        assert_eq!(IdempotencyKeys::Off.header(Profile::stripe()), None);
    }
}
