//! Stage tagging for hyper-util's legacy `Client` (feature `hyper-util`).
//!
//! hyper and hyper-util do not say in data where a connection failed; their
//! messages are not stable. These wrappers tag an error with its [`Stage`]
//! where it happens — [`TagResolver`] around the resolver (DNS),
//! [`StageLayer`] around a connector (connect, proxy, TLS) — and the layer
//! reads the innermost tag first.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::Layer;
//! use tower_triage::TriageLayer;
//!
//! let connector = tower_triage::connect::http_connector();
//! let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
//! let client = TriageLayer::new().layer(client);
//! # let _ = client;
//! ```

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use triage_core::{BoxError, Stage};

pub use crate::transport::StageError;
use crate::transport::chain;

fn is_tagged(error: &(dyn StdError + 'static)) -> bool {
    chain(error).iter().any(|e| e.is::<StageError>())
}

fn tag(stage: Stage, error: BoxError) -> BoxError {
    if is_tagged(&*error) {
        error
    } else {
        Box::new(StageError::new(stage, error))
    }
}

/// Tags a resolver's errors as the DNS stage.
#[derive(Debug, Clone)]
pub struct TagResolver<R> {
    inner: R,
}

impl<R> TagResolver<R> {
    /// Wraps a resolver (a `Service<Name>`).
    pub fn new(inner: R) -> TagResolver<R> {
        TagResolver { inner }
    }

    /// The inner resolver.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner resolver, mutably.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner resolver.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R> Service<Name> for TagResolver<R>
where
    R: Service<Name>,
    R::Error: Into<BoxError>,
{
    type Response = R::Response;
    type Error = StageError;
    type Future = TagFuture<R::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StageError>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| StageError::new(Stage::Dns, e))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        TagFuture {
            inner: self.inner.call(name),
            stage: Stage::Dns,
        }
    }
}

pin_project! {
    /// The future of a tagged call.
    #[derive(Debug)]
    pub struct TagFuture<F> {
        #[pin]
        inner: F,
        stage: Stage,
    }
}

impl<F, T, E> Future for TagFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, StageError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let stage = *this.stage;
        let polled = this.inner.poll(cx);
        if polled.is_pending() {
            crate::transport::connect_pending(stage);
        }
        Poll::Ready(ready!(polled).map_err(|e| StageError::new(stage, e)))
    }
}

/// Tags a connector's untagged errors with a stage; an error that already
/// carries a tag (from an inner resolver or connector) keeps it.
#[derive(Debug, Clone, Copy)]
pub struct StageLayer {
    stage: Stage,
}

impl StageLayer {
    /// Tags with `stage`: [`Stage::Connect`] around a TCP connector,
    /// [`Stage::Proxy`] around a tunnel, [`Stage::Tls`] around a TLS
    /// connector.
    pub fn new(stage: Stage) -> StageLayer {
        StageLayer { stage }
    }
}

impl<C> Layer<C> for StageLayer {
    type Service = TagConnect<C>;

    fn layer(&self, inner: C) -> TagConnect<C> {
        TagConnect {
            inner,
            stage: self.stage,
        }
    }
}

/// A connector whose untagged errors are tagged; see [`StageLayer`].
#[derive(Debug, Clone)]
pub struct TagConnect<C> {
    inner: C,
    stage: Stage,
}

impl<C> TagConnect<C> {
    /// The inner connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The inner connector, mutably (e.g. to set `HttpConnector`'s connect
    /// timeout).
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// The inner connector.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C> Service<Uri> for TagConnect<C>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = TagConnectFuture<C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let stage = self.stage;
        self.inner.poll_ready(cx).map_err(|e| tag(stage, e.into()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        TagConnectFuture {
            inner: self.inner.call(uri),
            stage: self.stage,
        }
    }
}

pin_project! {
    /// The future of a tagged connect.
    #[derive(Debug)]
    pub struct TagConnectFuture<F> {
        #[pin]
        inner: F,
        stage: Stage,
    }
}

impl<F, T, E> Future for TagConnectFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let stage = *this.stage;
        let polled = this.inner.poll(cx);
        if polled.is_pending() {
            // Lets a dropped call name the stage it was at.
            crate::transport::connect_pending(stage);
        }
        Poll::Ready(ready!(polled).map_err(|e| tag(stage, e.into())))
    }
}

