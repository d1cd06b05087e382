//! Soak: 100,000 requests (1,000 with `--smoke`) through one `Triage` layer
//! over one hyper-util `Client` (the tagged connector over the testkit
//! `Resolver`), 64 in flight, against one testkit `Upstream` in the same
//! process, with a deterministic mix of routes:
//!
//! | share | route | what the layer does |
//! |---|---|---|
//! | 89.5 % | `/ok` | one attempt, 200 |
//! | 2 % | `/status/503` | retried (backoff), then the 503 handed back |
//! | 1.5 % | `/status/429?retry_after_ms=5` | retried after the server's 5 ms |
//! | 1 % | `/status/400` | not retried |
//! | 3 % | `/flaky/1/503`, a path of its own per request | a 503, one retry, a 200 |
//! | 1 % | `/fault/rst-before-headers` | retried, then an error |
//! | 1 % | `/fault/truncated-body?after=100` | a 200 whose body breaks |
//! | 0.5 % | `/fault/slow-headers?ms=150`, 50 ms attempt timeout | timed out, retried, an error |
//! | 0.5 % | a closed port | refused, retried, an error |
//!
//! The retry budget is the default one, shared by every request: when it
//! refuses, a request makes fewer attempts; the counts below hold either way.
//!
//! Attempts are counted three ways and must agree exactly:
//!
//! - **events**: a global `tracing` subscriber counts the layer's attempt
//!   events (target `tower_triage`, the events with the field
//!   `http.request.resend_count`: one per judged attempt, see `events.rs`);
//! - **reports**: the sum of `Report::attempts()` (`ReportExt::report()`) of
//!   every response and `Error::attempts()` of every error;
//! - **upstream**: the requests the `Upstream` read (`total_hits()`), plus
//!   the connects to the closed port, which no server sees (counted by a
//!   wrapper around the connector), less the route breaker's probes of it
//!   (counted by an `Observer`: once the route opens, the breaker probes
//!   it every second or so, and a probe is no request's attempt). Per
//!   route too: each fixed path's `hits(path)`, the flaky paths together,
//!   the closed port's connects.
//!
//! Each request has a total deadline (`RetryRules::deadline`, 1 s); no call
//! may take longer than that plus 250 ms of slack. RSS (`VmRSS`) is read
//! after a warm-up (10 % of the requests), at 55 % and at the end.
//!
//! The exit status is non-zero only when something is functionally wrong:
//! the counts disagree, a request passed its deadline plus the slack, a
//! route answered other than it must, a body stalled, a worker panicked.
//! Never for speed or memory.
//!
//! Run: `cargo bench -p triage-bench --bench soak` (well under two minutes),
//! or with `-- --smoke` for a seconds-long check.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::connect::{TagConnect, TagResolver};
use tower_triage::core::{Backoff, RetryRules};
use tower_triage::{ReportExt, RequestOptions, Triage, TriageLayer};
use triage_bench::CountConnects;
use triage_testkit::{Resolver, Upstream};

/// Requests in full mode.
const REQUESTS: u64 = 100_000;
/// Requests with `--smoke`.
const SMOKE_REQUESTS: u64 = 1_000;
/// Requests in flight.
const IN_FLIGHT: u64 = 64;
/// The total deadline of every request.
const DEADLINE: Duration = Duration::from_secs(1);
/// How far past its deadline a call may end (scheduling on a busy machine).
const SLACK: Duration = Duration::from_millis(250);
/// The attempt timeout of the slow-headers requests (the upstream waits
/// `SLOW_HEADERS_MS` before its head).
const SLOW_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(50);
const SLOW_HEADERS_MS: u64 = 150;
/// Longest wait for a response body to end (its idle timeout is 1 s).
const BODY_LIMIT: Duration = Duration::from_secs(3);
/// RSS samples: after this share of the requests (warm-up), and this one.
const WARM_UP: f64 = 0.10;
const MIDDLE: f64 = 0.55;

// ------------------------------------------------------------------ routes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ok,
    Status503,
    Status429,
    Status400,
    Flaky,
    RstBeforeHeaders,
    TruncatedBody,
    SlowHeaders,
    ClosedPort,
}

const KINDS: [Kind; 9] = [
    Kind::Ok,
    Kind::Status503,
    Kind::Status429,
    Kind::Status400,
    Kind::Flaky,
    Kind::RstBeforeHeaders,
    Kind::TruncatedBody,
    Kind::SlowHeaders,
    Kind::ClosedPort,
];

