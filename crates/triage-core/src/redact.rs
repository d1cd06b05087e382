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

/// The parts of a header name that make it sensitive ([`secret_part_at`]
/// matches them; a test holds the two together).
#[cfg_attr(not(test), allow(dead_code))]
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

/// Query parameters whose values are harmless and worth reading in a
/// packet; every other query value is redacted (its name kept).
pub const HARMLESS_PARAMS: &[&str] = &[
    "api-version",
    "api_version",
    "version",
    "alt",
    "format",
    "limit",
    "page",
    "per_page",
    "order",
    "stream",
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
///
/// Cheap enough for every request (no substring searcher is built): a
/// layer that keeps no copy of a request checks each of its header names.
pub fn is_sensitive_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    // Rate-limit headers count tokens; they are not tokens.
    let bytes = name.as_bytes();
    SECRET_HEADERS.contains(&name)
        || ((0..bytes.len()).any(|at| secret_part_at(&bytes[at..]))
            && !bytes.windows(9).any(|w| w == b"ratelimit"))
}

/// [`is_sensitive_header`], with the common request headers answered by
/// a comparison of standard names (a few instructions each).
fn may_hold_secret(name: &HeaderName) -> bool {
    use http::header;
    if *name == header::AUTHORIZATION
        || *name == header::PROXY_AUTHORIZATION
        || *name == header::COOKIE
    {
        return true;
    }
    let plain = [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::ACCEPT,
        header::ACCEPT_ENCODING,
        header::USER_AGENT,
        header::HOST,
    ];
    !plain.contains(name) && is_sensitive_header(name)
}

/// Whether one of [`SECRET_HEADER_PARTS`] starts `rest`: only the parts
/// with its first byte are compared.
fn secret_part_at(rest: &[u8]) -> bool {
    let parts: &[&[u8]] = match rest.first() {
        Some(b't') => &[b"token"],
        Some(b's') => &[b"secret", b"session", b"signature"],
        Some(b'p') => &[b"password"],
        Some(b'a') => &[b"apikey", b"api-key", b"api_key"],
        Some(b'c') => &[b"credential", b"cookie"],
        _ => return false,
    };
    parts.iter().any(|p| rest.starts_with(p))
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

/// `scheme://host[:port]/path?query` with user info and fragment dropped,
/// key-like path pieces replaced, and every query value replaced but those
/// of [`HARMLESS_PARAMS`] (the names are kept); at most 2 KiB.
///
/// ```
/// let uri = "https://u:p@api.test/v1/x?api-version=2024-06-01&jwt=eyJhbGc&session=abc".parse().unwrap();
/// assert_eq!(
///     triage_core::redact::uri(&uri),
///     "https://api.test/v1/x?api-version=2024-06-01&jwt=[redacted]&session=[redacted]"
/// );
/// ```
pub fn uri(uri: &Uri) -> String {
    let mut out = String::with_capacity(64);
    if let Some(scheme) = uri.scheme_str() {
        push_piece(&mut out, scheme);
        out.push_str("://");
    }
    if let Some(host) = uri.host() {
        push_path(&mut out, host);
    }
    if let Some(port) = uri.port_u16() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    push_path(&mut out, uri.path());
    if let Some(query) = uri.query() {
        out.push('?');
        push_query(&mut out, query);
    }
    cap(out)
}

/// Whether `name` is one of [`HARMLESS_PARAMS`] (ASCII case-insensitive):
/// its value is printed as it is.
pub fn is_harmless_param(name: &str) -> bool {
    HARMLESS_PARAMS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// A query with every value replaced but those of [`HARMLESS_PARAMS`]
/// (scrubbed like a path); names kept.
fn push_query(out: &mut String, query: &str) {
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, value)) => {
                push_path(out, name);
                out.push('=');
                let harmless = is_harmless_param(name);
                if harmless {
                    push_path(out, value);
                } else if !value.is_empty() {
                    out.push_str(REDACTED);
                }
            }
            // A bare word (or a path): its key-like pieces are scrubbed.
            None => push_path(out, pair),
        }
    }
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
    let is_scheme = |s: &str| {
        s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    };
    match before
        .split_once("://")
        .filter(|(scheme, _)| is_scheme(scheme))
    {
        Some((scheme, rest)) => {
            push_piece(&mut out, scheme);
            out.push_str("://");
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let authority = &rest[..authority_end];
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            push_path(&mut out, host);
            push_path(&mut out, &rest[authority_end..]);
        }
        None => push_path(&mut out, before),
    }
    if let Some(query) = query {
        out.push('?');
        push_query(&mut out, query);
    }
    cap(out)
}

