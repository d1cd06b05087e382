//! Whole-body mode with real sockets on 127.0.0.1: hyper-util's client, the
//! testkit's upstream. A success's body cut by a reset or a truncation while
//! it is read inside the attempt is that attempt's failure at the body
//! stage: retried for a GET (the caller gets every byte, once), refused for
//! a POST without an idempotency key. A body over the cap, or of a streaming
//! type, streams as with the mode off: its failure is reported with its byte
//! count and not retried. With the mode off nothing changes. The SDK preset
//! puts it together with failure statuses as errors.
//!
//! Every test captures the layer's events with a subscriber of its own: a
//! callsite first reached by a thread with none could have its interest
//! cached as "never" while another test's subscriber registers
//! (tracing-core's registration race), and that test would miss its events.
#![cfg(feature = "hyper-util")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{
    Backoff, BodyProgress, ErrorKind, Fault, Owner, Replay, RetryRules, Stage, Stop, TimeoutPhase,
};
use tower_triage::{
    AttemptInfo, BodyMode, BodyOutcome, DEFAULT_WHOLE_BODY_CAP, Observer, Outcome, ReportExt,
    RequestOptions, ResponseBody, TriageLayer,
};
use triage_testkit::{EventLog, Fnv, Resolver, Upstream, pattern_checksum};

// ----------------------------------------------------------- observer

/// One judged attempt, as the observer saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    attempt: u32,
    retry: bool,
    stage: Option<Stage>,
    fault: Option<Fault>,
    body: BodyProgress,
    body_mode: Option<BodyMode>,
}

#[derive(Clone, Default)]
struct Watch {
    attempts: Arc<Mutex<Vec<Seen>>>,
    responses: Arc<Mutex<Vec<(u32, BodyMode)>>>,
    bodies: Arc<Mutex<Vec<BodyOutcome>>>,
}

impl Observer for Watch {
    fn on_attempt(&self, a: &AttemptInfo<'_>) {
        self.attempts.lock().unwrap().push(Seen {
            attempt: a.attempt,
            retry: a.decision.is_retry(),
            stage: a.diagnosis.stage(),
            fault: a.evidence.transport().map(|t| t.fault()),
            body: a.evidence.body(),
            body_mode: a.body_mode,
        });
    }
    fn on_outcome(&self, outcome: &Outcome<'_>) {
        if let Outcome::Response {
            attempts,
            body_mode,
            ..
        } = outcome
        {
            self.responses.lock().unwrap().push((*attempts, *body_mode));
        }
    }
    fn on_body(&self, body: &BodyOutcome) {
        self.bodies.lock().unwrap().push(*body);
    }
}

impl Watch {
    fn attempts(&self) -> Vec<Seen> {
        self.attempts.lock().unwrap().clone()
    }
    fn responses(&self) -> Vec<(u32, BodyMode)> {
        self.responses.lock().unwrap().clone()
    }
    fn bodies(&self) -> Vec<BodyOutcome> {
        self.bodies.lock().unwrap().clone()
    }
}

// -------------------------------------------------------------- helpers

type Response = http::Response<ResponseBody<hyper::body::Incoming>>;

fn fast_rules() -> RetryRules {
    RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap())
}

/// `layer` around hyper-util's client with the tagged connector and the
/// testkit's resolver (`svc.test` is 127.0.0.1).
async fn send(
    layer: TriageLayer,
    method: Method,
    url: String,
    extra: impl FnOnce(&mut Request<Full<Bytes>>),
) -> Result<Response, tower_triage::core::Error> {
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = layer.layer(client);
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    extra(&mut request);
    svc.ready().await.unwrap().call(request).await
}

fn whole(watch: &Watch) -> TriageLayer {
    TriageLayer::new()
        .rules(fast_rules())
        .whole_body(Some(DEFAULT_WHOLE_BODY_CAP))
        .observer(watch.clone())
}

/// The body's bytes: how many, and their checksum.
async fn read_all(response: Response) -> (u64, u64) {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let mut hash = Fnv::new();
    hash.write(&bytes);
    (bytes.len() as u64, hash.finish())
}

