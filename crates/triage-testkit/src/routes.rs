//! The route table: what the upstream does for a request, decided from the
//! path, the query and how many times the path was hit before.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the upstream does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Answer with a status, headers and a body.
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Answer 200 with `n` bytes of [`pattern`](crate::pattern_byte).
    Bytes(u64),
    /// Answer 200 with `len` bytes of the pattern, of `content_type`, with
    /// `content-length` or chunked; when `cut` is set, stop after its
    /// byte count with a reset or a FIN instead.
    Body {
        len: u64,
        content_type: String,
        chunked: bool,
        cut: Option<(Cut, u64)>,
    },
    /// Close without answering (FIN).
    FinBeforeHeaders,
    /// Reset without answering.
    RstBeforeHeaders,
    /// Headers announcing 1,000,000 bytes, `after` bytes, then a reset.
    RstMidBody(usize),
    /// Headers announcing 100,000 bytes, `after` bytes, then FIN.
    TruncatedBody(usize),
    /// Wait, then answer 200.
    SlowHeaders(Duration),
    /// Headers at once, then `chunks` chunks of 10 bytes with a pause each.
    SlowBody(Duration, usize),
    /// Bytes that are not HTTP, then close.
    Garbage,
    /// A stream of events (server-sent events, or JSON lines).
    Stream(StreamScript),
}

/// What a `/sse/{n}` stream does (for the first `n` requests to its path;
/// the later ones get the clean stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamScript {
    /// Data events before the end (`data: [DONE]` for SSE).
    pub(crate) events: usize,
    /// JSON lines instead of server-sent events.
    pub(crate) lines: bool,
    /// An error event of this type in place of the event at this index,
    /// which ends the stream.
    pub(crate) error_at: Option<(usize, String)>,
    /// A pause before the event at this index.
    pub(crate) stall: Option<(usize, Duration)>,
    /// A reset in place of the event at this index.
    pub(crate) reset_at: Option<usize>,
    /// Text padding the first event to about this many bytes.
    pub(crate) pad: usize,
}

/// How a body is cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// A TCP reset (`SO_LINGER` 0).
    Rst,
    /// A FIN: the body ends before its declared length (truncation).
    Fin,
}

const NGINX_PAGE: &str = "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

