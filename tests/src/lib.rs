//! The composition matrix: the same faults, composed the ways users compose
//! the layer, must get the same verdict.
//!
//! Every outbound call goes through the layer, so its verdict must not
//! depend on how it was composed: HTTP/1 or HTTP/2, hyper-util or reqwest,
//! a `tower::timeout` inside it, a `Buffer` or a `TraceLayer` around or
//! inside it. This crate builds each composition ([`Composition`]) over one
//! body and error type ([`Svc`]), runs a call and reads its [`Verdict`]: the
//! owner, the class family, the attempts, and what the next healthy call on
//! the same route gets (the breaker's state). `tests/matrix.rs` compares
//! every composition with hyper-util over HTTP/1, fault by fault; the
//! reqwest composition lives there, as reqwest is a dev-dependency.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() {
//! use triage_matrix::{Composition, Log, build, roots, verdict_of};
//!
//! let log = Log::default();
//! let mut svc = build(Composition::H2c, roots(), &log);
//! let verdict = verdict_of(&mut svc, "http://svc.test:8080/ok", "http://svc.test:8080/ok", &log).await;
//! println!("{verdict:?}");
//! # }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::util::{BoxCloneService, BoxCloneSyncService};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_triage::core::{Backoff, Class, Fault, Owner, RetryRules, Stage, Stop};
use tower_triage::{BodyOutcome, Observer, Report, TriageLayer};

/// An error of any composition.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request every composition takes.
pub type Req = http::Request<Full<Bytes>>;

/// The response body every composition gives.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A composition, boxed to one type.
pub type Svc = BoxCloneService<Req, http::Response<Body>, BoxError>;

/// The per-attempt timeout: the layer's own, or (in
/// [`Composition::TimeoutInside`]) a `tower::timeout` inside the layer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);

/// The ways a user composes the layer over a hyper-util client.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Composition {
    /// (a) hyper-util's legacy client over HTTP/1 (the reference).
    Http1,
    /// (b) hyper-util with `http2_only`: h2c for `http://`, h2 for `https://`.
    H2c,
    /// (c) h2 over TLS, chosen through ALPN.
    H2Tls,
    /// (d) a `tower::timeout` inside the layer, instead of its own.
    TimeoutInside,
    /// (e) `Buffer` around the layer, boxed in a `BoxCloneSyncService`.
    Buffered,
    /// (f) tower-http's `TraceLayer` outside the layer.
    TraceOutside,
    /// (f) tower-http's `TraceLayer` inside the layer.
    TraceInside,
}

impl Composition {
    /// Every composition of this crate.
    pub const ALL: [Composition; 7] = [
        Composition::Http1,
        Composition::H2c,
        Composition::H2Tls,
        Composition::TimeoutInside,
        Composition::Buffered,
        Composition::TraceOutside,
        Composition::TraceInside,
    ];

    /// Whether it speaks HTTP/2 (its upstreams must too).
    pub fn http2(self) -> bool {
        matches!(self, Composition::H2c | Composition::H2Tls)
    }
}

/// What an observer saw of response bodies: the faults of those that broke.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Fault>>>);

impl Log {
    /// The faults of the bodies that broke, in order.
    pub fn body_faults(&self) -> Vec<Fault> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Observer for Log {
    fn on_body(&self, body: &BodyOutcome) {
        if let BodyOutcome::Failed { fault, .. } = body {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(*fault);
        }
    }
}

/// The trust store of every composition: the testkit's CA (one per
/// process, see `triage_testkit::ca_der`).
pub fn roots() -> rustls::RootCertStore {
    let der = triage_testkit::ca_der().expect("the testkit CA");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(der.to_vec().into())
        .expect("the testkit CA parses");
    roots
}

/// The layer every composition uses: quick backoff, the per-attempt
/// timeout unless a `tower::timeout` takes its place, `log` as observer.
pub fn layer(own_timeout: bool, log: &Log) -> TriageLayer {
    let backoff =
        Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).expect("a valid backoff");
    TriageLayer::new()
        .rules(RetryRules::default().backoff(backoff))
        .attempt_timeout(own_timeout.then_some(ATTEMPT_TIMEOUT))
        .observer(log.clone())
}

/// Boxes a composition into [`Svc`].
pub fn unify<S, B>(service: S) -> Svc
where
    S: Service<Req, Response = http::Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneService::new(
        service
            .map_response(|response: http::Response<B>| {
                response.map(|body| body.map_err(Into::into).boxed_unsync())
            })
            .map_err(Into::into),
    )
}