/// The data frames of a body, and whether trailers came.
async fn frames(response: Response) -> Vec<usize> {
    let mut body = response.into_body();
    let mut sizes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            sizes.push(data.len());
        }
    }
    sizes
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_body_reset_mid_way_is_retried_and_reaches_the_caller_whole() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    // 300,000 bytes declared; the first answer is reset after 40,000.
    let path = "/flaky-body/1/rst/300000";
    let url = upstream.url(&format!("{path}?after=40000"));
    let response = send(whole(&watch), Method::GET, url, |_| {}).await.unwrap();

    assert_eq!(upstream.hits(path), 2, "the reset attempt was sent again");
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 2);
    assert_eq!(report.body_mode(), BodyMode::Whole);
    assert_eq!(response.body().body_mode(), BodyMode::Whole);
    assert_eq!(response.headers()["content-length"], "300000");
    assert_eq!(
        http_body::Body::size_hint(response.body()).exact(),
        Some(300_000)
    );
    assert_eq!(
        frames(response).await,
        vec![300_000],
        "one frame, all of it"
    );

    let attempts = watch.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts[0],
        Seen {
            attempt: 1,
            retry: true,
            stage: Some(Stage::Body),
            fault: Some(Fault::Reset),
            body: BodyProgress::Failed(40_000),
            body_mode: Some(BodyMode::Whole),
        }
    );
    assert_eq!(attempts[1].body, BodyProgress::Complete(300_000));
    assert_eq!(attempts[1].body_mode, Some(BodyMode::Whole));
    assert_eq!(watch.responses(), vec![(2, BodyMode::Whole)]);
    // The partial bytes never reached the caller: one body, complete.
    assert_eq!(
        watch.bodies(),
        vec![BodyOutcome::Complete { bytes: 300_000 }]
    );

    let retried = capture.matching("attempt failed, retrying");
    assert_eq!(retried.len(), 1, "{}", capture.lines().join("\n"));
    for field in [
        "stage=body",
        "body_mode=whole",
        "body_bytes=40000",
        "owner=connection_path",
        "http.response.status_code=200",
    ] {
        assert!(retried[0].contains(field), "{field}: {}", retried[0]);
    }
    let succeeded = capture.matching("attempt succeeded");
    assert!(succeeded[0].contains("body_mode=whole"), "{}", succeeded[0]);
}

#[tokio::test]
async fn the_whole_body_that_reaches_the_caller_is_every_byte_once() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    // Declared and chunked (size unknown until the end) alike.
    for (path, query) in [
        ("/flaky-body/1/rst/300000", "after=40000"),
        ("/flaky-body/1/rst/900000", "after=200000&chunked=1"),
    ] {
        let watch = Watch::default();
        let url = upstream.url(&format!("{path}?{query}"));
        let response = send(whole(&watch), Method::GET, url, |_| {}).await.unwrap();
        assert_eq!(response.report().unwrap().attempts(), 2);
        let len: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
        assert_eq!(read_all(response).await, (len, pattern_checksum(len)));
        assert_eq!(upstream.hits(path), 2, "{path}");
    }
}

#[tokio::test]
async fn a_truncated_body_is_retried_and_reaches_the_caller_whole() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    // `content-length: 300000`, 40,000 bytes, then FIN.
    let path = "/flaky-body/1/fin/300000";
    let url = upstream.url(&format!("{path}?after=40000"));
    let response = send(whole(&watch), Method::GET, url, |_| {}).await.unwrap();

    assert_eq!(upstream.hits(path), 2);
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 2);
    assert_eq!(report.body_mode(), BodyMode::Whole);
    assert_eq!(
        read_all(response).await,
        (300_000, pattern_checksum(300_000))
    );
    let first = &watch.attempts()[0];
    assert_eq!(first.stage, Some(Stage::Body));
    assert_eq!(first.fault, Some(Fault::Closed), "a truncation: {first:?}");
    assert_eq!(first.body, BodyProgress::Failed(40_000));
    assert!(first.retry);
    let retried = capture.matching("attempt failed, retrying");
    assert!(
        retried[0].contains("class=transport.body.closed"),
        "{}",
        retried[0]
    );
}

