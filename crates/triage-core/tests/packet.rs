//! The escalation packet: what a person hands over carries the evidence of
//! every attempt and never a secret.

use std::io;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use triage_core::{
    AttemptContext, Decision, Error, ErrorKind, Evidence, Fault, Owner, PacketBuilder, Profile,
    RetryBudget, RetryRules, Stage, Stop, TransportFailure, classify,
};

#[derive(Debug)]
struct Inner(&'static str);
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Inner {}

/// Two attempts: a reset before headers (retried), then an OpenAI quota 429.
fn run() -> (triage_core::Packet, Error) {
    let profile = Profile::openai();
    let uri: Uri =
        "https://api.openai.com/v1/chat/completions?api_key=sk-live-abcdefghijklmnopqrstu&user=me"
            .parse()
            .unwrap();
    let method = Method::POST;
    let rules = RetryRules::default();
    let budget = RetryBudget::default();
    let now = Instant::now();
    budget.deposit(now);
    let mut packet = PacketBuilder::new(&method, &uri, profile, SystemTime::now())
        .version("tower-triage 0.1.0")
        .runtime("tokio");

    let first = Evidence::from_transport(TransportFailure::new(Stage::AwaitHeaders, Fault::Reset))
        .with_elapsed(Duration::from_millis(12));
    let d1 = classify(&first, profile);
    let decision = rules.decide(
        &d1,
        &first,
        profile,
        &AttemptContext::new(1, &method),
        &budget,
        now,
    );
    assert!(decision.is_retry(), "{decision}");
    packet.push_attempt(&first, &d1, &decision);

    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", HeaderValue::from_static("req_abc123"));
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("42"),
    );
    let mut second = Evidence::from_response(
        StatusCode::TOO_MANY_REQUESTS,
        &headers,
        profile,
        SystemTime::now(),
    );
    second.read_failure_body(
        &headers,
        br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    );
    let d2 = classify(&second, profile);
    let decision = rules.decide(
        &d2,
        &second,
        profile,
        &AttemptContext::new(2, &method),
        &budget,
        now,
    );
    assert_eq!(decision, Decision::Stop(Stop::NotRetryable(Owner::Quota)));
    packet.push_attempt(&second, &d2, &decision);

    // An error chain whose secret hides inside an io::Error payload.
    let cause = io::Error::other(Inner(
        "proxy said: Authorization: Bearer sk-proj-SECRETSECRETSECRET1",
    ));
    packet.set_error(&cause);
    let packet = packet.finish(Duration::from_millis(640));
    let error = Error::new(
        d2,
        Stop::NotRetryable(Owner::Quota),
        &second,
        packet.clone(),
        Some(Box::new(cause)),
    );
    (packet, error)
}

#[test]
fn packet_carries_every_attempt() {
    let (packet, error) = run();
    assert_eq!(packet.attempts_total(), 2);
    assert_eq!(packet.attempts()[0].status(), None);
    assert_eq!(packet.attempts()[0].stage(), Some(Stage::AwaitHeaders));
    assert_eq!(packet.attempts()[0].decision(), "retry");
    assert_eq!(packet.attempts()[1].status(), Some(429));
    assert!(packet.attempts()[1].has_body());
    assert_eq!(packet.attempts()[1].request_id(), Some("req_abc123"));
    assert_eq!(
        packet.attempts()[1].error_code(),
        Some("insufficient_quota")
    );
    assert_eq!(packet.owner(), Some(Owner::Quota));
    assert_eq!(packet.outcome(), "not_retryable");
    assert_eq!(packet.request_ids(), ["req_abc123"]);
    assert_eq!(packet.rate().and_then(|r| r.requests.remaining), Some(42));
    // The io::Error and its payload say the same words: once, scrubbed.
    assert_eq!(
        packet.error_chain(),
        ["proxy said: Authorization: Bearer [redacted]"]
    );
    assert!(packet.timestamp().ends_with('Z'));
    assert_eq!(packet.elapsed(), Duration::from_millis(640));

    assert_eq!(error.kind(), ErrorKind::RateLimit);
    assert_eq!(error.owner(), Some(Owner::Quota));
    assert_eq!(error.attempts(), 2);
    assert_eq!(error.request_id(), Some("req_abc123"));
    assert!(std::error::Error::source(&error).is_some());
    assert_eq!(
        error.to_string(),
        "quota: quota_exhausted.billing (status 429, request id req_abc123) after 2 attempts, not retryable (quota)"
    );
}

