//! A loopback upstream that reproduces outbound-HTTP failures on demand,
//! for triage's tests, examples and benchmarks, and for your own resilience
//! tests. Everything listens on 127.0.0.1; no real name is ever resolved
//! ([`Resolver`] maps `*.test` to 127.0.0.1).
//!
//! Routes of [`Upstream`] (and [`TlsUpstream`]):
//!
//! | path | answer |
//! |---|---|
//! | `/ok` | 200 JSON with `x-request-id` and OpenAI rate headers |
//! | `/status/{code}?retry_after=&retry_after_ms=&request_id=&should_retry=` | that status, JSON error, the hint headers asked for |
//! | `/flaky/{n}/{code}` | `{code}` for the first `n` requests to this path, then 200 |
//! | `/window/{limit}/{ms}` | a fixed rate window: `limit` requests per `ms` milliseconds, then 429 with `retry-after-ms` until the next window; every answer has `x-ratelimit-limit`, `-remaining`, `-reset` ([`Upstream::refused`] counts the 429s) |
//! | `/sse/{n}?events=&error_at=&error=&stall_at=&stall_ms=&reset_at=&pad=&lines=1` | a 200 stream of `events` events (the first padded to about `pad` bytes) (server-sent events, or JSON lines with `lines=1`), each its own chunk, then `data: [DONE]`; for the first `n` requests to this path, an error event of type `error` (default `overloaded_error`, Anthropic's shape) in place of event `error_at` (ending the stream), a pause of `stall_ms` before event `stall_at`, or a reset in place of event `reset_at` |
//! | `/bytes/{n}` | 200 with `n` bytes of [`pattern_byte`], streamed |
//! | `/flaky-body/{n}/{rst,fin}/{len}?after=&type=&chunked=1` | 200 with `len` bytes of the pattern (`content-length`, or chunked), cut after `after` bytes (default half) by a reset or a FIN (truncation) for the first `n` requests to this path, whole afterwards; `type` sets the content type (`text%2Fevent-stream`) |
//! | `/openai/429/quota`, `/openai/429/rate`, `/openai/429/too-large`, `/openai/503/overloaded` | OpenAI's forms |
//! | `/anthropic/429/rate`, `/anthropic/429/spend-limit`, `/anthropic/529` | Anthropic's |
//! | `/gemini/429/per-day`, `/gemini/429/per-minute`, `/azure/429/daily`, `/aws/400/throttling`, `/github/403/rate`, `/stripe/429/lock-timeout` | the others' |
//! | `/gateway/nginx/{502,503,504,429}`, `/gateway/envoy/{503-connect,504,429}`, `/gateway/cloudflare/{520..=530}` | gateway pages and local replies |
//! | `/fault/fin-before-headers`, `/fault/rst-before-headers` | close or reset after reading the request |
//! | `/fault/rst-mid-body?after=`, `/fault/truncated-body?after=` | a body cut by a reset or a FIN |
//! | `/fault/slow-headers?ms=`, `/fault/slow-body?ms=&chunks=` | stalls |
//! | `/fault/garbage` | bytes that are not HTTP |
//!
//! Every answer closes its connection; hits are counted per path.
//!
//! With the `http2` feature, `H2Upstream` serves HTTP/2 (h2c, or TLS with
//! ALPN `h2`) and produces HTTP/2 faults on demand: `RST_STREAM` with any
//! reason, `GOAWAY` below or above the stream, closes and resets mid-stream
//! (`H2Fault`); the docs of `src/h2.rs` tabulate what a hyper client observes.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let upstream = triage_testkit::Upstream::start().await?;
//! let url = upstream.url("/flaky/2/503");
//! assert!(url.starts_with("http://svc.test:"));
//! assert_eq!(upstream.hits("/flaky/2/503"), 0);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod events;
#[cfg(feature = "http2")]
mod h2;
mod net;
mod proxy;
mod routes;
pub mod suite;
mod tls;
mod upstream;

#[cfg(feature = "http2")]
pub use crate::h2::{H2Fault, H2Upstream};
pub use events::EventLog;
pub use net::{Backlog, RefusingPort, Resolver, closed_port, full_backlog, refusing_port};
pub use proxy::{Proxy, ProxyBehavior};
pub use tls::{CertProblem, ca_der};
pub use upstream::{TlsUpstream, Upstream};

/// Byte `i` of the `/bytes/{n}` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// FNV-1a 64 of the first `n` bytes of the pattern, to check bytes delivered.
pub fn pattern_checksum(n: u64) -> u64 {
    let mut hash = Fnv::new();
    for i in 0..n {
        hash.write(&[pattern_byte(i)]);
    }
    hash.finish()
}

/// FNV-1a 64, for checksums of delivered bodies.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

impl Fnv {
    /// The empty hash.
    pub const fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }
}