impl Kind {
    /// The route of request `i`: a fixed mix per 200 requests, spread by a
    /// permutation of the slots (7919 is prime to 200).
    fn of(i: u64) -> Kind {
        match (i * 7919) % 200 {
            0..=3 => Kind::Status503,
            4..=6 => Kind::Status429,
            7..=8 => Kind::Status400,
            9..=14 => Kind::Flaky,
            15..=16 => Kind::RstBeforeHeaders,
            17..=18 => Kind::TruncatedBody,
            19 => Kind::SlowHeaders,
            20 => Kind::ClosedPort,
            _ => Kind::Ok,
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Ok => "/ok",
            Kind::Status503 => "/status/503",
            Kind::Status429 => "/status/429?retry_after_ms=5",
            Kind::Status400 => "/status/400",
            Kind::Flaky => "/flaky/1/503 (a path each)",
            Kind::RstBeforeHeaders => "/fault/rst-before-headers",
            Kind::TruncatedBody => "/fault/truncated-body?after=100",
            Kind::SlowHeaders => "/fault/slow-headers?ms=150",
            Kind::ClosedPort => "closed port",
        }
    }

    /// The path the upstream counts hits under (without the query); `None`
    /// for the flaky paths (one each) and the closed port.
    fn counted_path(self) -> Option<&'static str> {
        match self {
            Kind::Ok => Some("/ok"),
            Kind::Status503 => Some("/status/503"),
            Kind::Status429 => Some("/status/429"),
            Kind::Status400 => Some("/status/400"),
            Kind::RstBeforeHeaders => Some("/fault/rst-before-headers"),
            Kind::TruncatedBody => Some("/fault/truncated-body"),
            Kind::SlowHeaders => Some("/fault/slow-headers"),
            Kind::Flaky | Kind::ClosedPort => None,
        }
    }
}

/// The `n`-th flaky path: `/flaky/{n}/{code}` counts hits per path (the
/// query is not part of it), so each flaky request gets a path of its own.
/// The testkit parses `0001` as 1 and `00503` as 503, so leading zeros make
/// the paths distinct while every one of them means "one 503, then 200".
fn flaky_path(n: u64) -> String {
    let zeros = |count: u64| "0".repeat(count as usize);
    format!("/flaky/{}1/{}503", zeros(n % 64), zeros(n / 64))
}

// ------------------------------------------------------------------ events

/// Counts the layer's events by kind; everything else is disabled.
#[derive(Debug, Default)]
struct EventCounts {
    attempts: AtomicU64,
    retries: AtomicU64,
    request_failed: AtomicU64,
    cancelled: AtomicU64,
}

#[derive(Debug, Clone)]
struct CountEvents(Arc<EventCounts>);