#[test]
fn packet_text_has_no_secret() {
    let (packet, _) = run();
    let text = packet.to_string();
    for secret in [
        "sk-live-abcdefghijklmnopqrstu",
        "SECRETSECRET",
        "Bearer sk-",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(
        text.contains(
            "POST https://api.openai.com/v1/chat/completions?api_key=[redacted]&user=[redacted]"
        ),
        "{text}"
    );
    assert!(text.contains("next step:"));
    assert!(text.contains("req_abc123"));
}

#[cfg(feature = "serde")]
#[test]
fn packet_json_parses_and_has_no_secret() {
    let (packet, _) = run();
    let json = packet.to_json();
    assert!(
        !json.contains("SECRETSECRET") && !json.contains("sk-live"),
        "{json}"
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["owner"], "quota");
    assert_eq!(value["method"], "POST");
    assert_eq!(value["attempts"][0]["stage"], "await_headers");
    assert_eq!(value["attempts"][1]["status"], 429);
    assert_eq!(value["attempts"][1]["has_body"], true);
    assert_eq!(value["request_ids"][0], "req_abc123");
    assert_eq!(value["next_step"], packet.next_step());
}

#[test]
fn an_error_chain_says_each_message_once() {
    // An io::Error around a payload prints the payload's words; the chain
    // walks into the payload, and must not repeat them.
    #[derive(Debug)]
    struct Payload;
    impl std::fmt::Display for Payload {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("invalid peer certificate: Expired")
        }
    }
    impl std::error::Error for Payload {}
    let io = std::io::Error::other(Payload);
    let mut builder = PacketBuilder::new(
        &http::Method::GET,
        &http::Uri::from_static("https://svc.test/"),
        Profile::generic(),
        std::time::SystemTime::now(),
    );
    builder.set_error(&io);
    let packet = builder.finish(Duration::ZERO);
    assert_eq!(packet.error_chain(), ["invalid peer certificate: Expired"]);
}

#[test]
fn a_deferred_packet_is_written_on_first_read_like_an_eager_one() {
    let profile = Profile::generic();
    let uri: Uri = "https://api.example.test/v1/things?token=zq9LongSecretValue77"
        .parse()
        .unwrap();
    let evidence = Evidence::from_transport(TransportFailure::new(Stage::Dns, Fault::NameNotFound))
        .with_elapsed(Duration::from_millis(3));
    let diagnosis = classify(&evidence, profile);
    let stop = Stop::NotRetryable(Owner::ConnectionPath);
    let started = SystemTime::now();
    let builder = || {
        PacketBuilder::new(&Method::GET, &uri, profile, started)
            .version("tower-triage 0.1.0")
            .runtime("tokio")
            .attempt(&evidence, &diagnosis, &Decision::Stop(stop))
    };
    // The cause echoes a value the request carried.
    let cause = || io::Error::other(Inner("lookup failed for token zq9LongSecretValue77"));

    let eager = builder().error(&cause()).finish(Duration::from_millis(5));
    let deferred = Error::deferred(
        diagnosis,
        stop,
        &evidence,
        (builder(), Duration::from_millis(5)),
        Some(Box::new(cause())),
    );
    // Printed before and after its packet is written (an `unwrap`), it
    // shows no value the request carried.
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer sk-proj-HEADERSECRET42"),
    );
    let mut with_head = builder();
    with_head.set_request_headers(headers);
    let printed = Error::deferred(
        diagnosis,
        stop,
        &evidence,
        (with_head, Duration::from_millis(5)),
        Some(Box::new(cause())),
    );
    for debug in [format!("{printed:?}"), {
        let _ = printed.packet();
        format!("{printed:?}")
    }] {
        assert!(!debug.contains("HEADERSECRET42"), "{debug}");
        assert!(!debug.contains("zq9LongSecretValue77"), "{debug}");
    }
    // Read without writing the packet.
    assert_eq!(deferred.attempts(), 1);
    assert_eq!(deferred.kind(), ErrorKind::Connection);
    // Written on first read, from the error's own source chain.
    let packet = deferred.packet();
    assert_eq!(packet, &eager);
    assert!(std::ptr::eq(packet, deferred.packet()), "written once");
    let text = packet.to_string();
    assert!(text.contains("lookup failed"), "{text}");
    assert!(!text.contains("zq9LongSecretValue77"), "{text}");
}
