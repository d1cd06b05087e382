//! Loopback throughput and latency: one hyper server on 127.0.0.1 answering
//! a small JSON body (keep-alive), and the same load through
//!
//! - (a) the bare hyper-util `Client` (the baseline),
//! - (b) `Triage` around that client (default settings),
//! - (c) `tower::retry` with a status-based policy plus tower-http's
//!   `TraceLayer` around the same client (what a tower user writes by hand),
//! - (d) reqwest with reqwest-middleware and reqwest-retry (the nearest
//!   packaged peer),
//! - (e) `Triage` with retries off: the layer without the copy of the
//!   request that any retrying middleware keeps,
//! - (f) `tower::retry` alone, with the same policy as (c),
//! - (g) the bare client again: an A/A control, whose ratio to (a) shows
//!   the run's noise.
//!
//! The load is a fixed number of requests at a fixed number in flight; every
//! request's body is read to its end. The stacks run interleaved, in rounds
//! whose order rotates (a b c d, b c d a, …), so that drift on the machine
//! hits them alike; throughput is the median round's, and its ratio the
//! median over rounds of the ratio to (a) in the same round. Latency
//! percentiles pool every request of every round. A
//! tracing subscriber enabled at INFO that discards is installed, so the
//! layers that emit events pay for checking them, as in a service.
//!
//! Run: `cargo bench -p triage-bench --bench load` (about a minute), or with
//! `-- --smoke` for a seconds-long check that everything still runs.
//! `-- --requests N --concurrency C --rounds R` change the load; `-- --only b`
//! runs one stack alone (for a profiler).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::retry::RetryLayer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::trace::TraceLayer;
use tower_triage::TriageLayer;
use tower_triage::core::RetryRules;
use triage_bench::{Discard, ServerErrors};

const BODY: &[u8] = br#"{"id":"chatcmpl-123","object":"chat.completion","choices":[]}"#;

/// The upstream: keep-alive HTTP/1.1, a small JSON answer with the headers
/// an API sends.
async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .header("x-request-id", "req_5f2c8e0f0b3a4d2c9f1e7a6b5c4d3e2f")
                            .header("x-ratelimit-remaining-requests", "9999")
                            .header("x-ratelimit-reset-requests", "6ms")
                            .body(Full::new(Bytes::from_static(BODY)))
                            .expect("response"),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One request through a stack, its body read to the end.
trait Stack: Clone + Send + 'static {
    fn call(&self, uri: &str) -> BoxFuture;
}

fn request(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .header("accept", "application/json")
        .header("authorization", "Bearer sk-bench")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// Any tower service of HTTP requests whose body is read to the end.
#[derive(Clone)]
struct Tower<S>(S);

impl<S, B> Stack for Tower<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    fn call(&self, uri: &str) -> BoxFuture {
        let service = self.0.clone();
        let request = request(uri);
        Box::pin(async move {
            let response = service.oneshot(request).await.expect("response");
            assert!(response.status().is_success());
            let body = response.into_body().collect().await.expect("body");
            assert_eq!(body.to_bytes().len(), BODY.len());
        })
    }
}

#[derive(Clone)]
struct Reqwest(reqwest_middleware::ClientWithMiddleware);

impl Stack for Reqwest {
    fn call(&self, uri: &str) -> BoxFuture {
        let request = self
            .0
            .get(uri)
            .header("accept", "application/json")
            .header("authorization", "Bearer sk-bench");
        Box::pin(async move {
            let response = request.send().await.expect("response");
            assert!(response.status().is_success());
            let body = response.bytes().await.expect("body");
            assert_eq!(body.len(), BODY.len());
        })
    }
}

/// What one run measured.
struct Run {
    elapsed: Duration,
    latencies: Vec<u32>,
}

/// `requests` requests at `concurrency` in flight; latency in microseconds.
async fn run(stack: &impl Stack, uri: &str, requests: usize, concurrency: usize) -> Run {
    let per_task = requests / concurrency;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let stack = stack.clone();
        let uri = uri.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                stack.call(&uri).await;
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(per_task * concurrency);
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    Run {
        elapsed: started.elapsed(),
        latencies,
    }
}

#[derive(Default)]
struct Totals {
    requests: usize,
    // Throughput of each round, in order.
    rounds: Vec<f64>,
    latencies: Vec<u32>,
}

impl Totals {
    fn add(&mut self, run: Run) {
        self.requests += run.latencies.len();
        self.rounds
            .push(run.latencies.len() as f64 / run.elapsed.as_secs_f64());
        self.latencies.extend(run.latencies);
    }
    /// The median round's throughput.
    fn throughput(&self) -> f64 {
        median(self.rounds.clone())
    }
    /// The median over rounds of this stack's throughput over `base`'s in
    /// the same round.
    fn ratio(&self, base: &Totals) -> f64 {
        median(
            self.rounds
                .iter()
                .zip(&base.rounds)
                .map(|(mine, theirs)| mine / theirs)
                .collect(),
        )
    }
    fn percentile(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies[i])
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

struct Args {
    requests: usize,
    concurrency: usize,
    rounds: usize,
    smoke: bool,
    // Run one stack alone (a to g), for a profiler.
    only: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        requests: 20_000,
        concurrency: 64,
        rounds: 25,
        smoke: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            flag if triage_bench::is_smoke_flag(flag) => {
                args.smoke = true;
                args.requests = 256;
                args.concurrency = 16;
                args.rounds = 1;
            }
            "--requests" => args.requests = number("--requests"),
            "--concurrency" => args.concurrency = number("--concurrency"),
            "--rounds" => args.rounds = number("--rounds"),
            "--only" => args.only = it.next(),
            // `cargo bench` passes `--bench`; criterion's filters are not ours.
            _ => {}
        }
    }
    assert!(
        args.concurrency > 0 && args.requests >= args.concurrency,
        "need at least one request per task"
    );
    args
}

