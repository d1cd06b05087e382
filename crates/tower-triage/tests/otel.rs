//! Feature `otel`: `otel::Metrics` as the layer's observer, read back
//! through the OpenTelemetry SDK's in-memory exporter, with hyper-util's
//! client calling a real axum server (and a raw socket server for the route
//! breaker) on loopback. Names resolve through the test resolver only.
#![cfg(all(feature = "otel", feature = "hyper-util"))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Backoff, RetryBudget, RetryRules};
use tower_triage::otel::Metrics;
use tower_triage::{Breaker, TriageLayer};
use triage_testkit::Resolver;

/// A data point: its attributes, and its value (a sum's value, a
/// histogram's count).
#[derive(Debug, PartialEq)]
struct Point {
    attributes: BTreeMap<String, String>,
    value: u64,
}

/// An SDK provider whose exports land in memory.
struct Sdk {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Sdk {
    fn new() -> Sdk {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Sdk { provider, exporter }
    }

    fn metrics(&self) -> Metrics {
        Metrics::new(&self.provider.meter("test"))
    }

    /// The points of the instrument `name` at the latest export, sorted.
    fn points(&self, name: &str) -> Vec<Point> {
        self.provider.force_flush().unwrap();
        let exports = self.exporter.get_finished_metrics().unwrap();
        let Some(latest) = exports.last() else {
            return Vec::new();
        };
        let attributes = |kvs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
            kvs.map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut points = Vec::new();
        for metric in latest
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
        {
            match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    points.extend(sum.data_points().map(|p| Point {
                        attributes: attributes(&mut p.attributes()),
                        value: p.value(),
                    }))
                }
                AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                    assert_eq!(metric.unit(), "s");
                    points.extend(histogram.data_points().map(|p| Point {
                        attributes: attributes(&mut p.attributes()),
                        value: p.count(),
                    }))
                }
                other => panic!("{name}: unexpected data {other:?}"),
            }
        }
        points.sort_by(|a, b| a.attributes.cmp(&b.attributes));
        points
    }
}

fn point(attributes: &[(&str, &str)], value: u64) -> Point {
    Point {
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

/// A duration point of one GET to `api.test:{port}`, with `more`.
fn duration(port: &str, more: &[(&str, &str)]) -> Point {
    let mut kvs = vec![
        ("http.request.method", "GET"),
        ("server.address", "api.test"),
        ("server.port", port),
    ];
    kvs.extend_from_slice(more);
    point(&kvs, 1)
}

fn fast_rules() -> RetryRules {
    RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(5)).unwrap())
}

