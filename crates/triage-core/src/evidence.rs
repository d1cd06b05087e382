//! What one attempt brought back: [`Evidence`].
//!
//! Evidence is gathered from the response head (status, request ID, rate
//! headers, retry hints, gateway fingerprint), from at most
//! [`MAX_FAILURE_BODY`](crate::body::MAX_FAILURE_BODY) bytes of a failure body,
//! or from a transport failure when no answer came back. Reading the head of a
//! successful response allocates nothing: header values are kept as
//! [`HeaderValue`] handles (cheap to clone) and numbers are parsed in place.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use triage_core::{Evidence, Profile};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-request-id", HeaderValue::from_static("req_123"));
//! headers.insert("x-ratelimit-remaining-requests", HeaderValue::from_static("0"));
//! headers.insert("x-ratelimit-reset-requests", HeaderValue::from_static("6m0s"));
//! headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
//!
//! let evidence = Evidence::from_response(
//!     StatusCode::TOO_MANY_REQUESTS,
//!     &headers,
//!     Profile::openai(),
//!     SystemTime::now(),
//! );
//! assert_eq!(evidence.request_id().map(|v| v.as_bytes()), Some(&b"req_123"[..]));
//! assert_eq!(evidence.rate().requests.remaining, Some(0));
//! assert_eq!(evidence.rate().requests.reset, Some(Duration::from_secs(360)));
//! assert_eq!(evidence.hints().retry_after_ms, Some(Duration::from_millis(1500)));
//! ```

use std::time::{Duration, SystemTime};

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::body::FailureBody;
use crate::gateway::Fingerprint;
use crate::headers::{self, RetryAfter};
use crate::profile::{Profile, Slot};
use crate::stage::TransportFailure;

/// One rate-limit window as the response reported it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RateWindow {
    /// The limit of the window, if reported.
    pub limit: Option<u64>,
    /// What is left in the window, if reported.
    pub remaining: Option<u64>,
    /// Time from the response until the window resets, if reported.
    pub reset: Option<Duration>,
}

impl RateWindow {
    /// Whether any of the three values was reported.
    pub const fn is_known(&self) -> bool {
        self.limit.is_some() || self.remaining.is_some() || self.reset.is_some()
    }

    /// Whether the response said this window is used up (`remaining == 0`).
    pub const fn is_exhausted(&self) -> bool {
        matches!(self.remaining, Some(0))
    }
}

/// The rate-limit state the response reported: requests and tokens.
///
/// Profiles with a single window (GitHub, the IETF `RateLimit` fields, the
/// `X-RateLimit-*` family) report it as `requests`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RateInfo {
    /// The request-count window.
    pub requests: RateWindow,
    /// The token window (LLM providers).
    pub tokens: RateWindow,
}

impl RateInfo {
    /// Whether any window was reported.
    pub const fn is_known(&self) -> bool {
        self.requests.is_known() || self.tokens.is_known()
    }

    /// The longest reset among exhausted windows: how long the response says
    /// to wait when it reports a window at zero.
    pub fn exhausted_reset(&self) -> Option<Duration> {
        [self.requests, self.tokens]
            .iter()
            .filter(|w| w.is_exhausted())
            .filter_map(|w| w.reset)
            .max()
    }
}

/// Retry hints the response sent in its headers, already parsed and bounded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RetryHints {
    /// `retry-after-ms` (or Azure's `x-ms-retry-after-ms`).
    pub retry_after_ms: Option<Duration>,
    /// `Retry-After`, seconds or an HTTP-date resolved against the response time.
    pub retry_after: Option<Duration>,
    /// `x-amz-retry-after` (milliseconds).
    pub amz_retry_after: Option<Duration>,
    /// `x-should-retry` or `Stripe-Should-Retry`: the server's own verdict.
    pub should_retry: Option<bool>,
}

impl RetryHints {
    /// The wait the server asked for, by precedence: `retry-after-ms`, then
    /// `Retry-After`, then `x-amz-retry-after`, with which header said it.
    pub fn server_delay(&self) -> Option<(Duration, DelaySource)> {
        self.retry_after_ms
            .map(|d| (d, DelaySource::RetryAfterMs))
            .or(self.retry_after.map(|d| (d, DelaySource::RetryAfter)))
            .or(self
                .amz_retry_after
                .map(|d| (d, DelaySource::AmzRetryAfter)))
    }
}

/// Where a retry delay came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum DelaySource {
    /// The `retry-after-ms` header.
    RetryAfterMs,
    /// The `Retry-After` header.
    RetryAfter,
    /// The `x-amz-retry-after` header.
    AmzRetryAfter,
    /// The failure body (Google `RetryInfo.retryDelay`, or "try again in 1.2s").
    Body,
    /// A rate-limit reset header of a window at zero.
    ResetHeader,
    /// Exponential backoff with jitter.
    Backoff,
}

