//! Media types whose bodies are streams of events, not one document.

/// Media types (compared without parameters, ASCII case-insensitively)
/// whose bodies are open-ended streams: server-sent events, JSON lines and
/// sequences, multipart replacement, AWS event streams.
const STREAMING: &[&str] = &[
    "text/event-stream",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
    "application/json-seq",
    "application/stream+json",
    "application/x-json-stream",
    "application/vnd.amazon.eventstream",
    "multipart/x-mixed-replace",
];

/// Media type prefixes of streaming protocols: gRPC (`application/grpc`,
/// `+proto`, `-web`, ...) and Connect streaming (`application/connect+...`).
const STREAMING_PREFIXES: &[&str] = &["application/grpc", "application/connect+"];

/// Whether a `Content-Type` value names a streaming media type: server-sent
/// events (`text/event-stream`), JSON lines (`application/x-ndjson`,
/// `application/jsonl`, ...), JSON text sequences, `multipart/x-mixed-replace`,
/// AWS event streams, gRPC and Connect streaming. Parameters (`; charset=...`)
/// are ignored; garbage and over-long values are not streaming. Allocation-free.
///
/// A body of such a type has no natural end to wait for, so it is never read
/// whole before being handed on.
///
/// ```
/// use triage_core::headers::is_streaming_media_type;
///
/// assert!(is_streaming_media_type(b"text/event-stream; charset=utf-8"));
/// assert!(is_streaming_media_type(b"application/grpc+proto"));
/// assert!(!is_streaming_media_type(b"application/json"));
/// ```
pub fn is_streaming_media_type(value: &[u8]) -> bool {
    if value.len() > super::MAX_INPUT {
        return false;
    }
    let essence = match value.iter().position(|&b| b == b';') {
        Some(i) => &value[..i],
        None => value,
    }
    .trim_ascii();
    STREAMING
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t.as_bytes()))
        || STREAMING_PREFIXES.iter().any(|p| {
            essence.len() >= p.len() && essence[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_types_are_recognised_with_parameters_and_any_case() {
        for value in [
            "text/event-stream",
            "Text/Event-Stream; charset=utf-8",
            "  application/x-ndjson ",
            "application/jsonl",
            "application/json-seq",
            "multipart/x-mixed-replace; boundary=frame",
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web-text",
            "application/connect+json",
            "application/vnd.amazon.eventstream",
        ] {
            assert!(is_streaming_media_type(value.as_bytes()), "{value}");
        }
    }

    #[test]
    fn documents_are_not_streaming() {
        for value in [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "text/html",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
            "application/grp",
            "",
            ";text/event-stream",
            "\u{ff}\u{fe}",
        ] {
            assert!(!is_streaming_media_type(value.as_bytes()), "{value}");
        }
        let long = format!("text/event-stream;{}", "x".repeat(300));
        assert!(!is_streaming_media_type(long.as_bytes()));
    }
}
