//! The layer around hyper-util's legacy Client with stage tagging, against
//! real sockets on 127.0.0.1. Names are resolved by a test resolver only:
//! `*.test` is 127.0.0.1, `*.invalid` does not exist.
#![cfg(feature = "hyper-util")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Backoff, ErrorKind, Fault, Owner, RetryRules, Stage};
use tower_triage::{ReportExt, TriageLayer};

type TestResolver = triage_testkit::Resolver;

fn fast_rules() -> RetryRules {
    RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap())
}

fn client(
    resolver: TestResolver,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<tower_triage::ResponseBody<hyper::body::Incoming>>,
    Error = tower_triage::core::Error,
> + Clone {
    let connector = tower_triage::connect::tagged_connector(resolver);
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    TriageLayer::new().rules(fast_rules()).layer(client)
}

fn get(uri: String) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// A raw HTTP/1.1 server: for the n-th connection (0-based), `answer(n)`
/// gives the bytes to write after reading the request head (`None`: close
/// without answering). Counts connections.
async fn raw_server(
    answer: impl Fn(u32) -> Option<&'static str> + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let reply = answer(n);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if let Some(reply) = reply {
                    let _ = stream.write_all(reply.as_bytes()).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_name_that_does_not_exist_is_the_dns_stage_and_never_retried() {
    let resolver = TestResolver::default();
    let mut svc = client(resolver.clone());
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://api.nowhere.invalid/v1".into()))
        .await
        .unwrap_err();
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    assert_eq!(error.stage(), Some(Stage::Dns));
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::NameNotFound)
    );
    assert_eq!(error.kind(), ErrorKind::Connection);
    assert_eq!(error.attempts(), 1);
    assert_eq!(resolver.lookups(), 1);
    let chain = error.packet().error_chain().join(" / ");
    assert!(chain.contains("dns stage failed"), "{chain}");
}

#[tokio::test]
async fn a_closed_port_is_the_connect_stage_and_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let resolver = TestResolver::default();
    let mut svc = client(resolver.clone());
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(get(format!("http://svc.test:{port}/v1")))
        .await
        .unwrap_err();
    assert_eq!(error.stage(), Some(Stage::Connect));
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Refused)
    );
    assert_eq!(error.attempts(), 3);
    assert_eq!(resolver.lookups(), 3, "one connect per attempt");
}

#[tokio::test]
async fn a_connection_closed_before_headers_is_retried_for_a_get() {
    let (addr, accepted) = raw_server(|_| None).await;
    let mut svc = client(TestResolver::default());
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(get(format!("http://svc.test:{}/v1", addr.port())))
        .await
        .unwrap_err();
    assert_eq!(error.stage(), Some(Stage::AwaitHeaders));
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Closed)
    );
    assert_eq!(error.attempts(), 3);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_503_then_200_is_delivered_whole_after_a_retry() {
    let (addr, accepted) = raw_server(|n| {
        Some(if n == 0 {
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
        } else {
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\nx-request-id: req_42\r\nconnection: close\r\n\r\nhello world"
        })
    })
    .await;
    let mut svc = client(TestResolver::default());
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(get(format!("http://svc.test:{}/v1", addr.port())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report = response.report().unwrap();
    assert_eq!(report.attempts(), 2);
    assert_eq!(report.request_id().unwrap(), "req_42");
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hello world"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[derive(Clone, Copy)]
enum Misbehave {
    /// Write the head and part of the body, then reset the connection.
    ResetMidBody,
    /// Write the head and part of the body, then close (FIN).
    TruncateBody,
    /// Write the head and 10 body bytes, then go quiet.
    StallBody,
    /// Wait before writing anything.
    StallHead,
}

async fn fault_server(fault: Misbehave) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let chunk = vec![b'x'; 1000];
                match fault {
                    Misbehave::ResetMidBody => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
                            .await;
                        let _ = stream.write_all(&chunk).await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = stream.set_zero_linger();
                        drop(stream);
                    }
                    Misbehave::TruncateBody => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                            .await;
                        let _ = stream.write_all(&chunk).await;
                        let _ = stream.shutdown().await;
                    }
                    Misbehave::StallBody => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                            .await;
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Misbehave::StallHead => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[derive(Clone, Default)]
struct Bodies(Arc<std::sync::Mutex<Vec<tower_triage::BodyOutcome>>>);

impl tower_triage::Observer for Bodies {
    fn on_body(&self, body: &tower_triage::BodyOutcome) {
        self.0.lock().unwrap().push(*body);
    }
}

#[tokio::test]
async fn a_body_that_breaks_mid_way_is_reported_with_its_bytes() {
    for (fault, expected) in [
        (Misbehave::ResetMidBody, Fault::Reset),
        (Misbehave::TruncateBody, Fault::Closed),
    ] {
        let (addr, accepted) = fault_server(fault).await;
        let bodies = Bodies::default();
        let connector = tower_triage::connect::tagged_connector(TestResolver::default());
        let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
        let mut svc = TriageLayer::new().observer(bodies.clone()).layer(client);
        let response = svc
            .ready()
            .await
            .unwrap()
            .call(get(format!("http://svc.test:{}/big", addr.port())))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.into_body().collect().await.is_err());
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "a streamed body is not retried"
        );
        assert_eq!(
            bodies.0.lock().unwrap().clone(),
            vec![tower_triage::BodyOutcome::Failed {
                bytes: 1000,
                fault: expected
            }]
        );
    }
}

