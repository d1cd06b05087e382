//! The fault matrix: every failure the testkit reproduces, through `Triage`
//! around hyper-util's Client with stage tagging, on 127.0.0.1. Each case
//! asserts the owner, the class, the stage, the attempts the upstream
//! counted, and (for server-asked waits) the time spent.
#![cfg(feature = "rustls")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Backoff, Owner, Profile, RetryRules, Stage};
use tower_triage::{ReportExt, TriageLayer};
use triage_testkit::{CertProblem, Fnv, Proxy, ProxyBehavior, Resolver, TlsUpstream, Upstream};

struct Case {
    path: &'static str,
    method: Method,
    profile: &'static Profile,
    owner: Option<Owner>,
    class: &'static str,
    stage: Option<Stage>,
    hits: u64,
    min_wait: Duration,
}

fn case(path: &'static str, owner: Option<Owner>, class: &'static str, hits: u64) -> Case {
    Case {
        path,
        method: Method::GET,
        profile: Profile::generic(),
        owner,
        class,
        stage: None,
        hits,
        min_wait: Duration::ZERO,
    }
}

impl Case {
    fn post(mut self) -> Self {
        self.method = Method::POST;
        self
    }
    fn profile(mut self, profile: &'static Profile) -> Self {
        self.profile = profile;
        self
    }
    fn stage(mut self, stage: Stage) -> Self {
        self.stage = Some(stage);
        self
    }
    fn waits(mut self, at_least: Duration) -> Self {
        self.min_wait = at_least;
        self
    }
}

fn rules() -> RetryRules {
    RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap())
}

type Response = http::Response<tower_triage::ResponseBody<hyper::body::Incoming>>;

async fn send(
    profile: &'static Profile,
    method: Method,
    url: String,
    attempt_timeout: Option<Duration>,
) -> Result<Response, tower_triage::core::Error> {
    let mut connector = tower_triage::connect::tagged_connector(Resolver::new());
    connector
        .get_mut()
        .set_connect_timeout(Some(Duration::from_millis(300)));
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new()
        .profile(profile.clone())
        .rules(rules())
        .attempt_timeout(attempt_timeout)
        .layer(client);
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", "Bearer sk-test-SECRETSECRETSECRET")
        .header("api-key", "api-key-value-SECRET")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    svc.ready().await.unwrap().call(request).await
}

