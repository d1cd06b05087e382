//! An outage through real sockets: 1,000 concurrent calls through clones of
//! one layer against an upstream that always answers 503. The shared budget
//! keeps the upstream's load at most (1 + ratio) × calls + the reserve, and
//! no call makes more attempts than the rules allow.
#![cfg(feature = "hyper-util")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Backoff, RetryBudget, RetryRules};
use tower_triage::{ReportExt, TriageLayer};

async fn always_503() -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(503)
                                    .body(Full::new(Bytes::from_static(b"{\"error\":\"down\"}")))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_against_an_outage_stay_within_the_budget() {
    let (addr, hits) = always_503().await;
    let connector = tower_triage::connect::tagged_connector(triage_testkit::Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let rules = RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap());
    let budget = RetryBudget::default(); // 20 % of calls plus 10 a second over 10 s
    let svc = TriageLayer::new().rules(rules).budget(budget).layer(client);

    let calls = 1_000u32;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..calls {
        let mut svc = svc.clone();
        let uri = format!("http://svc.test:{}/v1/items", addr.port());
        tasks.spawn(async move {
            let request = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
            let response = svc.ready().await.unwrap().call(request).await.unwrap();
            assert_eq!(response.status(), 503);
            response.report().unwrap().attempts()
        });
    }
    let mut attempts = 0u32;
    while let Some(result) = tasks.join_next().await {
        let n = result.unwrap();
        assert!((1..=3).contains(&n), "a call made {n} attempts");
        attempts += n;
    }
    let upstream = hits.load(Ordering::SeqCst);
    assert_eq!(
        upstream, attempts,
        "the upstream saw exactly the attempts reported"
    );
    let bound = calls + calls / 5 + 100;
    assert!(
        upstream <= bound,
        "{upstream} upstream requests for {calls} calls (bound {bound})"
    );
    assert!(upstream > calls, "the budget still allowed some retries");
}
