//! The diagnosis window with real sockets: after a route's first failure of
//! the connection path, the next failures on it are captured in detail
//! (stage ends, DNS answers, the server's certificate, the error chain) in
//! the packet and a DEBUG event, until the window's failures or time run
//! out; then capture stops by itself.
#![cfg(feature = "rustls")]

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Detail, Stage, Stop};
use tower_triage::{Breaker, DiagnosisWindow, TriageLayer};
use triage_testkit::{CertProblem, EventLog, Resolver, TlsUpstream};

type Https = Client<tower_triage::connect::HttpsTagged<Resolver>, Full<Bytes>>;

/// A client that trusts a CA the upstream's certificate does not chain to.
async fn untrusting_client() -> (TlsUpstream, Https) {
    let upstream = TlsUpstream::start(CertProblem::UnknownIssuer)
        .await
        .unwrap();
    // Trust some other CA: the upstream's issuer is unknown.
    let other = TlsUpstream::start(CertProblem::None).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.ca_der().to_vec().into()).unwrap();
    let connector = tower_triage::connect::https_connector_with(Resolver::new(), roots).unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    (upstream, client)
}

/// Sends `request` through `svc`; the error it must end with.
async fn failing<S>(svc: &mut S, request: Request<Full<Bytes>>) -> tower_triage::core::Error
where
    S: Service<Request<Full<Bytes>>, Error = tower_triage::core::Error>,
    S::Response: std::fmt::Debug,
{
    svc.ready().await.unwrap().call(request).await.unwrap_err()
}

/// Each stage mark of `detail`: the stage, and whether it worked.
fn stages(detail: &Detail) -> Vec<(Stage, bool)> {
    detail
        .stages()
        .iter()
        .map(|m| (m.stage(), m.ok()))
        .collect()
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn the_failures_after_the_first_are_captured_in_detail_then_capture_stops() {
    let events = EventLog::new();
    let _guard = tracing::subscriber::set_default(events.clone());
    let (upstream, client) = untrusting_client().await;
    // The breaker off: every request meets the certificate.
    let mut svc = TriageLayer::new()
        .breaker(Breaker::disabled())
        .diagnosis_window(DiagnosisWindow::new().failures(2))
        .layer(client);
    let url = format!(
        "https://svc.test:{}/v1/items?api_key=SECRET-KEY",
        upstream.addr().port()
    );

    // The first failure opens the window; it has no detail of its own.
    let first = failing(&mut svc, get(&url)).await;
    assert_eq!(first.stage(), Some(Stage::Tls));
    assert!(first.packet().details().is_empty());
    let opened = events.matching("diagnosis window open");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].contains("failures=2"), "{}", opened[0]);
    assert!(
        opened[0].contains("invalid peer certificate"),
        "{}",
        opened[0]
    );

    // The next two are watched from their first byte.
    for n in 1..=2u32 {
        let error = failing(&mut svc, get(&url)).await;
        assert_eq!(error.stage(), Some(Stage::Tls));
        let details = error.packet().details();
        assert_eq!(details.len(), 1, "request {n}: {:?}", error.packet());
        let detail = &details[0];
        assert_eq!(detail.attempt(), 1);
        assert_eq!(detail.window(), (n, 2));
        // DNS answered, the connect worked, the handshake failed — in that
        // order, each after the one before.
        let stages = stages(detail);
        assert_eq!(
            stages,
            [
                (Stage::Dns, true),
                (Stage::Connect, true),
                (Stage::Tls, false)
            ],
            "{detail}"
        );
        let at: Vec<Duration> = detail.stages().iter().map(|m| m.at()).collect();
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
        assert_eq!(detail.answers(), ["127.0.0.1"]);
        // The certificate the server showed: its name and its (unknown)
        // issuer, with its validity.
        let peer = detail.peer().expect("the peer certificate");
        assert_eq!(peer.subject(), "CN=svc.test");
        assert_eq!(peer.issuer(), "CN=another test CA");
        assert!(peer.not_after().is_some() && peer.not_before() < peer.not_after());
        assert!(
            detail
                .error_chain()
                .iter()
                .any(|l| l.contains("UnknownIssuer") || l.contains("unknown issuer")),
            "{:?}",
            detail.error_chain()
        );
        // The packet tells it to a person, secret-free.
        let text = error.packet().to_string();
        assert!(
            text.contains("  connection detail:\n    - attempt #"),
            "{text}"
        );
        assert!(text.contains("CN=another test CA"), "{text}");
        assert!(!text.contains("SECRET-KEY"), "{text}");
    }
    let told = events.matching("diagnosis detail");
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told.iter().all(|l| l.contains("CN=svc.test")), "{told:?}");
    assert!(told.iter().all(|l| !l.contains("SECRET-KEY")), "{told:?}");
    let closed = events.matching("diagnosis window closed");
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(closed[0].contains("closed_by=failures"), "{}", closed[0]);

    // Spent: the outage goes on, and nothing more is captured.
    let later = failing(&mut svc, get(&url)).await;
    assert_eq!(later.stage(), Some(Stage::Tls));
    assert!(later.packet().details().is_empty());
    assert_eq!(events.matching("diagnosis detail").len(), 2);
}

