use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn json(body: &str) -> FailureBody {
    FailureBody::read(Some("application/json"), None, body.as_bytes())
}

#[test]
fn openai_shapes() {
    let b = json(
        r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    );
    assert_eq!(b.shape(), BodyShape::OpenAi);
    assert_eq!(b.code(), Some("insufficient_quota"));
    assert_eq!(b.kind(), Some("insufficient_quota"));
    assert!(
        b.message()
            .unwrap()
            .starts_with("You exceeded your current quota")
    );
    let b = json(
        r#"{"error":{"message":"Rate limit reached for gpt-4o ... Please try again in 1.146s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
    );
    assert_eq!(b.code(), Some("rate_limit_exceeded"));
    assert_eq!(
        crate::headers::delay_in_message(b.message().unwrap()),
        Some(Duration::from_millis(1146))
    );
    let azure =
        json(r#"{"error":{"code":"429","message":"Requests ... Please retry after 6 seconds."}}"#);
    assert_eq!(azure.shape(), BodyShape::OpenAi);
    assert_eq!(azure.code(), Some("429"));
}

#[test]
fn anthropic_shapes() {
    let b = json(
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSLsW7mFqvHHnzrKdKjAE"}"#,
    );
    assert_eq!(b.shape(), BodyShape::Anthropic);
    assert_eq!(b.kind(), Some("overloaded_error"));
    assert_eq!(b.request_id(), Some("req_011CSLsW7mFqvHHnzrKdKjAE"));
    let b = json(
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}"#,
    );
    assert_eq!(b.detail_code(), Some("enforced_spend_limit_reached"));
}

#[test]
fn google_shapes() {
    let per_day = r#"{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"m","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"29.723877525s"},{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com"}]}}"#;
    let b = json(per_day);
    assert_eq!(b.shape(), BodyShape::Google);
    assert_eq!(b.status_code(), Some(429));
    assert_eq!(
        b.quota_ids().collect::<Vec<_>>(),
        ["GenerateRequestsPerDayPerProjectPerModel-FreeTier"]
    );
    assert_eq!(b.retry_delay(), Some(Duration::new(29, 723_877_525)));
    assert_eq!(b.reason(), Some("RATE_LIMIT_EXCEEDED"));
    let wrapped = json(&format!("[{per_day}]"));
    assert_eq!(wrapped.shape(), BodyShape::Google);
    assert_eq!(wrapped.kind(), Some("RESOURCE_EXHAUSTED"));
}

#[test]
fn aws_shapes() {
    let b = FailureBody::read(
        Some("application/json"),
        Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    );
    assert_eq!(b.shape(), BodyShape::AwsJson);
    assert_eq!(b.code(), Some("ThrottlingException"));
    assert_eq!(
        b.message(),
        Some("Too many requests, please wait before trying again.")
    );
    let b = json(
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"exceeded"}"#,
    );
    assert_eq!(b.code(), Some("ProvisionedThroughputExceededException"));
    let b = FailureBody::read(
        Some("application/xml"),
        None,
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>",
    );
    assert_eq!(b.shape(), BodyShape::AwsXml);
    assert_eq!(b.code(), Some("SlowDown"));
    assert_eq!(b.request_id(), Some("4442587FB7D0A2F9"));
    let empty = FailureBody::read(None, Some("AccessDeniedException"), b"");
    assert_eq!(empty.code(), Some("AccessDeniedException"));
}

