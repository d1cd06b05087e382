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
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Uri;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connection, HttpConnector, HttpInfo};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use triage_core::{BoxError, Stage};

use crate::capture;
pub use crate::error::StageError;
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
    type Response = Answers<R::Response>;
    type Error = StageError;
    type Future = TagFuture<R::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StageError>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| StageError::new(Stage::Dns, e))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        capture::resolving(name.as_str());
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
    type Output = Result<Answers<T>, StageError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let stage = *this.stage;
        let polled = this.inner.poll(cx);
        if polled.is_pending() {
            crate::transport::connect_pending(stage);
        }
        let answered = ready!(polled);
        capture::stage_ended(stage, answered.is_ok());
        Poll::Ready(match answered {
            Ok(inner) => Ok(Answers { inner }),
            Err(e) => Err(StageError::new(stage, e)),
        })
    }
}

/// The addresses a [`TagResolver`] answered: the inner resolver's, each
/// written down when a diagnosis window watches the route.
#[derive(Debug)]
pub struct Answers<I> {
    inner: I,
}

impl<I: Iterator<Item = SocketAddr>> Iterator for Answers<I> {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        let addr = self.inner.next()?;
        // The connector reads the answers in the poll that got them.
        capture::answer(addr);
        Some(addr)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
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
    C::Response: Connection,
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
    T: Connection,
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
        let connected = ready!(polled);
        if let Ok(io) = &connected {
            // The address connected to (the origin's, or the proxy's), read
            // only while capturing, by the innermost tagged connector.
            if capture::wants_address() {
                let mut extensions = http::Extensions::new();
                io.connected().get_extras(&mut extensions);
                if let Some(info) = extensions.get::<HttpInfo>() {
                    capture::connected(info.remote_addr());
                }
            }
        }
        capture::stage_ended(stage, connected.is_ok());
        Poll::Ready(connected.map_err(|e| tag(stage, e.into())))
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
/// (rustls with the ring provider). It offers HTTP/1.1, and with the
/// `http2` feature h2 too, through ALPN (the server picks; hyper-util's
/// client then speaks what was negotiated).
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub fn https_connector_with<R>(
    resolver: R,
    roots: rustls::RootCertStore,
) -> Result<HttpsTagged<R>, rustls::Error> {
    let config = tls_config(roots)?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1();
    #[cfg(feature = "http2")]
    let builder = builder.enable_http2();
    let https = builder.wrap_connector(tagged_connector(resolver));
    Ok(StageLayer::new(Stage::Tls).layer(https))
}

/// rustls with the ring provider, trusting `roots`, through a verifier
/// that shows the server's certificate to a diagnosis window's capture.
#[cfg(feature = "rustls")]
pub(crate) fn tls_config(
    roots: rustls::RootCertStore,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    if roots.is_empty() {
        // webpki's verifier builder refuses an empty store; rustls's own
        // default accepts it (and trusts nothing).
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(ShowingVerifier { inner }))
        .with_no_client_auth())
}

/// webpki's verifier, which first shows the server's certificate to a
/// diagnosis window's capture (a no-op unless one watches the route).
#[cfg(feature = "rustls")]
#[derive(Debug)]
struct ShowingVerifier {
    inner: std::sync::Arc<rustls::client::WebPkiServerVerifier>,
}

#[cfg(feature = "rustls")]
impl rustls::client::danger::ServerCertVerifier for ShowingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        // The handshake runs inside the attempt's poll.
        capture::peer(end_entity.as_ref());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// The standard client: hyper-util's legacy `Client` over the tagged
/// HTTPS connector (system resolver and roots), wrapped in [`Triage`]. A
/// name for an axum `State` field or a struct, instead of a five-level type.
///
/// ```no_run
/// use tower_triage::TriageLayer;
/// use tower_triage::connect::{HttpsClient, https_client};
///
/// #[derive(Clone)]
/// struct AppState {
///     upstream: HttpsClient,
/// }
///
/// # fn main() -> Result<(), tower_triage::core::BoxError> {
/// let state = AppState { upstream: https_client(&TriageLayer::sdk())? };
/// # let _ = state; Ok(()) }
/// ```
///
/// [`Triage`]: crate::Triage
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub type HttpsClient<B = http_body_util::Full<bytes::Bytes>> =
    crate::Triage<hyper_util::client::legacy::Client<HttpsTagged<GaiResolver>, B>>;

/// [`HttpsClient`] with `layer`'s settings (HTTP/2 too, with feature
/// `http2`, when the server offers it). Fails when no root certificate
/// could be loaded.
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub fn https_client<B>(layer: &crate::TriageLayer) -> Result<HttpsClient<B>, BoxError>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Ok(client_with(layer, https_connector()?))
}

