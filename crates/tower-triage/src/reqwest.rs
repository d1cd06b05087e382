//! reqwest (feature `reqwest`): the layer as a [`reqwest-middleware`]
//! [`Middleware`], for services whose outbound calls go through reqwest.
//!
//! [`TriageMiddleware`] takes the place of `reqwest-retry`'s middleware, in
//! one line: the same classification, retry rules, budget, route breaker,
//! diagnosis window, events, observer and packets as the tower layer, for
//! it *is* the tower layer, run over the rest of the middleware chain. Every
//! attempt goes through the middlewares after it and the client.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use tower_triage::TriageLayer;
//! use tower_triage::reqwest::{TriageMiddleware, triage_error};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(TriageMiddleware::new(TriageLayer::sdk()))
//!     .build();
//! match client.get("https://api.example.com/v1/models").send().await {
//!     Ok(response) => println!("{}", response.status()),
//!     // The verdict: owner, class, next step, and the packet to hand over.
//!     Err(error) => match triage_error(&error) {
//!         Some(error) => eprintln!("{}: {}", error.class(), error.next_step()),
//!         None => eprintln!("{error}"),
//!     },
//! }
//! # Ok(()) }
//! ```
//!
//! # What it reads
//!
//! - **Stages** from reqwest's errors, through their source chain: a
//!   connection refused, reset or timed out, a DNS failure, a TLS alert or a
//!   certificate rustls rejected are each named as with hyper-util (the
//!   composition matrix runs the same faults through both). reqwest cannot
//!   say which connector step failed beyond that: use the tower layer with
//!   [`connect`](crate::connect)'s tagged connectors for the proxy stage.
//! - **Options** per request: a [`RequestOptions`](crate::RequestOptions)
//!   given through `RequestBuilder::with_extension` (reqwest-middleware's
//!   extensions) or the request's own extensions.
//! - **Bodies:** a body held in memory (`.body(bytes)`, `.json(..)`) is sent
//!   again as it is, at no cost; a streaming body is kept as it is sent, up
//!   to [`DEFAULT_REPLAY_CAP`](crate::body::DEFAULT_REPLAY_CAP), through
//!   [`ReplayBody`].
//!
//! # What comes back
//!
//! - A response, with its [`Report`] in its extensions
//!   ([`ReportExt::report`] works on it), its
//!   body watched for breaks as the layer's own.
//! - An error, `reqwest_middleware::Error::Middleware` holding
//!   [`triage_core::Error`]: [`triage_error`] finds it. The client's own
//!   error is in its source chain.
//!
//! [`reqwest-middleware`]: reqwest_middleware
//! [`Middleware`]: reqwest_middleware::Middleware

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::reqwest::{Body, Request, Response, Url};
use bytes::Bytes;
use http::Extensions;
use http_body::Body as _;
use http_body_util::{Either, Full};
use reqwest_middleware::Next;
use tower::{Layer, Service};

use crate::body::{ReplayBody, TryCloneBody};
use crate::{Report, ReportExt, TriageLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the layer sends it: bytes in memory, or a stream kept
/// for replay.
type Payload = Either<Full<Bytes>, ReplayBody<Body>>;

/// The layer as a reqwest-middleware [`Middleware`](reqwest_middleware::Middleware)
/// (see the [module](self)).
#[derive(Debug, Clone, Default)]
pub struct TriageMiddleware {
    layer: TriageLayer,
}

impl TriageMiddleware {
    /// The middleware of `layer`: its settings, and its budget, breaker and
    /// observers shared with every clone of `layer`.
    pub fn new(layer: TriageLayer) -> TriageMiddleware {
        TriageMiddleware { layer }
    }
}

impl From<TriageLayer> for TriageMiddleware {
    fn from(layer: TriageLayer) -> TriageMiddleware {
        TriageMiddleware::new(layer)
    }
}

/// The layer's error behind a reqwest-middleware error, when the layer
/// gave it (always, for an error that went through [`TriageMiddleware`]).
pub fn triage_error(error: &reqwest_middleware::Error) -> Option<&triage_core::Error> {
    match error {
        reqwest_middleware::Error::Middleware(error) => error.downcast_ref(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for TriageMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut request = into_http(request)?;
        if !extensions.is_empty() {
            request.extensions_mut().extend(extensions.clone());
        }
        let inner = Attempts {
            next,
            extensions: extensions.clone(),
        };
        let mut service = self.layer.layer(inner);
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        match service.call(request).await {
            Ok(response) => Ok(into_reqwest(response)),
            Err(error) => Err(reqwest_middleware::Error::middleware(error)),
        }
    }
}

/// A reqwest request as the layer takes it, its body made replayable.
fn into_http(mut request: Request) -> Result<http::Request<Payload>, ::reqwest::Error> {
    let body = request.body_mut().take();
    let request = http::Request::<Body>::try_from(request)?;
    Ok(request.map(|_| payload(body)))
}

/// A body in memory as its bytes (no copy); a stream kept for replay.
fn payload(body: Option<Body>) -> Payload {
    let Some(mut body) = body else {
        return Either::Left(Full::new(Bytes::new()));
    };
    if body.as_bytes().is_none() {
        return Either::Right(ReplayBody::new(body));
    }
    // A body in memory yields its bytes, whole, at the first poll.
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(bytes) => Either::Left(Full::new(bytes)),
            Err(_) => Either::Right(ReplayBody::new(body)),
        },
        Poll::Ready(None) => Either::Left(Full::new(Bytes::new())),
        _ => Either::Right(ReplayBody::new(body)),
    }
}