#[tokio::test]
async fn a_retry_is_watched_and_a_window_closes_after_its_time() {
    let events = EventLog::new();
    let _guard = tracing::subscriber::set_default(events.clone());
    let port = triage_testkit::closed_port().unwrap().port();
    let client = Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(tower_triage::connect::tagged_connector(Resolver::new()));
    let url = format!("http://svc.test:{port}/");
    let layer = |window: DiagnosisWindow| {
        TriageLayer::new()
            .breaker(Breaker::disabled())
            .rules(
                tower_triage::core::RetryRules::default()
                    .max_retries(2)
                    .backoff(
                        tower_triage::core::Backoff::new(
                            Duration::from_millis(1),
                            Duration::from_millis(2),
                        )
                        .unwrap(),
                    ),
            )
            .diagnosis_window(window)
            .layer(client.clone())
    };

    // A refused connection is retried: the first attempt opens the window,
    // the retries are captured in the same packet.
    let mut svc = layer(DiagnosisWindow::new());
    let error = failing(&mut svc, get(&url)).await;
    assert_eq!(error.stage(), Some(Stage::Connect));
    assert_eq!(error.attempts(), 3);
    let details = error.packet().details();
    let attempts: Vec<u32> = details.iter().map(|d| d.attempt()).collect();
    assert_eq!(attempts, [2, 3], "{:?}", error.packet());
    for detail in details {
        let stages = stages(detail);
        assert_eq!(
            stages,
            [(Stage::Dns, true), (Stage::Connect, false)],
            "{detail}"
        );
        assert!(detail.peer().is_none());
        assert!(
            detail
                .error_chain()
                .iter()
                .any(|l| l.contains("tcp connect error")),
            "{:?}",
            detail.error_chain()
        );
    }

    // A window of no time closes before it captures anything.
    let mut svc = layer(DiagnosisWindow::new().duration(Duration::ZERO));
    let error = failing(&mut svc, get(&url)).await;
    assert_eq!(error.attempts(), 3);
    assert!(error.packet().details().is_empty(), "{:?}", error.packet());
    let closed = events.matching("closed_by=time");
    assert_eq!(closed.len(), 1, "{closed:?}");

    // Off: nothing is captured, no window event.
    let before = events.matching("diagnosis window open").len();
    let mut svc = layer(DiagnosisWindow::disabled());
    let error = failing(&mut svc, get(&url)).await;
    assert!(error.packet().details().is_empty());
    assert_eq!(events.matching("diagnosis window open").len(), before);
}

