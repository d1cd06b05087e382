//! The per-host pool limit with real sockets: a call that waits too long
//! for a slot fails with a typed `pool` timeout (the caller's own limit,
//! never retried, nothing sent); a slot is held until the response body
//! ends, then the next call goes.
#![cfg(feature = "hyper-util")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::core::{Fault, Owner, Stage, TimeoutPhase};
use triage_testkit::{Resolver, Upstream};

fn get(url: String) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn a_call_that_waits_too_long_for_a_slot_is_a_pool_timeout() {
    let upstream = Upstream::start().await.unwrap();
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let svc = TriageLayer::new()
        .pool(1, Some(Duration::from_millis(150)))
        .layer(client);

    // The first call holds the only slot: its answer takes 600 ms.
    let slow = tokio::spawn({
        let mut svc = svc.clone();
        let url = upstream.url("/fault/slow-headers?ms=600");
        async move {
            let response = svc.ready().await.unwrap().call(get(url)).await.unwrap();
            response.into_body().collect().await.map(|_| ())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    let mut other = svc.clone();
    let error = other
        .ready()
        .await
        .unwrap()
        .call(get(upstream.url("/ok")))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Timeout(TimeoutPhase::Pool)),
        "{error}"
    );
    assert_eq!(error.stage(), Some(Stage::Connect));
    assert_eq!(error.owner(), Some(Owner::Caller), "the caller's own limit");
    assert_eq!(error.attempts(), 1, "not retried");
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(500),
        "{waited:?}"
    );
    assert_eq!(upstream.hits("/ok"), 0, "nothing was sent");

    // Once the first call's body has ended, its slot is free again.
    slow.await.unwrap().unwrap();
    let response = other
        .ready()
        .await
        .unwrap()
        .call(get(upstream.url("/ok")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    assert_eq!(upstream.hits("/ok"), 1);
}

#[tokio::test]
async fn a_slot_is_held_until_the_body_ends() {
    let upstream = Upstream::start().await.unwrap();
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .pool(1, Some(Duration::from_millis(100)))
        .layer(client);

    // The head is back, the body not read: the slot is still taken.
    let first = svc
        .ready()
        .await
        .unwrap()
        .call(get(upstream.url("/bytes/1000")))
        .await
        .unwrap();
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(get(upstream.url("/ok")))
        .await
        .unwrap_err();
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Timeout(TimeoutPhase::Pool))
    );
    // Read to its end, it frees the slot; a waiting call then gets it.
    let waiting = tokio::spawn({
        let mut svc = svc.clone();
        let url = upstream.url("/ok");
        async move {
            svc.ready()
                .await
                .unwrap()
                .call(get(url))
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.into_body().collect().await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 200);
}