fn h(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

fn json(status: u16, headers: Vec<(String, String)>, body: &str) -> Action {
    let mut headers = headers;
    headers.push(h("content-type", "application/json"));
    Action::Reply {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// The value of `key` in a query string, if it is there.
pub(crate) fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn epoch_in(secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_secs() + secs).to_string()
}

/// A JSON error answer with the query's hint headers.
fn status_reply(code: u16, query: &str) -> Action {
    let mut headers = Vec::new();
    for (key, header) in [
        ("retry_after", "retry-after"),
        ("retry_after_ms", "retry-after-ms"),
        ("request_id", "x-request-id"),
        ("should_retry", "x-should-retry"),
    ] {
        if let Some(value) = query_value(query, key) {
            headers.push(h(header, value.replace("%20", " ").replace("%2C", ",")));
        }
    }
    json(
        code,
        headers,
        &format!(r#"{{"error":{{"message":"status {code}","type":"test"}}}}"#),
    )
}

/// Decides what to do for `path` (without the query) and `query`; `hit` is
/// how many earlier requests this path received.
pub(crate) fn route(path: &str, query: &str, hit: u64) -> Action {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let number = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
    match parts.as_slice() {
        ["ok"] => json(
            200,
            vec![
                h("x-request-id", format!("req_ok_{hit}")),
                h("x-ratelimit-limit-requests", "10000"),
                h("x-ratelimit-remaining-requests", "9999"),
                h("x-ratelimit-reset-requests", "6ms"),
            ],
            r#"{"ok":true}"#,
        ),
        ["status", _] => match number(1) {
            Some(code @ 100..=599) => status_reply(code as u16, query),
            _ => json(404, vec![], r#"{"error":"no such status"}"#),
        },
        ["flaky", _, _] => match (number(1), number(2)) {
            (Some(n), Some(code @ 100..=599)) if hit < n => status_reply(code as u16, query),
            (Some(_), Some(_)) => json(
                200,
                vec![h("x-request-id", format!("req_flaky_{hit}"))],
                r#"{"ok":true}"#,
            ),
            _ => json(404, vec![], r#"{"error":"bad flaky route"}"#),
        },
        ["bytes", _] => Action::Bytes(number(1).unwrap_or(0)),
        ["sse", _] => {
            let Some(n) = number(1) else {
                return json(404, vec![], r#"{"error":"bad sse route"}"#);
            };
            let at = |key: &str| query_value(query, key).and_then(|v| v.parse::<usize>().ok());
            let faulty = hit < n;
            let ms = query_value(query, "stall_ms")
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis);
            Action::Stream(StreamScript {
                events: at("events").unwrap_or(5),
                lines: query_value(query, "lines") == Some("1"),
                error_at: at("error_at").filter(|_| faulty).map(|i| {
                    let kind = query_value(query, "error").unwrap_or("overloaded_error");
                    (i, kind.to_owned())
                }),
                stall: at("stall_at").zip(ms).filter(|_| faulty),
                reset_at: at("reset_at").filter(|_| faulty),
                pad: at("pad").unwrap_or(0).min(1 << 20),
            })
        }
        ["flaky-body", _, cut, _] => {
            let cut = match *cut {
                "rst" => Cut::Rst,
                "fin" => Cut::Fin,
                _ => return json(404, vec![], r#"{"error":"bad flaky-body route"}"#),
            };
            let (Some(n), Some(len)) = (number(1), number(3)) else {
                return json(404, vec![], r#"{"error":"bad flaky-body route"}"#);
            };
            let after = query_value(query, "after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(len / 2)
                .min(len.saturating_sub(1));
            Action::Body {
                len,
                content_type: query_value(query, "type")
                    .map(|t| t.replace("%2F", "/").replace("%2B", "+"))
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                chunked: query_value(query, "chunked") == Some("1"),
                cut: (hit < n).then_some((cut, after)),
            }
        }
        ["openai", "429", "quota"] => json(
            429,
            vec![h("x-request-id", "req_quota_1")],
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        ),
        ["openai", "429", "rate"] => json(
            429,
            vec![
                h("x-request-id", "req_rate_1"),
                h("retry-after-ms", "200"),
                h("x-ratelimit-remaining-requests", "0"),
                h("x-ratelimit-reset-requests", "1s"),
            ],
            r#"{"error":{"message":"Rate limit reached for requests. Please try again in 200ms.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        ),
        ["openai", "429", "too-large"] => json(
            429,
            vec![h("x-request-id", "req_large_1")],
            r#"{"error":{"message":"Request too large for gpt-4o in organization org-test on tokens per min (TPM): Limit 30000, Requested 34307.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        ),
        ["openai", "503", "overloaded"] => json(
            503,
            vec![h("x-request-id", "req_busy_1")],
            r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
        ),
        ["anthropic", "429", "rate"] => json(
            429,
            vec![
                h("request-id", "req_011CSLsW7mFqvHHnzrKdKjAE"),
                h("retry-after", "1"),
                h("x-should-retry", "true"),
            ],
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"},"request_id":"req_011CSLsW7mFqvHHnzrKdKjAE"}"#,
        ),
        ["anthropic", "429", "spend-limit"] => json(
            429,
            vec![h("request-id", "req_011spend")],
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your monthly spend limit.","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_011spend"}"#,
        ),
        ["anthropic", "529"] => json(
            529,
            vec![h("request-id", "req_011busy")],
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011busy"}"#,
        ),
        ["gemini", "429", "per-day"] => json(
            429,
            vec![],
            r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#,
        ),
        ["gemini", "429", "per-minute"] => json(
            429,
            vec![],
            r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}]}}"#,
        ),
        ["azure", "429", "daily"] => json(
            429,
            vec![
                h("retry-after", "86400"),
                h("apim-request-id", "5b5c1b8e-3f6a-4c55-a0ad-6b8f0f6f2f1d"),
            ],
            r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 have exceeded call rate limit of your current AIServices S0 pricing tier. Please retry after 86400 seconds."}}"#,
        ),
        ["aws", "400", "throttling"] => json(
            400,
            vec![
                h("x-amzn-errortype", "ThrottlingException"),
                h("x-amzn-requestid", "aws-req-1"),
            ],
            r#"{"message":"Rate exceeded"}"#,
        ),
        ["github", "403", "rate"] => json(
            403,
            vec![
                h("x-github-request-id", "CE4A:1B2C:3D4E5F:6A7B8C:9D0E1F2A"),
                h("x-ratelimit-limit", "5000"),
                h("x-ratelimit-remaining", "0"),
                h("x-ratelimit-reset", epoch_in(1)),
            ],
            r#"{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#,
        ),
        ["stripe", "429", "lock-timeout"] => json(
            429,
            vec![h("request-id", "req_stripe_1")],
            r#"{"error":{"code":"lock_timeout","doc_url":"https://stripe.com/docs/error-codes/lock-timeout","message":"This object cannot be accessed right now because another API request or Stripe process is currently accessing it.","type":"invalid_request_error"}}"#,
        ),
        ["gateway", "nginx", code] => {
            let (status, title) = match *code {
                "502" => (502, "502 Bad Gateway"),
                "503" => (503, "503 Service Temporarily Unavailable"),
                "504" => (504, "504 Gateway Time-out"),
                _ => (429, "429 Too Many Requests"),
            };
            Action::Reply {
                status,
                headers: vec![h("server", "nginx/1.24.0"), h("content-type", "text/html")],
                body: NGINX_PAGE.replace("{title}", title).into_bytes(),
            }
        }
        ["gateway", "envoy", kind] => {
            let (status, extra, body) = match *kind {
                "503-connect" => (
                    503,
                    None,
                    "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                ),
                "504" => (504, None, "upstream request timeout"),
                _ => (429, Some(h("x-envoy-ratelimited", "true")), ""),
            };
            let mut headers = vec![h("server", "envoy"), h("content-type", "text/plain")];
            headers.extend(extra);
            Action::Reply {
                status,
                headers,
                body: body.as_bytes().to_vec(),
            }
        }
        ["gateway", "cloudflare", _] => {
            let status = number(2).filter(|c| (520..=530).contains(c)).unwrap_or(522) as u16;
            let reason = match status {
                520 => "Web server is returning an unknown error",
                521 => "Web server is down",
                522 => "Connection timed out",
                523 => "Origin is unreachable",
                524 => "A timeout occurred",
                525 => "SSL handshake failed",
                526 => "Invalid SSL certificate",
                _ => "Origin DNS error",
            };
            Action::Reply {
                status,
                headers: vec![
                    h("server", "cloudflare"),
                    h("cf-ray", "8c135d3eeec4a97a-SYD"),
                    h("content-type", "text/html"),
                ],
                body: format!(
                    "<!DOCTYPE html><html><head><title>svc.test | {status}: {reason}</title></head><body><div id=\"cf-error-details\">Ray ID: 8c135d3eeec4a97a</div></body></html>"
                )
                .into_bytes(),
            }
        }
        ["fault", "fin-before-headers"] => Action::FinBeforeHeaders,
        ["fault", "rst-before-headers"] => Action::RstBeforeHeaders,
        ["fault", "rst-mid-body"] => Action::RstMidBody(
            query_value(query, "after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
        ),
        ["fault", "truncated-body"] => Action::TruncatedBody(
            query_value(query, "after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
        ),
        ["fault", "slow-headers"] => Action::SlowHeaders(Duration::from_millis(
            query_value(query, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
        )),
        ["fault", "slow-body"] => Action::SlowBody(
            Duration::from_millis(
                query_value(query, "ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(500),
            ),
            query_value(query, "chunks")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
        ),
        ["fault", "garbage"] => Action::Garbage,
        _ => json(404, vec![], r#"{"error":"no such route"}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaky_routes_recover_after_n_hits() {
        assert!(matches!(
            route("/flaky/2/503", "", 0),
            Action::Reply { status: 503, .. }
        ));
        assert!(matches!(
            route("/flaky/2/503", "", 1),
            Action::Reply { status: 503, .. }
        ));
        assert!(matches!(
            route("/flaky/2/503", "", 2),
            Action::Reply { status: 200, .. }
        ));
    }

    #[test]
    fn status_routes_carry_their_hints() {
        let Action::Reply {
            status, headers, ..
        } = route("/status/429", "retry_after=3&request_id=abc", 0)
        else {
            panic!("a reply")
        };
        assert_eq!(status, 429);
        assert!(headers.contains(&("retry-after".into(), "3".into())));
        assert!(headers.contains(&("x-request-id".into(), "abc".into())));
    }

    #[test]
    fn flaky_bodies_are_cut_for_the_first_n_hits_then_whole() {
        let cut = route(
            "/flaky-body/2/rst/5000",
            "after=100&type=text%2Fevent-stream",
            1,
        );
        assert_eq!(
            cut,
            Action::Body {
                len: 5000,
                content_type: "text/event-stream".into(),
                chunked: false,
                cut: Some((Cut::Rst, 100)),
            }
        );
        let whole = route("/flaky-body/2/fin/5000", "chunked=1", 2);
        assert_eq!(
            whole,
            Action::Body {
                len: 5000,
                content_type: "application/octet-stream".into(),
                chunked: true,
                cut: None,
            }
        );
        assert!(matches!(
            route("/flaky-body/2/fin/5000", "", 0),
            Action::Body {
                cut: Some((Cut::Fin, 2500)),
                ..
            }
        ));
        assert!(matches!(
            route("/flaky-body/1/boom/10", "", 0),
            Action::Reply { status: 404, .. }
        ));
    }

    #[test]
    fn unknown_routes_are_404() {
        assert!(matches!(
            route("/nope", "", 0),
            Action::Reply { status: 404, .. }
        ));
        assert!(matches!(
            route("/status/999", "", 0),
            Action::Reply { status: 404, .. }
        ));
    }
}