#[tokio::test]
async fn a_body_over_the_cap_streams_and_its_reset_is_reported_not_retried() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    // 2 MiB declared against a 1 MiB cap; reset after 100,000 bytes.
    let path = "/flaky-body/1/rst/2097152";
    let url = upstream.url(&format!("{path}?after=100000"));
    let response = send(whole(&watch), Method::GET, url, |_| {}).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().body_mode(), BodyMode::Stream);
    assert!(response.into_body().collect().await.is_err());

    assert_eq!(upstream.hits(path), 1, "a streamed body is not retried");
    assert_eq!(
        watch.bodies(),
        vec![BodyOutcome::Failed {
            bytes: 100_000,
            fault: Fault::Reset
        }]
    );
    assert_eq!(watch.responses(), vec![(1, BodyMode::Stream)]);
    let failed = capture.matching("response body failed");
    assert_eq!(failed.len(), 1, "{}", capture.lines().join("\n"));
    for field in [
        "bytes=100000",
        "stage=body",
        "fault=reset",
        "owner=connection_path",
        "body_mode=stream",
    ] {
        assert!(failed[0].contains(field), "{field}: {}", failed[0]);
    }
    let attempt = capture.matching("attempt succeeded");
    assert!(attempt[0].contains("body_mode=stream"), "{}", attempt[0]);
}

#[tokio::test]
async fn a_small_event_stream_streams_and_its_reset_is_not_retried() {
    // An event stream is never read whole; after its first event reached
    // the caller (the commit point), a reset is the body's, not retried.
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    let url = upstream.url("/sse/1?reset_at=3");
    let response = send(whole(&watch), Method::GET, url, |_| {}).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.report().unwrap().body_mode(), BodyMode::Stream);
    let mut body = response.into_body();
    let mut delivered = 0;
    let mut broke = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => delivered += frame.into_data().map_or(0, |d| d.len()),
            Err(_) => broke = true,
        }
    }
    assert!(broke, "the reset reaches the caller");
    assert!(delivered > 0);
    assert_eq!(upstream.hits("/sse/1"), 1);
    assert_eq!(
        watch.bodies(),
        vec![BodyOutcome::Failed {
            bytes: delivered as u64,
            fault: Fault::Reset
        }]
    );
}

#[tokio::test]
async fn a_body_of_unknown_size_past_the_cap_is_handed_on_whole_as_a_stream() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    // Chunked, 2 MiB, never cut: the layer buffers up to 1 MiB, then hands
    // what it read and the rest of the stream on.
    let path = "/flaky-body/0/fin/2097152";
    let url = upstream.url(&format!("{path}?chunked=1"));
    let response = send(whole(&watch), Method::GET, url, |_| {}).await.unwrap();
    assert_eq!(response.report().unwrap().body_mode(), BodyMode::Stream);
    assert_eq!(
        read_all(response).await,
        (2_097_152, pattern_checksum(2_097_152))
    );
    assert_eq!(upstream.hits(path), 1);
    assert_eq!(
        watch.bodies(),
        vec![BodyOutcome::Complete { bytes: 2_097_152 }]
    );
}

#[tokio::test]
async fn a_post_whose_body_fails_is_not_sent_again() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let upstream = Upstream::start().await.unwrap();
    for (path, fault) in [
        ("/flaky-body/1/rst/300000", Fault::Reset),
        ("/flaky-body/1/fin/300000", Fault::Closed),
    ] {
        let watch = Watch::default();
        let url = upstream.url(&format!("{path}?after=40000"));
        // No idempotency key, the generic profile (svc.test): the server
        // processed the request, so it is not replay-safe.
        let error = send(whole(&watch), Method::POST, url, |_| {})
            .await
            .unwrap_err();
        assert_eq!(upstream.hits(path), 1, "{path}: not sent again");
        assert_eq!(error.stage(), Some(Stage::Body), "{error}");
        assert_eq!(error.owner(), Some(Owner::ConnectionPath));
        assert_eq!(error.kind(), ErrorKind::Connection);
        assert_eq!(error.status().map(|s| s.as_u16()), Some(200));
        assert_eq!(error.stop(), Stop::NotReplaySafe(Replay::Processed));
        assert_eq!(error.attempts(), 1);
        assert_eq!(
            error.class().transport().map(|t| t.fault()),
            Some(fault),
            "{error}"
        );
        assert!(error.to_string().contains("body"), "{error}");
        let attempts = watch.attempts();
        assert_eq!(attempts[0].body, BodyProgress::Failed(40_000));
        assert_eq!(attempts[0].body_mode, Some(BodyMode::Whole));
        assert!(watch.bodies().is_empty(), "no body reached the caller");
    }
    let outcome = capture.matching("request failed");
    assert!(
        outcome[0].contains("stage=body") && outcome[0].contains("body_mode=whole"),
        "{}",
        outcome[0]
    );
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_sent_again() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    let path = "/flaky-body/1/rst/300000";
    let url = upstream.url(&format!("{path}?after=40000"));
    let response = send(whole(&watch), Method::POST, url, |request| {
        request
            .headers_mut()
            .insert("idempotency-key", "order-1234".parse().unwrap());
    })
    .await
    .unwrap();
    assert_eq!(upstream.hits(path), 2);
    assert_eq!(
        read_all(response).await,
        (300_000, pattern_checksum(300_000))
    );
}

