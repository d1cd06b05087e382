//! Streamed answers (server-sent events, JSON lines) against the testkit's
//! `/sse/` upstream over real sockets: until the first event reaches the
//! caller (the commit point), a failure is the attempt's and retried under
//! the usual rules; after it, nothing is retried and an error event is
//! reported with the bytes delivered before it.
#![cfg(feature = "hyper-util")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_triage::core::{Backoff, Class, Fault, Owner, Profile, RetryRules, TimeoutPhase};
use tower_triage::{BodyOutcome, Observer, ReportExt, ResponseBody, TriageLayer};
use triage_testkit::{EventLog, Resolver, Upstream};

/// Every body outcome told to the observer.
#[derive(Clone, Default)]
struct Bodies(Arc<Mutex<Vec<BodyOutcome>>>);

impl Observer for Bodies {
    fn on_body(&self, outcome: &BodyOutcome) {
        self.0.lock().unwrap().push(*outcome);
    }
}

fn layer(profile: &Profile) -> TriageLayer {
    TriageLayer::new().profile(profile.clone()).rules(
        RetryRules::default()
            .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap()),
    )
}

type Client = tower_triage::Triage<
    hyper_util::client::legacy::Client<
        tower_triage::connect::TagConnect<
            hyper_util::client::legacy::connect::HttpConnector<
                tower_triage::connect::TagResolver<Resolver>,
            >,
        >,
        Full<Bytes>,
    >,
>;

fn client(layer: &TriageLayer) -> Client {
    tower_triage::connect::client_with(
        layer,
        tower_triage::connect::tagged_connector(Resolver::new()),
    )
}

fn post(url: String) -> Request<Full<Bytes>> {
    Request::post(url)
        .body(Full::new(Bytes::from_static(b"{\"stream\":true}")))
        .unwrap()
}

/// Sends a streamed call to `url` through `svc`: its response.
async fn send(
    svc: &mut Client,
    url: String,
) -> http::Response<ResponseBody<hyper::body::Incoming>> {
    svc.ready().await.unwrap().call(post(url)).await.unwrap()
}

/// Reads a body to its end (or its error): the bytes, and the error.
async fn read(body: &mut ResponseBody<hyper::body::Incoming>) -> (Vec<u8>, Option<String>) {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => bytes.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Err(error) => return (bytes, Some(error.to_string())),
        }
    }
    (bytes, None)
}

#[tokio::test]
async fn an_error_event_first_is_the_attempts_failure_and_is_retried() {
    let upstream = Upstream::start().await.unwrap();
    for path in ["/sse/1?error_at=0", "/sse/1?error_at=0&lines=1"] {
        let mut svc = client(&layer(Profile::anthropic()));
        let response = send(&mut svc, upstream.url(path)).await;
        assert_eq!(response.status(), 200);
        let report = response.report().unwrap();
        assert_eq!(report.attempts(), 2, "{path}");
        let first = &report.packet().unwrap().attempts()[0];
        assert!(first.in_stream(), "{path}");
        assert_eq!(first.owner(), Some(Owner::Server));
        assert_eq!(first.class(), "overloaded");
        assert_eq!(first.decision(), "retry");
        let (bytes, error) = read(&mut response.into_body()).await;
        assert!(error.is_none());
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("event 0") && !text.contains("overloaded"),
            "{text}"
        );
        assert_eq!(upstream.hits(path.split('?').next().unwrap()), 2);
        upstream.reset_hits();
    }
}