/// A path, query or list with key-like pieces (`/keys/sk-…`) and the
/// values of sensitive names (`?api_key=…`, `;token=…`, `password=…`)
/// replaced. A sensitive value runs to the next `&` (or the end).
fn push_path(out: &mut String, path: &str) {
    const SEPARATORS: [char; 8] = ['/', '=', ';', ',', '?', '&', ':', '@'];
    let mut rest = path;
    loop {
        let end = rest.find(SEPARATORS).unwrap_or(rest.len());
        let piece = &rest[..end];
        push_piece(out, piece);
        let Some(separator) = rest[end..].chars().next() else {
            break;
        };
        out.push(separator);
        rest = &rest[end + 1..];
        if separator == '=' && is_sensitive_param(piece) {
            let value_end = rest.find('&').unwrap_or(rest.len());
            if value_end > 0 {
                out.push_str(REDACTED);
            }
            rest = &rest[value_end..];
        }
    }
}

fn push_piece(out: &mut String, piece: &str) {
    if is_key_like(piece) {
        out.push_str(REDACTED);
    } else {
        out.push_str(piece);
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

/// Whether `c` would break or disguise a line of output: control
/// characters (C0 with ESC, DEL, C1), bidirectional controls, line and
/// paragraph separators.
pub fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Remote or user-supplied text made safe to print on one line: every
/// [hostile](is_hostile) character becomes `?`, and the text is cut at
/// `max` bytes (on a character boundary) with `…`. Borrowed when it was
/// safe already.
///
/// ```
/// use triage_core::redact::printable;
/// assert_eq!(printable("HTTP/1.1 403 \u{1b}[31mNo\r\n", 64), "HTTP/1.1 403 ?[31mNo??");
/// assert_eq!(printable("abcdef", 3), "abc…");
/// ```
pub fn printable(s: &str, max: usize) -> Cow<'_, str> {
    // Most texts are printable ASCII: a byte test, not a decode per char.
    let ascii_safe = |b: &u8| (0x20..0x7f).contains(b);
    if s.len() <= max && (s.as_bytes().iter().all(ascii_safe) || !s.chars().any(is_hostile)) {
        return Cow::Borrowed(s);
    }
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = s[..end]
        .chars()
        .map(|c| if is_hostile(c) { '?' } else { c })
        .collect();
    if end < s.len() {
        out.push('…');
    }
    Cow::Owned(out)
}

/// `text` with every occurrence of each of `secrets` (values the request
/// itself carried: an API key, a token, a query value) replaced by
/// [`REDACTED`], longest first — whatever they look like, since an upstream
/// may echo them back in an error code, a request ID or a message. Values
/// shorter than 6 bytes are not looked for (they would match ordinary
/// text). Borrowed when none occurs.
///
/// ```
/// use triage_core::redact::scrub_exact;
/// let secrets = ["zq9LongSecretValue77".to_owned()];
/// assert_eq!(
///     scrub_exact("invalid key zq9LongSecretValue77 (code zq9LongSecretValue77)", &secrets),
///     "invalid key [redacted] (code [redacted])"
/// );
/// ```
pub fn scrub_exact<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let mut wanted: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| s.len() >= 6 && text.contains(*s))
        .collect();
    if wanted.is_empty() {
        return Cow::Borrowed(text);
    }
    wanted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in wanted {
        out = out.replace(secret, REDACTED);
    }
    Cow::Owned(out)
}

/// A value the request carried, kept as its length and a 64-bit rolling
/// hash instead of a copy: a layer that keeps no copy of the request (no
/// retries) can still scrub the value from what it writes on a failure
/// ([`scrub_prints`]), at no allocation on the call's way out. Only ASCII
/// values of 6 to 4096 bytes have one.
///
/// ```
/// use triage_core::redact::{Fingerprint, scrub_prints};
/// let print = Fingerprint::of(b"zq9LongSecretValue77").unwrap();
/// assert_eq!(
///     scrub_prints("echoed zq9LongSecretValue77!", &[print]),
///     "echoed [redacted]!"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    len: u32,
    hash: u64,
}

/// The rolling hash's base (odd, so every power is invertible mod 2^64).
const PRINT_BASE: u64 = 0x0000_0100_0000_01b3;

/// The longest value that gets a [`Fingerprint`].
const MAX_PRINT: usize = 4096;

fn print_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |h, b| {
        h.wrapping_mul(PRINT_BASE).wrapping_add(u64::from(*b) + 1)
    })
}

