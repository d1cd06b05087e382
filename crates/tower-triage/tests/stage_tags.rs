//! Stage tags and the diagnosis window's capture where the attempt's future
//! is not simply polled in place: behind a buffer (the call made on a worker
//! task, the future polled by the caller), on a multi-thread runtime, and
//! when hyper-util's pool makes the connection on another request's task
//! (HTTP/2's shared connect) or finishes it on a background task (HTTP/1,
//! when a pooled connection wins the race). Real sockets on 127.0.0.1 only;
//! `*.test` is resolved by the testkit's resolver (or a slow one of ours).
#![cfg(all(feature = "rustls", feature = "http2"))]

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Backoff, BoxError, Detail, Error, RetryRules, Stage, Stop};
use tower_triage::{Breaker, DiagnosisWindow, RequestOptions, ResponseBody, TriageLayer};
use triage_testkit::{CertProblem, H2Upstream, Resolver, TlsUpstream};

type Response = http::Response<ResponseBody<hyper::body::Incoming>>;

const TLS_CLASS: &str = "transport.tls.certificate.unknown_issuer";
const CONNECT_TIMEOUT_CLASS: &str = "transport.connect.timeout.connect";
const HEADERS_TIMEOUT_CLASS: &str = "transport.await_headers.timeout.headers";

/// Every test is bounded.
const BOUND: Duration = Duration::from_secs(20);

fn fast_rules() -> RetryRules {
    RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).unwrap())
}

fn roots(ca_der: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.to_vec().into()).unwrap();
    roots
}

/// The tagged HTTPS (and HTTP) connector, trusting `ca_der`.
fn https(ca_der: &[u8]) -> tower_triage::connect::HttpsTagged<Resolver> {
    tower_triage::connect::https_connector_with(Resolver::new(), roots(ca_der)).unwrap()
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

fn with(options: RequestOptions, mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    request.extensions_mut().insert(options);
    request
}

/// Each stage mark of `detail`: the stage, and whether it worked.
fn stages(detail: &Detail) -> Vec<(Stage, bool)> {
    detail
        .stages()
        .iter()
        .map(|m| (m.stage(), m.ok()))
        .collect()
}

/// One line saying what a request ended with, for assertion messages.
fn verdict(result: &Result<Response, Error>) -> String {
    match result {
        Ok(response) => format!("ok {}", response.status()),
        Err(e) => format!(
            "class={} stop={:?} attempts={} per-attempt={:?} chain={:?}",
            e.class(),
            e.stop(),
            e.attempts(),
            e.packet()
                .attempts()
                .iter()
                .map(|a| a.class().to_owned())
                .collect::<Vec<_>>(),
            e.packet().error_chain()
        ),
    }
}

/// The timeout the layer raised itself, if it is the error's source.
fn own_timeout(error: &Error) -> Option<String> {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tower_triage::TimeoutError>())
        .map(ToString::to_string)
}

/// The client as many applications hold it: hyper-util's client behind a
/// buffer, boxed as a cloneable, `Sync` service.
type Boxed =
    BoxCloneSyncService<Request<Full<Bytes>>, http::Response<hyper::body::Incoming>, BoxError>;

fn buffered(ca_der: &[u8]) -> Boxed {
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https(ca_der));
    BoxCloneSyncService::new(tower::buffer::Buffer::new(client, 64))
}

async fn send<S>(svc: &mut S, request: Request<Full<Bytes>>) -> Result<Response, Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response, Error = Error>,
{
    tokio::time::timeout(BOUND, async { svc.ready().await?.call(request).await })
        .await
        .expect("bounded")
}

