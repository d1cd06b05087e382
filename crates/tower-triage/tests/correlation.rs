//! Issue 16: an outbound call is tied to the inbound request it serves. A
//! correlation ID given in `RequestOptions`, or tower-http's `RequestId`
//! that `SetRequestIdLayer` put on a request a gateway forwards, goes into
//! the call's events and its escalation packet, with retries on or off.
#![cfg(feature = "hyper-util")]

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_triage::core::{Backoff, RetryRules};
use tower_triage::{RequestOptions, TriageLayer};
use triage_testkit::{EventLog, Resolver, Upstream};

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

fn client(rules: RetryRules) -> Client {
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    TriageLayer::new()
        .rules(rules)
        .errors_for_status(true)
        .layer(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector),
        )
}

#[tokio::test(flavor = "current_thread")]
async fn a_correlation_id_goes_into_the_events_and_the_packet() {
    let upstream = Upstream::start().await.unwrap();
    let quick = RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(2)).unwrap());
    for rules in [RetryRules::none(), quick] {
        let log = EventLog::new();
        let _guard = tracing::subscriber::set_default(log.clone());
        let mut request = Request::get(upstream.url("/status/503"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        request
            .extensions_mut()
            .insert(RequestOptions::new().correlation_id("inbound-42\u{1b}[31m"));
        let error = client(rules).oneshot(request).await.unwrap_err();
        let packet = error.packet();
        // A control character never comes through: it is replaced.
        assert_eq!(packet.correlation_id(), Some("inbound-42?[31m"));
        assert!(
            packet
                .to_string()
                .contains("  serving:     inbound-42?[31m")
        );
        #[cfg(feature = "serde")]
        assert!(
            packet
                .to_json()
                .contains(r#""correlation_id":"inbound-42?[31m""#)
        );
        let attempts = log.matching("attempt ");
        assert!(!attempts.is_empty());
        assert!(
            attempts
                .iter()
                .all(|l| l.contains("correlation_id=inbound-42")),
            "{attempts:?}"
        );
        assert_eq!(log.matching("request failed").len(), 1);
        assert!(log.matching("request failed")[0].contains("correlation_id=inbound-42"));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn without_one_the_fields_are_left_out() {
    let upstream = Upstream::start().await.unwrap();
    let log = EventLog::new();
    let _guard = tracing::subscriber::set_default(log.clone());
    let request = Request::get(upstream.url("/status/503"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let error = client(RetryRules::none())
        .oneshot(request)
        .await
        .unwrap_err();
    assert_eq!(error.packet().correlation_id(), None);
    assert!(!error.packet().to_string().contains("serving:"));
    assert!(log.lines().iter().all(|l| !l.contains("correlation_id")));
}

/// A gateway forwards its inbound request, with the `RequestId` that
/// tower-http's `SetRequestIdLayer` gave it: the packet names that ID.
#[cfg(feature = "tower-http")]
#[tokio::test(flavor = "current_thread")]
async fn tower_https_request_id_is_read_from_a_forwarded_request() {
    use tower_http::request_id::{MakeRequestUuid, SetRequestIdLayer};

    // A subscriber of its own, as every test here has: a callsite first
    // seen with none may be cached as never interesting for the others.
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let upstream = Upstream::start().await.unwrap();
    let url = upstream.url("/status/503");
    let gateway = SetRequestIdLayer::x_request_id(MakeRequestUuid).layer(tower::service_fn(
        move |mut inbound: Request<Full<Bytes>>| {
            let url = url.clone();
            async move {
                let given = inbound.headers()["x-request-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                *inbound.uri_mut() = url.parse().unwrap();
                let error = client(RetryRules::none())
                    .oneshot(inbound)
                    .await
                    .unwrap_err();
                let named = error.packet().correlation_id().unwrap_or("-").to_owned();
                Ok::<_, std::convert::Infallible>(http::Response::new((given, named)))
            }
        },
    ));
    let inbound = Request::get("http://gateway.test/v1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (given, named) = gateway.oneshot(inbound).await.unwrap().into_body();
    assert_eq!(given.len(), 36, "a UUID: {given}");
    assert_eq!(named, given, "the packet names the inbound request's ID");
}
