//! What a failure body says: the provider's error code, type and message,
//! read from at most [`MAX_FAILURE_BODY`] bytes.
//!
//! Recognised shapes: OpenAI (and Azure OpenAI), Anthropic, Google (also
//! wrapped in an array), AWS JSON (code from `x-amzn-ErrorType`, `code` or
//! `__type`, trimmed) and S3 XML, GitHub, Stripe, Azure API Management,
//! problem+json, gateway HTML pages and plain text. The reader is bounded
//! (depth, values, string lengths), linear in its input, and keeps what came
//! before a cut; every string it returns is free of control characters and
//! capped (messages at 1 KiB, codes at 128 bytes), so it is safe to log.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use triage_core::body::{BodyShape, FailureBody};
//!
//! let body = br#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED","details":[
//!   {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
//!   {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
//! let read = FailureBody::read(Some("application/json"), None, body);
//! assert_eq!(read.shape(), BodyShape::Google);
//! assert_eq!(read.kind(), Some("RESOURCE_EXHAUSTED"));
//! assert_eq!(read.retry_delay(), Some(Duration::from_secs(37)));
//! assert!(read.quota_ids().any(|id| id.contains("PerMinute")));
//! ```

mod json;
pub mod stream;

use std::time::Duration;

use json::Value;

use crate::headers::parse_proto_duration;

/// At most this many bytes of a failure body are read.
pub const MAX_FAILURE_BODY: usize = 16 * 1024;

const MAX_MESSAGE: usize = 1024;
const MAX_CODE: usize = 128;
const MAX_QUOTA_IDS: usize = 8;

/// The largest request body [`request_model`] reads.
pub const MAX_MODEL_BODY: usize = 64 * 1024;

/// The model a request's JSON body names: its top-level `"model"` string,
/// capped at 128 bytes, control characters replaced. Only a small body is
/// read (at most [`MAX_MODEL_BODY`] bytes, else `None`), through the same
/// bounded reader as failure bodies, and nothing else is kept from it.
///
/// ```
/// use triage_core::body::request_model;
///
/// let body = br#"{"model":"gpt-4o-mini","input":"secret prompt"}"#;
/// assert_eq!(request_model(body).as_deref(), Some("gpt-4o-mini"));
/// assert_eq!(request_model(b"not json"), None);
/// ```
pub fn request_model(body: &[u8]) -> Option<String> {
    if body.len() > MAX_MODEL_BODY {
        return None;
    }
    let trimmed = body.trim_ascii();
    if trimmed.first() != Some(&b'{') {
        return None;
    }
    let parsed = json::parse(trimmed);
    match parsed.value?.get("model")? {
        Value::String(model) => clean(Some(model), MAX_CODE),
        _ => None,
    }
}

/// Which provider's error shape a body has.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyShape {
    /// `{"error":{"message","type","param","code"}}` (also Azure OpenAI).
    OpenAi,
    /// `{"type":"error","error":{"type","message","details"},"request_id"}`.
    Anthropic,
    /// `{"error":{"code","message","status","details":[...]}}`.
    Google,
    /// AWS JSON (`x-amzn-ErrorType`, `__type`, `code`).
    AwsJson,
    /// AWS XML (`<Error><Code>`).
    AwsXml,
    /// `{"message","documentation_url"}`.
    GitHub,
    /// `{"error":{"type","code","message","doc_url"}}` from Stripe.
    Stripe,
    /// Azure API Management: `{"statusCode","message"}`.
    AzureApim,
    /// RFC 9457 problem details.
    Problem,
    /// An HTML page.
    Html,
    /// Plain text.
    Text,
    /// No body.
    Empty,
    /// JSON of no known shape.
    Unrecognized,
}

/// What a failure body said; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureBody {
    shape: BodyShape,
    code: Option<String>,
    kind: Option<String>,
    message: Option<String>,
    param: Option<String>,
    detail_code: Option<String>,
    reason: Option<String>,
    quota_ids: Vec<String>,
    retry_delay: Option<Duration>,
    status_code: Option<u16>,
    request_id: Option<String>,
    html_title: Option<String>,
    truncated: bool,
}

impl FailureBody {
    fn empty(shape: BodyShape) -> FailureBody {
        FailureBody {
            shape,
            code: None,
            kind: None,
            message: None,
            param: None,
            detail_code: None,
            reason: None,
            quota_ids: Vec::new(),
            retry_delay: None,
            status_code: None,
            request_id: None,
            html_title: None,
            truncated: false,
        }
    }