// ---------------------------------------------------------------------------
// 1. Behind a buffer.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn behind_a_buffer_the_tls_stage_and_the_windows_capture_survive() {
    tokio::time::timeout(BOUND, async {
        let upstream = TlsUpstream::start(CertProblem::UnknownIssuer)
            .await
            .unwrap();
        // The breaker off: the second request meets the certificate too
        // (instead of an open route's refusal) and is captured.
        let mut svc = TriageLayer::new()
            .rules(fast_rules())
            .breaker(Breaker::disabled())
            .diagnosis_window(DiagnosisWindow::new())
            .layer(buffered(upstream.ca_der()));
        let url = upstream.url("/v1/items");

        let first = send(&mut svc, get(&url)).await;
        let v = verdict(&first);
        let first = first.expect_err(&v);
        assert_eq!(first.class().to_string(), TLS_CLASS, "{v}");
        assert_eq!(first.stage(), Some(Stage::Tls));
        assert_eq!(first.attempts(), 1, "a certificate problem is not retried");
        assert!(
            first.packet().details().is_empty(),
            "the window opens with it"
        );

        let second = send(&mut svc, get(&url)).await;
        let v = verdict(&second);
        let second = second.expect_err(&v);
        assert_eq!(second.class().to_string(), TLS_CLASS, "{v}");
        let details = second.packet().details();
        assert_eq!(details.len(), 1, "{v}: {:?}", second.packet());
        let detail = &details[0];
        assert_eq!(
            stages(detail),
            [
                (Stage::Dns, true),
                (Stage::Connect, true),
                (Stage::Tls, false)
            ],
            "{detail}"
        );
        assert_eq!(detail.answers(), ["127.0.0.1"]);
        let peer = detail.peer().expect("the peer certificate was captured");
        assert_eq!(peer.subject(), "CN=svc.test");
        assert_eq!(peer.issuer(), "CN=another test CA");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn behind_a_buffer_a_hanging_connect_is_the_connect_stage_and_times_out_there() {
    tokio::time::timeout(BOUND, async {
        let backlog = triage_testkit::full_backlog().unwrap();
        let upstream = TlsUpstream::start(CertProblem::None).await.unwrap();
        let mut svc = TriageLayer::new()
            .rules(fast_rules())
            .connect_timeout(Some(Duration::from_millis(200)))
            .attempt_timeout(Some(Duration::from_secs(10)))
            .layer(buffered(upstream.ca_der()));
        let url = format!("http://svc.test:{}/v1/items", backlog.addr().port());
        let started = tokio::time::Instant::now();
        let result = send(
            &mut svc,
            with(RequestOptions::new().no_retries(), get(&url)),
        )
        .await;
        let v = verdict(&result);
        let error = result.expect_err(&v);
        assert_eq!(error.stage(), Some(Stage::Connect), "{v}");
        assert_eq!(error.class().to_string(), CONNECT_TIMEOUT_CLASS, "{v}");
        assert_eq!(
            own_timeout(&error).as_deref(),
            Some("connect timeout after 200 ms"),
            "{v}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{v}");

        // And through the buffer, an upstream that works still answers.
        let ok = send(&mut svc, get(&upstream.url("/ok"))).await;
        assert_eq!(
            ok.as_ref().map(|r| r.status().as_u16()).ok(),
            Some(200),
            "{}",
            verdict(&ok)
        );
    })
    .await
    .expect("bounded");
}

// ---------------------------------------------------------------------------
// 2. A multi-thread runtime.
// ---------------------------------------------------------------------------

/// Whether `error` is `class` itself, or an open route's refusal carrying
/// it.
fn is(error: &Error, class: &str) -> bool {
    error.class().to_string() == class
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime_every_concurrent_request_keeps_its_stage() {
    tokio::time::timeout(BOUND, async {
        let tls = TlsUpstream::start(CertProblem::UnknownIssuer)
            .await
            .unwrap();
        let backlog = triage_testkit::full_backlog().unwrap();
        let client =
            Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https(tls.ca_der()));
        // The defaults (breaker and window on), fast retries, a connect
        // timeout: one layer, cloned into every task.
        let svc = TriageLayer::new()
            .rules(fast_rules())
            .connect_timeout(Some(Duration::from_millis(200)))
            .attempt_timeout(Some(Duration::from_secs(10)))
            .layer(client);
        let tls_url = tls.url("/v1/items");
        let hang_url = format!("http://svc.test:{}/v1/items", backlog.addr().port());

        // Two waves of 16: the first all in flight before any failure, the
        // second after both routes opened (refusals carrying the class).
        let mut bad = Vec::new();
        let mut refused = 0;
        for wave in 0..2 {
            let mut tasks = JoinSet::new();
            for n in 0..16 {
                let svc = svc.clone();
                let (url, class) = if n % 2 == 0 {
                    (tls_url.clone(), TLS_CLASS)
                } else {
                    (hang_url.clone(), CONNECT_TIMEOUT_CLASS)
                };
                tasks.spawn(async move {
                    let result = svc.oneshot(get(&url)).await;
                    (n, class, result)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                let (n, class, result) = joined.unwrap();
                let v = verdict(&result);
                match &result {
                    Err(error) if is(error, class) => {
                        let stage = if class == TLS_CLASS {
                            Stage::Tls
                        } else {
                            Stage::Connect
                        };
                        if error.stage() != Some(stage) {
                            bad.push(format!("wave {wave} #{n}: wrong stage: {v}"));
                        }
                        if error.stop() == Stop::RouteOpen {
                            refused += 1;
                        } else if class == CONNECT_TIMEOUT_CLASS
                            && own_timeout(error).as_deref() != Some("connect timeout after 200 ms")
                        {
                            // An attempt of its own: the layer's typed timeout.
                            bad.push(format!("wave {wave} #{n}: not the layer's timeout: {v}"));
                        }
                        for detail in error.packet().details() {
                            check_detail(n, class, detail, &mut bad);
                        }
                    }
                    _ => bad.push(format!("wave {wave} #{n} (expected {class}): {v}")),
                }
                // Seen with --nocapture.
                eprintln!("wave {wave} #{n}: {v}");
            }
        }
        assert!(refused > 0, "no open route's refusal was seen");
        assert!(bad.is_empty(), "{bad:#?}");
    })
    .await
    .expect("bounded");
}

/// A captured detail must belong to its own attempt: a failed TLS stage
/// with the server's certificate, or a connect that never ended (no
/// handshake, no certificate).
fn check_detail(n: usize, class: &str, detail: &Detail, bad: &mut Vec<String>) {
    let marks = stages(detail);
    if class == TLS_CLASS {
        let peer = detail.peer().map(|p| p.subject().to_owned());
        if marks.last() != Some(&(Stage::Tls, false)) || peer.as_deref() != Some("CN=svc.test") {
            bad.push(format!(
                "#{n}: TLS detail {marks:?} peer {peer:?}: {detail}"
            ));
        }
    } else if detail.peer().is_some()
        || marks
            .iter()
            .any(|&(s, ok)| s == Stage::Tls || (s == Stage::Connect && ok))
    {
        bad.push(format!(
            "#{n}: connect detail shows more than a pending connect: {detail}"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime_every_watched_attempt_captures_its_own_detail() {
    tokio::time::timeout(BOUND, async {
        let tls = TlsUpstream::start(CertProblem::UnknownIssuer)
            .await
            .unwrap();
        let client =
            Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https(tls.ca_der()));
        // The breaker off, a window wide enough for every request: each
        // concurrent request is watched, on whichever worker thread.
        let svc = TriageLayer::new()
            .rules(fast_rules())
            .breaker(Breaker::disabled())
            .diagnosis_window(DiagnosisWindow::new().failures(100))
            .layer(client);
        let url = tls.url("/v1/items");
        let first = svc.clone().oneshot(get(&url)).await;
        let v = verdict(&first);
        assert!(first.as_ref().is_err_and(|e| is(e, TLS_CLASS)), "{v}");

        let mut tasks = JoinSet::new();
        for n in 0..16 {
            let (svc, url) = (svc.clone(), url.clone());
            tasks.spawn(async move { (n, svc.oneshot(get(&url)).await) });
        }
        let mut bad = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (n, result) = joined.unwrap();
            let v = verdict(&result);
            match &result {
                Err(error) if is(error, TLS_CLASS) => {
                    let details = error.packet().details();
                    if details.len() != 1 {
                        bad.push(format!("#{n}: {} details: {v}", details.len()));
                    }
                    for detail in details {
                        check_detail(n, TLS_CLASS, detail, &mut bad);
                        if stages(detail)
                            != [
                                (Stage::Dns, true),
                                (Stage::Connect, true),
                                (Stage::Tls, false),
                            ]
                        {
                            bad.push(format!("#{n}: stages {:?}", stages(detail)));
                        }
                    }
                }
                _ => bad.push(format!("#{n}: {v}")),
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    })
    .await
    .expect("bounded");
}

// ---------------------------------------------------------------------------
// 3. A connection the pool makes or finishes on another task.
// ---------------------------------------------------------------------------

/// hyper-util's client speaking only HTTP/2 (`http2_only`), with the tagged
/// HTTPS connector (ALPN h2): concurrent requests to one route share a
/// single in-flight connect (the pool's "connecting lock"); the others wait
/// for the pool to hand them its connection.
fn h2_only(ca_der: &[u8]) -> Client<tower_triage::connect::HttpsTagged<Resolver>, Full<Bytes>> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(true);
    builder.build::<_, Full<Bytes>>(https(ca_der))
}

/// Starts `n` requests at once (the current-thread runtime polls each
/// before any socket event), and collects their results in order.
async fn concurrently<S>(
    svc: &S,
    n: usize,
    request: impl Fn() -> Request<Full<Bytes>>,
) -> Vec<Result<Response, Error>>
where
    S: Service<Request<Full<Bytes>>, Response = Response, Error = Error> + Clone + Send + 'static,
    S::Future: Send,
{
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (svc, request) = (svc.clone(), request());
        tasks.spawn(async move { (i, svc.oneshot(request).await) });
    }
    let mut results: Vec<Option<Result<Response, Error>>> = (0..n).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.unwrap();
        results[i] = Some(result);
    }
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn requests_sharing_an_h2_connect_that_fails_its_certificate_all_name_it() {
    tokio::time::timeout(BOUND, async {
        let upstream = H2Upstream::start_tls(CertProblem::UnknownIssuer)
            .await
            .unwrap();
        let url = upstream.url("/ok");
        let mut report = Vec::new();
        // With the layer's retries (and its breaker, which the first
        // certificate failure opens), and with retries off (each verdict is
        // the request's one attempt).
        for (name, options) in [
            ("retries", RequestOptions::new()),
            ("no retries", RequestOptions::new().no_retries()),
        ] {
            let svc = TriageLayer::new()
                .rules(fast_rules())
                .layer(h2_only(upstream.ca_der()));
            let before = upstream.connections();
            let results = concurrently(&svc, 8, || with(options.clone(), get(&url))).await;
            if name == "no retries" {
                // The scenario: one connect (one handshake) for all eight.
                assert_eq!(upstream.connections() - before, 1, "the connect was shared");
            }
            for (i, result) in results.iter().enumerate() {
                let v = verdict(result);
                let named = result
                    .as_ref()
                    .is_err_and(|e| is(e, TLS_CLASS) && e.stage() == Some(Stage::Tls));
                if !named {
                    report.push(format!("{name} #{i}: {v}"));
                }
            }
        }
        assert!(
            report.is_empty(),
            "requests whose verdict does not name the certificate: {report:#?}"
        );
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn requests_sharing_an_h2_connect_that_hangs_all_time_out_at_connect() {
    tokio::time::timeout(BOUND, async {
        let backlog = triage_testkit::full_backlog().unwrap();
        let ca = TlsUpstream::start(CertProblem::None).await.unwrap();
        let url = format!("http://svc.test:{}/v1/items", backlog.addr().port());
        let mut report = Vec::new();
        // The layer's connect timeout, with and without retries; then no
        // connect timeout, only the attempt timeout (an attempt timeout
        // while connecting is a connect timeout too).
        for (name, options) in [
            ("retries", RequestOptions::new()),
            ("no retries", RequestOptions::new().no_retries()),
            (
                "attempt timeout only",
                RequestOptions::new()
                    .no_retries()
                    .connect_timeout(None)
                    .attempt_timeout(Some(Duration::from_millis(300))),
            ),
        ] {
            let svc = TriageLayer::new()
                .rules(fast_rules())
                .connect_timeout(Some(Duration::from_millis(200)))
                .attempt_timeout(Some(Duration::from_secs(5)))
                .layer(h2_only(ca.ca_der()));
            let started = tokio::time::Instant::now();
            let results = concurrently(&svc, 8, || with(options.clone(), get(&url))).await;
            for (i, result) in results.iter().enumerate() {
                let v = verdict(result);
                let named = result.as_ref().is_err_and(|e| {
                    let connect = is(e, CONNECT_TIMEOUT_CLASS) && e.stage() == Some(Stage::Connect);
                    // A waiter whose own attempt timer fired while it waited
                    // for the shared connect: nothing tells it from a request
                    // awaiting its answer on a live connection, so it gets the
                    // conservative verdict (may have been sent: never resent
                    // as unsent, never permanent).
                    let waited = name == "attempt timeout only"
                        && is(e, HEADERS_TIMEOUT_CLASS)
                        && e.stage() == Some(Stage::AwaitHeaders);
                    connect || waited
                });
                if !named {
                    report.push(format!("{name} #{i}: {v}"));
                }
            }
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        assert!(
            report.is_empty(),
            "requests whose verdict is not a connect timeout: {report:#?}"
        );
    })
    .await
    .expect("bounded");
}

/// A resolver that answers `*.test` with 127.0.0.1 after the next of
/// `delays` (none once they run out), and counts lookups.
#[derive(Clone, Default)]
struct SlowResolver {
    delays: Arc<Mutex<VecDeque<Duration>>>,
    lookups: Arc<AtomicU64>,
}

impl SlowResolver {
    fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl Service<Name> for SlowResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let delay = self.delays.lock().unwrap().pop_front().unwrap_or_default();
        let local = name.as_str().ends_with(".test");
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if !local {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a test name",
                ));
            }
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))].into_iter())
        })
    }
}

/// A raw HTTP/1.1 server that keeps connections alive: `/slow` answers
/// after 300 ms, `/hang` never, anything else at once. Counts connections.
async fn keep_alive_server() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 1024];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    match path.as_str() {
                        "/hang" => std::future::pending::<()>().await,
                        "/slow" => tokio::time::sleep(Duration::from_millis(300)).await,
                        _ => {}
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn a_connect_finished_in_the_background_leaks_no_stage_into_later_verdicts() {
    tokio::time::timeout(BOUND, async {
        let (addr, connections) = keep_alive_server().await;
        // The first lookup answers at once, the second after 800 ms.
        let resolver = SlowResolver::default();
        resolver
            .delays
            .lock()
            .unwrap()
            .extend([Duration::ZERO, Duration::from_millis(800)]);
        let connector = tower_triage::connect::tagged_connector(resolver.clone());
        let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
        let svc = TriageLayer::new()
            .rules(fast_rules())
            .connect_timeout(Some(Duration::from_secs(5)))
            .layer(client);
        let url = |path: &str| format!("http://svc.test:{}{path}", addr.port());

        // A holds the only connection for 300 ms.
        let a = tokio::spawn({
            let (svc, url) = (svc.clone(), url("/slow"));
            async move {
                let response = svc.oneshot(get(&url)).await.map_err(|e| e.to_string())?;
                let status = response.status();
                response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(status)
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        // B: no idle connection, so it starts its own connect (DNS takes
        // 800 ms) while its checkout waits; A's connection comes back first,
        // B goes out on it, and its connect is finished by a background task.
        let started = tokio::time::Instant::now();
        let b = svc.clone().oneshot(get(&url("/ok"))).await;
        let b_took = started.elapsed();
        assert_eq!(a.await.unwrap(), Ok(http::StatusCode::OK));
        let v = verdict(&b);
        let b = b.expect(&v);
        assert_eq!(b.status(), 200, "{v}");
        b.into_body().collect().await.unwrap();
        assert!(
            b_took < Duration::from_millis(700),
            "B waited for its own connect: {b_took:?}"
        );
        assert_eq!(resolver.lookups(), 2, "B started a connect of its own");
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "B went out on A's connection"
        );

        // The background connect ends and parks its connection in the pool.
        tokio::time::timeout(Duration::from_secs(3), async {
            while connections.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the background connect finished");
        tokio::time::sleep(Duration::from_millis(50)).await;

        // C waits for a head that never comes, on a pooled connection: its
        // attempt timeout is a headers timeout, not a connect stage left
        // over from B's connect.
        let hang = || {
            with(
                RequestOptions::new()
                    .no_retries()
                    .attempt_timeout(Some(Duration::from_millis(300))),
                get(&url("/hang")),
            )
        };
        let lookups = resolver.lookups();
        let c = svc.clone().oneshot(hang()).await;
        let v = verdict(&c);
        let c = c.expect_err(&v);
        assert_eq!(c.class().to_string(), HEADERS_TIMEOUT_CLASS, "{v}");
        assert_eq!(c.stage(), Some(Stage::AwaitHeaders), "{v}");
        assert!(c.packet().details().is_empty(), "{:?}", c.packet());

        // D, watched by the window C opened: its detail holds only what its
        // own attempt did (nothing, on a pooled connection; a fresh
        // connection's DNS and connect otherwise), nothing of B's.
        let d = svc.clone().oneshot(hang()).await;
        let v = verdict(&d);
        let d = d.expect_err(&v);
        assert_eq!(d.class().to_string(), HEADERS_TIMEOUT_CLASS, "{v}");
        let details = d.packet().details();
        assert_eq!(details.len(), 1, "{:?}", d.packet());
        let fresh = resolver.lookups() - lookups;
        let expected: &[(Stage, bool)] = if fresh == 0 {
            &[]
        } else {
            &[(Stage::Dns, true), (Stage::Connect, true)]
        };
        assert_eq!(
            stages(&details[0]),
            expected,
            "lookups during C and D: {fresh}; {}",
            details[0]
        );
        assert!(details[0].peer().is_none());

        // And the route still works.
        let e = svc.clone().oneshot(get(&url("/ok"))).await;
        let v = verdict(&e);
        assert_eq!(e.expect(&v).status(), 200);
    })
    .await
    .expect("bounded");
}
