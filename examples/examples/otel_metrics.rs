//! OpenTelemetry metrics (feature `otel`): the SDK's meter provider with a
//! stdout exporter, `otel::Metrics` as the layer's observer, a few calls
//! against the testkit's upstream, then the export: one
//! `http.client.request.duration` point per call, attempts by owner, class
//! and decision. Swap the stdout exporter for OTLP's in a real service.
//!
//! Run: `cargo run -p triage-examples --example otel_metrics`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tower::{Layer, Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::otel::Metrics;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(opentelemetry_stdout::MetricExporter::default())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(calls())?;

    // The last export, printed: shut down outside the runtime, as the SDK
    // advises for a current-thread runtime.
    provider.shutdown()?;
    Ok(())
}

async fn calls() -> Result<(), BoxError> {
    let upstream = triage_testkit::Upstream::start().await?;
    let connector = tower_triage::connect::tagged_connector(triage_testkit::Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    // After the provider is set: a meter taken before it stays a no-op.
    let mut client = TriageLayer::new().observer(Metrics::global()).layer(client);

    for path in ["/ok", "/flaky/1/502", "/status/401", "/openai/429/quota"] {
        let request = http::Request::get(upstream.url(path)).body(Full::new(Bytes::new()))?;
        match client.ready().await?.call(request).await {
            Ok(response) => {
                let status = response.status();
                response.into_body().collect().await?;
                println!("{path:<20} {status}");
            }
            Err(error) => println!("{path:<20} {}", error.class()),
        }
    }
    Ok(())
}
