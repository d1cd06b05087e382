//! The events a user's subscriber receives: the right fields, the right
//! levels, and never a secret; per-request overrides; the total deadline;
//! cancellation by the caller.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::{ErrorKind, Fault, Owner, TimeoutPhase};
use tower_triage::{RequestOptions, TriageLayer};
use triage_testkit::EventLog;

fn answer(code: u16, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("x-request-id", format!("req_{code}"))
        .header("set-cookie", "session=SECRET-COOKIE")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn events_carry_the_evidence_and_no_secret() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, io::Error>(if n == 0 {
                answer(
                    503,
                    r#"{"error":{"message":"overloaded, key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX","type":"server_error"}}"#,
                )
            } else {
                answer(
                    401,
                    r#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
                )
            })
        }
    });
    let mut svc = TriageLayer::new().layer(inner);
    let request = Request::post("https://api.openai.com/v1/chat/completions?key=SECRET-QUERY")
        .header("authorization", "Bearer sk-proj-SECRETSECRETSECRETSECRET")
        .header("api-key", "SECRET-API-KEY")
        .body(Full::new(Bytes::from_static(
            b"{\"input\":\"SECRET-BODY\"}",
        )))
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 401);

    let lines = capture.lines();
    let all = lines.join("\n");
    for secret in ["SECRET", "sk-proj"] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
    let attempts: Vec<&String> = lines.iter().filter(|l| l.contains("attempt")).collect();
    assert!(attempts[0].starts_with("WARN"), "{}", attempts[0]);
    assert!(
        attempts[0].contains("http.response.status_code=503"),
        "{}",
        attempts[0]
    );
    assert!(attempts[0].contains("triage.owner=server"));
    assert!(attempts[0].contains("triage.decision=retry"));
    assert!(attempts[0].contains("triage.request_id=req_503"));
    assert!(attempts[0].contains("server.address=api.openai.com"));
    assert!(attempts[1].starts_with("ERROR"), "{}", attempts[1]);
    assert!(attempts[1].contains("triage.owner=auth"));
    assert!(attempts[1].contains("triage.decision=not_retryable"));
    assert!(attempts[1].contains("http.request.resend_count=1"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request failed") && l.contains("triage.attempts=2")),
        "{all}"
    );
    assert!(
        lines.iter().any(|l| l.contains("request failed")
            && l.contains(r#"triage.request_ids=["req_503","req_401"]"#)),
        "the request IDs of every attempt, as a JSON array: {all}"
    );
    assert!(
        !attempts[0].contains("resend_count"),
        "a first attempt is no resend: {}",
        attempts[0]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_call_reports_a_cancellation() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, io::Error>(answer(200, ""))
    });
    let mut svc = TriageLayer::new().layer(inner);
    let call = svc.ready().await.unwrap().call(
        Request::get("http://a.test/")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    );
    let all = capture.lines().join("\n");
    assert!(
        all.contains("request cancelled by the caller") && all.contains("owner=caller"),
        "{all}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_request_options_override_the_layer() {
    // Every test of this file has a subscriber of its own: a callsite first
    // reached by a thread with none could have its interest cached as
    // "never" while another test's subscriber registers (tracing-core's
    // registration race), and that test would miss its events.
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, io::Error>(answer(503, "{}")) }
    });
    let mut svc = TriageLayer::new().layer(inner);
    let mut request = Request::get("http://a.test/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request
        .extensions_mut()
        .insert(RequestOptions::new().max_retries(4));
    let _ = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 5);

    let mut request = Request::get("http://a.test/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request
        .extensions_mut()
        .insert(RequestOptions::new().no_retries());
    let _ = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn the_total_deadline_stops_a_hanging_call() {
    // Every test of this file has a subscriber of its own: a callsite first
    // reached by a thread with none could have its interest cached as
    // "never" while another test's subscriber registers (tracing-core's
    // registration race), and that test would miss its events.
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        std::future::pending::<()>().await;
        Ok::<_, io::Error>(answer(200, ""))
    });
    let mut svc = TriageLayer::new().layer(inner);
    let mut request = Request::get("http://a.test/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request
        .extensions_mut()
        .insert(RequestOptions::new().deadline(Some(Duration::from_secs(3))));
    let start = Instant::now();
    let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Timeout(TimeoutPhase::Total))
    );
    assert_eq!(error.attempts(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelling_mid_attempt_or_mid_wait_leaves_no_task_and_says_so() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if req.uri().path() == "/hang" {
                std::future::pending::<()>().await;
            }
            Ok::<_, io::Error>(answer(503, "{}"))
        }
    });
    let mut svc = TriageLayer::new().layer(inner);
    // Mid-attempt: the upstream never answers.
    let call = svc.ready().await.unwrap().call(
        Request::get("http://a.test/hang")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err()
    );
    // Mid-wait: a 503, then the backoff (at least 375 ms) is cut short.
    let call = svc.ready().await.unwrap().call(
        Request::get("http://a.test/busy")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err()
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "no attempt after the cancellation"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "nothing runs on after the caller left"
    );
    assert_eq!(metrics.num_alive_tasks(), before, "no task left behind");
    let lines = capture.lines();
    let cancelled: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("request cancelled by the caller"))
        .collect();
    assert_eq!(cancelled.len(), 2, "{lines:#?}");
    assert!(
        cancelled[0].contains("stage=await_headers"),
        "{}",
        cancelled[0]
    );
    assert!(cancelled[1].contains("waiting=true"), "{}", cancelled[1]);
}
