//! The one place that decides what is secret, so that nothing the layer
//! writes (events, packets, errors) carries a key.
//!
//! - Headers: `authorization`, `proxy-authorization`, `cookie`, `set-cookie`,
//!   `api-key`, `x-api-key`, `x-goog-api-key`, `x-amz-security-token`,
//!   `x-auth-token`, `x-csrf-token`, and any name containing `token`,
//!   `secret`, `password`, `apikey`, `api-key`, `api_key`, `session`,
//!   `signature`, `credential` or `cookie` (except rate-limit headers such
//!   as `x-ratelimit-remaining-tokens`).
//! - Query parameters: `key`, `code`, `auth`, `sig`, `pwd`, `passwd`, and any
//!   name that contains `token`, `secret`, `password`, `signature`,
//!   `credential` or `apikey`, or has `key` as a word (`api_key`, `api-key`,
//!   `key_id`; not `monkey` or `keyword`).
//! - Free text: `Bearer …`/`Basic …` credentials, `sk-…` keys, Google `AIza…`
//!   keys, AWS access key IDs, and sensitive query values inside URLs.
//!
//! # Example
//!
//! ```
//! use triage_core::redact;
//!
//! let uri: http::Uri = "https://user:pw@api.example.com/v1/x?api_key=abc&api-version=2024-02-01#frag".parse().unwrap();
//! assert_eq!(redact::uri(&uri), "https://api.example.com/v1/x?api_key=[redacted]&api-version=2024-02-01");
//! assert_eq!(redact::text("auth failed for Bearer sk-proj-abcdefghijklmnop1234"), "auth failed for Bearer [redacted]");
//! ```

use std::borrow::Cow;

use http::{HeaderName, HeaderValue, Uri};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

const MAX_VALUE: usize = 256;
const MAX_URI: usize = 2048;

const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "x-amz-security-token",
    "x-auth-token",
    "x-csrf-token",
];

const SECRET_HEADER_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "apikey",
    "api-key",
    "api_key",
    "session",
    "signature",
    "credential",
    "cookie",
];

const SECRET_PARAMS: &[&str] = &["key", "code", "auth", "sig", "pwd", "passwd", "pass"];
const SECRET_PARAM_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "signature",
    "credential",
    "apikey",
];

/// Whether a header's value must never be written.
pub fn is_sensitive_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    // Rate-limit headers count tokens; they are not tokens.
    SECRET_HEADERS.contains(&name)
        || (!name.contains("ratelimit") && SECRET_HEADER_PARTS.iter().any(|p| name.contains(p)))
}

/// Whether a query parameter's value must never be written (ASCII
/// case-insensitive).
pub fn is_sensitive_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&lower.as_str())
        || SECRET_PARAM_PARTS.iter().any(|p| lower.contains(p))
        || lower.split(['_', '-', '.']).any(|word| word == "key")
}

/// A header value fit to write: [`REDACTED`] for sensitive names, else the
/// value with control characters replaced, capped at 256 bytes.
pub fn header_value<'a>(name: &HeaderName, value: &'a HeaderValue) -> Cow<'a, str> {
    if is_sensitive_header(name) {
        return Cow::Borrowed(REDACTED);
    }
    let bytes = value.as_bytes();
    let cut = &bytes[..bytes.len().min(MAX_VALUE)];
    match std::str::from_utf8(cut) {
        Ok(s) if s.bytes().all(|b| (b' '..=b'~').contains(&b)) && cut.len() == bytes.len() => {
            Cow::Borrowed(s)
        }
        _ => Cow::Owned(
            String::from_utf8_lossy(cut)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        ),
    }
}

/// `scheme://host[:port]/path?query` with user info and fragment dropped and
/// sensitive query values replaced; at most 2 KiB.
pub fn uri(uri: &Uri) -> String {
    let mut out = String::with_capacity(64);
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(host) = uri.host() {
        out.push_str(host);
    }
    if let Some(port) = uri.port_u16() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(uri.path());
    if let Some(query) = uri.query() {
        out.push('?');
        push_query(&mut out, query);
    }
    cap(out)
}

/// The same as [`uri`] for a string that may not parse as one (best effort).
pub fn url_str(s: &str) -> String {
    if let Ok(parsed) = s.parse::<Uri>() {
        return uri(&parsed);
    }
    let without_fragment = s.split('#').next().unwrap_or("");
    let (before, query) = match without_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (without_fragment, None),
    };
    let mut out = String::new();
    // Drop user info: anything between "://" and an '@' before the path.
    match before.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let authority = &rest[..authority_end];
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            out.push_str(host);
            out.push_str(&rest[authority_end..]);
        }
        None => out.push_str(before),
    }
    if let Some(query) = query {
        out.push('?');
        push_query(&mut out, query);
    }
    cap(out)
}

fn push_query(out: &mut String, query: &str) {
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if is_sensitive_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
}

