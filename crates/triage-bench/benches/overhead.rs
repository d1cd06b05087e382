//! In-process overhead of the layer on the happy path: a bare `service_fn`
//! answering 200 with a small body and typical headers, the same wrapped in
//! `Triage` (default rules; a tracing subscriber enabled at INFO that
//! discards), and the same wrapped in `tower::retry` with a status-based
//! policy (what a tower user writes by hand). The body is read to its end.
//! Heap allocations per request are counted and printed for each.
//!
//! Telemetry: `TRIAGE_TRACE_LEVEL=debug` enables the discarding subscriber
//! at DEBUG, so that triage's span per call (and `TraceLayer`'s) is made;
//! the stacks `trace_retry` (tower-http's `TraceLayer` around
//! `tower::retry`) and `triage_metrics` (the layer with `otel::Metrics` on
//! an SDK meter provider) price the telemetry against each other.
//!
//! Fleet sharing: the stack `triage_fleet` is the layer given a
//! `triage_fleet::Fleet` (its tasks spawned on a runtime this bench never
//! drives, so they make no noise): what a successful call pays for sharing
//! is whatever it reads of the layer's own state, and nothing else.
//!
//! Run: `cargo bench -p triage-bench --bench overhead`
#![allow(unsafe_code)] // the counting allocator; the libraries forbid unsafe code

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::retry::Retry;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_http::trace::TraceLayer;
use tower_triage::TriageLayer;
use tower_triage::core::RetryRules;
use triage_bench::{DiscardAt, ServerErrors};

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Polls a future that completes without waiting.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the benchmark's services never wait"),
    }
}

fn answer() -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("date", "Sun, 22 Nov 2026 18:42:32 GMT")
        .header("x-request-id", "req_5f2c8e0f0b3a4d2c9f1e7a6b5c4d3e2f")
        .header("x-ratelimit-remaining-requests", "9999")
        .header("x-ratelimit-reset-requests", "6ms")
        .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
        .unwrap()
}

/// The connection information hyper-util's `HttpConnector` puts into every
/// response's extensions (`HttpInfo`), stood in for by a value of the same
/// size.
#[derive(Clone, Copy)]
struct ConnInfo {
    _addresses: [u8; 32],
}

/// `answer()` with an extension, as a hyper-util or reqwest response has:
/// the layer marks a first-try success there (for `Report::of`), which
/// costs no allocation once the map exists.
fn answer_with_extensions() -> Response<Full<Bytes>> {
    let mut response = answer();
    response.extensions_mut().insert(ConnInfo {
        _addresses: [0; 32],
    });
    response
}

