//! Idempotency keys: one key minted per logical POST for an API that honours
//! it, the same on every attempt, so that an ambiguous failure (a 500, a 502
//! or 504, a connection lost after sending) is retried; never a key over
//! the caller's; without a key, no retry.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::{Profile, RetryRules};
use tower_triage::{IdempotencyKeys, ReportExt, TriageLayer};

type Answer = Result<Response<Full<Bytes>>, io::Error>;

/// What the upstream answers, by request number.
type Script = Box<dyn Fn(usize) -> Answer + Send + Sync>;

/// The headers of each request the upstream got, in order.
type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// An upstream that answers the n-th request (0-based) with `script(n)`
/// and keeps every request's headers.
fn upstream(
    script: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = io::Error,
        Future = impl Send,
    > + Clone,
    Seen,
) {
    let seen = Seen::default();
    let kept = Arc::clone(&seen);
    let script = Arc::new(script);
    let service = service_fn(move |request: Request<Full<Bytes>>| {
        let n = {
            let mut seen = kept.lock().unwrap();
            seen.push(request.headers().clone());
            seen.len() - 1
        };
        let answer = script(n);
        async move { answer }
    });
    (service, seen)
}

fn status(code: u16) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("request-id", format!("req_{code}"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// A 500 first, then a 200.
fn fails_once(code: u16) -> impl Fn(usize) -> Answer + Send + Sync + 'static {
    move |n| Ok(status(if n == 0 { code } else { 200 }))
}

fn request(method: http::Method, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri("http://payments.test/v1/charges");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from_static(b"amount=100")))
        .unwrap()
}

fn post() -> Request<Full<Bytes>> {
    request(http::Method::POST, &[])
}

/// No value of the header in a request.
const NONE: Vec<HeaderValue> = Vec::new();

/// The values of `name` in each request seen.
fn keys(seen: &Seen, name: &str) -> Vec<Vec<HeaderValue>> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|h| h.get_all(name).iter().cloned().collect())
        .collect()
}

fn stripe() -> TriageLayer {
    TriageLayer::new().profile(Profile::stripe().clone())
}

async fn call<S>(svc: &mut S, request: Request<Full<Bytes>>) -> S::Response
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    svc.ready().await.unwrap().call(request).await.unwrap()
}

/// One key per request, the same on each attempt, shaped like a UUID.
fn one_key_for_all(keys: &[Vec<HeaderValue>]) -> String {
    let first = &keys[0];
    assert_eq!(first.len(), 1, "one key per request: {first:?}");
    for attempt in keys {
        assert_eq!(attempt, first, "every attempt sends the first key");
    }
    let key = first[0].to_str().unwrap().to_owned();
    assert_eq!(key.len(), 36, "{key}");
    assert_eq!(key.matches('-').count(), 4, "{key}");
    key
}

#[tokio::test(start_paused = true)]
async fn a_stripe_post_that_meets_a_500_is_retried_with_the_same_key() {
    let (inner, seen) = upstream(fails_once(500));
    let mut svc = stripe().layer(inner);
    let response = call(&mut svc, post()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().attempts(), 2);
    one_key_for_all(&keys(&seen, "idempotency-key"));
}

#[tokio::test(start_paused = true)]
async fn without_a_key_the_same_post_is_not_retried() {
    for layer in [
        // A profile that names no key header.
        TriageLayer::new().profile(Profile::generic().clone()),
        // Stripe's, with minting off.
        stripe().idempotency_keys(IdempotencyKeys::Off),
    ] {
        let (inner, seen) = upstream(fails_once(500));
        let mut svc = layer.layer(inner);
        let response = call(&mut svc, post()).await;
        assert_eq!(response.status(), 500);
        let packet = response.report().unwrap().packet().unwrap().clone();
        assert_eq!(packet.outcome(), "not_replay_safe");
        assert_eq!(packet.idempotency_key(), None);
        assert_eq!(keys(&seen, "idempotency-key"), vec![NONE]);
    }
}

#[tokio::test(start_paused = true)]
async fn ambiguous_gateway_answers_and_a_lost_connection_are_retried_with_the_key() {
    let lost = |n: usize| -> Answer {
        if n == 0 {
            Err(io::Error::from(io::ErrorKind::ConnectionReset))
        } else {
            Ok(status(200))
        }
    };
    let scripts: Vec<(&str, Script)> = vec![
        ("502", Box::new(fails_once(502))),
        ("504", Box::new(fails_once(504))),
        ("connection reset after sending", Box::new(lost)),
    ];
    for (what, script) in scripts {
        let (inner, seen) = upstream(script);
        let mut svc = stripe().layer(inner);
        let response = call(&mut svc, post()).await;
        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(seen.lock().unwrap().len(), 2, "{what}: retried once");
        one_key_for_all(&keys(&seen, "idempotency-key"));

        // The same failure without a key is not retried.
        let (inner, seen) = upstream(match what {
            "502" => Box::new(fails_once(502)) as Script,
            "504" => Box::new(fails_once(504)),
            _ => Box::new(lost),
        });
        let mut svc = TriageLayer::new()
            .profile(Profile::generic().clone())
            .layer(inner);
        let _ = svc.ready().await.unwrap().call(post()).await;
        assert_eq!(seen.lock().unwrap().len(), 1, "{what}: no key, no retry");
    }
}