#[tokio::test]
async fn with_the_mode_off_a_reset_body_reaches_the_caller_as_a_body_error() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    let path = "/flaky-body/1/rst/300000";
    let url = upstream.url(&format!("{path}?after=40000"));
    let layer = TriageLayer::new()
        .rules(fast_rules())
        .observer(watch.clone());
    let response = send(layer, Method::GET, url, |_| {}).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().body_mode(), BodyMode::Stream);
    assert_eq!(response.report().unwrap().attempts(), 1);
    let error = response.into_body().collect().await.unwrap_err();
    assert!(!error.to_string().is_empty());
    assert_eq!(upstream.hits(path), 1, "not retried");
    assert_eq!(
        watch.bodies(),
        vec![BodyOutcome::Failed {
            bytes: 40_000,
            fault: Fault::Reset
        }]
    );
    let attempts = watch.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].body_mode, Some(BodyMode::Stream));
    assert_eq!(attempts[0].body, BodyProgress::NotStarted);
    assert_eq!(capture.matching("response body failed").len(), 1);
}

#[tokio::test]
async fn a_request_can_turn_the_mode_on_or_off() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    // Off on the layer, on for this request: retried, whole.
    let path = "/flaky-body/1/rst/300000";
    let url = upstream.url(&format!("{path}?after=40000"));
    let layer = TriageLayer::new().rules(fast_rules());
    let response = send(layer, Method::GET, url, |request| {
        request
            .extensions_mut()
            .insert(RequestOptions::new().whole_body(Some(DEFAULT_WHOLE_BODY_CAP)));
    })
    .await
    .unwrap();
    assert_eq!(response.report().unwrap().body_mode(), BodyMode::Whole);
    assert_eq!(upstream.hits(path), 2);
    assert_eq!(read_all(response).await.0, 300_000);

    // On on the layer, off for this request: streamed, not retried.
    let path = "/flaky-body/1/fin/300000";
    let url = upstream.url(&format!("{path}?after=40000"));
    let watch = Watch::default();
    let response = send(whole(&watch), Method::GET, url, |request| {
        request
            .extensions_mut()
            .insert(RequestOptions::new().whole_body(None));
    })
    .await
    .unwrap();
    assert_eq!(response.report().unwrap().body_mode(), BodyMode::Stream);
    assert!(response.into_body().collect().await.is_err());
    assert_eq!(upstream.hits(path), 1);
}

#[tokio::test]
async fn a_stalled_body_read_whole_is_a_body_idle_timeout_of_the_attempt() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    // Ten bytes every 2 s, against a 100 ms idle limit: every attempt stalls.
    let path = "/fault/slow-body";
    let url = upstream.url(&format!("{path}?ms=2000&chunks=3"));
    let layer = whole(&watch).body_idle_timeout(Some(Duration::from_millis(100)));
    let error = send(layer, Method::GET, url, |_| {}).await.unwrap_err();
    assert_eq!(error.stage(), Some(Stage::Body), "{error}");
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Timeout(TimeoutPhase::BodyIdle))
    );
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.attempts(), 3, "a GET is retried");
    assert_eq!(upstream.hits(path), 3);
}

#[tokio::test]
async fn the_attempt_timeout_bounds_a_body_read_whole() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    // Ten bytes every 100 ms for 5 s: never idle for long, but the whole
    // body cannot arrive within a 400 ms attempt.
    let path = "/fault/slow-body";
    let url = upstream.url(&format!("{path}?ms=100&chunks=50"));
    let layer = whole(&watch)
        .rules(RetryRules::none())
        .attempt_timeout(Some(Duration::from_millis(400)))
        .body_idle_timeout(Some(Duration::from_secs(30)));
    let error = send(layer, Method::GET, url, |_| {}).await.unwrap_err();
    assert_eq!(error.stage(), Some(Stage::Body), "{error}");
    assert_eq!(
        error.class().to_string(),
        "transport.body.timeout.body",
        "{error}"
    );
    let timeout = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<tower_triage::TimeoutError>())
        .expect("the layer's typed timeout");
    assert_eq!(timeout.phase(), TimeoutPhase::Body);
    assert_eq!(upstream.hits(path), 1);
}

