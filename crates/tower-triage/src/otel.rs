//! OpenTelemetry metrics (feature `otel`): [`Metrics`], an [`Observer`] that
//! records what the layer sees through the `opentelemetry` metrics API.
//!
//! | Instrument | Kind, unit | Attributes |
//! |---|---|---|
//! | `http.client.request.duration` | histogram, `s` | `http.request.method`, `server.address`, `server.port`, `http.response.status_code` (when a response came back), `error.type` (on failure) |
//! | `triage.attempt.failures` | counter, `{attempt}` | `http.request.method`, `server.address`, `triage.owner`, `triage.class`, `triage.decision` |
//! | `triage.retry.budget_refused` | counter, `{retry}` | `server.address` |
//! | `triage.route.opened` | counter, `{event}` | `triage.route` |
//! | `triage.route.closed` | counter, `{event}` | `triage.route` |
//!
//! The duration is one logical call's, as OpenTelemetry's HTTP client
//! conventions define it: every attempt and wait included, to the response
//! head (or to the body's end when the layer read it whole). Its count is
//! the number of calls, by status and `error.type`; the failure counter
//! counts every attempt that failed, retried or not, by who owns the
//! failure and what the layer did next (`retry`, `not_retryable`,
//! `budget_exhausted`, ...). A success is not counted twice: on the happy
//! path the observer records one histogram point and nothing else. `error.type`
//! and `triage.class` are class *families* ([`Class::family`]:
//! `transport.connect`, `server_error`, `rate_limited`, ...), and methods
//! outside RFC 9110's are written `_OTHER`, so every attribute keeps few
//! values. Nothing from the URI but its host, port and scheme is recorded.
//!
//! ```
//! use opentelemetry::global;
//! use tower_triage::TriageLayer;
//! use tower_triage::otel::Metrics;
//!
//! // After the application set its meter provider:
//! let layer = TriageLayer::new().observer(Metrics::new(&global::meter("my-service")));
//! # let _ = layer;
//! ```
//!
//! [`Class::family`]: triage_core::Class::family

use std::cell::RefCell;
use std::sync::Arc;

use http::{Method, Uri};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{InstrumentationScope, KeyValue, Value, global};

use crate::observer::{AttemptInfo, Call, Observer, Outcome, RouteEvent};
use triage_core::{Decision, Stop};

/// The bucket boundaries OpenTelemetry's HTTP conventions advise for
/// `http.client.request.duration`, in seconds.
const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// An [`Observer`] that records OpenTelemetry metrics (see the [module
/// docs](self) for the instruments). Add it with
/// [`TriageLayer::observer`](crate::TriageLayer::observer), beside any other
/// observer.
#[derive(Debug, Clone)]
pub struct Metrics {
    duration: Histogram<f64>,
    failures: Counter<u64>,
    budget_refused: Counter<u64>,
    route_opened: Counter<u64>,
    route_closed: Counter<u64>,
}

impl Metrics {
    /// Instruments created on `meter`.
    pub fn new(meter: &Meter) -> Metrics {
        Metrics {
            duration: meter
                .f64_histogram("http.client.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP client requests.")
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build(),
            failures: meter
                .u64_counter("triage.attempt.failures")
                .with_unit("{attempt}")
                .with_description("Failed attempts, by the failure's owner and class and what the layer did next.")
                .build(),
            budget_refused: meter
                .u64_counter("triage.retry.budget_refused")
                .with_unit("{retry}")
                .with_description("Retries the shared retry budget refused.")
                .build(),
            route_opened: meter
                .u64_counter("triage.route.opened")
                .with_unit("{event}")
                .with_description("Routes the breaker opened.")
                .build(),
            route_closed: meter
                .u64_counter("triage.route.closed")
                .with_unit("{event}")
                .with_description("Open routes that recovered.")
                .build(),
        }
    }