#[test]
fn github_stripe_apim_problem() {
    let b = json(
        r#"{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/rate-limits"}"#,
    );
    assert_eq!(b.shape(), BodyShape::GitHub);
    assert_eq!(
        b.message(),
        Some("You have exceeded a secondary rate limit.")
    );
    let b = json(
        r#"{"error":{"code":"lock_timeout","doc_url":"https://stripe.com/docs/error-codes/lock-timeout","message":"locked","type":"invalid_request_error"}}"#,
    );
    assert_eq!(b.shape(), BodyShape::Stripe);
    assert_eq!(b.code(), Some("lock_timeout"));
    let b = json(
        r#"{"statusCode":403,"message":"Out of call volume quota. Quota will be replenished in 2.12 days."}"#,
    );
    assert_eq!(b.shape(), BodyShape::AzureApim);
    assert_eq!(b.status_code(), Some(403));
    let b = FailureBody::read(
        Some("application/problem+json"),
        None,
        br#"{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Quota exceeded","status":429}"#,
    );
    assert_eq!(b.shape(), BodyShape::Problem);
    assert_eq!(
        b.kind(),
        Some("https://iana.org/assignments/http-problem-types#quota-exceeded")
    );
    assert_eq!(b.status_code(), Some(429));
}

#[test]
fn pages_and_text() {
    let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    let b = FailureBody::read(Some("text/html"), None, nginx.as_bytes());
    assert_eq!(b.shape(), BodyShape::Html);
    assert_eq!(b.html_title(), Some("502 Bad Gateway"));
    let b = FailureBody::read(None, None, b"<!DOCTYPE html><HTML><HEAD><TITLE>example.com | 522: Connection timed out &amp; more</TITLE>");
    assert_eq!(
        b.message(),
        Some("example.com | 522: Connection timed out & more")
    );
    let b = FailureBody::read(Some("text/plain"), None, b"\n upstream connect error or disconnect/reset before headers. reset reason: connection failure\nmore");
    assert_eq!(b.shape(), BodyShape::Text);
    assert_eq!(
        b.message(),
        Some(
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        )
    );
    assert_eq!(
        FailureBody::read(None, None, b"  ").shape(),
        BodyShape::Empty
    );
}

#[test]
fn hostile_bodies() {
    let deep = vec![b'['; 1_000_000];
    let b = FailureBody::read(None, None, &deep);
    assert!(b.is_truncated());
    // A cut in the middle of a string keeps the fields before it.
    let mut cut =
        br#"{"error":{"code":"insufficient_quota","type":"insufficient_quota","message":""#
            .to_vec();
    cut.extend(std::iter::repeat_n(b'x', 20_000));
    let b = FailureBody::read(None, None, &cut);
    assert_eq!(b.code(), Some("insufficient_quota"));
    assert!(b.is_truncated());
    assert!(b.message().unwrap().len() <= MAX_MESSAGE);
    let b = json("{\"error\":{\"message\":\"bad \u{7}bell\",\"code\":\"a\\nb\"}}");
    assert_eq!(b.message(), Some("bad  bell"));
    assert_eq!(b.code(), Some("a b"));
    let b = FailureBody::read(None, None, b"{\"error\":{\"message\":\"caf\xc3 \xff\"}}");
    assert_eq!(b.message(), Some("caf\u{fffd} \u{fffd}"));
    let long = format!(
        r#"{{"error":{{"code":"{}","message":"m"}}}}"#,
        "c".repeat(1000)
    );
    assert_eq!(json(&long).code().map(str::len), Some(MAX_CODE));
}

proptest! {
    #[test]
    fn never_panics_and_respects_bounds(body in prop::collection::vec(any::<u8>(), 0..3000), ct in "\\PC{0,30}", json_like in "[\\[\\]{}\":,a-z0-9 ]{0,400}") {
        for input in [&body[..], json_like.as_bytes()] {
            let b = FailureBody::read(Some(&ct), None, input);
            prop_assert!(b.message().is_none_or(|m| m.len() <= MAX_MESSAGE));
            for s in [b.code(), b.kind(), b.detail_code(), b.reason(), b.request_id()].into_iter().flatten() {
                prop_assert!(s.len() <= MAX_MESSAGE);
                prop_assert!(!s.chars().any(char::is_control));
            }
            prop_assert!(b.quota_ids().count() <= MAX_QUOTA_IDS);
        }
    }
}