#[tokio::test]
async fn an_open_routes_probes_are_captured_and_its_refusals_carry_them() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let (upstream, client) = untrusting_client().await;
    let mut svc = TriageLayer::new()
        .breaker(Breaker::new().probe_backoff(Duration::from_millis(20), Duration::from_millis(40)))
        .layer(client);
    let url = format!("https://svc.test:{}/", upstream.addr().port());

    // The route opens (and the window with it) at the first failure.
    let first = failing(&mut svc, get(&url)).await;
    assert_eq!(first.stage(), Some(Stage::Tls));
    let refused = failing(&mut svc, get(&url)).await;
    assert_eq!(refused.stop(), Stop::RouteOpen);
    assert!(refused.packet().details().is_empty());

    // After the probe's wait, a request sends the probe; it fails, is
    // captured, and the refusals from then on carry its detail.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let after_probe = failing(&mut svc, get(&url)).await;
    assert_eq!(after_probe.stop(), Stop::RouteOpen);
    let details = after_probe.packet().details();
    assert_eq!(details.len(), 1, "{:?}", after_probe.packet());
    assert_eq!(details[0].attempt(), 0, "a probe");
    assert_eq!(details[0].window(), (1, 10));
    assert_eq!(
        details[0].peer().map(|p| p.subject().to_owned()),
        Some("CN=svc.test".to_owned())
    );
    assert!(
        after_probe
            .packet()
            .to_string()
            .contains("probe (window 1/10)")
    );
}

#[tokio::test]
async fn a_proxys_answer_is_captured_word_for_word() {
    let _guard = tracing::subscriber::set_default(EventLog::new());
    let proxy = triage_testkit::Proxy::start(triage_testkit::ProxyBehavior::Refuse(403))
        .await
        .unwrap();
    let connector = tower_triage::connect::proxied_connector(
        Resolver::new(),
        proxy.url().parse().unwrap(),
        Some(http::HeaderValue::from_static("Basic U0VDUkVULVBBU1M=")),
    );
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .breaker(Breaker::disabled())
        .layer(client);
    let url = "http://api.test:8080/v1";

    let first = failing(&mut svc, get(url)).await;
    assert_eq!(first.stage(), Some(Stage::Proxy));
    assert!(first.packet().details().is_empty());
    let second = failing(&mut svc, get(url)).await;
    let details = second.packet().details();
    assert_eq!(details.len(), 1, "{:?}", second.packet());
    assert_eq!(details[0].proxy_status(), Some("HTTP/1.1 403 Refused"));
    let stages = stages(&details[0]);
    // The proxy's name resolved, its port answered, the tunnel was refused.
    assert_eq!(
        stages,
        [
            (Stage::Dns, true),
            (Stage::Proxy, true),
            (Stage::Proxy, false)
        ],
        "{}",
        details[0]
    );
    let text = second.packet().to_string();
    assert!(
        text.contains("proxy said \"HTTP/1.1 403 Refused\""),
        "{text}"
    );
    assert!(!text.contains("U0VDUkVULVBBU1M="), "{text}");
    assert_eq!(proxy.connects(), 2);
}

#[tokio::test]
async fn a_request_can_keep_out_of_the_window() {
    let events = EventLog::new();
    let _guard = tracing::subscriber::set_default(events.clone());
    let port = triage_testkit::closed_port().unwrap().port();
    let client = Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(tower_triage::connect::tagged_connector(Resolver::new()));
    let mut svc = TriageLayer::new()
        .breaker(Breaker::disabled())
        .rules(tower_triage::core::RetryRules::none())
        .layer(client);
    let url = format!("http://svc.test:{port}/");
    let outside = || {
        let mut request = get(&url);
        request
            .extensions_mut()
            .insert(tower_triage::RequestOptions::new().diagnosis_window(false));
        request
    };

    // Kept out: its failure opens no window.
    let error = failing(&mut svc, outside()).await;
    assert_eq!(error.stage(), Some(Stage::Connect));
    assert!(events.matching("diagnosis window open").is_empty());
    // The next one opens it; one kept out is not captured while it is open;
    // the one after is.
    failing(&mut svc, get(&url)).await;
    assert_eq!(events.matching("diagnosis window open").len(), 1);
    let error = failing(&mut svc, outside()).await;
    assert!(error.packet().details().is_empty());
    let error = failing(&mut svc, get(&url)).await;
    assert_eq!(error.packet().details().len(), 1);
    assert_eq!(error.packet().details()[0].window(), (1, 10));
}
