//! Benchmarks of triage against baselines measured in the same run; see
//! `benches/` and `BENCHMARKS.md`. This library holds what the benchmark
//! binaries share.
#![forbid(unsafe_code)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::retry::Policy;

/// A tracing subscriber enabled at INFO that discards everything: the
/// layers under test pay for checking their events, as in a service, and
/// nothing is written.
#[derive(Debug, Clone, Copy)]
pub struct Discard;

impl tracing::Subscriber for Discard {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::INFO
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::INFO)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A tracing subscriber that discards everything, enabled up to a level of
/// choice: at DEBUG, the layers under test make their spans (triage's span
/// per call, tower-http's `TraceLayer`'s) and pay for them as with a real
/// subscriber, less the subscriber's own work.
#[derive(Debug, Clone, Copy)]
pub struct DiscardAt(pub tracing::level_filters::LevelFilter);

impl tracing::Subscriber for DiscardAt {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        self.0 >= *metadata.level()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.0)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Whether `arg` asks for the smoke mode: seconds, tiny counts, only to
/// show that the benchmark still runs. `--smoke`, or `--test`, which
/// `cargo bench -- --test` passes to every benchmark (as criterion's own
/// benchmarks run each case once for it).
pub fn is_smoke_flag(arg: &str) -> bool {
    matches!(arg, "--smoke" | "--test")
}

/// Whether the command line asks for the smoke mode; other arguments
/// (`--bench`, which `cargo bench` passes) are ignored.
pub fn smoke() -> bool {
    std::env::args().skip(1).any(|arg| is_smoke_flag(&arg))
}

/// A status-based retry policy, as a tower user writes by hand for
/// `tower::retry`: 5xx, 429 and errors, at most the given number of times,
/// at once.
#[derive(Debug, Clone, Copy)]
pub struct ServerErrors(pub u32);

impl<B, E> Policy<Request<Full<Bytes>>, Response<B>, E> for ServerErrors {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        let failed = match result {
            Ok(r) => r.status().is_server_error() || r.status() == 429,
            Err(_) => true,
        };
        (failed && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        Some(clone)
    }
}

/// A connector that counts the connects it is asked for: every one, or
/// only those to `port`.
#[derive(Debug, Clone)]
pub struct CountConnects<C> {
    inner: C,
    port: Option<u16>,
    calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<C> CountConnects<C> {
    /// Counts `inner`'s connects (to `port` only, when given) into `calls`.
    pub fn new(
        inner: C,
        port: Option<u16>,
        calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> CountConnects<C> {
        CountConnects { inner, port, calls }
    }
}

impl<C: tower::Service<http::Uri>> tower::Service<http::Uri> for CountConnects<C> {
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> C::Future {
        if self.port.is_none_or(|port| uri.port_u16() == Some(port)) {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.call(uri)
    }
}