#[tokio::test(start_paused = true)]
async fn the_callers_key_is_never_replaced() {
    let (inner, seen) = upstream(fails_once(500));
    let mut svc = stripe().layer(inner);
    let own = request(
        http::Method::POST,
        &[("idempotency-key", "order-42-charge")],
    );
    let response = call(&mut svc, own).await;
    assert_eq!(response.status(), 200);
    for attempt in keys(&seen, "idempotency-key") {
        assert_eq!(attempt, vec![HeaderValue::from_static("order-42-charge")]);
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_caller_key_counts_even_with_minting_off() {
    let (inner, seen) = upstream(fails_once(500));
    let mut svc = TriageLayer::new()
        .profile(Profile::generic().clone())
        .idempotency_keys(IdempotencyKeys::Off)
        .layer(inner);
    let own = request(http::Method::POST, &[("idempotency-key", "caller-1")]);
    assert_eq!(call(&mut svc, own).await.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_header_named_by_the_user_works_for_any_api() {
    let name = HeaderName::from_static("x-once");
    let (inner, seen) = upstream(fails_once(500));
    let mut svc = TriageLayer::new()
        .profile(Profile::generic().clone())
        .idempotency_keys(IdempotencyKeys::Header(name))
        .layer(inner);
    let response = call(&mut svc, post()).await;
    assert_eq!(response.status(), 200);
    one_key_for_all(&keys(&seen, "x-once"));
    assert_eq!(keys(&seen, "idempotency-key"), vec![NONE, NONE]);
}

#[tokio::test(start_paused = true)]
async fn each_logical_request_gets_its_own_key() {
    let (inner, seen) = upstream(|_| Ok(status(200)));
    let mut svc = stripe().layer(inner);
    call(&mut svc, post()).await;
    call(&mut svc, post()).await;
    let keys = keys(&seen, "idempotency-key");
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test(start_paused = true)]
async fn no_key_for_idempotent_methods_or_without_retries() {
    let (inner, seen) = upstream(|_| Ok(status(200)));
    let mut svc = stripe().layer(inner);
    call(&mut svc, request(http::Method::GET, &[])).await;
    call(&mut svc, request(http::Method::DELETE, &[])).await;
    let (inner, no_retries) = upstream(|_| Ok(status(200)));
    let mut svc = stripe()
        .rules(RetryRules::default().max_retries(0))
        .layer(inner);
    call(&mut svc, post()).await;
    assert_eq!(keys(&seen, "idempotency-key"), vec![NONE, NONE]);
    assert_eq!(keys(&no_retries, "idempotency-key"), vec![NONE]);
}

#[tokio::test(start_paused = true)]
async fn the_packet_names_the_key_sent() {
    let (inner, seen) = upstream(|_| Ok(status(500)));
    let mut svc = stripe().errors_for_status(true).layer(inner);
    let error = svc.ready().await.unwrap().call(post()).await.unwrap_err();
    let sent = keys(&seen, "idempotency-key");
    assert_eq!(sent.len(), 3, "the first attempt and two retries");
    let key = one_key_for_all(&sent);
    let packet = error.packet();
    assert_eq!(packet.idempotency_key(), Some(key.as_str()));
    assert!(packet.to_string().contains(&key), "{packet}");
    assert!(
        packet
            .to_json()
            .contains(&format!("\"idempotency_key\":\"{key}\""))
    );
}

#[tokio::test(start_paused = true)]
async fn a_hostile_caller_key_is_capped_and_stripped_in_the_packet() {
    let long = format!("k\t{}", "x".repeat(400));
    let (inner, seen) = upstream(|_| Ok(status(500)));
    let mut svc = stripe().errors_for_status(true).layer(inner);
    let own = request(http::Method::POST, &[("idempotency-key", &long)]);
    let error = svc.ready().await.unwrap().call(own).await.unwrap_err();
    // Sent as the caller set it...
    assert_eq!(keys(&seen, "idempotency-key")[0][0], long.as_str());
    // ...and named in the packet capped, without the control character.
    let named = error.packet().idempotency_key().unwrap();
    assert!(named.len() <= 255 + '…'.len_utf8(), "{}", named.len());
    assert!(named.ends_with('…'), "the cut is marked: {named:?}");
    assert!(!named.contains('\t'), "{named:?}");
    assert!(named.starts_with('k'), "{named:?}");
}
