//! The fail-safe rule in the compositions users build: a tower timeout
//! inside the layer, and hyper-util over h2c. Each of the two reproductions
//! of issue 13 used to end with a healthy upstream refused by an open
//! route; here each fault is judged like its HTTP/1 twin, retried, and the
//! next healthy call on the same route goes through.
#![cfg(feature = "http2")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_triage::core::{Backoff, Fault, Owner, RetryRules, Stage, Stop};
use tower_triage::{ReportExt, TriageLayer};

fn fast_rules() -> RetryRules {
    RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap())
}

fn get(uri: String) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// Calls `svc` once, within 10 s.
async fn call<S, B>(
    svc: &mut S,
    request: Request<Full<Bytes>>,
) -> Result<http::Response<B>, S::Error>
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>>,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        svc.ready().await?.call(request).await
    })
    .await
    .expect("the call is bounded")
}

/// Repro 1: `ServiceBuilder::new().layer(TriageLayer::new()).timeout(..)`
/// over hyper-util with `connect::http_connector()`. The slow call is a
/// headers timeout, retried like the layer's own attempt timeout; the route
/// stays closed, and a fast call on the same host goes through.
#[tokio::test]
async fn a_tower_timeout_inside_the_layer_is_a_retried_timeout_not_a_refusal() {
    let upstream = triage_testkit::Upstream::start().await.unwrap();
    let client = Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(tower_triage::connect::http_connector());
    let mut svc = ServiceBuilder::new()
        .layer(TriageLayer::new().rules(fast_rules()))
        .timeout(Duration::from_millis(200))
        .service(client);

    let slow = upstream.ip_url("/fault/slow-headers?ms=2000");
    let error = call(&mut svc, get(slow)).await.unwrap_err();
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    assert_eq!(
        error.class().to_string(),
        "transport.await_headers.timeout.headers",
        "{}",
        error.packet()
    );
    assert_eq!(error.attempts(), 3, "retried like the attempt timeout");
    assert_eq!(error.stop(), Stop::AttemptsExhausted);
    assert_eq!(upstream.hits("/fault/slow-headers"), 3);

    // The route is not open: a fast call on the same host goes through.
    for _ in 0..3 {
        let response = call(&mut svc, get(upstream.ip_url("/ok"))).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.report().unwrap().attempts(), 1);
    }
    assert_eq!(upstream.hits("/ok"), 3);
}

/// How the first connections of [`faulty_then_serve`] end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Read once, then reset (RST).
    Reset,
    /// Close at once, before any request: over HTTP/2 after the server's
    /// SETTINGS and a graceful `GOAWAY` that processed no stream (a server
    /// draining), over HTTP/1 with a FIN.
    Close,
}

/// A raw server: each of the first `faulty` connections ends as `ending`
/// says; later ones are served by hyper, over HTTP/2 when `h2` (prior
/// knowledge), else HTTP/1.1. Counts connections.
async fn faulty_then_serve(faulty: u32, ending: Ending, h2: bool) -> (SocketAddr, Arc<AtomicU32>) {
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
            tokio::spawn(async move {
                if n < faulty {
                    let mut buf = [0u8; 4096];
                    match ending {
                        Ending::Reset => {
                            let _ = stream.read(&mut buf).await;
                            let _ =
                                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        }
                        Ending::Close => {
                            if h2 {
                                // SETTINGS (empty), then GOAWAY(last stream 0, NO_ERROR).
                                let mut frames = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
                                frames.extend_from_slice(&[0, 0, 8, 7, 0, 0, 0, 0, 0]);
                                frames.extend_from_slice(&[0; 8]);
                                let _ = stream.write_all(&frames).await;
                            }
                            let _ = stream.shutdown().await;
                            // Drain until the client closes, so that the close
                            // stays a FIN.
                            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                                while let Ok(1..) = stream.read(&mut buf).await {}
                            })
                            .await;
                        }
                    }
                    return;
                }
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (addr, accepted)
}

/// What a composition made of one fault: owner, whether the stage is past
/// the connection, attempts, and whether the route opened (the next healthy
/// call is refused).
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    owner: Option<Owner>,
    exchange: bool,
    attempts: u32,
    healthy_after: bool,
}

async fn verdict_of(ending: Ending, h2: bool) -> (Verdict, Fault) {
    let (addr, accepted) = faulty_then_serve(3, ending, h2).await;
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(h2);
    let client = builder.build::<_, Full<Bytes>>(tower_triage::connect::http_connector());
    let mut svc = TriageLayer::new().rules(fast_rules()).layer(client);
    let url = format!("http://{addr}/v1/models");
    let error = call(&mut svc, get(url.clone())).await.unwrap_err();
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "{}", error.packet());
    let stage = error.stage().expect("a transport failure");
    let fault = error.class().transport().unwrap().fault();
    let healthy = call(&mut svc, get(url)).await;
    let healthy_after = match healthy {
        Ok(response) => response.into_body().collect().await.unwrap().to_bytes() == "ok",
        Err(e) => panic!("the healthy call failed: {e}\n{}", e.packet()),
    };
    let verdict = Verdict {
        owner: error.owner(),
        exchange: matches!(stage, Stage::Write | Stage::AwaitHeaders),
        attempts: error.attempts(),
        healthy_after,
    };
    (verdict, fault)
}