/// Builds `composition` over a fresh hyper-util client trusting `roots`
/// (names resolved by the testkit's resolver: `*.test` is 127.0.0.1).
pub fn build(composition: Composition, roots: rustls::RootCertStore, log: &Log) -> Svc {
    let connector =
        tower_triage::connect::https_connector_with(triage_testkit::Resolver::new(), roots)
            .expect("a TLS configuration");
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(composition == Composition::H2c);
    let client = builder.build::<_, Full<Bytes>>(connector);
    match composition {
        Composition::Http1 | Composition::H2c | Composition::H2Tls => {
            unify(layer(true, log).layer(client))
        }
        Composition::TimeoutInside => unify(
            ServiceBuilder::new()
                .layer(layer(false, log))
                .timeout(ATTEMPT_TIMEOUT)
                .service(client),
        ),
        Composition::Buffered => {
            let buffered = ServiceBuilder::new()
                .buffer(64)
                .layer(layer(true, log))
                .service(client);
            unify(BoxCloneSyncService::new(buffered))
        }
        Composition::TraceOutside => unify(
            ServiceBuilder::new()
                .layer(tower_http::trace::TraceLayer::new_for_http())
                .layer(layer(true, log))
                .service(client),
        ),
        Composition::TraceInside => unify(
            ServiceBuilder::new()
                .layer(layer(true, log))
                .layer(tower_http::trace::TraceLayer::new_for_http())
                .service(client),
        ),
    }
}

/// What the next healthy call on the route got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// A 200: the route is not open.
    Healthy,
    /// Refused by the open route, without a connection.
    RouteOpen,
    /// Anything else (a bug): its class.
    Failed(String),
}

/// One composition's verdict on one fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Who owns the failure.
    pub owner: Option<Owner>,
    /// The class family: `transport.<stage group>.<fault group>` (stage
    /// groups `dns`, `connect`, `proxy`, `tls`, `exchange` for write and
    /// await-headers, `body`; fault groups `lost` for a connection reset,
    /// closed or that never carried the request, `timeout`,
    /// `certificate`, else the fault), or the class's first word for an
    /// answer (`rate_limited`, `server_error`).
    pub family: String,
    /// Attempts made.
    pub attempts: u32,
    /// What the next healthy call on the same route got.
    pub after: After,
}

/// A class's family (see [`Verdict::family`]).
pub fn family(class: &Class) -> String {
    match class.transport() {
        Some(failure) => {
            let group = match failure.stage() {
                Stage::Write | Stage::AwaitHeaders => "exchange",
                stage => stage.as_str(),
            };
            // A connection lost is one family whether it was reset, closed,
            // or never carried the request (HTTP/1 and HTTP/2 tell these
            // apart differently).
            let what = match failure.fault() {
                Fault::Reset
                | Fault::Closed
                | Fault::Unsent
                | Fault::StreamReset
                | Fault::StreamRefused => "lost",
                Fault::Timeout(_) => "timeout",
                Fault::Certificate(_) => "certificate",
                fault => fault.as_str(),
            };
            format!("transport.{group}.{what}")
        }
        None => {
            let text = class.to_string();
            text.split('.').next().unwrap_or_default().to_owned()
        }
    }
}

/// Calls `url` once (bounded: 20 s).
pub async fn call(svc: &mut Svc, url: &str) -> Result<http::Response<Body>, BoxError> {
    let request = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    tokio::time::timeout(Duration::from_secs(20), async {
        svc.ready().await?.call(request).await
    })
    .await
    .expect("every call is bounded")
}

/// Calls `fault_url`, reads the verdict, then calls `healthy_url` on the
/// same route and says what it got.
pub async fn verdict_of(svc: &mut Svc, fault_url: &str, healthy_url: &str, log: &Log) -> Verdict {
    let mut verdict = judge(svc, fault_url, log).await;
    verdict.after = after(svc, healthy_url).await;
    verdict
}

/// Calls `fault_url` and reads its verdict (`after` left
/// [`After::Healthy`], for [`after`] to fill in).
pub async fn judge(svc: &mut Svc, fault_url: &str, log: &Log) -> Verdict {
    let (owner, family, attempts) = match call(svc, fault_url).await {
        Err(error) => {
            let error = error
                .downcast::<tower_triage::core::Error>()
                .unwrap_or_else(|other| panic!("not triage's error: {other}"));
            (error.owner(), family(&error.class()), error.attempts())
        }
        Ok(response) => {
            let report = Report::of(&response).expect("a report behind any body change");
            if response.status().as_u16() >= 400 {
                let diagnosis = report.diagnosis();
                (
                    diagnosis.owner(),
                    family(&diagnosis.class()),
                    report.attempts(),
                )
            } else {
                let body = response.into_body().collect().await;
                assert!(body.is_err(), "the fault's body ended whole");
                let faults = log.body_faults();
                assert_eq!(faults.len(), 1, "the observer saw the body break");
                let what = match faults[0] {
                    Fault::Reset | Fault::Closed | Fault::StreamReset => "lost",
                    fault => fault.as_str(),
                };
                (
                    Some(Owner::ConnectionPath),
                    format!("transport.body.{what}"),
                    report.attempts(),
                )
            }
        }
    };
    Verdict {
        owner,
        family,
        attempts,
        after: After::Healthy,
    }
}

/// Calls `healthy_url` (a route that works, unless it was opened) and says
/// what it got.
pub async fn after(svc: &mut Svc, healthy_url: &str) -> After {
    match call(svc, healthy_url).await {
        Ok(response) if response.status() == 200 => After::Healthy,
        Ok(response) => After::Failed(format!("status {}", response.status())),
        Err(error) => match error.downcast::<tower_triage::core::Error>() {
            Ok(error) if error.stop() == Stop::RouteOpen => After::RouteOpen,
            Ok(error) => After::Failed(error.class().to_string()),
            Err(other) => After::Failed(other.to_string()),
        },
    }
}
