//! Outage amplification: how many upstream requests (or connect attempts)
//! each logical request costs while the upstream is down.
//!
//! 10,000 logical GETs (200 with `--smoke`), 200 in flight, fired as one
//! sustained burst against
//!
//! - (a) the testkit `Upstream`'s always-503 route `/status/503` (its own
//!   per-path hit counter gives the upstream requests), and
//! - (b) a closed port on 127.0.0.1 (connection refused; connect attempts
//!   are counted by a wrapper around the connector and cross-checked with
//!   the testkit `Resolver`'s lookups, one per attempt),
//!
//! each through three clients over the same hyper-util `Client`:
//!
//! - `Triage` with every default (`TriageLayer::new()`: openai-python's rules
//!   and backoff, the shared default retry budget),
//! - `Triage` with the budget turned off (`RetryBudget::unlimited()`),
//! - the baseline, openai-python's behaviour as a `tower::retry::Policy`:
//!   every 5xx, 429 and connection error retried twice.
//!
//! Every figure is also given as a ratio to the baseline measured in the same
//! run. The target is at most 1.25 upstream requests per logical request
//! with the defaults, where the baseline makes 3.0.
//!
//! Run: `cargo bench -p triage-bench --bench amplification` (well under two
//! minutes), or with `-- --smoke` for a seconds-long check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::retry::{Policy, Retry};
use tower::{Layer, Service, ServiceExt};
use tower_triage::connect::{TagConnect, TagResolver};
use tower_triage::core::{Backoff, RetryBudget, RetryRules, Stage};
use tower_triage::{Breaker, Report, ReportExt, TriageLayer};
use triage_bench::CountConnects;
use triage_testkit::{Resolver, Upstream};

/// Logical requests in full mode.
const REQUESTS: u64 = 10_000;
/// Logical requests with `--smoke`.
const SMOKE_REQUESTS: u64 = 200;
/// Requests in flight.
const IN_FLIGHT: u64 = 200;
/// Retries of the fixed baseline (openai-python's `max_retries`).
const FIXED_RETRIES: u32 = 2;
/// Target: upstream requests per logical request with the defaults.
const TARGET: f64 = 1.25;

/// The tagged connector over the testkit resolver, counted.
type Connector = CountConnects<TagConnect<HttpConnector<TagResolver<Resolver>>>>;

/// A hyper-util client over the tagged connector, with its own resolver and
/// connect counter.
fn client(resolver: Resolver, connects: Arc<AtomicU64>) -> Client<Connector, Full<Bytes>> {
    let connector = CountConnects::new(
        tower_triage::connect::tagged_connector(resolver),
        None,
        connects,
    );
    Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector)
}

/// openai-python's retry behaviour: every 5xx, 429 and connection error is
/// retried, at most `FIXED_RETRIES` times. Here without any delay: with no
/// budget, delays change how long the run takes, never how many requests it
/// makes.
#[derive(Debug, Clone)]
struct FixedRetries {
    left: u32,
    attempts: Arc<AtomicU64>,
}

impl<B, E> Policy<Request<Full<Bytes>>, Response<B>, E> for FixedRetries {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let failed = match result {
            Ok(r) => r.status().is_server_error() || r.status() == 429,
            Err(_) => true,
        };
        (failed && self.left > 0).then(|| {
            self.left -= 1;
            std::future::ready(())
        })
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        Some(clone)
    }
}

/// How one logical request ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// A response with this status, and the attempts its `Report` counted.
    Status(u16, Option<u32>),
    /// An error, the attempts it counted, and whether it was tagged as the
    /// connect stage.
    Failed(Option<u32>, bool),
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    statuses: u64,
    wrong_status: u64,
    errors: u64,
    untagged_errors: u64,
    reported_attempts: u64,
    max_attempts: u32,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, expect_status: Option<u16>) {
        let attempts = match outcome {
            Outcome::Status(status, attempts) => {
                self.statuses += 1;
                if Some(status) != expect_status {
                    self.wrong_status += 1;
                }
                attempts
            }
            Outcome::Failed(attempts, connect_stage) => {
                self.errors += 1;
                if !connect_stage {
                    self.untagged_errors += 1;
                }
                attempts
            }
        };
        if let Some(n) = attempts {
            self.reported_attempts += u64::from(n);
            self.max_attempts = self.max_attempts.max(n);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.statuses += other.statuses;
        self.wrong_status += other.wrong_status;
        self.errors += other.errors;
        self.untagged_errors += other.untagged_errors;
        self.reported_attempts += other.reported_attempts;
        self.max_attempts = self.max_attempts.max(other.max_attempts);
    }
}

