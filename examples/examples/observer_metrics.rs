//! The Observer hook counting attempts by owner, then a summary.
//!
//! Run: `cargo run -p triage-examples --example observer_metrics`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::{AttemptInfo, Observer, TriageLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Attempts counted by owner and decision: what a metrics exporter would do.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<BTreeMap<(String, &'static str), u64>>>);

impl Observer for Counts {
    fn on_attempt(&self, attempt: &AttemptInfo<'_>) {
        let owner = attempt
            .diagnosis
            .owner()
            .map_or("none", |o| o.as_str())
            .to_owned();
        let key = (owner, attempt.decision.reason());
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(0) += 1;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let upstream = triage_testkit::Upstream::start().await?;
    let counts = Counts::default();
    let connector = tower_triage::connect::tagged_connector(triage_testkit::Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut client = TriageLayer::new().observer(counts.clone()).layer(client);

    let paths = [
        "/ok",
        "/ok",
        "/flaky/1/502",
        "/status/401",
        "/openai/429/quota",
        "/gateway/nginx/502",
        "/status/404",
    ];
    for path in paths {
        let request = http::Request::get(upstream.url(path)).body(Full::new(Bytes::new()))?;
        let _ = client.ready().await?.call(request).await;
    }

    println!("{:<16} {:<20} {:>8}", "owner", "decision", "attempts");
    let counts = counts.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for ((owner, decision), n) in &counts {
        println!("{owner:<16} {decision:<20} {n:>8}");
    }
    println!(
        "upstream saw {} requests for {} calls",
        upstream.total_hits(),
        paths.len()
    );
    Ok(())
}
