//! Time to verdict on permanent failures: how long a caller waits, and how
//! many attempts are made, before it learns that a call cannot succeed.
//!
//! Five failures that no retry can fix, all on 127.0.0.1:
//!
//! - a DNS name that does not exist (`*.invalid`, through the tagged
//!   resolver wrapper, so the DNS stage is named),
//! - a TLS certificate from a CA the client does not trust (the testkit
//!   `TlsUpstream`, a client with no trusted root at all),
//! - a forward proxy answering `CONNECT` with 407 (the testkit `Proxy`, the
//!   tagged proxied connector),
//! - a 401 (`/status/401`),
//! - OpenAI's `insufficient_quota` 429 (`/openai/429/quota`, with the OpenAI
//!   profile set on the layer, since the test host `svc.test` is not
//!   detected as OpenAI).
//!
//! Each goes through three clients sharing one hyper-util `Client`:
//!
//! - `Triage` with the default rules (the measured one),
//! - the bare client, one attempt (the baseline every time is divided by),
//! - openai-python's behaviour as a `tower::retry::Policy`: every 5xx, 429
//!   and connection error retried twice, sleeping its real backoff (0.5 s
//!   doubling to 8 s, minus up to 25 % jitter) in between; 401 is not
//!   retried, as in openai-python.
//!
//! Attempts are read from the `Report` or the error, and counted at the far
//! end (resolver lookups, TLS handshakes, proxy `CONNECT`s, upstream hits).
//! Times are medians over 201 interleaved runs (3 with `--smoke`); the openai-python
//! baseline runs twice (once with `--smoke`, with its delays shrunk 100x).
//! The target: one attempt and at most 1.2x the single attempt's time.
//!
//! Run: `cargo bench -p triage-bench --bench verdict` (under a minute), or
//! with `-- --smoke` for a seconds-long check.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::rt::TokioExecutor;
use tower::retry::{Policy, Retry};
use tower::{Layer, ServiceExt};
use tower_triage::core::{Owner, Profile, Stage};
use tower_triage::{Breaker, ReportExt, TriageLayer};
use triage_testkit::{CertProblem, Proxy, ProxyBehavior, Resolver, TlsUpstream, Upstream};

/// Timed runs per client in full mode.
const RUNS: usize = 201;
/// Timed runs per client with `--smoke`.
const SMOKE_RUNS: usize = 3;
/// Runs of the openai-python baseline in full mode (it sleeps ~1.3 s each).
const FIXED_RUNS: usize = 2;
/// Untimed runs before timing.
const WARM_UP: usize = 2;
/// Target: Triage's time over the single attempt's.
const TARGET_RATIO: f64 = 1.2;

/// A uniform sample in `[0, 1)` (splitmix64 over a random seed).
fn random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(0u64));
    let mut z = seed.wrapping_add(
        STATE
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// openai-python's retries: 5xx, 429 and every connection error, at most
/// twice, sleeping `min(0.5 · 2^n, 8) · (1 − 0.25 · random)` seconds
/// (times `scale`) before retry `n`.
#[derive(Debug, Clone)]
struct OpenAiRetries {
    left: u32,
    scale: f64,
    attempts: Arc<AtomicU64>,
}

impl<B, E> Policy<Request<Full<Bytes>>, Response<B>, E> for OpenAiRetries {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let failed = match result {
            Ok(r) => r.status().is_server_error() || r.status() == 429,
            Err(_) => true,
        };
        if !failed || self.left == 0 {
            return None;
        }
        let retry = 2 - self.left;
        self.left -= 1;
        let base = (0.5 * f64::from(1u32 << retry)).min(8.0);
        let seconds = base * (1.0 - 0.25 * random()) * self.scale;
        Some(tokio::time::sleep(Duration::from_secs_f64(seconds)))
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        Some(clone)
    }
}

/// One permanent failure to reproduce.
struct Case {
    name: &'static str,
    uri: String,
    /// Attempts seen at the far end so far.
    far_end: Box<dyn Fn() -> u64>,
    /// What the far end counts.
    counted: &'static str,
    /// The status the failure comes back with, when it is an HTTP answer.
    status: Option<u16>,
    openai: bool,
    expect_owner: Owner,
    expect_stage: Option<Stage>,
}