fn cap(mut s: String) -> String {
    if s.len() > MAX_URI {
        let mut end = MAX_URI;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Free text with secrets scrubbed; borrowed (no allocation) when nothing
/// matched.
pub fn text(s: &str) -> Cow<'_, str> {
    if !might_hold_secret(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut previous = "";
    while let Some(token_start) = rest.find(|c: char| !is_separator(c)) {
        out.push_str(&rest[..token_start]);
        rest = &rest[token_start..];
        let token_end = rest.find(is_separator).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after_scheme =
            previous.eq_ignore_ascii_case("bearer") || previous.eq_ignore_ascii_case("basic");
        previous = token;
        if after_scheme || is_key_like(token) {
            out.push_str(REDACTED);
        } else if token.contains('?') && token.contains('=') {
            let (head, query) = token.split_once('?').unwrap_or((token, ""));
            out.push_str(head);
            out.push('?');
            push_query(&mut out, query);
        } else if let Some((name, _)) = token.split_once('=').filter(|(n, _)| is_sensitive_param(n))
        {
            out.push_str(name);
            out.push('=');
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        rest = &rest[token_end..];
    }
    out.push_str(rest);
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '(' | ')' | '<' | '>' | ',' | '`' | '[' | ']' | '{' | '}'
        )
}

fn might_hold_secret(s: &str) -> bool {
    // One pass: look at what follows each byte that could start a secret.
    let b = s.as_bytes();
    let at = |i: usize, word: &[u8]| {
        b.get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let exact = |i: usize, word: &[u8]| b.get(i..i + word.len()) == Some(word);
    b.iter().enumerate().any(|(i, &c)| match c {
        b'=' => true,
        b's' | b'S' => at(i, b"sk-"),
        b'b' | b'B' => at(i, b"bearer") || at(i, b"basic"),
        b'A' => exact(i, b"AIza") || exact(i, b"AKIA") || exact(i, b"ASIA"),
        _ => false,
    })
}

fn is_key_like(token: &str) -> bool {
    let token = token.trim_end_matches(['.', ';', ':']);
    let tail_ok = |t: &str, min: usize| {
        t.len() >= min
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(rest) = token.strip_prefix("sk-") {
        return tail_ok(rest, 13);
    }
    if let Some(rest) = token.strip_prefix("AIza") {
        return rest.len() >= 30 && tail_ok(rest, 30);
    }
    if let Some(rest) = token
        .strip_prefix("AKIA")
        .or_else(|| token.strip_prefix("ASIA"))
    {
        return rest.len() == 16
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers() {
        for name in [
            "authorization",
            "proxy-authorization",
            "api-key",
            "x-api-key",
            "x-goog-api-key",
            "cookie",
            "set-cookie",
            "x-amz-security-token",
            "x-my-session-id",
            "x-client-secret",
        ] {
            assert!(
                is_sensitive_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
        for name in [
            "x-request-id",
            "content-type",
            "retry-after",
            "x-ratelimit-remaining-tokens",
        ] {
            assert!(
                !is_sensitive_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
        let v = HeaderValue::from_static("Bearer sk-abc");
        assert_eq!(
            header_value(&HeaderName::from_static("authorization"), &v),
            REDACTED
        );
        let v = HeaderValue::from_static("req_123");
        assert!(matches!(
            header_value(&HeaderName::from_static("x-request-id"), &v),
            Cow::Borrowed("req_123")
        ));
    }

    #[test]
    fn params() {
        for p in [
            "key",
            "KEY",
            "api_key",
            "api-key",
            "apikey",
            "access_token",
            "token",
            "sig",
            "signature",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "client_secret",
            "password",
            "code",
            "key_id",
        ] {
            assert!(is_sensitive_param(p), "{p}");
        }
        for p in ["api-version", "model", "monkey", "keyword", "page", "alt"] {
            assert!(!is_sensitive_param(p), "{p}");
        }
    }

    #[test]
    fn uris() {
        let u: Uri = "https://generativelanguage.googleapis.com/v1beta/models/x:streamGenerateContent?key=AIzaSyA1234567890abcdefghijklmnopqrstu&alt=sse".parse().unwrap();
        assert_eq!(
            uri(&u),
            "https://generativelanguage.googleapis.com/v1beta/models/x:streamGenerateContent?key=[redacted]&alt=sse"
        );
        let u: Uri = "http://127.0.0.1:8080/a".parse().unwrap();
        assert_eq!(uri(&u), "http://127.0.0.1:8080/a");
        assert_eq!(
            url_str("https://user:pass@host.example/p?token=t#x"),
            "https://host.example/p?token=[redacted]"
        );
        assert_eq!(url_str("not a url?sig=abc"), "not a url?sig=[redacted]");
    }

    #[test]
    fn free_text() {
        let chain = "client error (Connect): request to https://api.example.com/v1?api_key=abc123&x=1 failed; header Authorization: Bearer sk-proj-ABCDEFGHIJKLMNOPQRSTUV was rejected";
        let clean = text(chain);
        assert!(!clean.contains("abc123"), "{clean}");
        assert!(!clean.contains("sk-proj-ABCDEFGHIJKLMNOPQRSTUV"), "{clean}");
        assert!(
            clean.contains("https://api.example.com/v1?api_key=[redacted]&x=1"),
            "{clean}"
        );
        assert!(clean.contains("client error (Connect)"));
        assert!(matches!(
            text("tcp connect error: Connection refused (os error 111)"),
            Cow::Borrowed(_)
        ));
        assert_eq!(text("key AKIAIOSFODNN7EXAMPLE used"), "key [redacted] used");
        assert_eq!(text("sk-ant-api03-abcdefghijklmnop"), REDACTED);
    }

    proptest! {
        #[test]
        fn keys_never_survive(prefix in "\\PC{0,40}", key in "[A-Za-z0-9]{20,40}", suffix in "\\PC{0,40}") {
            let secret = format!("sk-{key}");
            let input = format!("{prefix} {secret} {suffix}");
            prop_assert!(!text(&input).contains(&secret));
        }

        #[test]
        fn never_panics(s in "\\PC{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = text(&s);
            let _ = url_str(&s);
            let _ = is_sensitive_param(&s);
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let _ = header_value(&HeaderName::from_static("x-any"), &v);
            }
        }
    }
}