/// hyper-util's legacy `Client` over `connector` (a tagged one, for stage
/// detail), on tokio, wrapped in `layer`: the client the probe and the
/// tour build for each connector.
pub fn client_with<C, B>(
    layer: &crate::TriageLayer,
    connector: C,
) -> crate::Triage<hyper_util::client::legacy::Client<C, B>>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
    B: http_body::Body + Send,
    B::Data: Send,
{
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector);
    layer.layer(client)
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
pub type ProxiedTagged<R> =
    TagConnect<Tunnel<TagConnect<ProxyLine<HttpConnector<TagResolver<R>>>>>>;

/// A connector to a proxy whose connections show the proxy's first line
/// (its answer to `CONNECT`, e.g. `HTTP/1.1 403 Forbidden`) to a diagnosis
/// window's capture; hyper-util's `Tunnel` keeps it to itself.
#[derive(Debug, Clone)]
pub struct ProxyLine<C> {
    inner: C,
}

impl<C> ProxyLine<C> {
    /// The inner connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The inner connector, mutably.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }
}

impl<C> Service<Uri> for ProxyLine<C>
where
    C: Service<Uri>,
{
    type Response = ProxyStream<C::Response>;
    type Error = C::Error;
    type Future = ProxyLineFuture<C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        ProxyLineFuture {
            inner: self.inner.call(uri),
        }
    }
}

pin_project! {
    /// The future of a [`ProxyLine`] connect.
    #[derive(Debug)]
    pub struct ProxyLineFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for ProxyLineFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<ProxyStream<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let connected = ready!(self.project().inner.poll(cx));
        Poll::Ready(connected.map(|inner| ProxyStream {
            inner,
            // Watched only while a diagnosis window captures the attempt.
            line: capture::on().then(Vec::new),
        }))
    }
}

/// A connection to a proxy, whose first line (the answer to `CONNECT`) is
/// shown to a diagnosis window's capture (see [`ProxyLine`]); otherwise the
/// connection itself.
#[derive(Debug)]
pub struct ProxyStream<T> {
    inner: T,
    // The first line so far, while it is watched.
    line: Option<Vec<u8>>,
}