/// Fires `total` GETs of `uri` through clones of `svc`, `IN_FLIGHT` at a
/// time, and tallies how they ended.
async fn burst<S, R>(
    svc: S,
    uri: &str,
    total: u64,
    expect_status: Option<u16>,
    outcome: fn(Result<R, S::Error>) -> Outcome,
) -> Tally
where
    S: Service<Request<Full<Bytes>>, Response = R> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    R: Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT.min(total) {
        let (mut svc, next, uri) = (svc.clone(), Arc::clone(&next), uri.to_owned());
        workers.spawn(async move {
            let mut tally = Tally::default();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let request = Request::get(uri.as_str())
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                let result = match svc.ready().await {
                    Ok(ready) => ready.call(request).await,
                    Err(e) => Err(e),
                };
                tally.add(outcome(result), expect_status);
            }
            tally
        });
    }
    let mut tally = Tally::default();
    while let Some(joined) = workers.join_next().await {
        tally.merge(joined.expect("a worker panicked"));
    }
    tally
}

fn triage_outcome<B>(
    result: Result<Response<tower_triage::ResponseBody<B>>, tower_triage::core::Error>,
) -> Outcome {
    match result {
        Ok(response) => Outcome::Status(
            response.status().as_u16(),
            response.report().as_ref().map(Report::attempts),
        ),
        Err(e) => Outcome::Failed(Some(e.attempts()), e.stage() == Some(Stage::Connect)),
    }
}