#[tokio::test]
async fn an_error_event_after_the_first_bytes_is_reported_and_not_retried() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let upstream = Upstream::start().await.unwrap();
    let bodies = Bodies::default();
    let mut svc = client(&layer(Profile::anthropic()).observer(bodies.clone()));
    let response = send(&mut svc, upstream.url("/sse/1?error_at=3")).await;
    assert_eq!(response.report().unwrap().attempts(), 1);
    let mut body = response.into_body();
    let (bytes, error) = read(&mut body).await;
    assert!(error.is_none(), "the event is delivered like any other");
    let text = String::from_utf8(bytes.clone()).unwrap();
    let before = text.find("event: error").unwrap() as u64;
    let found = body.stream_error().expect("the stream error");
    assert_eq!(
        found.bytes(),
        before,
        "the bytes delivered before the event"
    );
    assert_eq!(found.diagnosis().owner(), Some(Owner::Server));
    assert_eq!(found.diagnosis().class(), Class::Overloaded);
    assert_eq!(found.packet().outcome(), "committed");
    assert_eq!(found.packet().method(), "POST");
    assert!(found.packet().attempts()[0].in_stream());
    assert_eq!(
        upstream.hits("/sse/1"),
        1,
        "nothing retried after the commit point"
    );
    let told = bodies.0.lock().unwrap().clone();
    assert!(
        told.iter().any(|o| matches!(
            o,
            BodyOutcome::StreamError { bytes, diagnosis }
                if *bytes == before && diagnosis.class() == Class::Overloaded
        )),
        "{told:?}"
    );
    let events = capture.matching("error event in the response stream");
    assert_eq!(events.len(), 1, "{}", capture.lines().join("\n"));
    for field in [
        "owner=server",
        "class=overloaded",
        "stage=body",
        &format!("bytes={before}"),
        "error_code=overloaded_error",
        "decision=committed",
    ] {
        assert!(events[0].contains(field), "{field}: {}", events[0]);
    }
}

#[tokio::test]
async fn a_stall_before_the_first_event_is_a_first_byte_timeout_and_is_retried() {
    let upstream = Upstream::start().await.unwrap();
    let layer = layer(Profile::openai()).first_byte_timeout(Some(Duration::from_millis(200)));
    let mut svc = client(&layer);
    let response = send(&mut svc, upstream.url("/sse/1?stall_at=0&stall_ms=3000")).await;
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 2);
    let first = &report.packet().unwrap().attempts()[0];
    assert_eq!(first.class(), "transport.body.timeout.first_byte");
    assert_eq!(first.status(), Some(200));
    let (bytes, error) = read(&mut response.into_body()).await;
    assert!(error.is_none());
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
}

#[tokio::test]
async fn a_stall_between_events_is_a_body_idle_timeout_reported_not_retried() {
    let upstream = Upstream::start().await.unwrap();
    let bodies = Bodies::default();
    let layer = layer(Profile::openai())
        .body_idle_timeout(Some(Duration::from_millis(200)))
        .observer(bodies.clone());
    let mut svc = client(&layer);
    let response = send(&mut svc, upstream.url("/sse/1?stall_at=2&stall_ms=3000")).await;
    assert_eq!(response.report().unwrap().attempts(), 1);
    let (bytes, error) = read(&mut response.into_body()).await;
    assert!(error.unwrap().contains("body_idle"));
    assert!(String::from_utf8(bytes).unwrap().contains("event 1"));
    assert_eq!(upstream.hits("/sse/1"), 1);
    assert!(bodies.0.lock().unwrap().iter().any(|o| matches!(
        o,
        BodyOutcome::Failed {
            fault: Fault::Timeout(TimeoutPhase::BodyIdle),
            ..
        }
    )));
}

#[tokio::test]
async fn a_reset_before_the_first_event_is_retried_and_after_it_reported() {
    let upstream = Upstream::start().await.unwrap();
    let mut svc = client(&layer(Profile::anthropic()));
    let response = send(&mut svc, upstream.url("/sse/1?reset_at=0")).await;
    assert_eq!(response.report().unwrap().attempts(), 2);
    let (_, error) = read(&mut response.into_body()).await;
    assert!(error.is_none());

    upstream.reset_hits();
    let bodies = Bodies::default();
    let mut svc = client(&layer(Profile::anthropic()).observer(bodies.clone()));
    let response = send(&mut svc, upstream.url("/sse/1?reset_at=3")).await;
    assert_eq!(response.report().unwrap().attempts(), 1);
    let (bytes, error) = read(&mut response.into_body()).await;
    assert!(error.is_some(), "the reset reaches the caller");
    assert!(String::from_utf8(bytes).unwrap().contains("event 2"));
    assert_eq!(upstream.hits("/sse/1"), 1);
    assert!(
        bodies
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|o| matches!(o, BodyOutcome::Failed { .. }))
    );
}