async fn check(upstream: &Upstream, case: Case) {
    let started = Instant::now();
    // Secrets in the header and the query: events must never show them.
    let url = upstream.url(case.path);
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}key=abcSECRET");
    let result = send(
        case.profile,
        case.method.clone(),
        url,
        Some(Duration::from_millis(500)),
    )
    .await;
    let waited = started.elapsed();
    let path = case.path.split('?').next().unwrap();
    let (owner, class, stage) = match &result {
        Ok(response) => {
            let report = response.report().unwrap();
            (
                report.diagnosis().owner(),
                report.diagnosis().class().to_string(),
                report.diagnosis().stage(),
            )
        }
        Err(error) => (error.owner(), error.class().to_string(), error.stage()),
    };
    assert_eq!(owner, case.owner, "{}: owner", case.path);
    assert_eq!(class, case.class, "{}: class", case.path);
    assert_eq!(stage, case.stage, "{}: stage", case.path);
    assert_eq!(
        upstream.hits(path),
        case.hits,
        "{}: attempts seen upstream",
        case.path
    );
    assert!(
        waited >= case.min_wait,
        "{}: waited {waited:?}, less than {:?}",
        case.path,
        case.min_wait
    );
    assert!(
        waited < case.min_wait + Duration::from_secs(3),
        "{}: waited {waited:?}",
        case.path
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_and_provider_form() {
    // A subscriber of its own, as every test here: see `every_connection_fault`.
    let _guard = tracing::subscriber::set_default(Capture::default());
    use Owner::*;
    let upstream = Upstream::start().await.unwrap();
    let cases = vec![
        case("/ok", None, "success", 1),
        case("/status/400", Some(Request), "bad_request", 1).post(),
        case("/status/401", Some(Auth), "unauthenticated", 1),
        case("/status/403", Some(Permission), "forbidden", 1),
        case("/status/404", Some(Request), "not_found", 1),
        case("/status/408", Some(Request), "request_timeout", 3).post(),
        case("/status/409", Some(Request), "conflict", 3).post(),
        case("/status/422", Some(Request), "unprocessable_entity", 1),
        case("/status/500", Some(Server), "server_error.500", 3),
        case("/status/501", Some(Server), "server_error.501", 1).post(),
        case("/status/502", Some(Server), "server_error.502", 3),
        case("/status/503", Some(Server), "server_error.503", 3),
        case("/status/504", Some(Server), "server_error.504", 3)
            .post()
            .profile(Profile::openai()),
        case("/status/529", Some(Server), "overloaded", 3),
        case(
            "/status/503?retry_after=1",
            Some(Server),
            "server_error.503",
            6,
        )
        .post()
        .waits(Duration::from_secs(2)),
        case(
            "/openai/429/quota",
            Some(Quota),
            "quota_exhausted.billing",
            1,
        )
        .post()
        .profile(Profile::openai()),
        case("/openai/429/rate", Some(RateLimit), "rate_limited", 3)
            .post()
            .profile(Profile::openai())
            .waits(Duration::from_millis(400)),
        case(
            "/openai/429/too-large",
            Some(Request),
            "request_too_large",
            1,
        )
        .post()
        .profile(Profile::openai()),
        case("/openai/503/overloaded", Some(Server), "overloaded", 3)
            .post()
            .profile(Profile::openai()),
        case("/anthropic/429/rate", Some(RateLimit), "rate_limited", 3)
            .post()
            .profile(Profile::anthropic())
            .waits(Duration::from_secs(2)),
        case(
            "/anthropic/429/spend-limit",
            Some(Quota),
            "quota_exhausted.spend_limit",
            1,
        )
        .post()
        .profile(Profile::anthropic()),
        case("/anthropic/529", Some(Server), "overloaded", 3)
            .post()
            .profile(Profile::anthropic()),
        case(
            "/gemini/429/per-day",
            Some(Quota),
            "quota_exhausted.period",
            1,
        )
        .post()
        .profile(Profile::gemini()),
        case("/gemini/429/per-minute", Some(RateLimit), "rate_limited", 3)
            .post()
            .profile(Profile::gemini())
            .waits(Duration::from_secs(2)),
        case("/azure/429/daily", Some(Quota), "quota_exhausted.period", 1)
            .post()
            .profile(Profile::azure_openai()),
        case("/aws/400/throttling", Some(RateLimit), "rate_limited", 3)
            .post()
            .profile(Profile::aws()),
        case("/github/403/rate", Some(RateLimit), "rate_limited", 3).profile(Profile::github()),
        case("/stripe/429/lock-timeout", Some(Request), "conflict", 3)
            .post()
            .profile(Profile::stripe()),
        case("/gateway/nginx/502", Some(Route), "gateway.unavailable", 3),
        case("/gateway/nginx/502", Some(Route), "gateway.unavailable", 4).post(), // +1: not replay-safe
        case(
            "/gateway/nginx/504",
            Some(Route),
            "gateway.upstream_timeout",
            3,
        ),
        case(
            "/gateway/envoy/503-connect",
            Some(Route),
            "gateway.upstream_unreachable",
            3,
        )
        .post(),
        case(
            "/gateway/envoy/504",
            Some(Route),
            "gateway.upstream_timeout",
            3,
        ),
        case("/gateway/envoy/429", Some(RateLimit), "rate_limited", 3).post(),
        case(
            "/gateway/cloudflare/522",
            Some(Route),
            "gateway.upstream_unreachable",
            3,
        )
        .post(),
        case(
            "/gateway/cloudflare/526",
            Some(Route),
            "gateway.origin_tls",
            1,
        ),
        case(
            "/gateway/cloudflare/530",
            Some(Route),
            "gateway.origin_dns",
            1,
        ),
    ];
    // Cases on the same path run one after the other so counts add up.
    for case in cases {
        check(&upstream, case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Every test of this file runs with a subscriber of its own: a callsite
// first reached by a thread with none could have its interest cached as
// "never" while this test's subscriber registers (tracing-core's
// registration race), and this test would miss events.
async fn every_connection_fault() {
    use Owner::ConnectionPath;
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let upstream = Upstream::start().await.unwrap();
    let cases = vec![
        case(
            "/fault/fin-before-headers",
            Some(ConnectionPath),
            "transport.await_headers.closed",
            3,
        )
        .stage(Stage::AwaitHeaders),
        case(
            "/fault/rst-before-headers",
            Some(ConnectionPath),
            "transport.await_headers.reset",
            3,
        )
        .stage(Stage::AwaitHeaders),
        // A POST that may have reached the server is not resent.
        case(
            "/fault/rst-before-headers?post",
            Some(ConnectionPath),
            "transport.await_headers.reset",
            4,
        )
        .post()
        .stage(Stage::AwaitHeaders),
        case(
            "/fault/slow-headers?ms=5000",
            Some(ConnectionPath),
            "transport.await_headers.timeout.headers",
            3,
        )
        .stage(Stage::AwaitHeaders)
        .waits(Duration::from_millis(1500)),
    ];
    for case in cases {
        check(&upstream, case).await;
    }

    // Garbage instead of HTTP: the connection path, before headers.
    let error = send(
        Profile::generic(),
        Method::GET,
        upstream.url("/fault/garbage"),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(error.owner(), Some(ConnectionPath));
    assert_eq!(error.stage(), Some(Stage::AwaitHeaders));

    // A name that does not exist: DNS, one attempt.
    let error = send(
        Profile::generic(),
        Method::GET,
        "http://api.nowhere.invalid/v1".into(),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(error.class().to_string(), "transport.dns.name_not_found");
    assert_eq!(error.attempts(), 1);

    // A closed port: connect refused, retried (nothing was sent).
    let port = triage_testkit::closed_port().unwrap().port();
    let error = send(
        Profile::generic(),
        Method::POST,
        format!("http://svc.test:{port}/v1"),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(error.class().to_string(), "transport.connect.refused");
    assert_eq!(error.attempts(), 3);

    // A full accept queue: the connect timeout, at the connect stage.
    let backlog = triage_testkit::full_backlog().unwrap();
    let error = send(
        Profile::generic(),
        Method::GET,
        format!("http://svc.test:{}/v1", backlog.addr().port()),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.class().to_string(),
        "transport.connect.timeout.connect"
    );
    assert_eq!(error.attempts(), 3);

    // Every attempt was an event with its evidence, and no secret was written.
    let lines = capture.0.lock().unwrap().join("\n");
    for secret in ["SECRET", "sk-test", "api-key-value", "key=abc"] {
        assert!(!lines.contains(secret), "{secret} leaked:\n{lines}");
    }
    assert!(
        lines.contains("stage=await_headers") && lines.contains("owner=connection_path"),
        "{lines}"
    );
    assert!(
        lines.contains("class=transport.dns.name_not_found"),
        "{lines}"
    );
    assert!(
        lines.contains("decision=retry") && lines.contains("http.request.resend_count=2"),
        "{lines}"
    );
}

/// A subscriber that keeps every event as text.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct Line(String);
impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_delivered_whole_or_reported() {
    // A subscriber of its own, as every test here: see `every_connection_fault`.
    let _guard = tracing::subscriber::set_default(Capture::default());
    let upstream = Upstream::start().await.unwrap();
    let response = send(
        Profile::generic(),
        Method::GET,
        upstream.url("/bytes/5000000"),
        None,
    )
    .await
    .unwrap();
    let mut hash = Fnv::new();
    let mut body = response.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            hash.write(&data);
            total += data.len() as u64;
        }
    }
    assert_eq!(total, 5_000_000);
    assert_eq!(hash.finish(), triage_testkit::pattern_checksum(5_000_000));
    assert_eq!(body.bytes(), 5_000_000);

    for path in [
        "/fault/rst-mid-body?after=4000",
        "/fault/truncated-body?after=4000",
    ] {
        let response = send(Profile::generic(), Method::GET, upstream.url(path), None)
            .await
            .unwrap();
        let mut body = response.into_body();
        let mut received = 0;
        let mut failed = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => received += frame.into_data().map(|d| d.len()).unwrap_or(0),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "{path}: the break reaches the caller");
        assert_eq!(received, 4000, "{path}");
        assert_eq!(
            upstream.hits(path.split('?').next().unwrap()),
            1,
            "{path}: a streamed body is not retried"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_proxy_faults_through_the_testkit() {
    // A subscriber of its own, as every test here: see `every_connection_fault`.
    let _guard = tracing::subscriber::set_default(Capture::default());
    for (problem, class) in [
        (
            CertProblem::UnknownIssuer,
            "transport.tls.certificate.unknown_issuer",
        ),
        (
            CertProblem::WrongName,
            "transport.tls.certificate.wrong_name",
        ),
        (CertProblem::Expired, "transport.tls.certificate.expired"),
    ] {
        let upstream = TlsUpstream::start(problem).await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(upstream.ca_der().to_vec().into()).unwrap();
        let connector =
            tower_triage::connect::https_connector_with(Resolver::new(), roots).unwrap();
        let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
        let mut svc = TriageLayer::new().rules(rules()).layer(client);
        let request = Request::get(upstream.url("/ok"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
        assert_eq!(error.class().to_string(), class);
        assert_eq!(upstream.handshakes(), 1, "{class}: never retried");
    }

    let upstream = TlsUpstream::start(CertProblem::None).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(upstream.ca_der().to_vec().into()).unwrap();
    let connector = tower_triage::connect::https_connector_with(Resolver::new(), roots).unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new().layer(client);
    let request = Request::get(upstream.url("/ok"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        r#"{"ok":true}"#
    );
    assert_eq!(upstream.hits("/ok"), 1);

    let origin = Upstream::start().await.unwrap();
    let proxy = Proxy::start(ProxyBehavior::AuthRequired).await.unwrap();
    let connector = tower_triage::connect::proxied_connector(
        Resolver::new(),
        proxy.url().parse().unwrap(),
        None,
    );
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new().layer(client);
    let request = Request::get(origin.url("/ok"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert_eq!(
        error.class().to_string(),
        "transport.proxy.proxy_auth_required"
    );
    assert_eq!(proxy.connects(), 1);
    assert_eq!(origin.total_hits(), 0, "the origin never saw the request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_a_proxy_names_tls_and_proxy_apart() {
    // A subscriber of its own, as every test here: see `every_connection_fault`.
    let _guard = tracing::subscriber::set_default(Capture::default());
    for (problem, expected) in [
        (CertProblem::None, None),
        (
            CertProblem::UnknownIssuer,
            Some("transport.tls.certificate.unknown_issuer"),
        ),
    ] {
        let upstream = TlsUpstream::start(problem).await.unwrap();
        let proxy = Proxy::start(ProxyBehavior::Tunnel).await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(upstream.ca_der().to_vec().into()).unwrap();
        let connector = tower_triage::connect::proxied_https_connector(
            Resolver::new(),
            proxy.url().parse().unwrap(),
            None,
            roots,
        )
        .unwrap();
        let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
        let mut svc = TriageLayer::new().rules(rules()).layer(client);
        let request = Request::get(upstream.url("/ok"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let result = svc.ready().await.unwrap().call(request).await;
        match expected {
            None => {
                let body = result
                    .unwrap()
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes();
                assert_eq!(body, r#"{"ok":true}"#);
                assert_eq!(upstream.hits("/ok"), 1);
            }
            Some(class) => {
                let error = result.unwrap_err();
                assert_eq!(
                    error.class().to_string(),
                    class,
                    "{:?}",
                    error.packet().error_chain()
                );
                assert_eq!(error.attempts(), 1);
            }
        }
        assert_eq!(proxy.connects(), 1, "one tunnel per call");
    }
}