impl DelaySource {
    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DelaySource::RetryAfterMs => "retry_after_ms",
            DelaySource::RetryAfter => "retry_after",
            DelaySource::AmzRetryAfter => "amz_retry_after",
            DelaySource::Body => "body",
            DelaySource::ResetHeader => "reset_header",
            DelaySource::Backoff => "backoff",
        }
    }
}

/// How far the response body got.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", tag = "state", content = "bytes")
)]
pub enum BodyProgress {
    /// No body byte was seen (or there was no response).
    #[default]
    NotStarted,
    /// Some bytes arrived and the body has not ended yet.
    Partial(u64),
    /// The body ended normally after this many bytes.
    Complete(u64),
    /// The body broke after this many bytes.
    Failed(u64),
}

impl BodyProgress {
    /// Bytes received so far.
    pub const fn bytes(self) -> u64 {
        match self {
            BodyProgress::NotStarted => 0,
            BodyProgress::Partial(n) | BodyProgress::Complete(n) | BodyProgress::Failed(n) => n,
        }
    }

    /// Whether any body byte arrived.
    pub const fn seen(self) -> bool {
        self.bytes() > 0 || matches!(self, BodyProgress::Complete(_))
    }
}

/// The facts of one attempt.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    status: Option<StatusCode>,
    transport: Option<TransportFailure>,
    request_id: Option<HeaderValue>,
    rate: RateInfo,
    hints: RetryHints,
    fingerprint: Option<Fingerprint>,
    failure_body: Option<Box<FailureBody>>,
    body: BodyProgress,
    elapsed: Duration,
    in_stream: bool,
}

impl Evidence {
    /// Records an error event that arrived inside a streamed answer (whose
    /// head said 200): the attempt is judged as the status the event's
    /// error type stands for ([`error_status`](crate::body::stream::error_status):
    /// `overloaded_error` as a 529), with what the event says as the
    /// failure body. The head's request ID and rate windows stay.
    pub fn set_stream_error(&mut self, payload: &[u8]) {
        let status = crate::body::stream::error_status(payload);
        self.status = StatusCode::from_u16(status).ok();
        self.failure_body = Some(Box::new(FailureBody::read(
            Some("application/json"),
            None,
            payload,
        )));
        self.in_stream = true;
    }

    /// Whether the failure was an error event inside a streamed answer
    /// ([`Evidence::set_stream_error`]).
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Evidence from a response head, read with `profile`'s header names.
    ///
    /// `now` is the time the response arrived; HTTP-date and absolute reset
    /// values are turned into waits against it. Retry hints and the gateway
    /// fingerprint are read only for failure statuses (400 and above).
    pub fn from_response(
        status: StatusCode,
        headers: &HeaderMap,
        profile: &Profile,
        now: SystemTime,
    ) -> Evidence {
        let failure = status.as_u16() >= 400;
        let (request_id, rate) = read_head(headers, profile, now);
        let mut evidence = Evidence {
            status: Some(status),
            request_id,
            rate,
            ..Evidence::default()
        };
        if failure {
            evidence.hints = read_hints(headers, profile, now);
            evidence.fingerprint = Fingerprint::detect(status, headers, &[]);
        }
        evidence
    }

    /// Evidence of a status alone, without reading any header: the cheapest
    /// form, enough to classify a success.
    pub fn from_status(status: StatusCode) -> Evidence {
        Evidence {
            status: Some(status),
            ..Evidence::default()
        }
    }

    /// Evidence of an attempt that got no usable answer.
    pub fn from_transport(failure: TransportFailure) -> Evidence {
        Evidence {
            transport: Some(failure),
            ..Evidence::default()
        }
    }

    /// Adds what the first bytes of a failure body say: the provider's error
    /// code, type and message, a body-side request ID or retry delay, and a
    /// gateway fingerprint that needs the body (error pages).
    ///
    /// `headers` are the response headers (for `Content-Type` and
    /// `x-amzn-ErrorType`); `body` is at most
    /// [`MAX_FAILURE_BODY`](crate::body::MAX_FAILURE_BODY) bytes (longer input
    /// is cut).
    pub fn read_failure_body(&mut self, headers: &HeaderMap, body: &[u8]) {
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let aws_error_type = headers.get(X_AMZN_ERROR_TYPE).and_then(|v| v.to_str().ok());
        self.failure_body = Some(Box::new(FailureBody::read(
            content_type,
            aws_error_type,
            body,
        )));
        if let Some(status) = self.status {
            self.fingerprint = Fingerprint::detect(status, headers, body);
        }
    }

    /// Records how far the body got.
    pub fn set_body(&mut self, progress: BodyProgress) {
        self.body = progress;
    }

