//! The route breaker with real sockets: a route whose TLS certificate is
//! not trusted opens after the first failure; the requests that follow fail
//! at once with the cached diagnosis and make no connection; once the
//! upstream is fixed, the probe closes the route and requests flow again.
//! A transient fault does not open a route.
#![cfg(feature = "rustls")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{CertificateProblem, Fault, Owner, RetryRules, Stage, Stop};
use tower_triage::{Breaker, ReportExt, RequestOptions, TriageLayer};
use triage_testkit::{CertProblem, Resolver, TlsUpstream, Upstream};

/// A TCP forwarder on 127.0.0.1 whose target can be switched: the route
/// (its port) stays, the server behind it changes. Counts connections.
struct Switch {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    connections: Arc<Mutex<u64>>,
}

impl Switch {
    async fn start(target: SocketAddr) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let connections = Arc::new(Mutex::new(0));
        let (to, count) = (Arc::clone(&target), Arc::clone(&connections));
        tokio::spawn(async move {
            for _ in 0..64 {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                *count.lock().unwrap() += 1;
                let target = *to.lock().unwrap();
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Switch {
            addr,
            target,
            connections,
        }
    }

    fn point_at(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    fn connections(&self) -> u64 {
        *self.connections.lock().unwrap()
    }
}

#[tokio::test]
async fn an_untrusted_certificate_opens_the_route_and_the_probe_closes_it() {
    let bad = TlsUpstream::start(CertProblem::UnknownIssuer)
        .await
        .unwrap();
    let good = TlsUpstream::start(CertProblem::None).await.unwrap();
    let switch = Switch::start(bad.addr()).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(good.ca_der().to_vec().into()).unwrap();
    let connector = tower_triage::connect::https_connector_with(Resolver::new(), roots).unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .breaker(
            Breaker::new()
                .probe(http::Method::GET, "/status/204")
                .probe_backoff(Duration::from_millis(100), Duration::from_millis(400)),
        )
        .layer(client);
    let url = format!("https://svc.test:{}/ok", switch.addr.port());
    let get = || {
        Request::get(url.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // The first request meets the certificate: the TLS stage, not retried,
    // and the route opens.
    let first = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    assert_eq!(first.stage(), Some(Stage::Tls));
    assert_eq!(first.attempts(), 1);
    assert_eq!(switch.connections(), 1);

    // The next 1,000 fail at once, with the cached diagnosis, and connect
    // nowhere.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 1..=1000u64 {
        let t = Instant::now();
        let error = svc.ready().await.unwrap().call(get()).await.unwrap_err();
        slowest = slowest.max(t.elapsed());
        assert_eq!(error.stop(), Stop::RouteOpen);
        assert_eq!(error.owner(), Some(Owner::ConnectionPath));
        assert_eq!(error.stage(), Some(Stage::Tls));
        assert_eq!(
            error.class().transport().map(|t| t.fault()),
            Some(Fault::Certificate(CertificateProblem::UnknownIssuer))
        );
        assert_eq!(error.attempts(), 0);
        let route = error.packet().route_open().expect("the route note");
        assert_eq!(route.refused(), n);
        assert!(
            !error.packet().error_chain().is_empty(),
            "the cause is kept"
        );
    }
    let all = started.elapsed();
    assert_eq!(switch.connections(), 1, "a refused request connected");
    assert_eq!(bad.handshakes(), 1);
    // Well under a millisecond each (generous for a loaded 2-core machine).
    assert!(
        all < Duration::from_millis(500),
        "1,000 refusals took {all:?} (slowest {slowest:?})"
    );

    // A request that turns the breaker off for itself is still sent.
    let mut own = get();
    own.extensions_mut()
        .insert(RequestOptions::new().breaker(false));
    let error = svc.ready().await.unwrap().call(own).await.unwrap_err();
    assert_eq!(error.stop(), Stop::NotRetryable(Owner::ConnectionPath));
    assert_eq!(switch.connections(), 2);

    // The upstream is fixed; after the probe's wait, the next request sends
    // the probe, which gets through: the route closes and it goes ahead.
    switch.point_at(good.addr());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().attempts(), 1);
    assert_eq!(good.hits("/status/204"), 1, "the probe");
    assert_eq!(good.hits("/ok"), 1, "the request that waited for it");
    for _ in 0..3 {
        let response = svc.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(good.hits("/ok"), 4);
    assert_eq!(
        good.hits("/status/204"),
        1,
        "no probe once the route is closed"
    );
}

#[tokio::test]
async fn a_failed_probe_keeps_the_route_open() {
    let bad = TlsUpstream::start(CertProblem::UnknownIssuer)
        .await
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(bad.ca_der().to_vec().into()).unwrap();
    let connector = tower_triage::connect::https_connector_with(Resolver::new(), roots).unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .breaker(Breaker::new().probe_backoff(Duration::from_millis(50), Duration::from_secs(10)))
        .layer(client);
    let get = || {
        Request::get(bad.url("/v1"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    svc.ready().await.unwrap().call(get()).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(60)).await;
    // This one sends the probe (a handshake), which fails: refused.
    let error = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    assert_eq!(error.stop(), Stop::RouteOpen);
    assert_eq!(bad.handshakes(), 2);
    // The next probe waits longer (100 ms, less up to a quarter).
    tokio::time::sleep(Duration::from_millis(60)).await;
    let error = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    assert_eq!(error.stop(), Stop::RouteOpen);
    assert_eq!(bad.handshakes(), 2, "probed again before its backoff");
}

#[tokio::test]
async fn a_transient_fault_does_not_open_the_route() {
    let upstream = Upstream::start().await.unwrap();
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new().rules(RetryRules::none()).layer(client);
    let call = |path: &str| {
        Request::get(upstream.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let reset = svc
        .ready()
        .await
        .unwrap()
        .call(call("/fault/rst-before-headers"))
        .await
        .unwrap_err();
    assert_eq!(reset.owner(), Some(Owner::ConnectionPath));
    let response = svc.ready().await.unwrap().call(call("/ok")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.hits("/ok"), 1);
}

#[tokio::test]
async fn a_run_of_connection_failures_opens_the_route() {
    let closed = triage_testkit::closed_port().unwrap();
    let resolver = Resolver::new();
    let connector = tower_triage::connect::tagged_connector(resolver.clone());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .rules(RetryRules::none())
        .breaker(Breaker::new().consecutive_failures(3))
        .layer(client);
    let url = format!("http://svc.test:{}/v1", closed.port());
    for _ in 0..3 {
        let error = svc
            .ready()
            .await
            .unwrap()
            .call(
                Request::get(url.as_str())
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert_eq!(error.stage(), Some(Stage::Connect));
    }
    assert_eq!(resolver.lookups(), 3);
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::get(url.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.stop(), Stop::RouteOpen);
    assert_eq!(
        resolver.lookups(),
        3,
        "a refused request looked its name up"
    );
}

/// Every route event, as the observer sees it (clones share the log).
#[derive(Clone, Default)]
struct RouteLog(Arc<Mutex<Vec<String>>>);

impl tower_triage::Observer for RouteLog {
    fn on_route(&self, event: &tower_triage::RouteEvent<'_>) {
        use tower_triage::RouteEvent;
        let line = match event {
            RouteEvent::Opened { diagnosis, .. } => format!("opened {}", diagnosis.class()),
            RouteEvent::ProbeFailed { diagnosis, .. } => {
                format!("probe failed {}", diagnosis.class())
            }
            RouteEvent::Recovered { refused, .. } => format!("recovered after {refused} refused"),
            RouteEvent::Detail { detail, .. } => format!(
                "detail attempt {} window {:?} peer {:?}",
                detail.attempt(),
                detail.window(),
                detail.peer().map(|p| p.subject().to_owned())
            ),
            _ => String::from("other"),
        };
        self.0.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn the_observer_sees_a_route_open_fail_its_probe_and_recover() {
    let _guard = tracing::subscriber::set_default(triage_testkit::EventLog::new());
    let bad = TlsUpstream::start(CertProblem::UnknownIssuer)
        .await
        .unwrap();
    let good = TlsUpstream::start(CertProblem::None).await.unwrap();
    let switch = Switch::start(bad.addr()).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(good.ca_der().to_vec().into()).unwrap();
    let connector = tower_triage::connect::https_connector_with(Resolver::new(), roots).unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let log = RouteLog::default();
    let mut svc = TriageLayer::new()
        .observer(log.clone())
        .breaker(Breaker::new().probe_backoff(Duration::from_millis(20), Duration::from_millis(40)))
        .layer(client);
    let url = format!("https://svc.test:{}/ok", switch.addr.port());
    let get = || {
        Request::get(url.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    svc.ready().await.unwrap().call(get()).await.unwrap_err();
    svc.ready().await.unwrap().call(get()).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Sends the probe, which meets the certificate again.
    svc.ready().await.unwrap().call(get()).await.unwrap_err();
    switch.point_at(good.addr());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(response.status(), 200);

    let class = "transport.tls.certificate.unknown_issuer";
    assert_eq!(
        *log.0.lock().unwrap(),
        [
            format!("opened {class}"),
            "detail attempt 0 window (1, 10) peer Some(\"CN=svc.test\")".to_owned(),
            format!("probe failed {class}"),
            "recovered after 2 refused".to_owned(),
        ]
    );
}