impl Fingerprint {
    /// The fingerprint of `value` (trimmed of spaces), if it is ASCII and
    /// 6 to 4096 bytes long.
    pub fn of(value: &[u8]) -> Option<Fingerprint> {
        let value = value.trim_ascii();
        if value.len() < 6 || value.len() > MAX_PRINT || !value.is_ascii() {
            return None;
        }
        Some(Fingerprint {
            len: value.len() as u32,
            hash: print_hash(value),
        })
    }

    /// Whether this is the empty default (no value).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fingerprints of the values of `headers`' sensitive headers
    /// ([`is_sensitive_header`], or marked sensitive) and of each one's
    /// last word (the token of `Bearer <token>`), the first `N`; the rest
    /// of the array stays empty.
    pub fn of_headers<const N: usize>(headers: &http::HeaderMap) -> [Fingerprint; N] {
        let mut prints = [Fingerprint::default(); N];
        let mut n = 0;
        for (name, value) in headers {
            if n >= N {
                break;
            }
            if !(value.is_sensitive() || may_hold_secret(name)) {
                continue;
            }
            // One pass: the whole value's hash, and its last word's.
            let bytes = value.as_bytes().trim_ascii();
            if !(6..=MAX_PRINT).contains(&bytes.len()) || !bytes.is_ascii() {
                continue;
            }
            let (mut whole, mut word, mut word_len) = (0u64, 0u64, 0usize);
            for b in bytes {
                let v = u64::from(*b) + 1;
                whole = whole.wrapping_mul(PRINT_BASE).wrapping_add(v);
                if *b == b' ' {
                    (word, word_len) = (0, 0);
                } else {
                    word = word.wrapping_mul(PRINT_BASE).wrapping_add(v);
                    word_len += 1;
                }
            }
            prints[n] = Fingerprint {
                len: bytes.len() as u32,
                hash: whole,
            };
            n += 1;
            if word_len >= 6 && word_len < bytes.len() && n < N {
                prints[n] = Fingerprint {
                    len: word_len as u32,
                    hash: word,
                };
                n += 1;
            }
        }
        prints
    }
}