impl tracing::Subscriber for CountEvents {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        // DEBUG too: a successful attempt is a DEBUG event.
        metadata.target() == tower_triage::TARGET && *metadata.level() <= tracing::Level::DEBUG
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let metadata = event.metadata();
        if metadata.target() != tower_triage::TARGET {
            return;
        }
        // The layer's events differ by their fields (see `events.rs`): an
        // attempt carries `http.request.resend_count` (WARN when retried),
        // a final failure `next_step`, a cancellation `waiting`.
        let fields = metadata.fields();
        let counter = if fields.field("http.request.resend_count").is_some() {
            if *metadata.level() == tracing::Level::WARN {
                self.0.retries.fetch_add(1, Ordering::Relaxed);
            }
            &self.0.attempts
        } else if fields.field("next_step").is_some() {
            &self.0.request_failed
        } else if fields.field("waiting").is_some() {
            &self.0.cancelled
        } else {
            return;
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// ------------------------------------------------------------------ client

/// The tagged connector, counting the connects to the closed port (no
/// server sees those attempts).
type Connector = CountConnects<TagConnect<HttpConnector<TagResolver<Resolver>>>>;
type Svc = Triage<Client<Connector, Full<Bytes>>>;

/// Counts the route breaker's verification probes that failed: once the
/// closed port's route opens, the breaker probes it (`HEAD /`, every 1 s and
/// backing off); each probe is a connect that no request's report counts.
#[derive(Debug, Clone, Default)]
struct Probes(Arc<AtomicU64>);

impl tower_triage::Observer for Probes {
    fn on_route(&self, event: &tower_triage::RouteEvent<'_>) {
        if let tower_triage::RouteEvent::ProbeFailed { .. } = event {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn service(closed_port: u16, connects: Arc<AtomicU64>, probes: Probes) -> Svc {
    let connector = CountConnects::new(
        tower_triage::connect::tagged_connector(Resolver::new()),
        Some(closed_port),
        connects,
    );
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    // The backoff is shortened (2 ms doubling to 10 ms, instead of 0.5 s to
    // 8 s) to exercise the retry machinery many times over in a short run,
    // not to measure its timing.
    let rules = RetryRules::default()
        .backoff(
            Backoff::new(Duration::from_millis(2), Duration::from_millis(10)).expect("backoff"),
        )
        .deadline(Some(DEADLINE));
    TriageLayer::new()
        .rules(rules)
        .body_idle_timeout(Some(Duration::from_secs(1)))
        .observer(probes)
        .layer(client)
}

// ------------------------------------------------------------------ stats

/// What one kind of request did.
#[derive(Debug, Default, Clone, Copy)]
struct KindStats {
    requests: u64,
    /// Attempts, from the reports and errors.
    attempts: u64,
    /// Responses by class of status.
    ok: u64,
    failure_status: u64,
    /// Errors.
    errors: u64,
    /// Bodies that broke (a typed error while reading).
    body_errors: u64,
    max_call: Duration,
}

#[derive(Debug, Default)]
struct Stats {
    kinds: [KindStats; KINDS.len()],
    /// Functional problems, described.
    problems: Vec<String>,
    missing_reports: u64,
    stalled_bodies: u64,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (mine, theirs) in self.kinds.iter_mut().zip(other.kinds) {
            mine.requests += theirs.requests;
            mine.attempts += theirs.attempts;
            mine.ok += theirs.ok;
            mine.failure_status += theirs.failure_status;
            mine.errors += theirs.errors;
            mine.body_errors += theirs.body_errors;
            mine.max_call = mine.max_call.max(theirs.max_call);
        }
        self.missing_reports += other.missing_reports;
        self.stalled_bodies += other.stalled_bodies;
        self.problems.extend(other.problems);
    }

    fn problem(&mut self, text: String) {
        // Enough to diagnose; the counts say how many.
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }
}

/// `VmRSS` in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Shared by the workers.
struct Shared {
    upstream_port: u16,
    closed_port: u16,
    total: u64,
    next: AtomicU64,
    done: AtomicU64,
    flaky: AtomicU64,
    /// RSS at the warm-up mark and at the middle, KiB.
    rss: Mutex<[Option<u64>; 2]>,
    marks: [u64; 2],
}

impl Shared {
    fn request(&self, i: u64) -> (Kind, Request<Full<Bytes>>) {
        let kind = Kind::of(i);
        let base = format!("http://svc.test:{}", self.upstream_port);
        let uri = match kind {
            Kind::Ok => format!("{base}/ok"),
            Kind::Status503 => format!("{base}/status/503"),
            Kind::Status429 => format!("{base}/status/429?retry_after_ms=5"),
            Kind::Status400 => format!("{base}/status/400"),
            Kind::Flaky => format!(
                "{base}{}",
                flaky_path(self.flaky.fetch_add(1, Ordering::Relaxed))
            ),
            Kind::RstBeforeHeaders => format!("{base}/fault/rst-before-headers"),
            Kind::TruncatedBody => format!("{base}/fault/truncated-body?after=100"),
            Kind::SlowHeaders => format!("{base}/fault/slow-headers?ms={SLOW_HEADERS_MS}"),
            Kind::ClosedPort => format!("http://svc.test:{}/v1", self.closed_port),
        };
        let mut request = Request::get(uri)
            .body(Full::new(Bytes::new()))
            .expect("request");
        if kind == Kind::SlowHeaders {
            request
                .extensions_mut()
                .insert(RequestOptions::new().attempt_timeout(Some(SLOW_ATTEMPT_TIMEOUT)));
        }
        (kind, request)
    }

    fn finished_one(&self) {
        let done = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        for (slot, mark) in self.marks.iter().enumerate() {
            if done == *mark {
                let rss = rss_kib();
                self.rss.lock().expect("rss lock")[slot] = Some(rss);
            }
        }
    }
}

/// Reads a body to its end; `Ok(true)` when it ended, `Ok(false)` when it
/// broke, `Err` when it stalled past `BODY_LIMIT`.
async fn drain<B>(mut body: B) -> Result<bool, ()>
where
    B: http_body::Body + Unpin,
{
    let read = async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(BODY_LIMIT, read).await.map_err(|_| ())
}

async fn worker(mut svc: Svc, shared: Arc<Shared>) -> Stats {
    let mut stats = Stats::default();
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.total {
            break;
        }
        let (kind, request) = shared.request(i);
        let started = Instant::now();
        let result = match svc.ready().await {
            Ok(ready) => ready.call(request).await,
            Err(e) => Err(e),
        };
        let took = started.elapsed();
        let k = &mut stats.kinds[kind.index()];
        k.requests += 1;
        k.max_call = k.max_call.max(took);
        // What each route must answer (the budget may cut retries short,
        // never change the final answer's kind).
        let (attempts, verdict) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let attempts = response.report().map(|r| r.attempts());
                let ended = drain(response.into_body()).await;
                let k = &mut stats.kinds[kind.index()];
                if status < 400 {
                    k.ok += 1;
                } else {
                    k.failure_status += 1;
                }
                match ended {
                    Ok(true) => {}
                    Ok(false) => k.body_errors += 1,
                    Err(()) => stats.stalled_bodies += 1,
                }
                let expected = match kind {
                    Kind::Ok | Kind::Flaky => status == 200 && ended == Ok(true),
                    Kind::Status503 => status == 503,
                    Kind::Status429 => status == 429,
                    Kind::Status400 => status == 400 && attempts == Some(1),
                    Kind::TruncatedBody => status == 200 && ended == Ok(false),
                    Kind::RstBeforeHeaders | Kind::SlowHeaders | Kind::ClosedPort => false,
                };
                let verdict = if expected {
                    Ok(())
                } else {
                    Err(format!("{status} (body ended: {ended:?})"))
                };
                (attempts, verdict)
            }
            Err(error) => {
                stats.kinds[kind.index()].errors += 1;
                let expected = matches!(
                    kind,
                    Kind::RstBeforeHeaders | Kind::SlowHeaders | Kind::ClosedPort
                );
                let verdict = if expected {
                    Ok(())
                } else {
                    Err(format!("error {}", error.class()))
                };
                (Some(error.attempts()), verdict)
            }
        };
        match attempts {
            Some(n) => stats.kinds[kind.index()].attempts += u64::from(n),
            None => stats.missing_reports += 1,
        }
        if let Err(answer) = verdict {
            stats.problem(format!(
                "request {i} to {}: unexpected {answer}",
                kind.name()
            ));
        }
        if kind == Kind::Ok && attempts != Some(1) {
            stats.problem(format!("request {i} to /ok took {attempts:?} attempts"));
        }
        if took > DEADLINE + SLACK {
            stats.problem(format!(
                "request {i} to {} took {took:?}, past its deadline {DEADLINE:?} + {SLACK:?}",
                kind.name()
            ));
        }
        shared.finished_one();
    }
    stats
}

// ------------------------------------------------------------------ main

fn main() {
    let smoke = triage_bench::smoke();
    let total = if smoke { SMOKE_REQUESTS } else { REQUESTS };
    let events = Arc::new(EventCounts::default());
    tracing::subscriber::set_global_default(CountEvents(Arc::clone(&events)))
        .expect("the only global subscriber");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let failed = runtime.block_on(run(total, smoke, &events));
    if failed {
        std::process::exit(1);
    }
}

/// Runs the soak and prints the tables; whether something was functionally
/// wrong.
async fn run(total: u64, smoke: bool, events: &EventCounts) -> bool {
    let upstream = Upstream::start().await.expect("upstream");
    let closed: SocketAddr = triage_testkit::closed_port().expect("closed port");
    let closed_connects = Arc::new(AtomicU64::new(0));
    let probes = Probes::default();
    let svc = service(closed.port(), Arc::clone(&closed_connects), probes.clone());
    let mark = |share: f64| ((total as f64 * share) as u64).max(1);
    let shared = Arc::new(Shared {
        upstream_port: upstream.addr().port(),
        closed_port: closed.port(),
        total,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        flaky: AtomicU64::new(0),
        rss: Mutex::new([None, None]),
        marks: [mark(WARM_UP), mark(MIDDLE)],
    });

    println!(
        "soak: {total} GETs, {IN_FLIGHT} in flight, one Triage layer over one hyper-util Client{}",
        if smoke { " (smoke)" } else { "" }
    );
    println!();
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| tokio::spawn(worker(svc.clone(), Arc::clone(&shared))))
        .collect();
    let mut stats = Stats::default();
    for handle in workers {
        match handle.await {
            Ok(part) => stats.merge(part),
            Err(e) => stats.problem(format!("a worker failed: {e}")),
        }
    }
    let wall = started.elapsed();
    let rss_end = rss_kib();
    let [rss_start, rss_middle] = *shared.rss.lock().expect("rss lock");
    let rss_start = rss_start.unwrap_or(rss_end);
    let rss_middle = rss_middle.unwrap_or(rss_end);