fn plain_outcome<B, E>(result: Result<Response<B>, E>) -> Outcome {
    match result {
        Ok(response) => Outcome::Status(response.status().as_u16(), None),
        // The baseline's errors carry no stage: a refused connect is the only
        // failure possible against a closed port.
        Err(_) => Outcome::Failed(None, true),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Config {
    Defaults,
    BreakerOff,
    BudgetOff,
    Fixed,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Defaults => "triage, defaults (shared budget, route breaker)",
            Config::BreakerOff => "triage, budget only (breaker off)",
            Config::BudgetOff => "triage, budget and breaker off",
            Config::Fixed => "baseline: fixed 2 retries",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Outage503,
    ClosedPort,
}

/// One measured row.
#[derive(Debug)]
struct Row {
    config: Config,
    /// Upstream requests (503) or connect attempts (closed port).
    load: u64,
    per_request: f64,
    wall: Duration,
    tally: Tally,
}

/// Runs `total` logical requests of one configuration against one target,
/// each with a fresh upstream, resolver and client.
async fn measure(target: Target, config: Config, total: u64) -> Row {
    let resolver = Resolver::new();
    let connects = Arc::new(AtomicU64::new(0));
    let client = client(resolver.clone(), Arc::clone(&connects));
    let upstream;
    let (uri, expect_status, path) = match target {
        Target::Outage503 => {
            upstream = Some(Upstream::start().await.expect("start the upstream"));
            let u = upstream.as_ref().expect("started");
            (u.url("/status/503"), Some(503), "/status/503")
        }
        Target::ClosedPort => {
            upstream = None;
            let addr: SocketAddr = triage_testkit::closed_port().expect("a closed port");
            (
                format!("http://svc.test:{}/v1/items", addr.port()),
                None,
                "",
            )
        }
    };
    let baseline_attempts = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tally = match config {
        Config::Defaults => {
            let svc = TriageLayer::new().layer(client);
            burst(svc, &uri, total, expect_status, triage_outcome).await
        }
        Config::BreakerOff => {
            let svc = TriageLayer::new()
                .breaker(Breaker::disabled())
                .layer(client);
            burst(svc, &uri, total, expect_status, triage_outcome).await
        }
        Config::BudgetOff => {
            // Without a budget, backoff changes how long this takes, never
            // how many attempts are made: keep it short.
            let rules = RetryRules::default().backoff(
                Backoff::new(Duration::from_millis(1), Duration::from_millis(2)).expect("backoff"),
            );
            let svc = TriageLayer::new()
                .rules(rules)
                .budget(RetryBudget::unlimited())
                .breaker(Breaker::disabled())
                .layer(client);
            burst(svc, &uri, total, expect_status, triage_outcome).await
        }
        Config::Fixed => {
            let policy = FixedRetries {
                left: FIXED_RETRIES,
                attempts: Arc::clone(&baseline_attempts),
            };
            let svc = Retry::new(policy, client);
            burst(svc, &uri, total, expect_status, plain_outcome).await
        }
    };
    let wall = start.elapsed();

    // Functional checks: every logical request must end as the outage says.
    let what = format!("{:?} / {}", target, config.name());
    match target {
        Target::Outage503 => {
            assert_eq!(
                tally.statuses,
                total,
                "{what}: {} of {total} requests did not end with a response ({tally:?})",
                total - tally.statuses
            );
            assert_eq!(
                tally.wrong_status, 0,
                "{what}: responses other than 503 from an always-503 route ({tally:?})"
            );
        }
        Target::ClosedPort => {
            assert_eq!(
                tally.errors, total,
                "{what}: a request to a closed port did not fail ({tally:?})"
            );
            assert_eq!(
                tally.untagged_errors, 0,
                "{what}: a refused connect was not the connect stage ({tally:?})"
            );
        }
    }

    let load = match target {
        Target::Outage503 => upstream.as_ref().map_or(0, |u| u.hits(path)),
        Target::ClosedPort => connects.load(Ordering::SeqCst),
    };
    // Cross-checks of the counting.
    if target == Target::ClosedPort && resolver.lookups() != load {
        println!(
            "note: {what}: {load} connects but {} resolver lookups",
            resolver.lookups()
        );
    }
    if config != Config::Fixed && tally.reported_attempts != load {
        println!(
            "note: {what}: the reports count {} attempts, the upstream/connector {load}",
            tally.reported_attempts
        );
    }
    if config == Config::Fixed && baseline_attempts.load(Ordering::SeqCst) != load {
        println!(
            "note: {what}: the policy saw {} attempts, the upstream/connector {load}",
            baseline_attempts.load(Ordering::SeqCst)
        );
    }
    if config != Config::Fixed && tally.max_attempts > 1 + RetryRules::default().retries() {
        println!(
            "note: {what}: a request made {} attempts, more than the rules allow",
            tally.max_attempts
        );
    }
    Row {
        config,
        load,
        per_request: load as f64 / total as f64,
        wall,
        tally,
    }
}

fn main() {
    let smoke = triage_bench::smoke();
    let total = if smoke { SMOKE_REQUESTS } else { REQUESTS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "outage amplification: {total} logical GETs, {IN_FLIGHT} in flight, one burst per row{}",
            if smoke { " (smoke)" } else { "" }
        );
        println!();
        println!(
            "| outage | client | upstream load | per logical request | vs baseline | max attempts | wall s | target (<= {TARGET:.2}/request) |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for target in [Target::Outage503, Target::ClosedPort] {
            // The baseline first, so that every ratio has it.
            let baseline = measure(target, Config::Fixed, total).await;
            let rows = [
                measure(target, Config::Defaults, total).await,
                measure(target, Config::BreakerOff, total).await,
                measure(target, Config::BudgetOff, total).await,
                baseline,
            ];
            let base = rows[3].per_request;
            for row in &rows {
                let (outage, load) = match target {
                    Target::Outage503 => ("always 503", "upstream requests"),
                    Target::ClosedPort => ("closed port", "connect attempts"),
                };
                let verdict = match row.config {
                    // The budget's reserve (10 retries a second for 10 s)
                    // outweighs a smoke run's few requests.
                    Config::Defaults if smoke => "n/a (smoke: too few requests)",
                    Config::Defaults if row.per_request <= TARGET => "target met",
                    Config::Defaults => "TARGET MISSED",
                    Config::BreakerOff if smoke => "n/a (smoke: too few requests)",
                    Config::BreakerOff if row.per_request <= TARGET => "target met",
                    Config::BreakerOff => "TARGET MISSED",
                    Config::BudgetOff => "n/a (no budget: expect 3.0)",
                    Config::Fixed => "n/a (baseline: 3.0)",
                };
                let max = if row.config == Config::Fixed {
                    "-".to_owned()
                } else {
                    row.tally.max_attempts.to_string()
                };
                println!(
                    "| {outage} | {} | {} {load} | {:.3} | {:.3}x | {max} | {:.1} | {verdict} |",
                    row.config.name(),
                    row.load,
                    row.per_request,
                    row.per_request / base,
                    row.wall.as_secs_f64(),
                );
            }
        }
        println!();
        println!(
            "The defaults row uses true defaults (openai-python backoff, 0.5 s doubling to 8 s, \
             and the default budget: 20 % of requests plus 10 retries/s over a 10 s window). \
             The budget-off row and the baseline retry with ~no delay: without a budget, \
             delays do not change counts."
        );
    });
}