/// hyper-util's `HttpConnector` over `resolver`, with DNS and connect
/// failures tagged. It accepts `https://` URIs so that a TLS connector can
/// wrap it.
pub fn tagged_connector<R>(resolver: R) -> TagConnect<HttpConnector<TagResolver<R>>> {
    let mut http = HttpConnector::new_with_resolver(TagResolver::new(resolver));
    http.enforce_http(false);
    StageLayer::new(Stage::Connect).layer(http)
}

/// [`tagged_connector`] over the system resolver.
pub fn http_connector() -> TagConnect<HttpConnector<TagResolver<GaiResolver>>> {
    tagged_connector(GaiResolver::new())
}

/// The tagged HTTPS connector built by [`https_connector`]: TLS failures are
/// tagged [`Stage::Tls`] over the tagged TCP connector.
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub type HttpsTagged<R> =
    TagConnect<hyper_rustls::HttpsConnector<TagConnect<HttpConnector<TagResolver<R>>>>>;

/// A tagged HTTPS (and HTTP) connector over `resolver`, trusting `roots`
/// (rustls with the ring provider, HTTP/1.1).
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub fn https_connector_with<R>(
    resolver: R,
    roots: rustls::RootCertStore,
) -> Result<HttpsTagged<R>, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tagged_connector(resolver));
    Ok(StageLayer::new(Stage::Tls).layer(https))
}

/// A tagged HTTPS connector over the system resolver, trusting the system's
/// root certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).
/// Fails when no root certificate could be loaded.
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub fn https_connector() -> Result<HttpsTagged<GaiResolver>, BoxError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no root certificate could be loaded ({} errors)",
            found.errors.len()
        )
        .into());
    }
    Ok(https_connector_with(GaiResolver::new(), roots)?)
}

/// The tagged connector through an HTTP `CONNECT` proxy built by
/// [`proxied_connector`].
pub type ProxiedTagged<R> = TagConnect<Tunnel<TagConnect<HttpConnector<TagResolver<R>>>>>;

/// A connector that reaches every destination through the HTTP proxy at
/// `proxy` with `CONNECT` (hyper-util's `Tunnel`), optionally with a
/// `Proxy-Authorization` value. Every failure on the way to and through the
/// proxy — the proxy refusing or not listening, asking for credentials (407),
/// refusing the tunnel — is tagged [`Stage::Proxy`], so it is never blamed on
/// the origin; DNS failures (of the proxy's name) stay [`Stage::Dns`].
pub fn proxied_connector<R>(
    resolver: R,
    proxy: Uri,
    authorization: Option<http::HeaderValue>,
) -> ProxiedTagged<R> {
    let mut http = HttpConnector::new_with_resolver(TagResolver::new(resolver));
    http.enforce_http(false);
    let to_proxy = StageLayer::new(Stage::Proxy).layer(http);
    let mut tunnel = Tunnel::new(proxy, to_proxy);
    if let Some(value) = authorization {
        tunnel = tunnel.with_auth(value);
    }
    StageLayer::new(Stage::Proxy).layer(tunnel)
}

/// The tagged HTTPS connector through a `CONNECT` proxy built by
/// [`proxied_https_connector`].
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub type ProxiedHttpsTagged<R> = TagConnect<hyper_rustls::HttpsConnector<ProxiedTagged<R>>>;

/// HTTPS (and HTTP) through the HTTP proxy at `proxy`: the tunnel as in
/// [`proxied_connector`], then TLS with the origin over it, trusting
/// `roots`. Proxy failures are tagged [`Stage::Proxy`], TLS failures
/// [`Stage::Tls`].
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub fn proxied_https_connector<R>(
    resolver: R,
    proxy: Uri,
    authorization: Option<http::HeaderValue>,
    roots: rustls::RootCertStore,
) -> Result<ProxiedHttpsTagged<R>, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(proxied_connector(resolver, proxy, authorization));
    Ok(StageLayer::new(Stage::Tls).layer(https))
}