fn main() {
    let args = args();
    let _ = tracing::subscriber::set_global_default(Discard);
    // Built with the workspace, reqwest has rustls without a provider (the
    // composition matrix asks for it): give the process one. The loopback
    // comparison itself is plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let addr = serve().await;
        let uri = format!("http://{addr}/v1/chat/completions");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);

        let bare = Tower(client.clone());
        let triage = Tower(TriageLayer::new().layer(client.clone()));
        // The layer without the copy of the request that retries need.
        let triage_once = Tower(
            TriageLayer::new()
                .rules(RetryRules::default().max_retries(0))
                .layer(client.clone()),
        );
        let tower = Tower(
            ServiceBuilder::new()
                .layer(RetryLayer::new(ServerErrors(2)))
                .layer(TraceLayer::new_for_http())
                .service(client.clone()),
        );
        let retry_alone = Tower(
            ServiceBuilder::new()
                .layer(RetryLayer::new(ServerErrors(2)))
                .service(client.clone()),
        );
        let control = Tower(client.clone());
        let reqwest = Reqwest(
            reqwest_middleware::ClientBuilder::new(
                reqwest::Client::builder()
                    .tcp_nodelay(true)
                    .no_proxy()
                    .build()
                    .expect("reqwest client"),
            )
            .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(
                reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(2),
            ))
            .build(),
        );

        // Warm up every stack: connections open, caches filled.
        let warm = (args.concurrency * 4).min(args.requests);
        run(&bare, &uri, warm, args.concurrency).await;
        run(&triage, &uri, warm, args.concurrency).await;
        run(&tower, &uri, warm, args.concurrency).await;
        run(&reqwest, &uri, warm, args.concurrency).await;
        run(&triage_once, &uri, warm, args.concurrency).await;
        run(&retry_alone, &uri, warm, args.concurrency).await;
        run(&control, &uri, warm, args.concurrency).await;

        const STACKS: usize = 7;
        let mut totals: [Totals; STACKS] = Default::default();
        let runs = |name: &str| args.only.as_deref().is_none_or(|only| only == name);
        for round in 0..args.rounds {
            // Each round starts with the next stack, so that no stack always
            // follows the same one.
            for i in (0..STACKS).map(|i| (i + round) % STACKS) {
                if !runs(["a", "b", "c", "d", "e", "f", "g"][i]) {
                    continue;
                }
                let (n, c) = (args.requests, args.concurrency);
                let measured = match i {
                    0 => run(&bare, &uri, n, c).await,
                    1 => run(&triage, &uri, n, c).await,
                    2 => run(&tower, &uri, n, c).await,
                    3 => run(&reqwest, &uri, n, c).await,
                    4 => run(&triage_once, &uri, n, c).await,
                    5 => run(&retry_alone, &uri, n, c).await,
                    _ => run(&control, &uri, n, c).await,
                };
                totals[i].add(measured);
            }
        }
        if let Some(only) = &args.only {
            for total in totals.iter_mut().filter(|t| t.requests > 0) {
                println!(
                    "{only}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs",
                    total.throughput(),
                    total.percentile(0.50),
                    total.percentile(0.99)
                );
            }
            return;
        }

        println!(
            "load: {} requests x {} rounds at {} in flight, interleaved, rotating order{}",
            args.requests,
            args.rounds,
            args.concurrency,
            if args.smoke { " (smoke)" } else { "" }
        );
        println!();
        println!("| stack | req/s | vs bare | p50 µs | vs bare | p99 µs | vs bare |");
        println!("|---|---|---|---|---|---|---|");
        let names = [
            "(a) hyper-util Client (bare)",
            "(b) Triage",
            "(c) tower::retry + TraceLayer",
            "(d) reqwest + reqwest-retry",
            "(e) Triage, retries off (no copy of the request)",
            "(f) tower::retry alone",
            "(g) hyper-util Client again (A/A control)",
        ];
        let (base_p50, base_p99) = (totals[0].percentile(0.50), totals[0].percentile(0.99));
        let mut figures = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ratio = totals[i].ratio(&totals[0]);
            let total = &mut totals[i];
            let (rps, p50, p99) = (
                total.throughput(),
                total.percentile(0.50),
                total.percentile(0.99),
            );
            println!(
                "| {name} | {rps:.0} | {ratio:.3}x | {p50:.0} | {:.3}x | {p99:.0} | {:.3}x |",
                p50 / base_p50,
                p99 / base_p99
            );
            figures.push((ratio, p99 / base_p99));
        }
        println!();
        let (triage_rps, triage_p99) = figures[1];
        let met = triage_rps >= 0.97 && triage_p99 <= 1.05;
        let ahead = triage_rps > figures[2].0 && triage_rps > figures[3].0;
        println!(
            "target (b) >= 0.97x throughput and p99 <= 1.05x: {}; (b) ahead of (c) and (d): {}",
            if met { "met" } else { "MISSED" },
            if ahead { "yes" } else { "NO" }
        );
    });
}
