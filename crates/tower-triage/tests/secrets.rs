//! Issue 14, item 5 (the layer): values the request carried — an
//! `x-api-key` that looks like no known key, a JWT, a query value — that an
//! upstream echoes back in its request ID, error code or message never
//! reach the escalation packet or the events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::TriageLayer;
use tower_triage::core::{Backoff, RetryRules};
use triage_testkit::EventLog;

const KEY: &str = "zq9LongSecretValue77";
const QUERY: &str = "s3ssionValue4242";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.c2lnbmF0dXJl";

/// A 503, then a 401, each echoing every secret back.
fn echoing(
    calls: Arc<AtomicU32>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    service_fn(move |_req: Request<Full<Bytes>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let body = format!(
                r#"{{"error":{{"code":"{KEY}","type":"{QUERY}","message":"key {KEY}, token {JWT}"}}}}"#
            );
            Ok(Response::builder()
                .status(if n == 0 { 503 } else { 401 })
                .header("content-type", "application/json")
                .header("x-request-id", KEY)
                .body(Full::new(Bytes::from(body)))
                .unwrap())
        }
    })
}

#[tokio::test]
async fn echoed_request_values_stay_out_of_packets_and_events() {
    let rules = RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(2)).unwrap());
    // A 503, then the 401: the head was kept for the retry.
    echoed_values_are_scrubbed(rules, 2).await;
}

/// With retries off the layer keeps no copy of the head, only the
/// fingerprints of its sensitive values: the same scrubbing.
#[tokio::test]
async fn echoed_values_are_scrubbed_with_retries_off_too() {
    echoed_values_are_scrubbed(RetryRules::none(), 1).await;
}

async fn echoed_values_are_scrubbed(rules: RetryRules, calls_made: u32) {
    let log = EventLog::new();
    let _guard = tracing::subscriber::set_default(log.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = TriageLayer::new()
        .rules(rules)
        .errors_for_status(true)
        .layer(echoing(Arc::clone(&calls)));
    let request = Request::get(format!("https://api.test/v1/things?session={QUERY}"))
        .header("x-api-key", KEY)
        .header("authorization", format!("Bearer {JWT}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), calls_made);
    let packet = error.packet();
    let text = packet.to_string();
    #[cfg(feature = "serde")]
    let json = packet.to_json();
    #[cfg(not(feature = "serde"))]
    let json = String::new();
    let events = log.lines().join("\n");
    assert!(!events.is_empty());
    for secret in [KEY, QUERY, JWT] {
        assert!(!text.contains(secret), "{secret} in the packet:\n{text}");
        assert!(
            !json.contains(secret),
            "{secret} in the JSON packet:\n{json}"
        );
        assert!(
            !events.contains(secret),
            "{secret} in the events:\n{events}"
        );
    }
    // What was scrubbed is said, not dropped.
    assert!(text.contains("[redacted]"), "{text}");
}

/// A success whose request ID echoes a value the request carried: its
/// DEBUG event has the ID scrubbed, with the head kept (retries on) and
/// with only fingerprints (retries off); an ID that echoes nothing is
/// written as it is.
#[tokio::test]
async fn a_success_whose_request_id_echoes_a_secret_is_scrubbed_too() {
    for rules in [RetryRules::default(), RetryRules::none()] {
        for echoed in [KEY, QUERY, "req_plain_8f2a91"] {
            let log = EventLog::new();
            let _guard = tracing::subscriber::set_default(log.clone());
            let id = format!("id-{echoed}");
            let mut svc = TriageLayer::new().rules(rules.clone()).layer(service_fn(
                move |_req: Request<Full<Bytes>>| {
                    let answer = Response::builder()
                        .header("x-request-id", id.as_str())
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    async move { Ok::<_, std::io::Error>(answer) }
                },
            ));
            let request = Request::get(format!("https://api.test/v1?session={QUERY}"))
                .header("x-api-key", KEY)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = svc.ready().await.unwrap().call(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let events = log.matching("attempt succeeded").join("\n");
            assert!(!events.is_empty(), "no success event");
            if echoed.starts_with("req_") {
                assert!(events.contains(echoed), "{events}");
            } else {
                assert!(!events.contains(echoed), "{echoed} in:\n{events}");
                assert!(events.contains("[redacted]"), "{events}");
            }
        }
    }
}
