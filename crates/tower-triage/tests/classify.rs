//! Feature `tower-http`: tower-http's `TraceLayer` with `TriageClassifier`
//! labels each failure with triage's owner and class, outside the triage
//! layer (from its report and its error) and around a bare hyper-util
//! client (from the head, and the same typed walk of the error); a success
//! is no failure.
#![cfg(all(feature = "tower-http", feature = "hyper-util"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_http::trace::TraceLayer;
use tower_triage::TriageLayer;
use tower_triage::classify::{TriageClassifier, TriageFailure};
use tower_triage::core::RetryRules;
use triage_testkit::{Resolver, Upstream};

type Seen = Arc<Mutex<Vec<String>>>;

/// The trace layer, recording each failure's label in `seen`.
#[allow(clippy::type_complexity)] // tower-http's layer, named in full
fn trace(
    seen: &Seen,
) -> TraceLayer<
    TriageClassifier,
    tower_http::trace::DefaultMakeSpan,
    tower_http::trace::DefaultOnRequest,
    tower_http::trace::DefaultOnResponse,
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    impl Fn(TriageFailure, Duration, &tracing::Span) + Clone,
> {
    let seen = Arc::clone(seen);
    TraceLayer::new(TriageClassifier::new()).on_failure(
        move |failure: TriageFailure, _: Duration, _: &tracing::Span| {
            seen.lock().unwrap().push(failure.to_string());
        },
    )
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn outside_the_layer_failures_carry_triages_owner_and_class() {
    let upstream = Upstream::start().await.unwrap();
    let seen = Seen::default();
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let triage = TriageLayer::new().rules(RetryRules::none()).layer(client);
    let svc = trace(&seen).layer(triage);
    for path in [
        "/ok",
        "/openai/429/rate",
        "/openai/429/quota",
        "/status/503",
    ] {
        let _ = svc.clone().oneshot(get(&upstream.url(path))).await.unwrap();
    }
    // An error of the layer: a name that does not exist.
    let Err(error) = svc
        .clone()
        .oneshot(get("http://api.nowhere.invalid/v1"))
        .await
    else {
        panic!("a name that does not exist")
    };
    assert_eq!(
        error.owner(),
        Some(tower_triage::core::Owner::ConnectionPath)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "rate_limit rate_limited",
            "quota quota_exhausted.billing",
            "server server_error.503",
            "connection_path transport.dns.name_not_found",
        ],
        "the 200 is no failure"
    );
}

#[tokio::test]
async fn around_a_bare_client_the_same_judgement() {
    let upstream = Upstream::start().await.unwrap();
    let seen = Seen::default();
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let svc = trace(&seen).layer(client);
    for path in ["/ok", "/openai/429/rate", "/status/404"] {
        let _ = svc.clone().oneshot(get(&upstream.url(path))).await.unwrap();
    }
    let refused = triage_testkit::closed_port().unwrap().port();
    let answer = svc
        .clone()
        .oneshot(get(&format!("http://svc.test:{refused}/")))
        .await;
    assert!(answer.is_err(), "nothing listens there");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "rate_limit rate_limited",
            "request not_found",
            "connection_path transport.connect.refused",
        ]
    );
}