    let requests: u64 = stats.kinds.iter().map(|k| k.requests).sum();
    let by_reports: u64 = stats.kinds.iter().map(|k| k.attempts).sum();
    let by_events = events.attempts.load(Ordering::Relaxed);
    // The breaker's probes of the closed port's route are connects but
    // no request's attempts.
    let probed = probes.0.load(Ordering::Relaxed);
    let closed_attempts = closed_connects.load(Ordering::Relaxed) - probed;
    let hits = upstream.total_hits();
    let by_upstream = hits + closed_attempts;
    let max_call = stats
        .kinds
        .iter()
        .map(|k| k.max_call)
        .max()
        .unwrap_or_default();

    println!(
        "| requests | wall s | req/s | attempts: events | attempts: reports | attempts: upstream + closed-port connects | max request ms | deadline ms (+ slack) | RSS start MiB | RSS middle MiB | RSS end MiB | RSS growth MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {requests} | {:.1} | {:.0} | {by_events} | {by_reports} | {by_upstream} ({hits} + {closed_attempts}) | {:.1} | {} (+ {}) | {:.1} | {:.1} | {:.1} | {:+.1} |",
        wall.as_secs_f64(),
        requests as f64 / wall.as_secs_f64(),
        max_call.as_secs_f64() * 1e3,
        DEADLINE.as_millis(),
        SLACK.as_millis(),
        mib(rss_start),
        mib(rss_middle),
        mib(rss_end),
        mib(rss_end) - mib(rss_start),
    );
    println!();
    println!(
        "RSS taken after {} requests (warm-up), {} and {requests}. The closed port's connects exclude the route breaker's {probed} verification probe(s).",
        shared.marks[0], shared.marks[1]
    );
    println!();