/// `text` with every occurrence of a value one of `prints` was made from
/// replaced by [`REDACTED`] (see [`Fingerprint`]); borrowed when none
/// occurs. A hash collision, one chance in 2^64 per position, only
/// redacts more.
pub fn scrub_prints<'a>(text: &'a str, prints: &[Fingerprint]) -> Cow<'a, str> {
    let bytes = text.as_bytes();
    let mut found: Vec<(usize, usize)> = Vec::new();
    for print in prints {
        let len = print.len as usize;
        if len == 0 || len > bytes.len() {
            continue;
        }
        let top = PRINT_BASE.wrapping_pow(print.len - 1);
        let mut hash = print_hash(&bytes[..len]);
        let mut at = 0;
        loop {
            if hash == print.hash && text.is_char_boundary(at) && text.is_char_boundary(at + len) {
                found.push((at, at + len));
            }
            if at + len >= bytes.len() {
                break;
            }
            hash = hash
                .wrapping_sub((u64::from(bytes[at]) + 1).wrapping_mul(top))
                .wrapping_mul(PRINT_BASE)
                .wrapping_add(u64::from(bytes[at + len]) + 1);
            at += 1;
        }
    }
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    found.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (start, end) in found {
        if end <= done {
            continue;
        }
        if start >= done {
            out.push_str(&text[done..start]);
            out.push_str(REDACTED);
        }
        // An overlapping match extends the redacted span.
        done = end;
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

/// The values a request carried that must never be written back, by exact
/// value (see [`scrub_exact`]): the values of its sensitive headers
/// ([`is_sensitive_header`]) and each of their words (`Bearer <token>`),
/// its query values, its URL's user info; percent-decoded forms too. Values
/// shorter than 6 bytes are left out.
///
/// ```
/// use http::{HeaderMap, HeaderValue, Uri};
/// let uri: Uri = "https://api.test/v1?session=s3ss10n-v4lue".parse().unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("x-api-key", HeaderValue::from_static("zq9LongSecretValue77"));
/// let values = triage_core::redact::request_values(&uri, &headers);
/// assert!(values.contains(&"s3ss10n-v4lue".to_owned()));
/// assert!(values.contains(&"zq9LongSecretValue77".to_owned()));
/// ```
pub fn request_values(uri: &Uri, headers: &http::HeaderMap) -> Vec<String> {
    let mut values = Vec::new();
    any_request_value(uri, headers, &mut |value| {
        let decoded = String::from_utf8_lossy(&percent_decode(value.as_bytes())).into_owned();
        if decoded != value && decoded.len() >= 6 {
            values.push(decoded);
        }
        values.push(value.to_owned());
        false
    });
    values
}

/// Calls `visit` with each value the request carried, trimmed, of 6 bytes
/// or more (see [`request_values`]: a sensitive header's value and each of
/// its words, each query value not under a harmless name, the user info
/// and each of its parts), until it returns `true`; returns whether it
/// did.
fn any_request_value(
    uri: &Uri,
    headers: &http::HeaderMap,
    visit: &mut dyn FnMut(&str) -> bool,
) -> bool {
    let mut one = |value: &str| {
        let value = value.trim();
        value.len() >= 6 && visit(value)
    };
    for (name, value) in headers {
        if is_sensitive_header(name) {
            if let Ok(value) = value.to_str() {
                if one(value) || value.split_whitespace().any(&mut one) {
                    return true;
                }
            }
        }
    }
    if let Some(query) = uri.query() {
        for pair in query.split('&') {
            let found = match pair.split_once('=') {
                // A value under a harmless name is printed as it is.
                Some((name, _)) if is_harmless_param(name) => false,
                Some((_, value)) => one(value),
                None => one(pair),
            };
            if found {
                return true;
            }
        }
    }
    uri.authority()
        .and_then(|a| a.as_str().rsplit_once('@'))
        .is_some_and(|(user_info, _)| one(user_info) || user_info.split(':').any(&mut one))
}

/// Whether `text` may hold a value the request carried (one of
/// [`request_values`]), without allocating: a quick test before
/// [`scrub_exact`] for text that usually holds none (a success's request
/// ID). A value with a `%` escape counts as found (its decoded form is
/// not looked for here).
///
/// ```
/// use http::{HeaderMap, HeaderValue, Uri};
/// let uri: Uri = "https://api.test/v1".parse().unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", HeaderValue::from_static("Bearer zq9LongSecretValue77"));
/// assert!(triage_core::redact::echoes_request("req_zq9LongSecretValue77", &uri, &headers));
/// assert!(!triage_core::redact::echoes_request("req_8f2a", &uri, &headers));
/// ```
pub fn echoes_request(text: &str, uri: &Uri, headers: &http::HeaderMap) -> bool {
    any_request_value(uri, headers, &mut |value| {
        value.contains('%') || text.contains(value)
    })
}

/// `%XX` escapes decoded, as in a URL's user info or query (a bad escape
/// is kept as it is): the form a secret is sent in, to scrub or send it.
///
/// ```
/// assert_eq!(triage_core::redact::percent_decode(b"p%40ss%2"), b"p@ss%2");
/// ```
pub fn percent_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        match (text[i], hex(text.get(i + 1)), hex(text.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
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
        // Text scrubbed before stays as it is: scrubbing is stable.
        if rest[..token_start].ends_with('[') && rest[token_start..].starts_with("redacted]") {
            out.push_str("redacted]");
            rest = &rest[token_start + "redacted]".len()..];
            previous = REDACTED;
            continue;
        }
        rest = &rest[token_start..];
        let token_end = rest.find(is_separator).unwrap_or(rest.len());
        let token = &rest[..token_end];
        // `Bearer <token>` and `Basic <credentials>`, also when the scheme
        // ends a longer token (`…://Bearer <token>`).
        let scheme = previous
            .rsplit(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or("");
        let after_scheme =
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic");
        previous = token;
        if after_scheme || is_key_like(token) {
            out.push_str(REDACTED);
        } else if token.contains("://") {
            push_urls(&mut out, token);
        } else {
            // URLs, `name=value` pairs, paths and lists: a secret may sit
            // in one of their pieces.
            push_path(&mut out, token);
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

/// A token with URLs in it (`scheme://user:password@host/...`): the user
/// info of each goes, the rest is scrubbed as a path. Every `://` is looked
/// at, so that what is left holds no user info either (scrubbing stays
/// stable).
fn push_urls(out: &mut String, token: &str) {
    let mut rest = token;
    while let Some(i) = rest.find("://") {
        let after = i + 3;
        let authority_end = rest[after..].find('/').map_or(rest.len(), |j| after + j);
        push_path(out, &rest[..after]);
        match rest[after..authority_end].rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                rest = &rest[after + at..];
            }
            None => rest = &rest[after..],
        }
    }
    push_path(out, rest);
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
        // `name=value`, or user info in a URL.
        b'=' | b'@' => true,
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
    fn keys_in_paths_names_and_odd_urls_are_scrubbed() {
        // Found by fuzzing: keys as path segments, matrix parameters, a
        // scheme or host, and values of sensitive names inside a path.
        let key = "sk-proj-SECRETSECRETSECRET1";
        for url in [
            format!("https://api.example.com/v1/keys/{key}/usage"),
            format!("https://api.example.com/v1/x;token=abc/{key}"),
            format!("{key}://example.com/"),
            format!("https://example.com=/{key}@host/p"),
            format!("https://u:p@h/x?k=v&token={key}"),
        ] {
            let clean = url_str(&url);
            assert!(!clean.contains("SECRETSECRET"), "{url} -> {clean}");
        }
        let said = format!("see https://api.example.com/v1/keys/{key}/usage");
        assert_eq!(
            text(&said),
            "see https://api.example.com/v1/keys/[redacted]/usage"
        );
        let clean = text("GET /x?page=2?api_key=abc123 failed");
        assert_eq!(clean, "GET /x?page=2?api_key=[redacted] failed");
    }

    #[test]
    fn scrubbing_is_stable() {
        // Found by fuzzing: scrubbed text scrubbed again changed
        // (`Bearer [[redacted]]`, `key=[redacted][redacted]`).
        for input in [
            "Authorization: Bearer sk-proj-SECRETSECRETSECRET1",
            "GET https://api.example.com/v1/x?api_key=abc123&page=2 failed",
            "key=AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "AKIAIOSFODNN7EXAMPLE wrote Basic dXNlcjpwYXNz",
            "https://user:pass@example.com/path?token=t0k3n#frag",
            "key=AImzaSkey=AIzaSyA1234567890abcdefghijklmnopqrs-tuvcom/v1/x?api_key=abc",
            "proxy http://alice:hunter2@proxy.corp:3128/ said no",
            "a://@b://c@d/e@f",
        ] {
            let once = text(input);
            assert_eq!(text(&once), once, "{input}");
        }
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
        // A proxy URL with its credentials, as error texts print them.
        assert_eq!(
            text("proxy http://alice:hunter2@proxy.corp:3128 refused (user@host.test)"),
            "proxy http://[redacted]@proxy.corp:3128 refused (user@host.test)"
        );
        assert_eq!(
            text("GET https://u:pw@x.test/p?api_key=k1 failed"),
            "GET https://[redacted]@x.test/p?api_key=[redacted] failed"
        );
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

    #[test]
    fn every_secret_part_is_matched() {
        for part in SECRET_HEADER_PARTS {
            let name = HeaderName::from_bytes(format!("x-my-{part}-id").as_bytes()).unwrap();
            assert!(is_sensitive_header(&name), "{part}");
        }
        let name = HeaderName::from_static("x-ratelimit-remaining-tokens");
        assert!(!is_sensitive_header(&name));
    }

    #[test]
    fn prints_of_headers_take_sensitive_values_and_their_tokens() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer tok-AAAA1111"),
        );
        let mut marked = HeaderValue::from_static("custom-secret-77");
        marked.set_sensitive(true);
        headers.insert("x-custom", marked);
        let prints: [Fingerprint; 4] = Fingerprint::of_headers(&headers);
        let text = "ct application/json auth Bearer tok-AAAA1111 or tok-AAAA1111, custom-secret-77";
        assert_eq!(
            scrub_prints(text, &prints),
            "ct application/json auth [redacted] or [redacted], [redacted]"
        );
        // Room for one: the first value only.
        let one: [Fingerprint; 1] = Fingerprint::of_headers(&headers);
        assert!(!one[0].is_empty());
        assert_eq!(scrub_prints("short", &prints), "short");
        assert_eq!(Fingerprint::of(b"12345"), None);
        assert_eq!(Fingerprint::of("sécret-value".as_bytes()), None);
    }

    proptest! {
        /// Every occurrence of a value is scrubbed, wherever it sits in
        /// any text (multi-byte characters included), and nothing else
        /// changes when it does not occur.
        #[test]
        fn prints_scrub_every_occurrence(
            secret in "[!-~]{6,40}",
            parts in proptest::collection::vec("\\PC{0,20}", 1..5),
        ) {
            let print = Fingerprint::of(secret.as_bytes()).unwrap();
            let text = parts.join(&secret);
            let scrubbed = scrub_prints(&text, &[print]);
            prop_assert!(!scrubbed.contains(&secret), "{scrubbed}");
            let clean: String = parts.concat();
            if !clean.contains(&secret) {
                prop_assert_eq!(scrub_prints(&clean, &[print]), clean.as_str());
            }
        }
    }
}