    /// Instruments created on the global meter provider, under the scope
    /// `tower-triage` with this crate's version. Call it after the
    /// application set its provider: a meter taken before stays a no-op.
    pub fn global() -> Metrics {
        let scope = InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Metrics::new(&global::meter_with_scope(scope))
    }
}

impl Observer for Metrics {
    fn on_attempt(&self, attempt: &AttemptInfo<'_>) {
        // A success has no owner: the duration histogram counts it.
        let Some(owner) = attempt.diagnosis.owner() else {
            return;
        };
        let address = server_address(attempt.uri);
        self.failures.add(
            1,
            &[
                KeyValue::new("http.request.method", method(attempt.method)),
                KeyValue::new("server.address", address.clone()),
                KeyValue::new("triage.owner", owner.as_str()),
                KeyValue::new("triage.class", attempt.diagnosis.class().family()),
                KeyValue::new("triage.decision", attempt.decision.reason()),
            ],
        );
        if let Decision::Stop(Stop::BudgetExhausted) = attempt.decision {
            self.budget_refused
                .add(1, &[KeyValue::new("server.address", address)]);
        }
    }

    fn on_outcome(&self, outcome: &Outcome<'_>) {
        let (status, error) = match outcome {
            Outcome::Response {
                status, diagnosis, ..
            } => (
                Some(status.as_u16()),
                (!diagnosis.is_success()).then(|| diagnosis.class().family()),
            ),
            Outcome::Failed { error, .. } => (None, Some(error.class().family())),
            Outcome::Cancelled { .. } => (None, Some("cancelled")),
        };
        self.record_duration(outcome.call(), status, error);
    }

    fn on_route(&self, event: &RouteEvent<'_>) {
        match event {
            RouteEvent::Opened { route, .. } => self
                .route_opened
                .add(1, &[KeyValue::new("triage.route", route.to_string())]),
            RouteEvent::Recovered { route, .. } => self
                .route_closed
                .add(1, &[KeyValue::new("triage.route", route.to_string())]),
            _ => {}
        }
    }
}

impl Metrics {
    /// One call's duration, with the conventions' attributes: those of the
    /// request, then the status when one came back, then `error.type` when
    /// the call failed.
    fn record_duration(&self, call: &Call<'_>, status: Option<u16>, error: Option<&'static str>) {
        let scheme = call.uri.scheme_str().unwrap_or("http");
        let port = call.uri.port_u16().unwrap_or(match scheme {
            "https" => 443,
            _ => 80,
        });
        let mut attributes = [
            KeyValue::new("http.request.method", method(call.method)),
            KeyValue::new("server.address", server_address(call.uri)),
            KeyValue::new("server.port", i64::from(port)),
            KeyValue::new("http.response.status_code", 0_i64),
            KeyValue::new("error.type", ""),
        ];
        let mut len = 3;
        if let Some(status) = status {
            attributes[len] = KeyValue::new("http.response.status_code", i64::from(status));
            len += 1;
        }
        if let Some(error) = error {
            attributes[len] = KeyValue::new("error.type", error);
            len += 1;
        }
        self.duration
            .record(call.elapsed.as_secs_f64(), &attributes[..len]);
    }
}

/// The method as OpenTelemetry writes it: one of RFC 9110's (and PATCH),
/// or `_OTHER`, so a client that sends odd methods cannot grow the series.
fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The request's host (never its path, query or credentials), shared: a
/// one-entry cache per thread keeps the last host's text, so a service
/// that calls one API allocates it once, not at every point.
fn server_address(uri: &Uri) -> Value {
    thread_local! {
        static LAST: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    }
    let host = crate::host::host_of(uri);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some(kept) if **kept == *host => Value::from(Arc::clone(kept)),
            _ => {
                let kept: Arc<str> = Arc::from(host);
                *last = Some(Arc::clone(&kept));
                Value::from(kept)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_methods_are_written_other() {
        assert_eq!(method(&Method::PATCH), "PATCH");
        assert_eq!(method(&Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
    }
}