/// How one call ended.
#[derive(Debug, Clone, Copy)]
struct Ended {
    elapsed: Duration,
    status: Option<u16>,
    /// Attempts the client itself says it made.
    attempts: u32,
    /// Attempts counted at the far end.
    far_end: u64,
    owner: Option<Owner>,
    stage: Option<Stage>,
}

/// Reads a response body to its end; the verdict includes the error body.
async fn drain<B: Body + Unpin>(body: B) {
    let _ = body.collect().await;
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    }
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// Checks that a call failed as the case says; a success is a broken
/// benchmark (or library), so it panics.
fn check(case: &Case, client: &str, ended: &Ended) {
    match (case.status, ended.status) {
        (Some(want), Some(got)) => assert_eq!(
            want, got,
            "{}: {client} got status {got}, expected {want}",
            case.name
        ),
        (None, Some(got)) => panic!(
            "{}: {client} got an HTTP {got} where the call must fail before any answer",
            case.name
        ),
        (Some(want), None) => panic!(
            "{}: {client} failed without an answer where {want} was expected",
            case.name
        ),
        (None, None) => {}
    }
}

struct Measured {
    triage: Vec<Ended>,
    single: Vec<Ended>,
    fixed: Vec<Ended>,
    // With the route breaker (the default): the time of each request after
    // the first, on the route the first one opened, and whether any was sent.
    open: Vec<Duration>,
    open_sent: u64,
}