#[tokio::test]
async fn a_stalled_body_fails_with_the_body_idle_timeout() {
    let (addr, _) = fault_server(Misbehave::StallBody).await;
    let bodies = Bodies::default();
    let connector = tower_triage::connect::tagged_connector(TestResolver::default());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .observer(bodies.clone())
        .body_idle_timeout(Some(Duration::from_millis(150)))
        .layer(client);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(get(format!("http://svc.test:{}/slow", addr.port())))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = response.into_body().collect().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let timeout = error
        .downcast_ref::<tower_triage::TimeoutError>()
        .expect("a typed timeout");
    assert_eq!(timeout.phase(), tower_triage::core::TimeoutPhase::BodyIdle);
    assert_eq!(
        bodies.0.lock().unwrap().clone(),
        vec![tower_triage::BodyOutcome::Failed {
            bytes: 10,
            fault: Fault::Timeout(tower_triage::core::TimeoutPhase::BodyIdle)
        }]
    );
}

#[tokio::test]
async fn a_stalled_head_times_out_per_attempt_and_is_retried_for_a_get() {
    let (addr, accepted) = fault_server(Misbehave::StallHead).await;
    let connector = tower_triage::connect::tagged_connector(TestResolver::default());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .rules(fast_rules())
        .attempt_timeout(Some(Duration::from_millis(100)))
        .layer(client);
    let started = std::time::Instant::now();
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(get(format!("http://svc.test:{}/slow", addr.port())))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.stage(), Some(Stage::AwaitHeaders));
    assert_eq!(error.attempts(), 3);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_attempt_timeout_while_connecting_is_the_connect_stage_and_replays_a_post() {
    // A listener whose accept queue is full: the connect never completes,
    // and no connect timeout is set, so the attempt timeout ends it. The
    // request never left: even a POST is sent again.
    let backlog = triage_testkit::full_backlog().unwrap();
    let resolver = TestResolver::new();
    let connector = tower_triage::connect::tagged_connector(resolver.clone());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .rules(fast_rules())
        .attempt_timeout(Some(Duration::from_millis(200)))
        .layer(client);
    let request = Request::post(format!(
        "http://svc.test:{}/v1/charges",
        backlog.addr().port()
    ))
    .body(Full::new(Bytes::from_static(b"{}")))
    .unwrap();
    let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    assert_eq!(error.stage(), Some(Stage::Connect), "{error}");
    assert_eq!(
        error.class().to_string(),
        "transport.connect.timeout.connect"
    );
    assert_eq!(error.attempts(), 3, "a POST that never left is replayed");
    assert_eq!(resolver.lookups(), 3);
}

#[tokio::test]
async fn the_connect_timeout_ends_a_hanging_connect_before_the_attempt_timeout() {
    // The accept queue is full: connects hang. The layer's connect timeout
    // (seen through the tagged connector) ends each attempt long before the
    // attempt timeout would, at the connect stage; the request never left.
    let backlog = triage_testkit::full_backlog().unwrap();
    let resolver = TestResolver::new();
    let connector = tower_triage::connect::tagged_connector(resolver.clone());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .rules(fast_rules())
        .connect_timeout(Some(Duration::from_millis(150)))
        .attempt_timeout(Some(Duration::from_secs(60)))
        .layer(client);
    let request = Request::post(format!(
        "http://svc.test:{}/v1/charges",
        backlog.addr().port()
    ))
    .body(Full::new(Bytes::from_static(b"{}")))
    .unwrap();
    let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert_eq!(error.stage(), Some(Stage::Connect), "{error}");
    assert_eq!(
        error.class().to_string(),
        "transport.connect.timeout.connect"
    );
    let timeout = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<tower_triage::TimeoutError>())
        .expect("the layer's typed timeout");
    assert_eq!(timeout.to_string(), "connect timeout after 150 ms");
    assert_eq!(error.attempts(), 3, "a POST that never left is replayed");
    assert_eq!(resolver.lookups(), 3);
}

#[tokio::test]
async fn a_request_sets_its_own_connect_timeout() {
    // No connect timeout on the layer; this request brings its own, and
    // another request turns the layer's off for itself.
    let backlog = triage_testkit::full_backlog().unwrap();
    let connector = tower_triage::connect::tagged_connector(TestResolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let url = format!("http://svc.test:{}/", backlog.addr().port());
    let request = |timeout: Option<Duration>| {
        let mut request = Request::get(url.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        request.extensions_mut().insert(
            tower_triage::RequestOptions::new()
                .no_retries()
                .connect_timeout(timeout),
        );
        request
    };

    let mut svc = TriageLayer::new()
        .attempt_timeout(Some(Duration::from_secs(2)))
        .layer(client.clone());
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(Duration::from_millis(100))))
        .await
        .unwrap_err();
    let timeout = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<tower_triage::TimeoutError>())
        .expect("the layer's typed timeout");
    assert_eq!(timeout.to_string(), "connect timeout after 100 ms");

    // The layer's 100 ms, turned off for this request: the attempt timeout
    // (300 ms) ends it instead, still at the connect stage.
    let mut svc = TriageLayer::new()
        .connect_timeout(Some(Duration::from_millis(100)))
        .attempt_timeout(Some(Duration::from_millis(300)))
        .layer(client);
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(request(None))
        .await
        .unwrap_err();
    assert_eq!(error.stage(), Some(Stage::Connect), "{error}");
    let timeout = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<tower_triage::TimeoutError>())
        .expect("the layer's typed timeout");
    assert_eq!(timeout.to_string(), "connect timeout after 300 ms");
}