#[tokio::test]
async fn the_total_deadline_during_a_body_read_whole_keeps_the_head() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let watch = Watch::default();
    let path = "/fault/slow-body";
    let url = upstream.url(&format!("{path}?ms=100&chunks=50"));
    let layer = whole(&watch)
        .rules(RetryRules::default().deadline(Some(Duration::from_millis(400))))
        .attempt_timeout(Some(Duration::from_secs(30)));
    let error = send(layer, Method::GET, url, |_| {}).await.unwrap_err();
    // The 200 came back; the deadline passed while its body was read.
    assert_eq!(error.status(), Some(http::StatusCode::OK), "{error}");
    assert_eq!(error.stage(), Some(Stage::Body), "{error}");
    let timeout = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<tower_triage::TimeoutError>())
        .expect("the layer's typed timeout");
    assert_eq!(timeout.phase(), TimeoutPhase::Total);
    assert_eq!(error.attempts(), 1);
    assert_eq!(upstream.hits(path), 1);
    let attempts = watch.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(
        matches!(attempts[0].body, BodyProgress::Failed(n) if n > 0),
        "{attempts:?}"
    );
}

#[tokio::test]
async fn the_sdk_preset_turns_a_final_404_into_a_typed_error() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let url = upstream.url("/status/404?request_id=req_404");
    let error = send(TriageLayer::sdk(), Method::GET, url, |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(error.owner(), Some(Owner::Request));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(error.request_id(), Some("req_404"));
    assert_eq!(error.attempts(), 1);
    assert_eq!(upstream.hits("/status/404"), 1);
}

#[tokio::test]
async fn the_sdk_preset_retries_a_reset_body_and_streams_event_streams() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    // A reset body: read whole, retried (after the SDK's 0.5 s backoff).
    let path = "/flaky-body/1/rst/300000";
    let url = upstream.url(&format!("{path}?after=40000"));
    let response = send(TriageLayer::sdk(), Method::GET, url, |_| {})
        .await
        .unwrap();
    assert_eq!(upstream.hits(path), 2);
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 2);
    assert_eq!(report.body_mode(), BodyMode::Whole);
    assert_eq!(
        read_all(response).await,
        (300_000, pattern_checksum(300_000))
    );

    // Server-sent events stream as they come, even under the preset.
    let path = "/flaky-body/0/fin/5000";
    let url = upstream.url(&format!("{path}?type=text%2Fevent-stream"));
    let response = send(TriageLayer::sdk(), Method::GET, url, |_| {})
        .await
        .unwrap();
    assert_eq!(response.report().unwrap().body_mode(), BodyMode::Stream);
    assert_eq!(read_all(response).await, (5000, pattern_checksum(5000)));
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn the_probe_reads_the_body_whole_and_names_the_body_stage() {
    use tower_triage::probe::{ProbeOptions, ProbeStage, probe};

    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    let options = || ProbeOptions::new().resolve("svc.test", port, [127, 0, 0, 1].into());

    // Reset once: the probe's request retries it and succeeds.
    let path = "/flaky-body/1/rst/300000";
    let url = upstream
        .url(&format!("{path}?after=40000"))
        .parse()
        .unwrap();
    let report = probe(url, options()).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.attempts, 2);
    assert_eq!(upstream.hits(path), 2);

    // Reset every time: the request fails at the body stage.
    let path = "/flaky-body/9/rst/300000";
    let url = upstream
        .url(&format!("{path}?after=40000"))
        .parse()
        .unwrap();
    let report = probe(url, options().max_retries(1)).await;
    assert!(!report.ok());
    assert_eq!(report.first_failure(), Some(ProbeStage::Http));
    assert_eq!(report.diagnosis.stage(), Some(Stage::Body), "{report}");
    assert_eq!(report.attempts, 2);
    assert_eq!(upstream.hits(path), 2);
}
