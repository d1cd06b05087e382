//! The layer around an in-process inner service: attempts made, delays,
//! bytes delivered, owners and errors. (Real sockets come with the testkit.)

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::{
    ErrorKind, Fault, Owner, Profile, RetryBudget, RetryRules, Stage, TimeoutPhase,
};
use tower_triage::{ReportExt, TriageLayer};

type Answer = Result<Response<Full<Bytes>>, io::Error>;

/// What the fake upstream answers for the n-th request (0-based).
#[derive(Clone)]
struct Script(Arc<dyn Fn(u32) -> Answer + Send + Sync>);

fn upstream<B>(
    script: impl Fn(u32) -> Answer + Send + Sync + 'static,
) -> (
    impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = io::Error, Future = impl Send>
    + Clone,
    Arc<AtomicU32>,
) {
    let hits = Arc::new(AtomicU32::new(0));
    let script = Script(Arc::new(script));
    let counter = Arc::clone(&hits);
    let service = service_fn(move |_req: Request<B>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let result = (script.0)(n);
        async move { result }
    });
    (service, hits)
}

fn status(code: u16, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .header("x-request-id", format!("req_{code}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn post(uri: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn body_of<B>(response: Response<B>) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test(start_paused = true)]
async fn success_passes_through_with_a_report() {
    let (inner, hits) = upstream(|_| Ok(status(200, r#"{"ok":true}"#)));
    let mut svc = TriageLayer::new().layer(inner);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://api.example.test/v1/x"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 1);
    assert_eq!(report.request_id().unwrap(), "req_200");
    assert!(report.packet().is_none());
    assert_eq!(body_of(response).await, r#"{"ok":true}"#);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_backoff() {
    let (inner, hits) = upstream(|n| {
        Ok(if n < 2 {
            status(503, "{}")
        } else {
            status(200, "done")
        })
    });
    let mut svc = TriageLayer::new().layer(inner);
    let start = Instant::now();
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://api.example.test/"))
        .await
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().attempts(), 3);
    // After a retry the report also travels in the extensions, where it
    // survives a change of body type.
    let report = response.extensions().get::<tower_triage::Report>().unwrap();
    assert_eq!(report.attempts(), 3);
    assert!(
        report.packet().is_some(),
        "the failed attempts are on record"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Two backoffs: (0.5 s + 1 s) less up to 25 % jitter.
    assert!(
        waited >= Duration::from_millis(1125) && waited <= Duration::from_millis(1500),
        "{waited:?}"
    );
    assert!(response.report().unwrap().packet().is_some());
    assert_eq!(body_of(response).await, "done");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let (inner, hits) = upstream(|n| {
        Ok(if n == 0 {
            let mut r = status(
                429,
                r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
            );
            r.headers_mut().insert("retry-after", "7".parse().unwrap());
            r
        } else {
            status(200, "ok")
        })
    });
    let mut svc = TriageLayer::new().layer(inner);
    let start = Instant::now();
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(post("https://api.openai.com/v1/chat/completions", "{}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_millis(7100),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_quota_is_never_retried_and_the_body_is_whole() {
    const QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let (inner, hits) = upstream(|_| Ok(status(429, QUOTA)));
    let mut svc = TriageLayer::new().layer(inner);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(post("https://api.openai.com/v1/responses", "{}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let report = response.report().unwrap();
    assert_eq!(report.diagnosis().owner(), Some(Owner::Quota));
    assert_eq!(report.packet().unwrap().outcome(), "not_retryable");
    assert_eq!(body_of(response).await, QUOTA);
}

#[tokio::test(start_paused = true)]
async fn a_large_failure_body_is_handed_back_whole() {
    let big: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
    let (inner, hits) = upstream(move |_| Ok(status(500, big)));
    let mut svc = TriageLayer::new().layer(inner);
    // A generic POST that may have been processed is not replayed.
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(post("http://internal.test/orders", "{}"))
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.report().unwrap().packet().unwrap().outcome(),
        "not_replay_safe"
    );
    assert_eq!(body_of(response).await.len(), 100_000);
}

#[tokio::test(start_paused = true)]
async fn refused_connections_are_retried_then_fail_with_the_stage() {
    let (inner, hits) = upstream(|_| Err(io::Error::from(io::ErrorKind::ConnectionRefused)));
    let mut svc = TriageLayer::new().layer(inner);
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(post("http://internal.test/x", "{}"))
        .await
        .unwrap_err();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "a refused connect never sent the request"
    );
    assert_eq!(error.kind(), ErrorKind::Connection);
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    assert_eq!(error.stage(), Some(Stage::Connect));
    assert_eq!(error.attempts(), 3);
    assert!(std::error::Error::source(&error).is_some());
    assert_eq!(error.packet().attempts().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_cannot_be_copied_is_not_retried() {
    let (inner, hits) = upstream(|_| Ok(status(503, "{}")));
    let mut svc = TriageLayer::new().layer(inner);
    let body: BoxBody<Bytes, Infallible> = Full::new(Bytes::from_static(b"{}")).boxed();
    let request = Request::get("http://api.example.test/").body(body).unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        response.report().unwrap().packet().unwrap().outcome(),
        "body_not_replayable"
    );
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_name_their_phase() {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            std::future::pending::<()>().await;
            Ok::<Response<Full<Bytes>>, io::Error>(status(200, ""))
        }
    });
    let mut svc = TriageLayer::new()
        .attempt_timeout(Some(Duration::from_secs(1)))
        .layer(inner);
    let start = Instant::now();
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://slow.test/"))
        .await
        .unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Timeout(TimeoutPhase::Headers))
    );
    // Three 1 s attempts and two backoffs.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(4125) && waited <= Duration::from_millis(4500),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_for_status_turns_failures_into_errors() {
    let (inner, _) = upstream(|_| {
        Ok(status(
            401,
            r#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        ))
    });
    let mut svc = TriageLayer::new().errors_for_status(true).layer(inner);
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(get("https://api.openai.com/v1/models"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Authentication);
    assert_eq!(error.owner(), Some(Owner::Auth));
    assert_eq!(error.request_id(), Some("req_401"));
}

#[tokio::test(start_paused = true)]
async fn retries_off_makes_one_attempt() {
    let (inner, hits) = upstream(|_| Ok(status(503, "{}")));
    let mut svc = TriageLayer::new().rules(RetryRules::none()).layer(inner);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://api.example.test/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_shared_budget_bounds_an_outage() {
    let (inner, hits) = upstream(|_| Ok(status(503, "{}")));
    let layer = TriageLayer::new()
        .profile(Profile::generic().clone())
        .budget(RetryBudget::new(Duration::from_secs(10), 0, 0.2).unwrap());
    let svc = layer.layer(inner);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let mut svc = svc.clone();
        tasks.spawn(async move {
            let response = svc
                .ready()
                .await
                .unwrap()
                .call(get("http://api.example.test/"))
                .await
                .unwrap();
            response.report().unwrap().attempts()
        });
    }
    let mut attempts = 0;
    while let Some(n) = tasks.join_next().await {
        let n = n.unwrap();
        assert!(n <= 3, "no request makes more than 1 + 2 attempts");
        attempts += n;
    }
    let upstream = hits.load(Ordering::SeqCst);
    assert_eq!(upstream, attempts);
    assert!(
        upstream <= 600,
        "{upstream} upstream requests for 500 calls"
    );
}

#[test]
fn futures_and_services_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (inner, _) = upstream::<Full<Bytes>>(|_| Ok(status(200, "")));
    let mut svc = TriageLayer::new().layer(inner);
    assert_send(&svc);
    let future = svc.call(get("http://a.test/"));
    assert_send(&future);
}

#[test]
fn the_future_stays_small() {
    // Every call moves the future a few times; timers and the packet are
    // boxed so that the happy path carries under 1 KiB.
    let (inner, _) = upstream::<Full<Bytes>>(|_| Ok(status(200, "")));
    let mut svc = TriageLayer::new().layer(inner);
    let future = svc.call(get("http://a.test/"));
    assert!(
        std::mem::size_of_val(&future) <= 1024,
        "{} bytes",
        std::mem::size_of_val(&future)
    );
}
