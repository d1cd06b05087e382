//! A tower middleware for outbound HTTP calls: per-attempt evidence,
//! owner-based retries, secret-free events and escalation packets.
//!
//! [`Triage`] wraps any HTTP client — a
//! `Service<http::Request<B>, Response = http::Response<R>>` — and on every
//! attempt records what came back, names the owner of a failure (the
//! connection path, auth, permission, quota, a rate limit, the request, the
//! API's servers, or a gateway), retries by that owner under
//! [`RetryRules`](triage_core::RetryRules), and reports: a [`Report`] for
//! every response ([`ReportExt::report`]), a `tracing` event per attempt (target
//! [`TARGET`]), and a [`triage_core::Error`] with an escalation packet when a
//! call fails.
//!
//! # Example
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::{Layer, Service, ServiceExt};
//! use tower_triage::{ReportExt, TriageLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let connector = tower_triage::connect::http_connector(); // tags DNS and connect failures
//! let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
//! let mut client = TriageLayer::new().layer(client);
//! let request = http::Request::get("http://inference.internal:8080/v1/models").body(Full::new(Bytes::new()))?;
//! let response = client.ready().await?.call(request).await?; // or a triage_core::Error
//! println!("{:?}", response.report());
//! # Ok(()) }
//! ```
//!
//! Any other client works too (without stage tags, failures are classified
//! from the error chain):
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use tower_triage::{ReportExt, TriageLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::from_static(b"{}"))))
//! });
//! let mut client = TriageLayer::new().layer(client);
//! let request = http::Request::get("https://api.openai.com/v1/models").body(Full::new(Bytes::new()))?;
//! let response = client.ready().await?.call(request).await?;
//! assert_eq!(response.report().unwrap().attempts(), 1);
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! - `hyper-util` (default): [`connect`], stage tagging for hyper-util's
//!   legacy `Client`.
//! - `rustls`: a tagged HTTPS connector (rustls, ring provider, system
//!   roots) that shows the server's certificate to a diagnosis window, and
//!   the `probe` module.
//! - `serde`: JSON for the probe's report and the packet.
//! - `http2`: h2 through ALPN (and h2c), with h2's own errors read.
//! - `axum`: `triage_core::Error` answers as `application/problem+json`;
//!   an empty `axum::body::Body` can be sent again.
//! - `tower-http`: [`classify::TriageClassifier`] for tower-http's
//!   `TraceLayer`.
//!
//! # Composing with tower
//!
//! Where a middleware sits says what it sees. Inside the layer (between it
//! and the client), a middleware runs once per *attempt*: a
//! `tower::timeout` there bounds each attempt, and its `Elapsed` is judged a
//! timeout of the stage it fired in. Outside, it runs once per *call*: a
//! timeout there bounds the call with every retry and wait (the layer's
//! own total deadline does the same and says so in the packet), a trace
//! sees the final verdict, a concurrency limit counts calls, not attempts.
//! A `Buffer` works on either side.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_triage::TriageLayer;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let client = service_fn(|_req: http::Request<Full<Bytes>>| async {
//! #     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::new())))
//! # });
//! let client = ServiceBuilder::new()
//!     // Outside: per call (every attempt and wait).
//!     .concurrency_limit(64)
//!     .layer(TriageLayer::new())
//!     // Inside: per attempt.
//!     .timeout(Duration::from_secs(30))
//!     .service(client);
//! let request = http::Request::get("https://api.example.com/v1/models").body(Full::new(Bytes::new()))?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! Request bodies must say whether they can be sent again: see [`body`].
//! Final failure statuses come back as responses (with the [`Report`]) unless
//! [`TriageLayer::errors_for_status`] turns them into errors.
//!
//! # Streaming or whole responses
//!
//! By default the layer is pass-through: bodies stream to the caller as they
//! arrive, and a body that breaks mid-way is reported (with its byte count)
//! but not retried, since the response was already handed over.
//! [`TriageLayer::whole_body`] reads small success bodies inside the attempt
//! instead, so a reset or truncated body is retried like any other failure
//! ([`whole_body`] has the details); [`TriageLayer::sdk`] is the preset that
//! behaves like the official API SDKs (whole bodies, failure statuses as
//! errors, their retries and timeouts).
//!
//! # When the connection path fails
//!
//! Two things are on by default, per route (scheme, host and port):
//! - The [`Breaker`] opens a route after a failure that no retry can fix (a
//!   DNS name that does not exist, an untrusted certificate, a proxy that
//!   refuses), or after 5 connection failures in a row. While the route is
//!   open, requests fail at once with the cached diagnosis, and a
//!   verification probe closes the route once the far side answers.
//! - The [`DiagnosisWindow`] watches the next failures on a route after its
//!   first one, for 10 failures or 5 minutes. It records when each stage
//!   ended, DNS answers, the server's certificate, a proxy's status line and
//!   the error chain, in DEBUG events and in the packet.
//!
//! The [`Observer`] sees both as values ([`RouteEvent`]).
//!
//! The decisions themselves live in [`triage_core`], re-exported as
//! [`core`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod body;
mod capture;
#[cfg(feature = "tower-http")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-http")))]
pub mod classify;
mod config;
#[cfg(feature = "hyper-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper-util")))]
pub mod connect;
mod error;
mod future;
mod host;
mod idempotency;
mod layer;
mod notify;
mod observer;
mod options;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub mod probe;
mod report;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
mod response_body;
mod route;
mod service;
mod share;
mod stream_watch;
mod transport;
pub mod whole_body;

pub use capture::ConnectionLog;
pub use config::PEEK_LIMIT;
pub use error::{StageError, TimeoutError};
pub use future::ResponseFuture;
pub use idempotency::IdempotencyKeys;
pub use layer::TriageLayer;
pub use notify::TARGET;
pub use observer::{AttemptInfo, BodyOutcome, Call, Observer, Outcome, RouteEvent};
pub use options::RequestOptions;
pub use report::{Report, ReportExt};
pub use response_body::ResponseBody;
pub use route::{Breaker, DiagnosisWindow};
pub use service::Triage;
pub use share::{Inbox, RateBucket, Share, SharedWindow};
pub use stream_watch::StreamError;
pub use triage_core as core;
pub use whole_body::{BodyMode, DEFAULT_WHOLE_BODY_CAP};