/// At most this much of a proxy's first line is kept.
const MAX_LINE: usize = 256;

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for ProxyStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.line.is_none() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // Read through a small buffer of our own to see the bytes.
        let mut raw = [0u8; MAX_LINE];
        let n = buf.remaining().min(MAX_LINE);
        let mut mine = hyper::rt::ReadBuf::new(&mut raw[..n]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, mine.unfilled()))?;
        let read = mine.filled();
        buf.put_slice(read);
        if let Some(line) = this.line.as_mut() {
            let end = read.iter().position(|&b| b == b'\n');
            let take = end.unwrap_or(read.len()).min(MAX_LINE - line.len());
            line.extend_from_slice(&read[..take]);
            if end.is_some() || line.len() >= MAX_LINE || read.is_empty() {
                if let Some(line) = this.line.take() {
                    capture::proxy_status(&line);
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for ProxyStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl<T: hyper_util::client::legacy::connect::Connection>
    hyper_util::client::legacy::connect::Connection for ProxyStream<T>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.inner.connected()
    }
}

/// A connector that reaches every destination through the HTTP proxy at
/// `proxy` with `CONNECT` (hyper-util's `Tunnel`), optionally with a
/// `Proxy-Authorization` value. Every failure on the way to and through the
/// proxy — the proxy refusing or not listening, asking for credentials (407),
/// refusing the tunnel — is tagged [`Stage::Proxy`], so it is never blamed on
/// the origin; DNS failures (of the proxy's name) stay [`Stage::Dns`].
///
/// Credentials in the proxy URL's user info (`http://user:pass@proxy:3128`,
/// percent-encoded as in a URL) are sent as `Proxy-Authorization: Basic`
/// when no `authorization` is given, marked sensitive; the URL's user info
/// itself goes nowhere.
pub fn proxied_connector<R>(
    resolver: R,
    proxy: Uri,
    authorization: Option<http::HeaderValue>,
) -> ProxiedTagged<R> {
    let mut http = HttpConnector::new_with_resolver(TagResolver::new(resolver));
    http.enforce_http(false);
    let to_proxy = StageLayer::new(Stage::Proxy).layer(ProxyLine { inner: http });
    let authorization = authorization.or_else(|| proxy_authorization(&proxy));
    let mut tunnel = Tunnel::new(without_user_info(proxy), to_proxy);
    if let Some(value) = authorization {
        tunnel = tunnel.with_auth(value);
    }
    StageLayer::new(Stage::Proxy).layer(tunnel)
}

/// `Proxy-Authorization: Basic` for the user info of `proxy`'s URL, if it
/// has any (percent-decoded); marked sensitive.
pub fn proxy_authorization(proxy: &Uri) -> Option<http::HeaderValue> {
    let authority = proxy.authority()?.as_str();
    let (user_info, _) = authority.rsplit_once('@')?;
    let credentials = triage_core::redact::percent_decode(user_info.as_bytes());
    let mut value = http::HeaderValue::from_str(&format!("Basic {}", base64(&credentials))).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// `uri` without its user info.
fn without_user_info(uri: Uri) -> Uri {
    let Some(authority) = uri.authority() else {
        return uri;
    };
    let Some((_, host)) = authority.as_str().rsplit_once('@') else {
        return uri;
    };
    let host = host.to_owned();
    let mut parts = uri.into_parts();
    parts.authority = host.parse().ok();
    Uri::from_parts(parts).unwrap_or_default()
}

/// Standard base64 (RFC 4648, padded).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
    let config = tls_config(roots)?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1();
    #[cfg(feature = "http2")]
    let builder = builder.enable_http2();
    let https = builder.wrap_connector(proxied_connector(resolver, proxy, authorization));
    Ok(StageLayer::new(Stage::Tls).layer(https))
}

#[cfg(test)]
mod proxy_credentials {
    use super::*;

    #[test]
    fn user_info_becomes_basic_credentials_and_leaves_the_url() {
        let proxy: Uri = "http://us%40er:p%3Ass@proxy.test:3128".parse().unwrap();
        let value = proxy_authorization(&proxy).unwrap();
        // base64("us@er:p:ss")
        assert_eq!(value, "Basic dXNAZXI6cDpzcw==");
        assert!(value.is_sensitive());
        assert_eq!(
            without_user_info(proxy).to_string(),
            "http://proxy.test:3128/"
        );
        let bare: Uri = "http://proxy.test:3128".parse().unwrap();
        assert!(proxy_authorization(&bare).is_none());
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{self, Capture};

    /// A connection that answers `text`, `step` bytes per read.
    struct Trickle {
        text: &'static [u8],
        step: usize,
    }

    impl hyper::rt::Read for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            mut buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.step.min(self.text.len()).min(buf.remaining());
            buf.put_slice(&self.text[..n]);
            self.text = &self.text[n..];
            Poll::Ready(Ok(()))
        }
    }

    /// Reads `stream` to its end in reads of up to 7 bytes, inside a
    /// capture; what was read, and the captured detail.
    fn read_all(stream: &mut ProxyStream<Trickle>) -> (Vec<u8>, triage_core::Detail) {
        let mut capture = Some(Capture::new(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        for _ in 0..1000 {
            let mut raw = [0u8; 7];
            let mut buf = hyper::rt::ReadBuf::new(&mut raw);
            let polled = capture::scope(&mut capture, || {
                hyper::rt::Read::poll_read(Pin::new(&mut *stream), &mut cx, buf.unfilled())
            });
            assert!(matches!(polled, Poll::Ready(Ok(()))));
            if buf.filled().is_empty() {
                break;
            }
            out.extend_from_slice(buf.filled());
        }
        let detail = capture
            .map(|c| c.into_detail())
            .unwrap_or_else(|| triage_core::Detail::new(0));
        (out, detail)
    }

    #[test]
    fn a_proxys_first_line_is_seen_whatever_the_reads_and_every_byte_passes() {
        const ANSWER: &[u8] =
            b"HTTP/1.1 403 Forbidden by policy\r\nContent-Length: 0\r\n\r\nAFTER THE HEAD";
        for step in [1, 2, 3, 5, 8, 64, 4096] {
            let mut stream = ProxyStream {
                inner: Trickle { text: ANSWER, step },
                line: Some(Vec::new()),
            };
            let (read, detail) = read_all(&mut stream);
            assert_eq!(read, ANSWER, "step {step}");
            assert_eq!(
                detail.proxy_status(),
                Some("HTTP/1.1 403 Forbidden by policy"),
                "step {step}"
            );
            assert!(stream.line.is_none(), "still watching after the line");
        }
    }

    #[test]
    fn a_line_that_never_ends_is_kept_bounded() {
        static ENDLESS: [u8; 4096] = [b'x'; 4096];
        let mut stream = ProxyStream {
            inner: Trickle {
                text: &ENDLESS,
                step: 100,
            },
            line: Some(Vec::new()),
        };
        let (read, detail) = read_all(&mut stream);
        assert_eq!(read.len(), ENDLESS.len());
        let line = detail.proxy_status().unwrap_or_default();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.starts_with("xxxx"));
    }

    #[test]
    fn unwatched_connections_pass_through() {
        let mut stream = ProxyStream {
            inner: Trickle {
                text: b"HTTP/1.1 200 OK\r\n\r\n",
                step: 4,
            },
            line: None,
        };
        let (read, detail) = read_all(&mut stream);
        assert_eq!(read, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(detail.proxy_status(), None);
    }
}