    /// Reads a failure body. `content_type` is the response's
    /// `Content-Type`, `aws_error_type` its `x-amzn-ErrorType` header; input
    /// past [`MAX_FAILURE_BODY`] is ignored.
    pub fn read(
        content_type: Option<&str>,
        aws_error_type: Option<&str>,
        body: &[u8],
    ) -> FailureBody {
        let cut = body.len() > MAX_FAILURE_BODY;
        let body = &body[..body.len().min(MAX_FAILURE_BODY)];
        let trimmed = body.trim_ascii();
        let content_type = content_type.unwrap_or("");
        let mut read = if trimmed.is_empty() {
            let mut b = FailureBody::empty(BodyShape::Empty);
            if let Some(code) = aws_error_type {
                b.shape = BodyShape::AwsJson;
                b.code = clean(Some(trim_aws_code(code)), MAX_CODE);
            }
            b
        } else if matches!(trimmed.first(), Some(b'{' | b'[')) {
            let parsed = json::parse(trimmed);
            let mut b = parsed
                .value
                .as_ref()
                .map(|v| from_json(v, content_type, aws_error_type))
                .unwrap_or_else(|| FailureBody::empty(BodyShape::Unrecognized));
            b.truncated = parsed.truncated;
            b
        } else if starts_with_ignore_case(trimmed, b"<?xml")
            || starts_with_ignore_case(trimmed, b"<Error")
        {
            from_xml(trimmed)
        } else if trimmed.first() == Some(&b'<')
            || contains_ignore_case(content_type.as_bytes(), b"html")
        {
            from_html(trimmed)
        } else {
            let mut b = FailureBody::empty(BodyShape::Text);
            let text = String::from_utf8_lossy(trimmed);
            let line = text.lines().map(str::trim).find(|l| !l.is_empty());
            b.message = clean(line, MAX_MESSAGE);
            b
        };
        read.truncated |= cut;
        read
    }

    /// The shape recognised.
    pub fn shape(&self) -> BodyShape {
        self.shape
    }

    /// The machine code: OpenAI/Azure/Stripe `error.code`, the trimmed AWS
    /// code, S3's `<Code>`, Google's `ErrorInfo.reason` when there is no
    /// better one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The error type: OpenAI/Anthropic/Stripe `error.type`, Google's
    /// `error.status`, problem+json's `type`.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// The human message (an HTML page's title, a text body's first line).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The parameter the error names (OpenAI, Stripe).
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// Anthropic's `error.details.error_code`.
    pub fn detail_code(&self) -> Option<&str> {
        self.detail_code.as_deref()
    }

    /// Google's `ErrorInfo.reason`.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Google's `QuotaFailure.violations[].quotaId` (at most 8).
    pub fn quota_ids(&self) -> impl Iterator<Item = &str> {
        self.quota_ids.iter().map(String::as_str)
    }

    /// Google's `RetryInfo.retryDelay`.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.retry_delay
    }

    /// A status the body states (`statusCode`, Google's `error.code`).
    pub fn status_code(&self) -> Option<u16> {
        self.status_code
    }

    /// A request ID in the body (Anthropic's `request_id`, S3's `<RequestId>`).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// An HTML page's title.
    pub fn html_title(&self) -> Option<&str> {
        self.html_title.as_deref()
    }

    /// Whether the body was cut at the limit or ended before its JSON closed.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

/// Keeps a string fit to print: control characters become spaces, at most
/// `max` bytes (cut at a character boundary), blank is `None`.
fn clean(s: Option<&str>, max: usize) -> Option<String> {
    let s = s?.trim();
    if s.is_empty() {
        return None;
    }
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(
        s[..end]
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

fn text_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::text)
}

/// `ThrottlingException:http://…` → `ThrottlingException`;
/// `com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException`
/// → `ProvisionedThroughputExceededException`.
fn trim_aws_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code).trim()
}

fn from_json(root: &Value, content_type: &str, aws_error_type: Option<&str>) -> FailureBody {
    // Gemini's streaming endpoint wraps the error in an array.
    let root = match root {
        Value::Array(items) => items.first().unwrap_or(root),
        other => other,
    };
    if let Some(err) = root.get("error") {
        if matches!(err, Value::Object(_)) {
            return from_error_object(root, err);
        }
        let mut b = FailureBody::empty(BodyShape::Unrecognized);
        b.message = clean(err.text().or_else(|| text_of(root, "message")), MAX_MESSAGE);
        b.code = clean(text_of(root, "code"), MAX_CODE);
        return b;
    }
    let message = text_of(root, "message")
        .or_else(|| text_of(root, "Message"))
        .or_else(|| text_of(root, "errorMessage"));
    if let Some(status) = root.get("statusCode").and_then(Value::text) {
        let mut b = FailureBody::empty(BodyShape::AzureApim);
        b.status_code = status.parse().ok();
        b.message = clean(message, MAX_MESSAGE);
        return b;
    }
    // AWS: the header, else (for a body with `__type`) `code`, else `__type`.
    let aws_code = aws_error_type.or_else(|| {
        let ty = text_of(root, "__type")?;
        Some(text_of(root, "code").unwrap_or(ty))
    });
    if let Some(code) = aws_code {
        let mut b = FailureBody::empty(BodyShape::AwsJson);
        b.code = clean(Some(trim_aws_code(code)), MAX_CODE);
        b.message = clean(message, MAX_MESSAGE);
        return b;
    }
    if text_of(root, "documentation_url").is_some_and(|u| u.contains("github.com")) {
        let mut b = FailureBody::empty(BodyShape::GitHub);
        b.message = clean(message, MAX_MESSAGE);
        return b;
    }
    let problem = contains_ignore_case(content_type.as_bytes(), b"problem+json")
        || (root.get("type").is_some() && root.get("title").is_some());
    if problem {
        let mut b = FailureBody::empty(BodyShape::Problem);
        b.kind = clean(text_of(root, "type"), MAX_MESSAGE);
        b.message = clean(
            text_of(root, "title").or_else(|| text_of(root, "detail")),
            MAX_MESSAGE,
        );
        b.status_code = text_of(root, "status").and_then(|s| s.parse().ok());
        return b;
    }
    let mut b = FailureBody::empty(BodyShape::Unrecognized);
    b.message = clean(message, MAX_MESSAGE);
    b.code = clean(text_of(root, "code"), MAX_CODE);
    b
}