async fn measure<C>(
    case: &Case,
    connector: C,
    runs: usize,
    fixed_runs: usize,
    scale: f64,
) -> Measured
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut layer = TriageLayer::new();
    if case.openai {
        layer = layer.profile(Profile::openai().clone());
    }
    // Every timed run is a first verdict: the route breaker would answer
    // the later ones from its cache (measured apart, below).
    let breaking = layer.clone().layer(client.clone());
    let triage = layer.breaker(Breaker::disabled()).layer(client.clone());

    let triage_call = || async {
        let before = (case.far_end)();
        let start = Instant::now();
        let result = triage.clone().oneshot(get(&case.uri)).await;
        let ended = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let report = response.report();
                drain(response.into_body()).await;
                let report = report.expect("every response of the layer carries a Report");
                Ended {
                    elapsed: start.elapsed(),
                    status: Some(status),
                    attempts: report.attempts(),
                    far_end: 0,
                    owner: report.diagnosis().owner(),
                    stage: report.diagnosis().stage(),
                }
            }
            Err(e) => Ended {
                elapsed: start.elapsed(),
                status: None,
                attempts: e.attempts(),
                far_end: 0,
                owner: e.owner(),
                stage: e.stage(),
            },
        };
        Ended {
            far_end: (case.far_end)() - before,
            ..ended
        }
    };
    let single_call = || async {
        let before = (case.far_end)();
        let start = Instant::now();
        let status = match client.clone().oneshot(get(&case.uri)).await {
            Ok(response) => {
                let status = response.status().as_u16();
                drain(response.into_body()).await;
                Some(status)
            }
            Err(_) => None,
        };
        Ended {
            elapsed: start.elapsed(),
            status,
            attempts: 1,
            far_end: (case.far_end)() - before,
            owner: None,
            stage: None,
        }
    };
    let fixed_call = || async {
        let attempts = Arc::new(AtomicU64::new(0));
        let policy = OpenAiRetries {
            left: 2,
            scale,
            attempts: Arc::clone(&attempts),
        };
        let svc = Retry::new(policy, client.clone());
        let before = (case.far_end)();
        let start = Instant::now();
        let status = match svc.oneshot(get(&case.uri)).await {
            Ok(response) => {
                let status = response.status().as_u16();
                drain(response.into_body()).await;
                Some(status)
            }
            Err(_) => None,
        };
        Ended {
            elapsed: start.elapsed(),
            status,
            attempts: u32::try_from(attempts.load(Ordering::SeqCst)).unwrap_or(u32::MAX),
            far_end: (case.far_end)() - before,
            owner: None,
            stage: None,
        }
    };

    for _ in 0..WARM_UP {
        check(case, "the bare client", &single_call().await);
        check(case, "triage", &triage_call().await);
    }
    let mut measured = Measured {
        triage: Vec::new(),
        single: Vec::new(),
        fixed: Vec::new(),
        open: Vec::new(),
        open_sent: 0,
    };
    // With the breaker: the first call, then the rest on its route.
    let _ = breaking.clone().oneshot(get(&case.uri)).await;
    let before = (case.far_end)();
    for _ in 0..runs {
        let start = Instant::now();
        let result = breaking.clone().oneshot(get(&case.uri)).await;
        measured.open.push(start.elapsed());
        if let Ok(response) = result {
            drain(response.into_body()).await;
        }
    }
    measured.open_sent = (case.far_end)() - before;
    // Interleaved, so that drift on the machine hits both alike.
    for _ in 0..runs {
        let single = single_call().await;
        check(case, "the bare client", &single);
        measured.single.push(single);
        let triaged = triage_call().await;
        check(case, "triage", &triaged);
        measured.triage.push(triaged);
    }
    for _ in 0..fixed_runs {
        let fixed = fixed_call().await;
        check(case, "the fixed-retries baseline", &fixed);
        measured.fixed.push(fixed);
    }
    measured
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// "1" when every run made the same number of attempts, else "min-max".
fn attempts(runs: &[Ended], far_end: bool) -> String {
    let counts: Vec<u64> = runs
        .iter()
        .map(|e| {
            if far_end {
                e.far_end
            } else {
                u64::from(e.attempts)
            }
        })
        .collect();
    let (lo, hi) = (
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    );
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

fn main() {
    let smoke = triage_bench::smoke();
    let runs = if smoke { SMOKE_RUNS } else { RUNS };
    let fixed_runs = if smoke { 1 } else { FIXED_RUNS };
    let scale = if smoke { 0.01 } else { 1.0 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "time to verdict on permanent failures: median of {runs} runs (triage, single attempt), {fixed_runs} run(s) of the openai-python baseline{}",
            if smoke {
                " (smoke: the baseline's backoff is shrunk 100x)"
            } else {
                ""
            }
        );
        println!();

        let resolver = Resolver::new();
        let upstream = Arc::new(Upstream::start().await.expect("start the upstream"));
        let tls = Arc::new(
            TlsUpstream::start(CertProblem::UnknownIssuer)
                .await
                .expect("start the TLS upstream"),
        );
        let proxy = Arc::new(
            Proxy::start(ProxyBehavior::AuthRequired)
                .await
                .expect("start the proxy"),
        );

        let dns = {
            let resolver = resolver.clone();
            Case {
                name: "DNS name not found",
                uri: "http://api.nowhere.invalid/v1/models".to_owned(),
                far_end: Box::new(move || resolver.lookups()),
                counted: "lookups",
                status: None,
                openai: false,
                expect_owner: Owner::ConnectionPath,
                expect_stage: Some(Stage::Dns),
            }
        };
        let unknown_ca = {
            let tls = Arc::clone(&tls);
            Case {
                name: "TLS unknown CA",
                uri: tls.url("/ok"),
                far_end: Box::new(move || tls.handshakes()),
                counted: "handshakes",
                status: None,
                openai: false,
                expect_owner: Owner::ConnectionPath,
                expect_stage: Some(Stage::Tls),
            }
        };
        let proxy_auth = {
            let proxy = Arc::clone(&proxy);
            Case {
                name: "proxy 407",
                uri: upstream.url("/ok"),
                far_end: Box::new(move || proxy.connects()),
                counted: "CONNECTs",
                status: None,
                openai: false,
                expect_owner: Owner::ConnectionPath,
                expect_stage: Some(Stage::Proxy),
            }
        };
        let unauthorized = {
            let upstream = Arc::clone(&upstream);
            Case {
                name: "HTTP 401",
                uri: upstream.url("/status/401"),
                far_end: Box::new(move || upstream.hits("/status/401")),
                counted: "requests",
                status: Some(401),
                openai: false,
                expect_owner: Owner::Auth,
                expect_stage: None,
            }
        };
        let quota = {
            let upstream = Arc::clone(&upstream);
            Case {
                name: "OpenAI insufficient_quota 429",
                uri: upstream.url("/openai/429/quota"),
                far_end: Box::new(move || upstream.hits("/openai/429/quota")),
                counted: "requests",
                status: Some(429),
                openai: true,
                expect_owner: Owner::Quota,
                expect_stage: None,
            }
        };

        let plain = tower_triage::connect::tagged_connector(resolver.clone());
        // No trusted root at all: the test CA is unknown to this client.
        let untrusting = tower_triage::connect::https_connector_with(
            resolver.clone(),
            Vec::new().into_iter().collect(),
        )
        .expect("an HTTPS connector");
        let proxy_uri: Uri = proxy.url().parse().expect("proxy URI");
        let proxied =
            tower_triage::connect::proxied_connector(resolver.clone(), proxy_uri, None);

        let results = vec![
            measure(&dns, plain.clone(), runs, fixed_runs, scale).await,
            measure(&unknown_ca, untrusting, runs, fixed_runs, scale).await,
            measure(&proxy_auth, proxied, runs, fixed_runs, scale).await,
            measure(&unauthorized, plain.clone(), runs, fixed_runs, scale).await,
            measure(&quota, plain, runs, fixed_runs, scale).await,
        ];
        let cases = [&dns, &unknown_ca, &proxy_auth, &unauthorized, &quota];

        println!(
            "| failure | triage verdict | triage attempts (reported / far end) | triage ms | single attempt ms | triage / single | triage - single µs | target (1 attempt, <= {TARGET_RATIO}x) | openai-python attempts (far end) | openai-python ms | openai-python / single | then, with the route breaker |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut notes = Vec::new();
        for (case, m) in cases.iter().zip(&results) {
            let triage_ms = median(m.triage.iter().map(|e| e.elapsed).collect());
            let single_ms = median(m.single.iter().map(|e| e.elapsed).collect());
            let fixed_ms = median(m.fixed.iter().map(|e| e.elapsed).collect());
            let ratio = triage_ms.as_secs_f64() / single_ms.as_secs_f64();
            let fixed_ratio = fixed_ms.as_secs_f64() / single_ms.as_secs_f64();
            let one_attempt = m.triage.iter().all(|e| e.attempts == 1 && e.far_end == 1);
            let verdict_ok = m
                .triage
                .iter()
                .all(|e| e.owner == Some(case.expect_owner) && e.stage == case.expect_stage);
            let first = m.triage[0];
            let verdict = format!(
                "{}{}",
                first.owner.map_or("none", Owner::as_str),
                first.stage.map(|s| format!(" / {}", s.as_str())).unwrap_or_default()
            );
            if !verdict_ok {
                notes.push(format!(
                    "{}: expected owner {:?} stage {:?}, triage said {verdict}",
                    case.name, case.expect_owner, case.expect_stage
                ));
            }
            if m.single.iter().any(|e| e.far_end != 1) {
                notes.push(format!(
                    "{}: the bare client's single attempt was counted {} times at the far end",
                    case.name,
                    attempts(&m.single, true)
                ));
            }
            let target = match (one_attempt, ratio <= TARGET_RATIO) {
                (true, true) => "target met".to_owned(),
                (false, _) => "TARGET MISSED (retried)".to_owned(),
                (true, false) => "TARGET MISSED (time)".to_owned(),
            };
            println!(
                "| {} | {verdict} | {} / {} {} | {} | {} | {ratio:.2}x | {:+.1} | {target} | {} {} | {} | {fixed_ratio:.0}x | {} |",
                case.name,
                attempts(&m.triage, false),
                attempts(&m.triage, true),
                case.counted,
                ms(triage_ms),
                ms(single_ms),
                (triage_ms.as_secs_f64() - single_ms.as_secs_f64()) * 1e6,
                attempts(&m.fixed, true),
                case.counted,
                ms(fixed_ms),
                if m.open_sent == 0 {
                    format!(
                        "{:.1} µs, route open, nothing sent",
                        median(m.open.clone()).as_secs_f64() * 1e6
                    )
                } else {
                    format!("{} {} (the route stays closed)", m.open_sent, case.counted)
                },
            );
        }
        println!();
        println!(
            "Times are from the call to the verdict: the error, or the failure response with its \
             body read to the end. The single attempt is the bare hyper-util client. The \
             openai-python baseline honours no Retry-After here (none of these answers sends one)."
        );
        for note in notes {
            println!("note: {note}");
        }
    });
}