/// One attempt's request body as reqwest takes it.
fn into_body(payload: Payload) -> Body {
    match payload {
        Either::Left(full) => match full.in_memory(usize::MAX) {
            Some(bytes) => Body::from(bytes),
            None => Body::wrap(full),
        },
        Either::Right(stream) => Body::wrap(stream),
    }
}

/// The URL the client answered from, carried through the layer.
#[derive(Debug, Clone)]
struct AnsweredFrom(Url);

/// The layer's response as reqwest's, with its URL and its [`Report`].
fn into_reqwest(response: http::Response<crate::ResponseBody<Body>>) -> Response {
    let report = response.report();
    let (mut parts, body) = response.into_parts();
    let url = parts.extensions.remove::<AnsweredFrom>();
    if let Some(report) = report {
        parts.extensions.insert(report);
    }
    // reqwest reads the URL from an extension only its response builder
    // sets.
    let mut head = http::Response::builder();
    if let Some(AnsweredFrom(url)) = url {
        head = ::reqwest::ResponseBuilderExt::url(head, url);
    }
    let mut response = head
        .body(Body::wrap(body))
        .expect("a builder with a URL only");
    *response.status_mut() = parts.status;
    *response.version_mut() = parts.version;
    *response.headers_mut() = parts.headers;
    response.extensions_mut().extend(parts.extensions);
    Response::from(response)
}

/// The rest of the middleware chain as a tower service: one call per
/// attempt, each with a copy of the chain's extensions.
struct Attempts<'a> {
    next: Next<'a>,
    extensions: Extensions,
}

impl Clone for Attempts<'_> {
    fn clone(&self) -> Self {
        Attempts {
            next: self.next.clone(),
            extensions: self.extensions.clone(),
        }
    }
}

impl<'a> Service<http::Request<Payload>> for Attempts<'a> {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send + 'a>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Payload>) -> Self::Future {
        let next = self.next.clone();
        let mut extensions = self.extensions.clone();
        Box::pin(async move {
            let request = Request::try_from(request.map(into_body))?;
            let response = match next.run(request, &mut extensions).await {
                Ok(response) => response,
                Err(reqwest_middleware::Error::Reqwest(error)) => return Err(error.into()),
                Err(reqwest_middleware::Error::Middleware(error)) => return Err(error.into()),
            };
            let url = response.url().clone();
            let mut response = http::Response::<Body>::from(response);
            response.extensions_mut().insert(AnsweredFrom(url));
            Ok(response)
        })
    }
}

impl ReportExt for Response {
    /// The report the middleware put in the response's extensions.
    fn report(&self) -> Option<Report> {
        self.extensions().get::<Report>().cloned()
    }
}

impl std::fmt::Debug for Attempts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_in_memory_is_taken_without_a_copy_and_clones() {
        let bytes = Bytes::from_static(b"{\"model\":\"m\"}");
        let payload = payload(Some(Body::from(bytes.clone())));
        let Either::Left(full) = &payload else {
            panic!("a body in memory stays in memory");
        };
        let again = full.try_clone_body().expect("in memory: copied");
        let body = into_body(Either::Left(again));
        assert_eq!(body.as_bytes(), Some(&bytes[..]), "sent again as bytes");
        let sent = payload.collect().await.unwrap().to_bytes();
        assert_eq!(sent, bytes);
    }

    #[tokio::test]
    async fn no_body_is_an_empty_one() {
        let payload = payload(None);
        assert!(payload.try_clone_body().is_some());
        assert!(payload.collect().await.unwrap().to_bytes().is_empty());
    }
}