    // Per route: the reports' attempts against the upstream's own count.
    println!(
        "| route | requests | attempts (reports) | attempts (upstream) | 2xx | failure status | errors | broken bodies | max request ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let fixed_hits: u64 = KINDS
        .iter()
        .filter_map(|k| k.counted_path())
        .map(|p| upstream.hits(p))
        .sum();
    let mut problems = std::mem::take(&mut stats.problems);
    for kind in KINDS {
        let k = stats.kinds[kind.index()];
        let seen = match kind {
            Kind::ClosedPort => closed_attempts,
            Kind::Flaky => hits - fixed_hits,
            _ => kind.counted_path().map_or(0, |p| upstream.hits(p)),
        };
        println!(
            "| `{}` | {} | {} | {seen} | {} | {} | {} | {} | {:.1} |",
            kind.name(),
            k.requests,
            k.attempts,
            k.ok,
            k.failure_status,
            k.errors,
            k.body_errors,
            k.max_call.as_secs_f64() * 1e3,
        );
        if seen != k.attempts {
            problems.push(format!(
                "{}: the reports count {} attempts, the upstream {seen}",
                kind.name(),
                k.attempts
            ));
        }
    }
    println!();
    println!(
        "events: {by_events} attempts ({} retried), {} final failures, {} cancellations",
        events.retries.load(Ordering::Relaxed),
        events.request_failed.load(Ordering::Relaxed),
        events.cancelled.load(Ordering::Relaxed),
    );
    println!();

    if requests != total {
        problems.push(format!("{requests} requests ended, {total} were sent"));
    }
    if by_events != by_reports || by_reports != by_upstream {
        problems.push(format!(
            "attempts disagree: events {by_events}, reports {by_reports}, upstream {by_upstream}"
        ));
    }
    if max_call > DEADLINE + SLACK {
        problems.push(format!(
            "the longest request took {max_call:?}, past its deadline {DEADLINE:?} + {SLACK:?}"
        ));
    }
    if stats.missing_reports > 0 {
        problems.push(format!("{} responses had no report", stats.missing_reports));
    }
    if stats.stalled_bodies > 0 {
        problems.push(format!(
            "{} bodies did not end within {BODY_LIMIT:?}",
            stats.stalled_bodies
        ));
    }
    let cancelled = events.cancelled.load(Ordering::Relaxed);
    if cancelled > 0 {
        problems.push(format!(
            "{cancelled} cancellation events, where every call was awaited"
        ));
    }
    if problems.is_empty() {
        println!(
            "verdict: OK (attempts agree three ways, every request within its deadline + slack)"
        );
        false
    } else {
        println!("verdict: FAILED");
        for problem in &problems {
            println!("- {problem}");
        }
        true
    }
}
