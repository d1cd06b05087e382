//! Streamed bodies: server-sent events and JSON lines. Where an event
//! ends, whether it is an error, and the status an error event stands for.
//!
//! LLM APIs stream their answers, and their failures often arrive inside a
//! 200: Anthropic sends `event: error` with `{"type":"error","error":{"type":
//! "overloaded_error",...}}` mid-stream, OpenAI an `{"error":{...}}` object.
//!
//! ```
//! use triage_core::body::stream::StreamKind;
//!
//! let kind = StreamKind::of(b"text/event-stream; charset=utf-8").unwrap();
//! let body = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\nevent: ping\n";
//! let end = kind.event_end(body).unwrap();
//! let error = kind.error_payload(&body[..end]).unwrap();
//! assert!(error.starts_with(b"{\"type\":\"error\""));
//! assert_eq!(triage_core::body::stream::error_status(error), 529);
//! ```

use super::json::{self, Value};
use super::{FailureBody, MAX_FAILURE_BODY};

/// The first event a layer holds before a stream reaches its caller, and
/// the longest event whose end is looked for: 16 KiB.
pub const MAX_EVENT: usize = 16 * 1024;

/// How a streamed body frames its events.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Server-sent events (`text/event-stream`): an event ends at a blank
    /// line.
    Sse,
    /// JSON lines (`application/x-ndjson`, `application/jsonl`, ...): an
    /// event is a line.
    JsonLines,
}

