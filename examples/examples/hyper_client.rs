//! The layer around hyper-util's Client, with every event printed.
//!
//! Run: `cargo run -p triage-examples --example hyper_client`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::Profile;
use tower_triage::{ReportExt, TriageLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Prints every event of the `tower_triage` target, one line each.
struct Print;

struct Fields(String);
impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl tracing::Subscriber for Print {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == tower_triage::TARGET
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        println!("  [{}]{}", event.metadata().level(), fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let _events = tracing::subscriber::set_default(Print);
    let upstream = triage_testkit::Upstream::start().await?;

    let connector = tower_triage::connect::tagged_connector(triage_testkit::Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut client = TriageLayer::new()
        .profile(Profile::openai().clone())
        .layer(client);

    for path in ["/ok", "/flaky/1/503", "/openai/429/quota"] {
        println!("GET {path}");
        let request = http::Request::get(upstream.url(path)).body(Full::new(Bytes::new()))?;
        let response = client.ready().await?.call(request).await?;
        let report = response.report();
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if let Some(report) = report {
            println!(
                "  -> {status}, {} attempt(s), owner {}, {} body bytes",
                report.attempts(),
                report.diagnosis().owner().map_or("none", |o| o.as_str()),
                body.len()
            );
        }
    }
    Ok(())
}