#[tokio::test]
async fn the_idempotency_gate_holds_before_the_commit_point() {
    // A generic API's POST that meets an `api_error` (a 500: maybe
    // processed) as its first event is not resent; the caller gets the
    // stream with its report.
    let upstream = Upstream::start().await.unwrap();
    let mut svc = client(&layer(Profile::generic()));
    let response = send(&mut svc, upstream.url("/sse/1?error_at=0&error=api_error")).await;
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 1);
    assert_eq!(report.packet().unwrap().outcome(), "not_replay_safe");
    assert_eq!(report.diagnosis().owner(), Some(Owner::Server));
    let (bytes, _) = read(&mut response.into_body()).await;
    assert!(
        String::from_utf8(bytes).unwrap().contains("api_error"),
        "every byte handed back"
    );
    assert_eq!(upstream.hits("/sse/1"), 1);
}

#[tokio::test]
async fn a_first_event_over_16_kib_commits_the_stream_as_it_is() {
    let upstream = Upstream::start().await.unwrap();
    let mut svc = client(&layer(Profile::anthropic()));
    let response = send(&mut svc, upstream.url("/sse/0?pad=40000&events=2")).await;
    assert_eq!(response.report().unwrap().attempts(), 1);
    let (bytes, error) = read(&mut response.into_body()).await;
    assert!(error.is_none());
    assert!(bytes.len() > 40_000);
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
}

#[tokio::test]
async fn a_healthy_streams_first_event_is_not_held_past_its_arrival() {
    // The upstream sends its first event, then waits 1.5 s before the
    // second: the caller has the first before the second is even sent.
    let upstream = Upstream::start().await.unwrap();
    let mut svc = client(&layer(Profile::anthropic()));
    let started = Instant::now();
    let response = send(&mut svc, upstream.url("/sse/1?stall_at=1&stall_ms=1500")).await;
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("event 0"));
    assert!(
        at < Duration::from_millis(1000),
        "the first event came after the second was due: {at:?}"
    );
}

#[tokio::test]
async fn streams_go_through_untouched_when_the_commit_point_is_off() {
    let upstream = Upstream::start().await.unwrap();
    let mut svc = client(&layer(Profile::anthropic()).stream_first_event(false));
    let response = send(&mut svc, upstream.url("/sse/1?error_at=0")).await;
    assert_eq!(response.report().unwrap().attempts(), 1);
    let (bytes, _) = read(&mut response.into_body()).await;
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .contains("overloaded_error")
    );
}

/// An error event after the commit point that echoes a value the request's
/// headers carried: the stream error's packet and its WARN event have it
/// scrubbed by exact value, with the head kept (retries on) and with
/// fingerprints only (retries off).
#[tokio::test]
async fn a_later_error_event_that_echoes_a_secret_is_scrubbed() {
    const KEY: &str = "zq9LongSecretValue77";
    let stream = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\"}}\n\n\
         event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{KEY}\",\"message\":\"bad key {KEY}\"}}}}\n\n"
    );
    for rules in [RetryRules::default(), RetryRules::none()] {
        let capture = EventLog::new();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let stream = stream.clone();
        let inner = tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let answer = http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Full::new(Bytes::from(stream.clone())))
                .unwrap();
            async move { Ok::<_, std::io::Error>(answer) }
        });
        let layer = TriageLayer::new()
            .profile(Profile::anthropic().clone())
            .rules(rules);
        let mut svc = tower::Layer::layer(&layer, inner);
        let mut request = post("https://api.test/v1/messages".into());
        request
            .headers_mut()
            .insert("x-api-key", http::HeaderValue::from_static(KEY));
        let response = svc.ready().await.unwrap().call(request).await.unwrap();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
        let found = body.stream_error().expect("the stream error");
        let packet = found.packet().to_string();
        assert!(!packet.contains(KEY), "{packet}");
        assert!(packet.contains("[redacted]"), "{packet}");
        let events = capture
            .matching("error event in the response stream")
            .join("\n");
        assert!(!events.is_empty());
        assert!(!events.contains(KEY), "{events}");
    }
}