fn from_error_object(root: &Value, err: &Value) -> FailureBody {
    let message = clean(text_of(err, "message"), MAX_MESSAGE);
    if text_of(root, "type") == Some("error") {
        let mut b = FailureBody::empty(BodyShape::Anthropic);
        b.kind = clean(text_of(err, "type"), MAX_CODE);
        b.message = message;
        b.detail_code = clean(
            err.get("details").and_then(|d| text_of(d, "error_code")),
            MAX_CODE,
        );
        b.request_id = clean(text_of(root, "request_id"), MAX_CODE);
        return b;
    }
    let google = err.get("status").and_then(Value::text).is_some()
        || matches!(err.get("code"), Some(Value::Number(_))) && err.get("type").is_none()
        || err
            .get("details")
            .is_some_and(|d| d.items().iter().any(|i| text_of(i, "@type").is_some()));
    if google {
        let mut b = FailureBody::empty(BodyShape::Google);
        b.kind = clean(text_of(err, "status"), MAX_CODE);
        b.message = message;
        b.status_code = text_of(err, "code").and_then(|c| c.parse().ok());
        for detail in err.get("details").map(Value::items).unwrap_or(&[]) {
            let kind = text_of(detail, "@type").unwrap_or("");
            if kind.ends_with("google.rpc.QuotaFailure") {
                for violation in detail.get("violations").map(Value::items).unwrap_or(&[]) {
                    if b.quota_ids.len() < MAX_QUOTA_IDS {
                        if let Some(id) = clean(text_of(violation, "quotaId"), MAX_CODE) {
                            b.quota_ids.push(id);
                        }
                    }
                }
            } else if kind.ends_with("google.rpc.RetryInfo") {
                b.retry_delay = text_of(detail, "retryDelay").and_then(parse_proto_duration);
            } else if kind.ends_with("google.rpc.ErrorInfo") {
                b.reason = clean(text_of(detail, "reason"), MAX_CODE);
            }
        }
        return b;
    }
    let kind = text_of(err, "type");
    let stripe = text_of(err, "doc_url").is_some_and(|u| u.contains("stripe.com"))
        || matches!(kind, Some("card_error" | "idempotency_error"))
        || err.get("decline_code").is_some();
    let mut b = FailureBody::empty(if stripe {
        BodyShape::Stripe
    } else {
        BodyShape::OpenAi
    });
    b.kind = clean(kind, MAX_CODE);
    b.code = clean(text_of(err, "code"), MAX_CODE);
    b.message = message;
    b.param = clean(text_of(err, "param"), MAX_CODE);
    b
}

fn from_xml(body: &[u8]) -> FailureBody {
    let mut b = FailureBody::empty(BodyShape::AwsXml);
    let text = String::from_utf8_lossy(body);
    b.code = clean(tag(&text, "Code"), MAX_CODE);
    b.message = clean(tag(&text, "Message"), MAX_MESSAGE);
    b.request_id = clean(tag(&text, "RequestId"), MAX_CODE);
    b
}

/// The text of the first `<name>…</name>` (exact case).
fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(&text[start..end])
}

fn from_html(body: &[u8]) -> FailureBody {
    let mut b = FailureBody::empty(BodyShape::Html);
    let text = String::from_utf8_lossy(body);
    let title = tag_ignore_case(&text, "title").or_else(|| tag_ignore_case(&text, "h1"));
    let title = title.map(decode_entities);
    b.html_title = clean(title.as_deref(), MAX_MESSAGE);
    b.message = b.html_title.clone();
    b
}

fn tag_ignore_case<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let open = format!("<{name}");
    let start = lower.find(&open)?;
    let content = lower[start..].find('>')? + start + 1;
    let end = lower[content..].find(&format!("</{name}"))? + content;
    text.get(content..end)
}

fn decode_entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn starts_with_ignore_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests;
