//! The `Report` of a call stays reachable when another layer changes the
//! body type: tower-http's `TraceLayer` outside the layer, or
//! `response.map(..)`.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::{Profile, RetryRules};
use tower_triage::{Report, ReportExt, TriageLayer};

/// A client whose answers carry extensions already, as hyper-util's and
/// reqwest's do (the connection's `HttpInfo`).
#[derive(Debug, Clone)]
struct ConnInfo;

fn answer(status: u16, with_extensions: bool) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(status)
        .header("x-request-id", "req_abc")
        .header("x-ratelimit-remaining-requests", "42")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    if with_extensions {
        response.extensions_mut().insert(ConnInfo);
    }
    response
}

fn get() -> Request<Full<Bytes>> {
    Request::get("https://api.openai.com/v1/models")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn a_first_try_success_is_reported_behind_a_body_change() {
    let client = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::io::Error>(answer(200, true))
    });
    let mut svc = TriageLayer::new().layer(client);
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    let direct = response.report().unwrap();
    let boxed = response.map(|body| body.boxed_unsync());
    let report = Report::of(&boxed).expect("reachable behind the body change");
    assert_eq!(report.attempts(), 1);
    assert_eq!(report.request_id().unwrap(), "req_abc");
    assert_eq!(report.request_id(), direct.request_id());
    // Read under the detected profile (OpenAI's rate headers).
    assert_eq!(report.rate().requests.remaining, Some(42));
    assert!(report.diagnosis().is_success());
    // The client's own extension is still there.
    assert!(boxed.extensions().get::<ConnInfo>().is_some());
}

#[tokio::test]
async fn behind_tower_http_trace_outside_the_layer() {
    let client = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::io::Error>(answer(200, true))
    });
    let mut svc = tower::ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(TriageLayer::new())
        .service(client);
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    let report = Report::of(&response).expect("reachable behind TraceLayer");
    assert_eq!(report.attempts(), 1);
    assert_eq!(report.request_id().unwrap(), "req_abc");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "{}");
}

#[tokio::test]
async fn a_custom_profile_is_kept_too() {
    let profile = Profile::builder("mine")
        .request_id_header(http::HeaderName::from_static("x-mine-id"))
        .build();
    let client = service_fn(|_req: Request<Full<Bytes>>| async {
        let mut response = answer(200, true);
        response
            .headers_mut()
            .insert("x-mine-id", http::HeaderValue::from_static("mine_1"));
        Ok::<_, std::io::Error>(response)
    });
    let mut svc = TriageLayer::new().profile(profile).layer(client);
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    let boxed = response.map(|body| body.boxed_unsync());
    let report = Report::of(&boxed).unwrap();
    assert_eq!(report.request_id().unwrap(), "mine_1");
}

#[tokio::test]
async fn retried_and_failed_calls_carry_their_report_whatever_the_body() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = std::sync::Arc::clone(&calls);
    let client = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(answer(if n == 0 { 503 } else { 200 }, false)) }
    });
    let rules = RetryRules::default().backoff(
        tower_triage::core::Backoff::new(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(2),
        )
        .unwrap(),
    );
    let mut svc = TriageLayer::new().rules(rules).layer(client);
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    let boxed = response.map(|body| body.boxed_unsync());
    let report = Report::of(&boxed).unwrap();
    assert_eq!(report.attempts(), 2);
    assert!(report.packet().is_some());
}

#[tokio::test]
async fn a_response_without_extensions_gets_no_mark() {
    // Documented: marking it would allocate the extensions' map.
    let client = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::io::Error>(answer(200, false))
    });
    let mut svc = TriageLayer::new().layer(client);
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert!(
        response.extensions().is_empty(),
        "the happy path adds nothing"
    );
    assert_eq!(response.report().unwrap().attempts(), 1);
    assert!(Report::of(&response.map(|b| b.boxed_unsync())).is_none());
}
