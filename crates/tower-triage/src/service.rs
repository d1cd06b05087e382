//! [`Triage`]: the service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower::{Layer, Service};
use triage_core::BoxError;

use crate::body::TryCloneBody;
use crate::config::Config;
use crate::future::ResponseFuture;
use crate::layer::TriageLayer;
use crate::response_body::ResponseBody;

/// Wraps an HTTP client: classifies every attempt, retries by owner, and
/// reports. See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct Triage<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Triage<S> {
    /// Wraps `inner` with the default settings.
    pub fn new(inner: S) -> Triage<S> {
        Triage::from_config(inner, Arc::default())
    }

    pub(crate) fn from_config(inner: S, config: Arc<Config>) -> Triage<S> {
        Triage { inner, config }
    }

    /// A layer with the default settings; see [`TriageLayer`].
    pub fn layer() -> TriageLayer {
        TriageLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, R> Service<Request<B>> for Triage<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<R>>;
    type Error = triage_core::Error;
    type Future = ResponseFuture<S, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|e| {
            crate::future::readiness_error(&http::Method::GET, &http::Uri::default(), e.into())
        })
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was made ready goes with the request; a fresh
        // clone stays behind for the next call.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(ready, request, Arc::clone(&self.config))
    }
}

impl<S> Layer<S> for TriageLayer {
    type Service = Triage<S>;

    fn layer(&self, inner: S) -> Triage<S> {
        Triage::from_config(inner, Arc::clone(&self.config))
    }
}
