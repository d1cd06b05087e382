//! Feature `reqwest`: a real reqwest client with [`TriageMiddleware`] in
//! its reqwest-middleware chain, against a real axum server on loopback.
//! A body is sent again whole (in memory, or a stream kept for replay);
//! the response keeps its URL and carries its report; options ride in the
//! chain's extensions; the middlewares after it run on every attempt; a
//! final failure is triage's error, with reqwest's in its source chain.
#![cfg(feature = "reqwest")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::put;
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tower_triage::ReportExt;
use tower_triage::RequestOptions;
use tower_triage::TriageLayer;
use tower_triage::reqwest::{TriageMiddleware, triage_error};
use triage_core::{Backoff, Owner, RetryRules, Stop};

/// What the server received, and how many times it answers 503 first.
#[derive(Clone, Default)]
struct Seen {
    bodies: Arc<Mutex<Vec<Bytes>>>,
    fail_first: u32,
}

/// Records the body; 503 for the first `fail_first` requests, then an
/// echo of the body.
async fn echo(State(seen): State<Seen>, body: Bytes) -> (StatusCode, Bytes) {
    let mut bodies = seen.bodies.lock().unwrap();
    bodies.push(body.clone());
    if bodies.len() as u32 <= seen.fail_first {
        (StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(b"busy"))
    } else {
        (StatusCode::OK, body)
    }
}

/// An axum server on 127.0.0.1 whose `/echo` fails `fail_first` times.
async fn server(fail_first: u32) -> (String, Seen) {
    let seen = Seen {
        fail_first,
        ..Seen::default()
    };
    let app = Router::new()
        .route("/echo", put(echo))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/echo"), seen)
}

fn layer() -> TriageLayer {
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(5)).unwrap();
    TriageLayer::new().rules(RetryRules::default().max_retries(2).backoff(backoff))
}

fn client(layer: TriageLayer) -> ClientWithMiddleware {
    // Built in one workspace with the matrix, reqwest gets rustls without a
    // provider of its own (feature unification): it then needs a process default.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    ClientBuilder::new(client)
        .with(TriageMiddleware::new(layer))
        .build()
}

#[tokio::test]
async fn a_body_in_memory_is_sent_again_whole() {
    let (url, seen) = server(1).await;
    let body = r#"{"model":"m","input":"hello"}"#;
    let response = client(layer()).put(&url).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.url().as_str(),
        url,
        "the URL reqwest answered from"
    );
    let report = response.report().expect("the report rides along");
    assert_eq!(report.attempts(), 2);
    assert_eq!(response.text().await.unwrap(), body);
    let bodies = seen.bodies.lock().unwrap().clone();
    assert_eq!(bodies, vec![Bytes::from(body), Bytes::from(body)]);
}

#[tokio::test]
async fn a_streaming_body_is_kept_and_sent_again() {
    let (url, seen) = server(1).await;
    let stream = reqwest::Body::wrap(String::from("streamed request body"));
    assert!(stream.as_bytes().is_none(), "a stream, not bytes");
    let response = client(layer()).put(&url).body(stream).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().attempts(), 2);
    let bodies = seen.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies.iter().all(|b| b == "streamed request body"),
        "{bodies:?}"
    );
}

#[tokio::test]
async fn options_ride_in_the_chains_extensions() {
    let (url, seen) = server(5).await;
    let response = client(layer())
        .put(&url)
        .with_extension(RequestOptions::new().no_retries())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "a final status, handed back");
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 1, "retries off for this request");
    assert_eq!(report.diagnosis().owner(), Some(Owner::Server));
    assert_eq!(seen.bodies.lock().unwrap().len(), 1);
}

/// Counts the attempts that reach it, and whether the caller's extension
/// reached it too.
struct Count(Arc<AtomicU32>, Arc<AtomicU32>);

#[derive(Clone)]
struct Marker;

#[async_trait::async_trait]
impl Middleware for Count {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if extensions.get::<Marker>().is_some() {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
        next.run(request, extensions).await
    }
}

#[tokio::test]
async fn the_middlewares_after_it_run_on_every_attempt() {
    let (url, _seen) = server(2).await;
    let (count, marked) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(TriageMiddleware::new(layer()))
        .with(Count(count.clone(), marked.clone()))
        .build();
    let response = client
        .put(&url)
        .body("x")
        .with_extension(Marker)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(count.load(Ordering::SeqCst), 3, "one run per attempt");
    assert_eq!(
        marked.load(Ordering::SeqCst),
        3,
        "with the caller's extensions"
    );
}

#[tokio::test]
async fn a_final_failure_is_triages_error_with_reqwests_in_its_chain() {
    let port = triage_testkit::refusing_port().unwrap();
    let url = format!("http://{}/echo", port.addr());
    let error = client(layer()).get(&url).send().await.unwrap_err();
    let triage = triage_error(&error).expect("triage's error");
    assert_eq!(triage.owner(), Some(Owner::ConnectionPath));
    assert_eq!(triage.class().to_string(), "transport.connect.refused");
    assert_eq!(triage.attempts(), 3);
    assert_eq!(triage.stop(), Stop::AttemptsExhausted);
    let mut source = std::error::Error::source(triage);
    let mut found = false;
    while let Some(error) = source {
        found |= error.is::<reqwest::Error>();
        source = error.source();
    }
    assert!(found, "reqwest's error is in the chain: {triage:?}");
}
