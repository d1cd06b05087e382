//! HTTP/2 evidence end to end: hyper-util's client over h2c and over TLS
//! with ALPN, against the testkit's `H2Upstream`. A stream the server
//! provably did not process (`REFUSED_STREAM`, a graceful `GOAWAY` that left
//! it out) is resent whatever the method; a stream reset after the request
//! went out is ambiguous and goes through the idempotency gate;
//! `ENHANCE_YOUR_CALM` is the server asking for less load.
#![cfg(all(feature = "http2", feature = "rustls"))]

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Backoff, Error, Owner, RetryRules, Stop};
use tower_triage::{ReportExt, ResponseBody, TriageLayer};
use triage_testkit::{CertProblem, H2Upstream, Resolver};

type Response = http::Response<ResponseBody<hyper::body::Incoming>>;

fn layer() -> TriageLayer {
    TriageLayer::new().rules(
        RetryRules::default()
            .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap()),
    )
}

/// The layer over hyper-util's client speaking h2c (prior knowledge).
fn h2c() -> impl Service<Request<Full<Bytes>>, Response = Response, Error = Error> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(true);
    let client =
        builder.build::<_, Full<Bytes>>(tower_triage::connect::tagged_connector(Resolver::new()));
    layer().layer(client)
}

/// The layer over hyper-util's client with the tagged HTTPS connector,
/// which offers h2 and http/1.1 through ALPN.
fn alpn(
    upstream: &H2Upstream,
) -> impl Service<Request<Full<Bytes>>, Response = Response, Error = Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(upstream.ca_der().to_vec().into()).unwrap();
    let connector = tower_triage::connect::https_connector_with(Resolver::new(), roots).unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    layer().layer(client)
}

fn request(method: &str, url: String) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(b"{\"input\":1}")))
        .unwrap()
}

async fn call<S>(svc: &mut S, request: Request<Full<Bytes>>) -> Result<Response, Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response, Error = Error>,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        svc.ready().await?.call(request).await
    })
    .await
    .expect("bounded")
}

#[tokio::test]
async fn a_refused_stream_is_resent_even_for_a_post() {
    let upstream = H2Upstream::start().await.unwrap();
    let mut svc = h2c();
    let path = "/flaky/2/refused-stream";
    let response = call(&mut svc, request("POST", upstream.url(path)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 3);
    let packet = report.packet().expect("a retried call keeps its packet");
    let first = &packet.attempts()[0];
    assert_eq!(first.class(), "transport.await_headers.stream_refused");
    assert_eq!(upstream.hits(path), 3);
}

#[tokio::test]
async fn a_graceful_goaway_that_left_the_stream_out_is_resent_for_a_post() {
    let upstream = H2Upstream::start().await.unwrap();
    let mut svc = h2c();
    // The GOAWAY's last stream ID is below a stream of an open connection:
    // the first request opens it, the second is the one left out.
    let warm = call(&mut svc, request("GET", upstream.url("/ok")))
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let path = "/flaky/1/goaway-unprocessed";
    let response = call(&mut svc, request("POST", upstream.url(path)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 2);
    let first = &report.packet().unwrap().attempts()[0];
    assert_eq!(first.class(), "transport.await_headers.stream_refused");
    assert_eq!(upstream.hits(path), 2);
}

#[tokio::test]
async fn a_stream_reset_after_sending_passes_the_idempotency_gate() {
    let upstream = H2Upstream::start().await.unwrap();
    let mut svc = h2c();
    let path = "/h2/reset/internal_error";
    let error = call(&mut svc, request("POST", upstream.url(path)))
        .await
        .unwrap_err();
    assert_eq!(
        error.class().to_string(),
        "transport.await_headers.stream_reset"
    );
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    assert_eq!(error.attempts(), 1, "a POST that may have been processed");
    assert!(
        matches!(error.stop(), Stop::NotReplaySafe(_)),
        "{:?}",
        error.stop()
    );

    let error = call(&mut svc, request("GET", upstream.url(path)))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 3, "a GET is idempotent");
    assert_eq!(upstream.hits(path), 4);
    // Never refused: the same connection answers the next call.
    let ok = call(&mut svc, request("GET", upstream.url("/ok")))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn enhance_your_calm_is_the_server_asking_for_less_load() {
    let upstream = H2Upstream::start().await.unwrap();
    let mut svc = h2c();
    let path = "/h2/reset/enhance_your_calm";
    let error = call(&mut svc, request("GET", upstream.url(path)))
        .await
        .unwrap_err();
    assert_eq!(error.owner(), Some(Owner::Server));
    assert_eq!(
        error.class().to_string(),
        "transport.await_headers.slow_down"
    );
    assert_eq!(error.attempts(), 3, "backed off and retried");
    // Five and more of them do not open the route: the path works.
    for _ in 0..2 {
        let _ = call(&mut svc, request("GET", upstream.url(path))).await;
    }
    let ok = call(&mut svc, request("GET", upstream.url("/ok")))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.report().unwrap().attempts(), 1);
}

#[tokio::test]
async fn a_goaway_with_an_error_after_the_stream_started_is_ambiguous() {
    let upstream = H2Upstream::start().await.unwrap();
    let mut svc = h2c();
    let path = "/flaky/1/goaway-after";
    let error = call(&mut svc, request("POST", upstream.url(path)))
        .await
        .unwrap_err();
    assert_eq!(error.class().to_string(), "transport.await_headers.reset");
    assert_eq!(error.attempts(), 1);
    // The same over GET is resent, on a new connection.
    upstream.reset_hits();
    let response = call(&mut svc, request("GET", upstream.url(path)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(upstream.connections() >= 2);
}

#[tokio::test]
async fn tls_negotiates_h2_through_alpn_and_reads_its_errors() {
    let upstream = H2Upstream::start_tls(CertProblem::None).await.unwrap();
    let mut svc = alpn(&upstream);
    let response = call(&mut svc, request("GET", upstream.url("/ok")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2, "ALPN chose h2");
    let path = "/flaky/1/refused-stream";
    let response = call(&mut svc, request("POST", upstream.url(path)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().attempts(), 2);
    // One connection carried them all.
    assert_eq!(upstream.connections(), 1);
}