    /// Records a transport failure that happened after the head arrived (the
    /// body broke): the status stays, and the attempt is judged by the failure.
    pub fn set_transport(&mut self, failure: TransportFailure) {
        self.transport = Some(failure);
    }

    /// Records how long the attempt took.
    pub fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
    }

    /// Builder form of [`Evidence::set_elapsed`].
    pub fn with_elapsed(mut self, elapsed: Duration) -> Evidence {
        self.elapsed = elapsed;
        self
    }

    /// The status, if an answer came back.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The transport failure, if the attempt failed below HTTP.
    pub fn transport(&self) -> Option<TransportFailure> {
        self.transport
    }

    /// The origin's request ID from the profile's headers.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// The request ID as text: the header's, else one the body carried
    /// (Anthropic's `request_id`, S3's `<RequestId>`).
    pub fn request_id_str(&self) -> Option<&str> {
        self.request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                self.failure_body
                    .as_deref()
                    .and_then(FailureBody::request_id)
            })
    }

    /// The rate-limit state.
    pub fn rate(&self) -> &RateInfo {
        &self.rate
    }

    /// The retry hints from the headers.
    pub fn hints(&self) -> &RetryHints {
        &self.hints
    }

    /// The gateway seen on the response, if any.
    pub fn fingerprint(&self) -> Option<&Fingerprint> {
        self.fingerprint.as_ref()
    }

    /// What the failure body said, if one was read.
    pub fn failure_body(&self) -> Option<&FailureBody> {
        self.failure_body.as_deref()
    }

    /// How far the body got.
    pub fn body(&self) -> BodyProgress {
        self.body
    }

    /// How long the attempt took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

const X_AMZN_ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");
const X_AMZ_RETRY_AFTER: HeaderName = HeaderName::from_static("x-amz-retry-after");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// One pass over the response's headers: the preferred request ID and the
/// rate windows named by the profile.
fn read_head(
    headers: &HeaderMap,
    profile: &Profile,
    now: SystemTime,
) -> (Option<HeaderValue>, RateInfo) {
    let table = profile.head_table();
    let mut request_id: Option<(u8, &HeaderValue)> = None;
    let mut rate_values: [[Option<&HeaderValue>; 3]; 2] = [[None; 3]; 2];
    for (name, value) in headers {
        match table.slot(name) {
            Some(Slot::RequestId(rank)) if request_id.is_none_or(|(best, _)| rank < best) => {
                request_id = Some((rank, value));
            }
            Some(Slot::Rate(window, field)) => {
                let cell = &mut rate_values[usize::from(window)][usize::from(field)];
                cell.get_or_insert(value);
            }
            _ => {}
        }
    }
    let window = |[limit, remaining, reset]: [Option<&HeaderValue>; 3]| RateWindow {
        limit: limit.and_then(|v| headers::parse_count(v.as_bytes())),
        remaining: remaining.and_then(|v| headers::parse_count(v.as_bytes())),
        reset: reset.and_then(|v| headers::parse_reset(v.as_bytes(), profile.reset_format(), now)),
    };
    let mut rate = RateInfo {
        requests: window(rate_values[0]),
        tokens: window(rate_values[1]),
    };
    if profile.reads_ietf_ratelimit() && !rate.requests.is_known() {
        rate.requests = read_ietf(headers).unwrap_or_default();
    }
    (request_id.map(|(_, v)| v.clone()), rate)
}

/// The IETF `RateLimit` field's most restrictive member, with its policy's
/// quota as the limit.
fn read_ietf(headers: &HeaderMap) -> Option<RateWindow> {
    let entry = headers
        .get(RATELIMIT)
        .and_then(|v| v.to_str().ok())
        .and_then(headers::most_restrictive)?;
    let limit = headers
        .get(RATELIMIT_POLICY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            headers::policy_entries(v)
                .find(|p| p.policy == entry.policy)
                .map(|p| p.quota)
        });
    Some(RateWindow {
        limit,
        remaining: Some(entry.remaining),
        reset: entry.reset,
    })
}