impl StreamKind {
    /// The kind of a `Content-Type` value, if it is a stream of events.
    #[inline]
    pub fn of(content_type: &[u8]) -> Option<StreamKind> {
        // Asked of every success: the common types (`application/json`,
        // `text/html`, ...) are ruled out by a few bytes.
        let first = content_type.first()? | 0x20;
        match first {
            b't' => {}
            b'a' => {
                let subtype = content_type.get(12..)?;
                match subtype.first().map(|b| b | 0x20) {
                    Some(b'x' | b'n') => {}
                    // `json` alone is no stream.
                    Some(b'j') if subtype.len() > 4 && !matches!(subtype[4], b';' | b' ') => {}
                    _ => return None,
                }
            }
            _ => return None,
        }
        let ends = |rest: &[u8]| matches!(rest.first(), None | Some(b';' | b' ' | b'\t'));
        let starts = |s: &[u8], prefix: &[u8]| {
            s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        let value = content_type.trim_ascii_start();
        if starts(value, b"text/event-stream") {
            return ends(&value[17..]).then_some(StreamKind::Sse);
        }
        if !starts(value, b"application/") {
            return None;
        }
        let subtype = &value[12..];
        [
            &b"x-ndjson"[..],
            b"ndjson",
            b"jsonl",
            b"json-lines",
            b"jsonlines",
            b"x-jsonlines",
        ]
        .iter()
        .any(|name| starts(subtype, name) && ends(&subtype[name.len()..]))
        .then_some(StreamKind::JsonLines)
    }

    /// Where the first event of `buf` ends (the index past its
    /// terminator), if it is complete. An SSE event ends at a blank line
    /// (`\n\n`, `\r\n\r\n` or `\r\r`); a JSON line at `\n`. Leading blank
    /// lines of JSON lines belong to the event that follows them.
    pub fn event_end(self, buf: &[u8]) -> Option<usize> {
        match self {
            StreamKind::Sse => {
                let mut i = 0;
                while i < buf.len() {
                    match buf[i] {
                        b'\n' if buf.get(i + 1) == Some(&b'\n') => return Some(i + 2),
                        b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some(i + 2),
                        b'\r' if buf.get(i + 1..i + 4) == Some(b"\n\r\n") => return Some(i + 4),
                        _ => {}
                    }
                    i += 1;
                }
                None
            }
            StreamKind::JsonLines => {
                let start = buf.iter().position(|b| !b.is_ascii_whitespace())?;
                buf[start..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map(|end| start + end + 1)
            }
        }
    }

    /// The payload of `event` when it is an error event: the data of an
    /// SSE event named `error`, or of one whose data is a JSON object with
    /// `"type":"error"` or a top-level `error` object; a JSON line of
    /// either shape. `None` for any other event.
    pub fn error_payload(self, event: &[u8]) -> Option<&[u8]> {
        // Cheap first: an error event names itself.
        if !contains(event, b"error") {
            return None;
        }
        match self {
            StreamKind::Sse => {
                let (mut named_error, mut data) = (false, None);
                for line in event.split(|b| *b == b'\n' || *b == b'\r') {
                    if let Some(name) = field(line, b"event") {
                        named_error = name == b"error";
                    } else if let Some(value) = field(line, b"data") {
                        // The first data line (providers send JSON on one).
                        data.get_or_insert(value);
                    }
                }
                let data = data?;
                (named_error || is_error_object(data)).then_some(data)
            }
            StreamKind::JsonLines => {
                let line = event.trim_ascii();
                is_error_object(line).then_some(line)
            }
        }
    }
}

/// The value of an SSE field line `name: value` (one leading space
/// dropped), if `line` is that field.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `data` is a JSON object that says it is an error:
/// `"type":"error"`, or an `error` member that is an object.
fn is_error_object(data: &[u8]) -> bool {
    let data = data.trim_ascii();
    if data.first() != Some(&b'{') {
        return false;
    }
    let Some(value) = json::parse(&data[..data.len().min(MAX_FAILURE_BODY)]).value else {
        return false;
    };
    matches!(value.get("type"), Some(Value::String(t)) if t == "error")
        || matches!(value.get("error"), Some(Value::Object(_)))
}

/// The status an error event stands for, from its error type or code
/// (Anthropic's types map one to one to statuses; OpenAI's codes and types
/// likewise): `overloaded_error` 529, `rate_limit_error` 429, ... An error
/// of no known type is a server error (500): the server said the request
/// failed, and never a verdict that forbids a retry by itself.
pub fn error_status(payload: &[u8]) -> u16 {
    let body = FailureBody::read(Some("application/json"), None, payload);
    if let Some(status) = body.status_code().filter(|s| (400..=599).contains(s)) {
        return status;
    }
    let said = [body.kind(), body.code()];
    let is = |names: &[&str]| said.iter().flatten().any(|s| names.contains(s));
    if is(&["overloaded_error", "overloaded"]) {
        529
    } else if is(&[
        "rate_limit_error",
        "rate_limit_exceeded",
        "insufficient_quota",
        "tokens",
    ]) {
        429
    } else if is(&[
        "invalid_request_error",
        "invalid_request",
        "context_length_exceeded",
    ]) {
        400
    } else if is(&["authentication_error", "invalid_api_key"]) {
        401
    } else if is(&["permission_error"]) {
        403
    } else if is(&["not_found_error", "model_not_found"]) {
        404
    } else if is(&["request_too_large"]) {
        413
    } else if is(&["timeout_error"]) {
        504
    } else {
        500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVERLOADED: &[u8] =
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;

    #[test]
    fn kinds_come_from_the_content_type() {
        assert_eq!(StreamKind::of(b"text/event-stream"), Some(StreamKind::Sse));
        assert_eq!(
            StreamKind::of(b"Text/Event-Stream; charset=utf-8"),
            Some(StreamKind::Sse)
        );
        assert_eq!(
            StreamKind::of(b"application/x-ndjson"),
            Some(StreamKind::JsonLines)
        );
        assert_eq!(
            StreamKind::of(b"application/jsonl"),
            Some(StreamKind::JsonLines)
        );
        assert_eq!(StreamKind::of(b"application/json"), None);
        assert_eq!(StreamKind::of(b""), None);
        assert_eq!(StreamKind::of(b"application/json; charset=utf-8"), None);
        assert_eq!(
            StreamKind::of(b"application/jsonlines"),
            Some(StreamKind::JsonLines)
        );
        assert_eq!(StreamKind::of(b"application/jsonlinesx"), None);
        assert_eq!(StreamKind::of(b"text/event-streams"), None);
        assert_eq!(StreamKind::of(b"text/html"), None);
    }

    #[test]
    fn sse_events_end_at_a_blank_line_in_any_line_ending() {
        let sse = StreamKind::Sse;
        assert_eq!(sse.event_end(b"data: a\n\ndata: b\n\n"), Some(9));
        assert_eq!(sse.event_end(b"data: a\r\n\r\ndata: b"), Some(11));
        assert_eq!(sse.event_end(b"data: a\r\rx"), Some(9));
        assert_eq!(sse.event_end(b"data: a\ndata: b\n"), None);
        assert_eq!(sse.event_end(b""), None);
        let lines = StreamKind::JsonLines;
        assert_eq!(lines.event_end(b"{\"a\":1}\n{\"b\":2}\n"), Some(8));
        assert_eq!(lines.event_end(b"\n\n{\"a\":1}\n"), Some(10));
        assert_eq!(lines.event_end(b"{\"a\":1}"), None);
        assert_eq!(lines.event_end(b"\n\n"), None);
    }

    #[test]
    fn error_events_are_told_from_data_events() {
        let sse = StreamKind::Sse;
        let anthropic = [b"event: error\ndata: ".as_slice(), OVERLOADED, b"\n\n"].concat();
        assert_eq!(sse.error_payload(&anthropic), Some(OVERLOADED));
        // OpenAI: no event name, an error object as the data.
        let openai = br#"data: {"error":{"message":"The server had an error","type":"server_error","code":null}}

"#;
        assert!(sse.error_payload(openai).is_some());
        // Data that mentions errors is not an error event.
        for normal in [
            br#"data: {"type":"content_block_delta","delta":{"text":"error handling"}}

"#
            .as_slice(),
            br#"data: {"choices":[{"delta":{"content":"no error"}}]}

"#,
            b"event: message\ndata: error\n\n",
            b"data: [DONE]\n\n",
        ] {
            assert_eq!(
                sse.error_payload(normal),
                None,
                "{}",
                String::from_utf8_lossy(normal)
            );
        }
        // An event named error whose data is text is still an error.
        assert_eq!(
            sse.error_payload(b"event: error\ndata: boom\n\n"),
            Some(&b"boom"[..])
        );
        let lines = StreamKind::JsonLines;
        assert!(
            lines
                .error_payload(b"{\"error\":{\"message\":\"x\"}}\n")
                .is_some()
        );
        assert!(lines.error_payload(b"{\"text\":\"error\"}\n").is_none());
    }

    #[test]
    fn error_types_stand_for_their_statuses() {
        assert_eq!(error_status(OVERLOADED), 529);
        let of = |kind: &str| {
            error_status(
                format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"m"}}}}"#)
                    .as_bytes(),
            )
        };
        assert_eq!(of("rate_limit_error"), 429);
        assert_eq!(of("api_error"), 500);
        assert_eq!(of("invalid_request_error"), 400);
        assert_eq!(of("authentication_error"), 401);
        assert_eq!(of("permission_error"), 403);
        assert_eq!(of("not_found_error"), 404);
        assert_eq!(of("request_too_large"), 413);
        assert_eq!(
            of("something_new"),
            500,
            "unknown is a server error, never permanent"
        );
        assert_eq!(error_status(b"boom"), 500);
        assert_eq!(
            error_status(
                br#"{"error":{"message":"m","type":"server_error","code":"rate_limit_exceeded"}}"#
            ),
            429
        );
    }
}