/// An axum server on 127.0.0.1: `/flaky` answers 503 once, then 200;
/// `/denied` answers 401; `/down` always 503.
async fn server() -> u16 {
    let flaky = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route(
            "/flaky",
            get(move || {
                let n = flaky.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
        .route("/denied", get(|| async { StatusCode::UNAUTHORIZED }))
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// Sends a GET through `svc` and reads the body; the status, or the error's
/// class.
async fn call<S, B>(svc: &mut S, uri: &str) -> String
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<B>,
            Error = tower_triage::core::Error,
        >,
    B: http_body::Body,
{
    let request = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
    match svc.ready().await.unwrap().call(request).await {
        Ok(response) => {
            let status = response.status().as_u16().to_string();
            let _ = response.into_body().collect().await;
            status
        }
        Err(error) => error.class().to_string(),
    }
}

fn client(
    layer: TriageLayer,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<tower_triage::ResponseBody<hyper::body::Incoming>>,
    Error = tower_triage::core::Error,
> {
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    layer.layer(Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_has_its_duration_and_each_attempt_its_owner_class_and_decision() {
    let sdk = Sdk::new();
    let port = server().await;
    let mut svc = client(
        TriageLayer::new()
            .rules(fast_rules())
            .observer(sdk.metrics()),
    );
    assert_eq!(
        call(&mut svc, &format!("http://api.test:{port}/flaky")).await,
        "200"
    );
    assert_eq!(
        call(&mut svc, &format!("http://api.test:{port}/denied")).await,
        "401"
    );
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused_class = call(&mut svc, &format!("http://api.test:{refused}/")).await;
    assert_eq!(refused_class, "transport.connect.refused");

    let (port, refused) = (port.to_string(), refused.to_string());
    // One duration per logical call: the retried 503 is not a call of its own.
    let mut expected = vec![
        duration(&port, &[("http.response.status_code", "200")]),
        duration(
            &port,
            &[
                ("http.response.status_code", "401"),
                ("error.type", "unauthenticated"),
            ],
        ),
        duration(&refused, &[("error.type", "transport.connect")]),
    ];
    expected.sort_by(|a, b| a.attributes.cmp(&b.attributes));
    assert_eq!(sdk.points("http.client.request.duration"), expected);

    let failure = |owner: &'static str, class: &'static str, decision: &'static str, n| {
        point(
            &[
                ("http.request.method", "GET"),
                ("server.address", "api.test"),
                ("triage.owner", owner),
                ("triage.class", class),
                ("triage.decision", decision),
            ],
            n,
        )
    };
    let failures = sdk.points("triage.attempt.failures");
    for want in [
        failure("server", "server_error", "retry", 1),
        failure("auth", "unauthenticated", "not_retryable", 1),
    ] {
        assert!(failures.contains(&want), "{want:?} not in {failures:?}");
    }
    assert!(
        failures
            .iter()
            .all(|p| p.attributes.get("triage.class").map(String::as_str) != Some("success")),
        "a success is counted by the histogram only: {failures:?}"
    );
    let connect: u64 = failures
        .iter()
        .filter(|p| {
            p.attributes.get("triage.class").map(String::as_str) == Some("transport.connect")
        })
        .map(|p| p.value)
        .sum();
    assert!(
        connect >= 2,
        "a refused connection is retried, each attempt counted: {failures:?}"
    );
    assert_eq!(sdk.points("triage.retry.budget_refused"), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_the_budget_refuses_is_counted() {
    let sdk = Sdk::new();
    let port = server().await;
    let no_retries_left = RetryBudget::new(Duration::from_secs(1), 0, 0.0).unwrap();
    let layer = TriageLayer::new()
        .rules(fast_rules())
        .budget(no_retries_left)
        .observer(sdk.metrics());
    let mut svc = client(layer);
    assert_eq!(
        call(&mut svc, &format!("http://api.test:{port}/down")).await,
        "503"
    );
    assert_eq!(
        sdk.points("triage.retry.budget_refused"),
        vec![point(&[("server.address", "api.test")], 1)]
    );
    let failures = sdk.points("triage.attempt.failures");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0]
            .attributes
            .get("triage.decision")
            .map(String::as_str),
        Some("budget_exhausted")
    );
}

/// A raw HTTP/1.1 server: while `healthy` is false it closes each
/// connection without answering; then it answers 200 to every request.
async fn switchable() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let healthy = Arc::new(AtomicBool::new(false));
    let state = Arc::clone(&healthy);
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            if !state.load(Ordering::SeqCst) {
                drop(stream);
                continue;
            }
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                for _ in 0..16 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, healthy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_breaker_opening_and_closing_is_counted() {
    let sdk = Sdk::new();
    let (port, healthy) = switchable().await;
    let layer = TriageLayer::new()
        .rules(fast_rules().max_retries(0))
        .breaker(
            Breaker::new()
                .consecutive_failures(1)
                .probe_backoff(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .observer(sdk.metrics());
    let mut svc = client(layer);
    let uri = format!("http://api.test:{port}/");
    assert_ne!(call(&mut svc, &uri).await, "200");
    let route = format!("http://api.test:{port}");
    assert_eq!(
        sdk.points("triage.route.opened"),
        vec![point(&[("triage.route", &route)], 1)]
    );
    assert_eq!(sdk.points("triage.route.closed"), vec![]);

    healthy.store(true, Ordering::SeqCst);
    let mut answer = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        answer = call(&mut svc, &uri).await;
        if answer == "200" {
            break;
        }
    }
    assert_eq!(
        answer, "200",
        "the probe closes the route once the server answers"
    );
    assert_eq!(
        sdk.points("triage.route.closed"),
        vec![point(&[("triage.route", &route)], 1)]
    );
}