fn read_hints(headers: &HeaderMap, profile: &Profile, now: SystemTime) -> RetryHints {
    let get = |name: &HeaderName| headers.get(name).map(HeaderValue::as_bytes);
    RetryHints {
        retry_after_ms: get(&RETRY_AFTER_MS)
            .or_else(|| get(&X_MS_RETRY_AFTER_MS))
            .and_then(headers::parse_retry_after_ms),
        retry_after: get(&RETRY_AFTER)
            .and_then(RetryAfter::parse)
            .map(|r| r.delay_from(now)),
        amz_retry_after: get(&X_AMZ_RETRY_AFTER).and_then(headers::parse_amz_retry_after),
        should_retry: profile
            .should_retry_headers()
            .iter()
            .find_map(get)
            .and_then(headers::parse_should_retry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn openai_rate_headers_use_go_durations() {
        let map = headers(&[
            ("x-request-id", "req_abc"),
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "8.64s"),
        ]);
        let ev =
            Evidence::from_response(StatusCode::OK, &map, Profile::openai(), SystemTime::now());
        assert_eq!(ev.rate().requests.limit, Some(500));
        assert_eq!(ev.rate().requests.remaining, Some(499));
        assert_eq!(ev.rate().requests.reset, Some(Duration::from_millis(120)));
        assert_eq!(ev.rate().tokens.remaining, Some(0));
        assert_eq!(
            ev.rate().exhausted_reset(),
            Some(Duration::from_millis(8640))
        );
        // Hints are not read on success.
        assert_eq!(ev.hints(), &RetryHints::default());
    }

    #[test]
    fn anthropic_resets_are_absolute_times() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_049_737); // 2026-02-25T20:02:17Z
        let map = headers(&[
            ("request-id", "req_011CSLsW7mFqvHHnzrKdKjAE"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-02-25T20:02:37Z"),
            ("retry-after", "20"),
            ("x-should-retry", "true"),
        ]);
        let ev = Evidence::from_response(
            StatusCode::TOO_MANY_REQUESTS,
            &map,
            Profile::anthropic(),
            now,
        );
        assert_eq!(ev.request_id_str(), Some("req_011CSLsW7mFqvHHnzrKdKjAE"));
        assert_eq!(ev.rate().requests.reset, Some(Duration::from_secs(20)));
        assert_eq!(ev.hints().retry_after, Some(Duration::from_secs(20)));
        assert_eq!(ev.hints().should_retry, Some(true));
    }

    #[test]
    fn github_reset_is_epoch_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let map = headers(&[
            ("x-github-request-id", "CE4A:1B2C:3D4E5F:6A7B8C:9D0E1F2A"),
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1800000600"),
        ]);
        let ev = Evidence::from_response(StatusCode::FORBIDDEN, &map, Profile::github(), now);
        assert_eq!(ev.rate().requests.limit, Some(5000));
        assert_eq!(ev.rate().requests.reset, Some(Duration::from_secs(600)));
        assert!(ev.rate().requests.is_exhausted());
    }

    #[test]
    fn generic_profile_reads_ietf_fields() {
        let map = headers(&[
            ("ratelimit", "\"burst\";r=0;t=7, \"daily\";r=900;t=3600"),
            (
                "ratelimit-policy",
                "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
            ),
        ]);
        let ev = Evidence::from_response(
            StatusCode::TOO_MANY_REQUESTS,
            &map,
            Profile::generic(),
            SystemTime::now(),
        );
        assert_eq!(ev.rate().requests.remaining, Some(0));
        assert_eq!(ev.rate().requests.limit, Some(100));
        assert_eq!(ev.rate().requests.reset, Some(Duration::from_secs(7)));
    }

    #[test]
    fn preferred_request_id_wins_whatever_the_header_order() {
        let map = headers(&[
            ("x-ms-request-id", "third"),
            ("x-request-id", "second"),
            ("apim-request-id", "first"),
        ]);
        let ev = Evidence::from_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &map,
            Profile::azure_openai(),
            SystemTime::now(),
        );
        assert_eq!(ev.request_id_str(), Some("first"));
        let custom = Profile::builder("acme")
            .request_id_header(HeaderName::from_static("x-acme-id"))
            .build();
        let map = headers(&[("x-request-id", "generic"), ("x-acme-id", "acme-1")]);
        let ev = Evidence::from_response(StatusCode::OK, &map, &custom, SystemTime::now());
        assert_eq!(ev.request_id_str(), Some("acme-1"));
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let map = headers(&[("retry-after-ms", "250"), ("retry-after", "3")]);
        let ev = Evidence::from_response(
            StatusCode::TOO_MANY_REQUESTS,
            &map,
            Profile::openai(),
            SystemTime::now(),
        );
        assert_eq!(
            ev.hints().server_delay(),
            Some((Duration::from_millis(250), DelaySource::RetryAfterMs))
        );
    }

    #[test]
    fn garbage_headers_are_unknown() {
        let map = headers(&[
            ("x-ratelimit-remaining-requests", "-1"),
            ("x-ratelimit-reset-requests", "soon"),
            ("retry-after", "1e9"),
            ("retry-after-ms", "NaN"),
        ]);
        let ev = Evidence::from_response(
            StatusCode::TOO_MANY_REQUESTS,
            &map,
            Profile::azure_openai(),
            SystemTime::now(),
        );
        assert_eq!(ev.rate().requests.remaining, None);
        assert_eq!(ev.rate().requests.reset, None);
        assert_eq!(ev.hints().server_delay(), None);
    }
}