fn request() -> Request<Full<Bytes>> {
    Request::post("https://api.openai.com/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(Full::new(Bytes::from_static(br#"{"model":"x"}"#)))
        .unwrap()
}

fn allocations_per_call(mut call: impl FnMut()) -> f64 {
    for _ in 0..100 {
        call();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        call();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 1000.0
}

fn bench(c: &mut Criterion) {
    let level = match std::env::var("TRIAGE_TRACE_LEVEL").as_deref() {
        Ok("debug") => tracing::level_filters::LevelFilter::DEBUG,
        _ => tracing::level_filters::LevelFilter::INFO,
    };
    let _ = tracing::subscriber::set_global_default(DiscardAt(level));
    eprintln!("tracing subscriber enabled at {level}");
    let inner =
        service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, std::io::Error>(answer()) });
    let mut bare = inner;
    let mut triaged = TriageLayer::new().layer(inner);
    // The layer's own cost: no copy of the request is kept for a retry.
    let mut triaged_once = TriageLayer::new()
        .rules(RetryRules::default().max_retries(0))
        .layer(inner);
    let mut retried = Retry::new(ServerErrors(2), inner);
    let with_extensions = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::io::Error>(answer_with_extensions())
    });
    let mut bare_ext = with_extensions;
    let mut triaged_ext = TriageLayer::new().layer(with_extensions);
    let mut trace_retry = TraceLayer::new_for_http().layer(Retry::new(ServerErrors(2), inner));
    // A meter provider as a service sets one up; its reader exports every
    // minute, so never during a run.
    let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build())
        .build();
    let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "bench");
    let mut triaged_metrics = TriageLayer::new()
        .observer(tower_triage::otel::Metrics::new(&meter))
        .layer(inner);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime for the fleet's tasks");
    let fleet = {
        let _entered = runtime.enter();
        triage_fleet::Fleet::new("redis://127.0.0.1:1/", "bench").expect("a fleet")
    };
    let mut triaged_fleet = TriageLayer::new().share(fleet).layer(inner);

    // `TRIAGE_INSTRUCTIONS=STACK:N`: N calls of one stack and nothing
    // else, for `valgrind --tool=callgrind --toggle-collect='*measured_calls*'`
    // to count the instructions per call (see BENCHMARKS.md).
    if let Ok(spec) = std::env::var("TRIAGE_INSTRUCTIONS") {
        let (stack, n) = spec.split_once(':').unwrap_or((spec.as_str(), "10000"));
        let n: u32 = n.parse().unwrap_or(10_000);
        match stack {
            "bare" => measured(&mut bare, n),
            "triage" => measured(&mut triaged, n),
            "triage_no_retries" => measured(&mut triaged_once, n),
            "tower_retry" => measured(&mut retried, n),
            "bare_ext" => measured(&mut bare_ext, n),
            "triage_ext" => measured(&mut triaged_ext, n),
            "trace_retry" => measured(&mut trace_retry, n),
            "triage_metrics" => measured(&mut triaged_metrics, n),
            "triage_fleet" => measured(&mut triaged_fleet, n),
            other => panic!("TRIAGE_INSTRUCTIONS: no stack {other:?}"),
        }
        std::process::exit(0);
    }

    // Under a profiler (`--profile-time`), only the benchmark runs, so
    // that instruction counts per call are not mixed with other stacks.
    let profiling = std::env::args().any(|a| a == "--profile-time");
    if !profiling {
        report_sizes_and_allocations(&mut bare, &mut triaged, &mut triaged_once, &mut retried);
        eprintln!(
            "allocations per call, answers with extensions: bare {:.1}, triage {:.1}",
            allocations_per_call(|| call(&mut bare_ext)),
            allocations_per_call(|| call(&mut triaged_ext)),
        );
        eprintln!(
            "allocations per call, telemetry: TraceLayer + tower::retry {:.1}, triage with metrics {:.1}",
            allocations_per_call(|| call(&mut trace_retry)),
            allocations_per_call(|| call(&mut triaged_metrics)),
        );
        eprintln!(
            "allocations per call, fleet sharing: triage {:.1}, triage with a fleet {:.1}",
            allocations_per_call(|| call(&mut triaged)),
            allocations_per_call(|| call(&mut triaged_fleet)),
        );
    }

    let mut group = c.benchmark_group("happy_path");
    group.bench_function("bare", |b| b.iter(|| call(&mut bare)));
    group.bench_function("triage", |b| b.iter(|| call(&mut triaged)));
    group.bench_function("triage_no_retries", |b| b.iter(|| call(&mut triaged_once)));
    group.bench_function("tower_retry", |b| b.iter(|| call(&mut retried)));
    group.bench_function("bare_ext", |b| b.iter(|| call(&mut bare_ext)));
    group.bench_function("triage_ext", |b| b.iter(|| call(&mut triaged_ext)));
    group.bench_function("trace_retry", |b| b.iter(|| call(&mut trace_retry)));
    group.bench_function("triage_metrics", |b| b.iter(|| call(&mut triaged_metrics)));
    group.bench_function("triage_fleet", |b| b.iter(|| call(&mut triaged_fleet)));
    group.finish();
}

/// What a call of each stack allocates, and the size of its future.
fn report_sizes_and_allocations<A, B, C, D>(
    bare: &mut A,
    triaged: &mut B,
    triaged_once: &mut C,
    retried: &mut D,
) where
    A: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    A::Error: std::fmt::Debug,
    B: Service<Request<Full<Bytes>>, Response = Response<tower_triage::ResponseBody<Full<Bytes>>>>,
    B::Error: std::fmt::Debug,
    C: Service<Request<Full<Bytes>>, Response = Response<tower_triage::ResponseBody<Full<Bytes>>>>,
    C::Error: std::fmt::Debug,
    D: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    D::Error: std::fmt::Debug,
{
    eprintln!(
        "future size in bytes: bare {}, triage {}, tower::retry {}",
        std::mem::size_of_val(&bare.call(request())),
        std::mem::size_of_val(&triaged.call(request())),
        std::mem::size_of_val(&retried.call(request()))
    );
    eprintln!(
        "allocations per call: bare {:.1}, triage {:.1}, triage without retries {:.1}, tower::retry {:.1}",
        allocations_per_call(|| call(bare)),
        allocations_per_call(|| call(triaged)),
        allocations_per_call(|| call(triaged_once)),
        allocations_per_call(|| call(retried)),
    );
}

/// `n` calls of `service`, after 100 of warm-up (the symbol callgrind
/// counts in).
#[inline(never)]
fn measured<S, B>(service: &mut S, n: u32)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        call(service);
    }
    measured_calls(service, n);
}

#[inline(never)]
fn measured_calls<S, B>(service: &mut S, n: u32)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    for _ in 0..n {
        call(service);
    }
}

/// One request through `service`, its body read to the end.
fn call<S, B>(service: &mut S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    now(async {
        let r = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        black_box(r.into_body().collect().await.unwrap());
    })
}

criterion_group!(benches, bench);
criterion_main!(benches);