/// Repro 2: hyper-util with `http2_only(true)` (h2c) against a peer that
/// closes the connection before any request (after a graceful `GOAWAY`, as
/// a draining server does). hyper gives the request back unsent and
/// hyper-util says `client error (Canceled)` (or h2 fails the stream with
/// the `GOAWAY`): it was classed `other`, not retried, and opened the route.
/// Over HTTP/1 the same server is a connection closed before the request
/// was sent or answered, retried. Now the h2c request is known to be unsent (or refused), is
/// retried for any method, and the route stays closed: HTTP/1's verdict.
#[tokio::test]
async fn an_h2c_close_before_any_request_gets_the_same_verdict_as_over_http1() {
    let (http1, http1_fault) = verdict_of(Ending::Close, false).await;
    // hyper's HTTP/1 client gives the request back too when the connection
    // closed before it was written (or reads the close as an incomplete
    // answer).
    assert!(
        matches!(http1_fault, Fault::Closed | Fault::Unsent),
        "{http1_fault:?}"
    );
    let (h2c, h2c_fault) = verdict_of(Ending::Close, true).await;
    assert!(
        matches!(h2c_fault, Fault::Unsent | Fault::StreamRefused),
        "{h2c_fault:?}"
    );
    assert_eq!(h2c, http1);
    assert_eq!(
        http1,
        Verdict {
            owner: Some(Owner::ConnectionPath),
            exchange: true,
            attempts: 3,
            healthy_after: true,
        }
    );
}

/// The same for a peer that resets the connection once it has read.
#[tokio::test]
async fn an_h2c_reset_gets_the_same_verdict_as_over_http1() {
    let (http1, http1_fault) = verdict_of(Ending::Reset, false).await;
    assert_eq!(http1_fault, Fault::Reset);
    let (h2c, h2c_fault) = verdict_of(Ending::Reset, true).await;
    assert_eq!(h2c_fault, Fault::Reset);
    assert_eq!(h2c, http1);
}

/// An error no layer could recognise, from any client: unknown, retried,
/// and the route never opens on it alone.
#[tokio::test]
async fn an_unrecognised_error_is_retried_and_never_opens_the_route() {
    #[derive(Debug)]
    struct Strange;
    impl std::fmt::Display for Strange {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the flux capacitor overheated")
        }
    }
    impl std::error::Error for Strange {}

    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let client = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 3 {
                Err(Strange)
            } else {
                Ok(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        }
    });
    let mut svc = TriageLayer::new().rules(fast_rules()).layer(client);
    let error = call(&mut svc, get("http://api.invalid/v1".into()))
        .await
        .unwrap_err();
    assert_eq!(error.class().to_string(), "transport.await_headers.unknown");
    assert_eq!(error.attempts(), 3, "retried (GET passes the gate)");
    let response = call(&mut svc, get("http://api.invalid/v1".into()))
        .await
        .expect("the route is not open");
    assert_eq!(response.status(), 200);

    // A POST is not resent on it: the request may have left.
    let post = Request::post("http://api.invalid/v1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    calls.store(0, Ordering::SeqCst);
    let error = call(&mut svc, post).await.unwrap_err();
    assert_eq!(error.attempts(), 1);
    assert!(
        matches!(error.stop(), Stop::NotReplaySafe(_)),
        "{:?}",
        error.stop()
    );
}

/// A request waiting to retry when another request's failure, proven
/// permanent, opens the route: its retry is refused without being sent, and
/// its error keeps its own attempts.
#[tokio::test]
async fn a_retry_is_refused_once_its_route_opened() {
    let calls_b = Arc::new(AtomicU32::new(0));
    let seen_b = Arc::clone(&calls_b);
    let client = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let is_b = req.uri().path() == "/b";
        if is_b {
            seen_b.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            let error = if is_b {
                tower_triage::StageError::new(
                    Stage::Connect,
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                )
            } else {
                tower_triage::StageError::new(
                    Stage::Dns,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"),
                )
            };
            Err::<http::Response<Full<Bytes>>, _>(error)
        }
    });
    let rules = RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(200), Duration::from_millis(400)).unwrap());
    let svc = TriageLayer::new().rules(rules).layer(client);
    let b = tokio::spawn({
        let svc = svc.clone();
        async move { svc.oneshot(get("http://api.test/b".into())).await }
    });
    // B's first attempt has failed (it now waits at least 150 ms to retry).
    for _ in 0..100 {
        if calls_b.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(calls_b.load(Ordering::SeqCst), 1);
    let a = svc
        .clone()
        .oneshot(get("http://api.test/a".into()))
        .await
        .unwrap_err();
    assert_eq!(a.class().to_string(), "transport.dns.name_not_found");
    let b = b.await.unwrap().unwrap_err();
    assert_eq!(b.stop(), Stop::RouteOpen);
    assert_eq!(b.class().to_string(), "transport.dns.name_not_found");
    assert_eq!(b.attempts(), 1, "its own attempt, kept");
    assert_eq!(calls_b.load(Ordering::SeqCst), 1, "the retry was not sent");
    assert_eq!(b.packet().route_open().unwrap().refused(), 1);
}
