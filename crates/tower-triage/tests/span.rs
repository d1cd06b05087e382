//! Issue 16: a span per call after OpenTelemetry's HTTP client conventions
//! (DEBUG, target `tower_triage`), each attempt's event inside it, its
//! status, resends, protocol and triage's verdict recorded, the URL
//! redacted; and no span at all when DEBUG is off.
#![cfg(feature = "hyper-util")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::core::{Backoff, RetryRules};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use triage_testkit::{Resolver, Upstream};

/// What the subscriber saw: each span's name and fields, and each event's
/// span (the one entered when it was emitted) and message.
#[derive(Default)]
struct Seen {
    spans: HashMap<u64, (String, HashMap<String, String>)>,
    events: Vec<(Option<u64>, String)>,
    stack: Vec<u64>,
}

#[derive(Clone)]
struct Spans {
    seen: Arc<Mutex<Seen>>,
    next: Arc<AtomicU64>,
    max: Level,
}

impl Spans {
    fn new(max: Level) -> Spans {
        Spans {
            seen: Arc::default(),
            next: Arc::new(AtomicU64::new(1)),
            max,
        }
    }
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Spans {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.max))
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .spans
            .insert(id, (name, fields));
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, fields)) = seen.spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let parent = seen.stack.last().copied();
        let message = fields.remove("message").unwrap_or_default();
        seen.events.push((parent, message));
    }
    fn enter(&self, id: &Id) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stack
            .push(id.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stack
            .pop();
    }
}

/// The layer around hyper-util's client over the testkit's resolver.
type Traced = tower_triage::Triage<
    Client<
        tower_triage::connect::TagConnect<
            hyper_util::client::legacy::connect::HttpConnector<
                tower_triage::connect::TagResolver<Resolver>,
            >,
        >,
        Full<Bytes>,
    >,
>;

fn client(rules: RetryRules) -> Traced {
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    TriageLayer::new()
        .rules(rules)
        .layer(Client::builder(TokioExecutor::new()).build(connector))
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

/// The one span named `HTTP`: its id and fields.
fn the_span(seen: &Seen) -> (u64, HashMap<String, String>) {
    let spans: Vec<_> = seen
        .spans
        .iter()
        .filter(|(_, (name, _))| name == "HTTP")
        .collect();
    assert_eq!(spans.len(), 1, "one span per call");
    (*spans[0].0, spans[0].1.1.clone())
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_has_one_span_with_its_attempts_inside() {
    let spans = Spans::new(Level::DEBUG);
    let _guard = tracing::subscriber::set_default(spans.clone());
    let upstream = Upstream::start().await.unwrap();
    let rules = RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(5)).unwrap());
    let url = format!("{}?session=s3cr3tValue99", upstream.url("/flaky/1/503"));
    let response = client(rules).oneshot(get(&url)).await.unwrap();
    assert_eq!(response.status(), 200);
    // The body is read after the call returned: its outcome is still told
    // inside the call's span.
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(!body.is_empty());

    let seen = spans.seen.lock().unwrap();
    let (id, fields) = the_span(&seen);
    let port = upstream.addr().port().to_string();
    for (name, value) in [
        ("otel.name", "GET"),
        ("otel.kind", "client"),
        ("http.request.method", "GET"),
        ("server.address", "svc.test"),
        ("server.port", port.as_str()),
        ("url.scheme", "http"),
        ("network.protocol.version", "1.1"),
        ("http.response.status_code", "200"),
        ("http.request.resend_count", "1"),
        ("triage.decision", "success"),
    ] {
        assert_eq!(
            fields.get(name).map(String::as_str),
            Some(value),
            "{name}: {fields:?}"
        );
    }
    let url_full = &fields["url.full"];
    assert!(
        url_full.ends_with("/flaky/1/503?session=[redacted]"),
        "{url_full}"
    );
    // Success leaves no error fields.
    assert!(!fields.contains_key("error.type"), "{fields:?}");
    // Both attempts' events are inside the call's span.
    let attempts: Vec<_> = seen
        .events
        .iter()
        .filter(|(_, message)| message.starts_with("attempt "))
        .collect();
    assert_eq!(attempts.len(), 2, "{:?}", seen.events);
    assert!(
        attempts.iter().all(|(parent, _)| *parent == Some(id)),
        "{attempts:?}"
    );
    let body: Vec<_> = seen
        .events
        .iter()
        .filter(|(_, message)| message == "response body complete")
        .collect();
    assert_eq!(body.len(), 1, "{:?}", seen.events);
    assert_eq!(
        body[0].0,
        Some(id),
        "the body's outcome is tied to its call"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_call_records_triages_verdict_on_its_span() {
    let spans = Spans::new(Level::DEBUG);
    let _guard = tracing::subscriber::set_default(spans.clone());
    let error = client(RetryRules::none())
        .oneshot(get("http://api.nowhere.invalid/v1"))
        .await
        .unwrap_err();
    assert_eq!(error.stage(), Some(tower_triage::core::Stage::Dns));
    let seen = spans.seen.lock().unwrap();
    let (_, fields) = the_span(&seen);
    for (name, value) in [
        ("error.type", "transport.dns"),
        ("triage.owner", "connection_path"),
        ("triage.class", "transport.dns.name_not_found"),
        ("triage.stage", "dns"),
        ("triage.decision", "not_retryable"),
    ] {
        assert_eq!(
            fields.get(name).map(String::as_str),
            Some(value),
            "{name}: {fields:?}"
        );
    }
    assert!(!fields.contains_key("http.response.status_code"));
}

#[tokio::test(flavor = "current_thread")]
async fn with_debug_off_no_span_is_made() {
    let spans = Spans::new(Level::INFO);
    let _guard = tracing::subscriber::set_default(spans.clone());
    let upstream = Upstream::start().await.unwrap();
    let response = client(RetryRules::none())
        .oneshot(get(&upstream.url("/ok")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(spans.seen.lock().unwrap().spans.is_empty());
}
