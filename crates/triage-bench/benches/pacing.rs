//! Pacing: how many requests an upstream that enforces a rate window
//! refuses, with the layer's pacing on and off.
//!
//! The testkit `Upstream`'s `/window/LIMIT/MS` route admits LIMIT requests
//! per window of MS milliseconds and answers the rest 429 with
//! `retry-after-ms` (every answer tells the window: `x-ratelimit-limit`,
//! `-remaining`, `-reset`). CALLERS tasks share one layer over one
//! hyper-util client; each sends requests one after the other for WINDOWS
//! windows. Each run is made with pacing on (the default) and off
//! (`TriageLayer::pacing(false)`), with retries off and on (2, the
//! default), the upstream's windows fresh for each.
//!
//! Counted by the upstream: the 429s, and for each how long after its
//! window was used up (the window's last admitted request) it came. A
//! request in flight when the window closes is refused whatever the client
//! does; a refusal that comes more than LATE after the close was sent into
//! a window the layer had been told was closed. The goal: none of those
//! with pacing.
//!
//! Run: `cargo bench -p triage-bench --bench pacing` (about 45 s), or with
//! `-- --smoke` for a seconds-long check.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::core::{Profile, RetryRules};
use triage_testkit::{Resolver, Upstream};

/// Requests admitted per window.
const LIMIT: u64 = 20;
/// The window's length.
const WINDOW_MS: u64 = 1000;
/// Concurrent callers.
const CALLERS: usize = 16;
/// A refusal that comes this long after its window closed was sent after
/// the answer that closed it reached the client (loopback answers take
/// well under a millisecond; this leaves room for a loaded machine).
const LATE: Duration = Duration::from_millis(20);
/// The route.
const PATH: &str = "/window/20/1000";

struct Run {
    sent: u64,
    refused: u64,
    late: usize,
    succeeded: u64,
    elapsed: Duration,
}

async fn run(upstream: &Upstream, pacing: bool, retries: u32, windows: u64) -> Run {
    upstream.reset_hits();
    let layer = TriageLayer::new()
        .profile(Profile::generic().clone())
        .rules(RetryRules::default().max_retries(retries))
        .pacing(pacing);
    let svc = tower_triage::connect::client_with::<_, Full<Bytes>>(
        &layer,
        tower_triage::connect::tagged_connector(Resolver::new()),
    );
    let url = upstream.url(PATH);
    let started = Instant::now();
    let stop = started + Duration::from_millis(WINDOW_MS * windows);
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let mut svc = svc.clone();
        let url = url.clone();
        callers.push(tokio::spawn(async move {
            let mut succeeded = 0u64;
            while Instant::now() < stop {
                let request = Request::get(url.as_str())
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request");
                let Ok(ready) = svc.ready().await else { break };
                if let Ok(response) = ready.call(request).await {
                    let ok = response.status() == 200;
                    let _ = response.into_body().collect().await;
                    succeeded += u64::from(ok);
                }
            }
            succeeded
        }));
    }
    let mut succeeded = 0;
    for caller in callers {
        succeeded += caller.await.unwrap_or(0);
    }
    let (refused, after_close) = upstream.refused(PATH);
    Run {
        sent: upstream.hits(PATH),
        refused,
        late: after_close.iter().filter(|after| **after > LATE).count(),
        succeeded,
        elapsed: started.elapsed(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke" || a == "--test");
    let windows = if smoke { 2 } else { 10 };
    let upstream = Upstream::start().await.expect("a loopback upstream");
    println!(
        "pacing: {CALLERS} callers, one layer, an upstream that admits {LIMIT} requests per {WINDOW_MS} ms, {windows} windows a run"
    );
    println!(
        "{:<8} {:<8} {:>7} {:>8} {:>11} {:>12} {:>10} {:>7}",
        "retries", "pacing", "sent", "refused", "per window", "late (>20ms)", "succeeded", "time"
    );
    for retries in [0, 2] {
        for pacing in [false, true] {
            let run = run(&upstream, pacing, retries, windows).await;
            println!(
                "{:<8} {:<8} {:>7} {:>8} {:>11.1} {:>12} {:>10} {:>6.1}s",
                retries,
                if pacing { "on" } else { "off" },
                run.sent,
                run.refused,
                run.refused as f64 / windows as f64,
                run.late,
                run.succeeded,
                run.elapsed.as_secs_f64()
            );
        }
    }
}
