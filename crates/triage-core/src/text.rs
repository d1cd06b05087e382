//! The texts of a packet: capped, printable, scrubbed. Shared by the
//! [`Packet`](crate::Packet) and its [`Detail`](crate::Detail)s.

use std::error::Error as StdError;
use std::fmt;

use crate::redact;

/// At most this many links of an error chain are kept.
pub const MAX_CHAIN: usize = 8;

/// The longest text of a packet.
const MAX_TEXT: usize = 512;

/// Scrubs `secrets` by exact value and `prints` by fingerprint from `text`.
pub(crate) fn scrub_both(text: &mut String, secrets: &[String], prints: &[redact::Fingerprint]) {
    if let std::borrow::Cow::Owned(clean) = redact::scrub_exact(text, secrets) {
        *text = clean;
    }
    if let std::borrow::Cow::Owned(clean) = redact::scrub_prints(text, prints) {
        *text = clean;
    }
}

/// A text for the packet: at most [`MAX_TEXT`] bytes, no character that
/// would break or disguise a line (see [`redact::printable`]).
pub(crate) fn capped(s: &str) -> String {
    redact::printable(s, MAX_TEXT).into_owned()
}

/// [`capped`] without a copy when the text is safe already.
fn capped_owned(s: String) -> String {
    match redact::printable(&s, MAX_TEXT) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(safe) => safe,
    }
}

/// An error chain as text, outermost first: each link scrubbed of secrets
/// and capped in length, at most [`MAX_CHAIN`] links, a link that repeats
/// the one before said once.
pub(crate) fn chain_texts(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(err) = current {
        if chain.len() >= MAX_CHAIN {
            break;
        }
        // Sized for a typical message: `to_string` would grow it from 8
        // bytes, reallocating three or four times.
        let mut text = String::with_capacity(96);
        let _ = fmt::Write::write_fmt(&mut text, format_args!("{err}"));
        let clean = match redact::text(&text) {
            // Nothing to scrub: keep the string made already.
            std::borrow::Cow::Borrowed(_) => capped_owned(text),
            std::borrow::Cow::Owned(scrubbed) => capped_owned(scrubbed),
        };
        // An `io::Error` and its payload often print the same words: say
        // them once.
        if chain.last() != Some(&clean) {
            chain.push(clean);
        }
        current = match err.downcast_ref::<std::io::Error>() {
            // io::Error::source() skips its payload; descend into it.
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn StdError + 'static))
                .or_else(|| err.source()),
            None => err.source(),
        };
    }
    chain
}
