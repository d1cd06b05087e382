//! [`H2Upstream`]: an HTTP/2 server on 127.0.0.1 (h2c with prior knowledge,
//! or TLS with ALPN `h2`) that produces HTTP/2 faults on demand.
//!
//! One client connection carries many streams: the routes that answer keep
//! the connection open, the faults that kill a connection end it.
//!
//! | path | behaviour |
//! |---|---|
//! | `/ok` | 200, `content-type: application/json`, `x-request-id: req_h2_<n>` (`n` counts earlier hits of the path from 0), body `{"ok":true}` |
//! | `/status/{code}?retry_after=N` | that status (200 to 599) with a small JSON error body; `retry-after: N` when asked |
//! | `/flaky/{n}/{fault}` | the [`H2Fault`] named `{fault}` ([`H2Fault::name`]) for the first `n` requests to this path, then `/ok`'s answer |
//! | `/h2/refused-stream` | `RST_STREAM(REFUSED_STREAM)` before any response |
//! | `/h2/reset/{reason}` | `RST_STREAM` with `internal_error`, `cancel`, `protocol_error` or `enhance_your_calm` before any response |
//! | `/h2/goaway-unprocessed` | a raw `GOAWAY(NO_ERROR)` whose last-stream-id is this stream's ID minus 2 (0 for stream 1), then a clean close |
//! | `/h2/goaway-after` | nothing for the stream, then `GOAWAY(INTERNAL_ERROR)` whose last-stream-id is this stream's (h2's `abrupt_shutdown`), then a close |
//! | `/h2/close` | a clean close (FIN; over TLS `close_notify` first) after the request headers, no response, no `GOAWAY` |
//! | `/h2/rst-tcp` | a TCP reset (`SO_LINGER` 0, then close) after the request headers |
//! | `/h2/slow?ms=N` | waits `N` ms (default 1000), then 200 like `/ok` |
//! | `/h2/rst-mid-body` | 200 declaring 100,000 bytes, 1,000 sent, then `RST_STREAM(INTERNAL_ERROR)` |
//! | anything else | 404 with a JSON error |
//!
//! Hits are counted per path (without the query) when the request's
//! `HEADERS` arrive, before the route acts. A request body is read in full
//! before a route answers; faults act at once.
//!
//! # What a hyper 1 client observes
//!
//! Measured with hyper 1.12's `client::conn::http2` and hyper-util 0.1.21's
//! legacy `Client` (`http2_only`) over h2 0.4.21 by `tests/h2.rs`. "h2
//! error" is the [`h2::Error`] found by walking `Error::source()` from the
//! `hyper::Error` of `send_request` (under hyper-util's
//! `legacy::Error(SendRequest, ..)`, Display `client error (SendRequest)`).
//! None of these `hyper::Error`s is `is_canceled`, `is_closed` or
//! `is_incomplete_message`.
//!
//! | route | `hyper::Error` Display | h2 error: `reason()` / `is_reset` / `is_go_away` / `is_remote` | after it |
//! |---|---|---|---|
//! | `/h2/refused-stream` | `http2 error` | `REFUSED_STREAM` / yes / no / yes | the connection goes on |
//! | `/h2/reset/internal_error` | `http2 error` | `INTERNAL_ERROR` / yes / no / yes | the connection goes on |
//! | `/h2/reset/cancel` | `http2 error` | `CANCEL` / yes / no / yes | the connection goes on |
//! | `/h2/reset/protocol_error` | `http2 error` | `PROTOCOL_ERROR` / yes / no / yes | the connection goes on |
//! | `/h2/reset/enhance_your_calm` | `http2 error` | `ENHANCE_YOUR_CALM` / yes / no / yes | the connection goes on |
//! | `/h2/goaway-unprocessed` | `http2 error` | `NO_ERROR` / no / yes / yes | the connection ends; its future resolves `Ok(())` (hyper takes `NO_ERROR` for a graceful shutdown) |
//! | `/h2/goaway-after` | `connection error` | no h2 error: `hyper::Error(Io, ..)` over an `io::Error` of kind `BrokenPipe`, "stream closed because of a broken pipe" | the connection's future fails with `http2 error`: `INTERNAL_ERROR` / no / yes / yes |
//! | `/h2/close` | `connection error` | the same `BrokenPipe` "stream closed because of a broken pipe" | the connection's future fails: `BrokenPipe` "connection closed because of a broken pipe" |
//! | `/h2/rst-tcp` | `connection error` | no h2 error: `hyper::Error(Io, ..)` over an OS `io::Error` of kind `ConnectionReset` | the connection's future fails the same way |
//!
//! `goaway-unprocessed` vs `goaway-after`, from the request's side: an
//! unprocessed stream (above the GOAWAY's last-stream-id) fails at once
//! with an h2 error that `is_go_away()` with `reason() == NO_ERROR`: not
//! processed, safe to send again on a new connection. A stream at or below
//! the last-stream-id stays open after the GOAWAY (the peer may still
//! answer it), so with `goaway-after` the request only fails when the
//! connection closes, as the `BrokenPipe` io error that `/h2/close` gives
//! too: the GOAWAY's `INTERNAL_ERROR` reaches only the connection's own
//! future. A request can therefore tell "not processed" (GOAWAY `NO_ERROR`,
//! or `REFUSED_STREAM`) from "maybe processed" (`BrokenPipe`,
//! `ConnectionReset`, other resets), but not `goaway-after` from `close`.
//!
//! Neither hyper nor hyper-util retries any of these by itself. hyper's
//! HTTP/2 client hands the request back only when it never reached h2 (a
//! dispatch envelope dropped unsent: `is_canceled`, "connection closed");
//! every h2 error on a sent stream, `REFUSED_STREAM` and GOAWAY included,
//! comes back without the request. hyper-util's legacy `Client` retries
//! (with `retry_canceled_requests`, the default) only a request handed
//! back, and only on a reused pooled connection.
//!
//! Over TLS ([`H2Upstream::start_tls`]) ALPN offers `h2` and `http/1.1`;
//! a client that negotiates anything but `h2` (or no ALPN) sees the
//! connection closed right after the handshake (`close_notify`, FIN).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let upstream = triage_testkit::H2Upstream::start().await?;
//! let url = upstream.url("/flaky/2/refused-stream");
//! assert!(url.starts_with("http://svc.test:"));
//! assert_eq!(upstream.hits("/flaky/2/refused-stream"), 0);
//! assert_eq!(upstream.connections(), 0);
//! assert!(upstream.ca_der().is_empty());
//! # Ok(()) }
//! ```

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::{Reason, RecvStream};
use http::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::routes::query_value;
use crate::tls::CertProblem;
use crate::upstream::Hits;

/// An HTTP/2 fault of [`H2Upstream`], served at [`H2Fault::path`] and by
/// name under `/flaky/{n}/{name}`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum H2Fault {
    /// `RST_STREAM(REFUSED_STREAM)` before any response.
    RefusedStream,
    /// `RST_STREAM(INTERNAL_ERROR)` before any response.
    ResetInternal,
    /// `RST_STREAM(CANCEL)` before any response.
    ResetCancel,
    /// `RST_STREAM(PROTOCOL_ERROR)` before any response.
    ResetProtocol,
    /// `RST_STREAM(ENHANCE_YOUR_CALM)` before any response.
    EnhanceYourCalm,
    /// `GOAWAY(NO_ERROR)` with a last-stream-id below the stream, then close.
    GoAwayUnprocessed,
    /// `GOAWAY(INTERNAL_ERROR)` with a last-stream-id that includes the
    /// stream, then close.
    GoAwayAfter,
    /// A clean close of the connection, without response or `GOAWAY`.
    Close,
    /// A TCP reset of the connection.
    RstTcp,
}

impl H2Fault {
    /// Every fault.
    pub const ALL: [H2Fault; 9] = [
        H2Fault::RefusedStream,
        H2Fault::ResetInternal,
        H2Fault::ResetCancel,
        H2Fault::ResetProtocol,
        H2Fault::EnhanceYourCalm,
        H2Fault::GoAwayUnprocessed,
        H2Fault::GoAwayAfter,
        H2Fault::Close,
        H2Fault::RstTcp,
    ];

    /// Its short name, for `/flaky/{n}/{name}`: `refused-stream`,
    /// `reset-internal`, `reset-cancel`, `reset-protocol`, `calm`,
    /// `goaway-unprocessed`, `goaway-after`, `close`, `rst-tcp`.
    pub const fn name(self) -> &'static str {
        match self {
            H2Fault::RefusedStream => "refused-stream",
            H2Fault::ResetInternal => "reset-internal",
            H2Fault::ResetCancel => "reset-cancel",
            H2Fault::ResetProtocol => "reset-protocol",
            H2Fault::EnhanceYourCalm => "calm",
            H2Fault::GoAwayUnprocessed => "goaway-unprocessed",
            H2Fault::GoAwayAfter => "goaway-after",
            H2Fault::Close => "close",
            H2Fault::RstTcp => "rst-tcp",
        }
    }

    /// The path that always produces it, such as `/h2/refused-stream`.
    pub const fn path(self) -> &'static str {
        match self {
            H2Fault::RefusedStream => "/h2/refused-stream",
            H2Fault::ResetInternal => "/h2/reset/internal_error",
            H2Fault::ResetCancel => "/h2/reset/cancel",
            H2Fault::ResetProtocol => "/h2/reset/protocol_error",
            H2Fault::EnhanceYourCalm => "/h2/reset/enhance_your_calm",
            H2Fault::GoAwayUnprocessed => "/h2/goaway-unprocessed",
            H2Fault::GoAwayAfter => "/h2/goaway-after",
            H2Fault::Close => "/h2/close",
            H2Fault::RstTcp => "/h2/rst-tcp",
        }
    }

    /// The fault with this [short name](H2Fault::name).
    pub fn from_name(name: &str) -> Option<H2Fault> {
        H2Fault::ALL.into_iter().find(|fault| fault.name() == name)
    }

    /// The `RST_STREAM` reason of a stream fault; `None` for the faults that
    /// end the connection.
    fn reset_reason(self) -> Option<Reason> {
        match self {
            H2Fault::RefusedStream => Some(Reason::REFUSED_STREAM),
            H2Fault::ResetInternal => Some(Reason::INTERNAL_ERROR),
            H2Fault::ResetCancel => Some(Reason::CANCEL),
            H2Fault::ResetProtocol => Some(Reason::PROTOCOL_ERROR),
            H2Fault::EnhanceYourCalm => Some(Reason::ENHANCE_YOUR_CALM),
            H2Fault::GoAwayUnprocessed
            | H2Fault::GoAwayAfter
            | H2Fault::Close
            | H2Fault::RstTcp => None,
        }
    }
}

/// An HTTP/2 server on 127.0.0.1 that produces HTTP/2 faults by path; see
/// the module docs in `src/h2.rs` for the routes and what a hyper client
/// observes for each. Dropping it stops the server and every connection.
#[derive(Debug)]
pub struct H2Upstream {
    addr: SocketAddr,
    scheme: &'static str,
    hits: Hits,
    connections: Arc<AtomicU64>,
    ca: Vec<u8>,
    task: JoinHandle<()>,
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Upstream {
    /// Starts an h2c server (HTTP/2 with prior knowledge, no TLS) on
    /// 127.0.0.1, on a free port.
    pub async fn start() -> io::Result<H2Upstream> {
        H2Upstream::listen(TcpListener::bind(("127.0.0.1", 0)).await?, None, Vec::new())
    }

    /// Starts an h2c server on `listener` (non-blocking; e.g. a
    /// [`RefusingPort`](crate::RefusingPort) that now listens).
    pub fn start_on(listener: std::net::TcpListener) -> io::Result<H2Upstream> {
        H2Upstream::listen(TcpListener::from_std(listener)?, None, Vec::new())
    }

    /// Starts an HTTP/2 server over TLS with a certificate for `svc.test`
    /// that has `problem`. ALPN offers `h2` and `http/1.1`; only `h2` is
    /// served: a connection that negotiates anything else is closed after
    /// the handshake.
    pub async fn start_tls(problem: CertProblem) -> io::Result<H2Upstream> {
        H2Upstream::start_tls_on(
            std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))?,
            problem,
        )
    }

    /// Starts the TLS server of [`start_tls`](Self::start_tls) on
    /// `listener` (non-blocking). Every TLS upstream of the testkit is
    /// signed by one CA per process, so a client built before trusts it.
    pub fn start_tls_on(
        listener: std::net::TcpListener,
        problem: CertProblem,
    ) -> io::Result<H2Upstream> {
        let ca = crate::tls::shared_ca().map_err(io::Error::other)?;
        let mut config = ca.server_config(problem).map_err(io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        H2Upstream::listen(
            TcpListener::from_std(listener)?,
            Some(acceptor),
            ca.der().to_vec(),
        )
    }

    fn listen(
        listener: TcpListener,
        acceptor: Option<TlsAcceptor>,
        ca: Vec<u8>,
    ) -> io::Result<H2Upstream> {
        let addr = listener.local_addr()?;
        let hits = Hits::default();
        let connections = Arc::new(AtomicU64::new(0));
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            hits.clone(),
            Arc::clone(&connections),
        ));
        Ok(H2Upstream {
            addr,
            scheme,
            hits,
            connections,
            ca,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://svc.test:PORT/path`, or `https://…` over TLS (resolve
    /// `svc.test` with [`Resolver`](crate::Resolver)).
    pub fn url(&self, path: &str) -> String {
        format!("{}://svc.test:{}{}", self.scheme, self.addr.port(), path)
    }

    /// The DER of the CA a client must trust over TLS (for every problem but
    /// [`CertProblem::UnknownIssuer`], it signed the server's certificate);
    /// empty for h2c.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca
    }

    /// Streams received on `path` (without its query), counted when their
    /// request `HEADERS` arrive.
    pub fn hits(&self, path: &str) -> u64 {
        self.hits.get(path)
    }

    /// Streams received in all.
    pub fn total_hits(&self) -> u64 {
        self.hits.total()
    }

    /// Forgets every hit count (not the connection count).
    pub fn reset_hits(&self) {
        self.hits.reset();
    }

    /// TCP connections accepted (TLS handshakes attempted, over TLS).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Accepts connections; dropping (aborting) it ends every connection.
async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    hits: Hits,
    connections: Arc<AtomicU64>,
) {
    let mut tasks = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        connections.fetch_add(1, Ordering::SeqCst);
        while tasks.try_join_next().is_some() {}
        let (acceptor, hits) = (acceptor.clone(), hits.clone());
        tasks.spawn(async move {
            let _ = serve_tcp(stream, acceptor, hits).await;
        });
    }
}

async fn serve_tcp(stream: TcpStream, acceptor: Option<TlsAcceptor>, hits: Hits) -> io::Result<()> {
    // Keep a handle on the socket for resets; the stream is served below.
    let std_stream = stream.into_std()?;
    let socket = std_stream.try_clone()?;
    let stream = TcpStream::from_std(std_stream)?;
    match acceptor {
        None => serve_h2(stream, socket, hits).await,
        Some(acceptor) => {
            let tls = acceptor.accept(stream).await?;
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                serve_h2(tls, socket, hits).await
            } else {
                close(tls).await;
                Ok(())
            }
        }
    }
}

/// Serves one HTTP/2 connection. `socket` is a clone of its TCP socket.
async fn serve_h2<S>(io: S, socket: std::net::TcpStream, hits: Hits) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tap = Tap::new(io);
    let mut conn = h2::server::handshake(tap.clone())
        .await
        .map_err(io::Error::other)?;
    // Answers in progress; dropped (aborted) with the connection.
    let mut answers = JoinSet::new();
    while let Some(next) = conn.accept().await {
        let (request, mut respond) = next.map_err(io::Error::other)?;
        while answers.try_join_next().is_some() {}
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let hit = hits.count(&path);
        let body = request.into_body();
        match route(&path, &query, hit) {
            Act::Reply(wait, reply) => {
                answers.spawn(answer(body, respond, wait, reply));
            }
            Act::CutBody => {
                answers.spawn(cut_body(respond));
            }
            Act::Fault(fault) => match fault.reset_reason() {
                Some(reason) => respond.send_reset(reason),
                None => return end_connection(fault, conn, (respond, body), tap, socket).await,
            },
        }
    }
    Ok(())
}

/// Ends the connection as `fault` says. `stream` is kept until the end: a
/// dropped stream would be reset with `CANCEL`.
async fn end_connection<S>(
    fault: H2Fault,
    mut conn: Connection<Tap<S>, Bytes>,
    stream: (SendResponse<Bytes>, RecvStream),
    tap: Tap<S>,
    socket: std::net::TcpStream,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match fault {
        H2Fault::GoAwayAfter => {
            // GOAWAY(INTERNAL_ERROR, last-stream-id = the last stream h2
            // received, this one), flushed, then h2 shuts the writes down.
            conn.abrupt_shutdown(Reason::INTERNAL_ERROR);
            let _ =
                tokio::time::timeout(Duration::from_secs(2), poll_fn(|cx| conn.poll_closed(cx)))
                    .await;
            let io = tap.reclaim();
            drop((stream, conn));
            if let Some((io, _)) = io {
                close(io).await;
            }
        }
        H2Fault::GoAwayUnprocessed => {
            // h2 cannot send a last-stream-id below a stream it received:
            // take the transport back and write the frame by hand.
            let id = u32::from(stream.0.stream_id());
            let io = tap.reclaim();
            drop((stream, conn));
            if let Some((mut io, at_frame_boundary)) = io {
                // A frame half written by h2 (only under back-pressure)
                // cannot be followed by ours: then this is a plain close.
                if at_frame_boundary {
                    io.write_all(&goaway_frame(id.saturating_sub(2), Reason::NO_ERROR))
                        .await?;
                    io.flush().await?;
                }
                close(io).await;
            }
        }
        H2Fault::Close => {
            let io = tap.reclaim();
            drop((stream, conn));
            if let Some((io, _)) = io {
                close(io).await;
            }
        }
        // RstTcp, and the stream faults, which do not come here.
        _ => {
            let io = tap.reclaim();
            socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO))?;
            drop((stream, conn, io, socket));
        }
    }
    Ok(())
}

/// A `GOAWAY` frame without debug data.
fn goaway_frame(last_stream_id: u32, reason: Reason) -> [u8; 17] {
    let mut frame = [0u8; 17];
    // Length 8, type GOAWAY (0x7), no flags, stream 0.
    frame[..5].copy_from_slice(&[0, 0, 8, 0x7, 0]);
    frame[9..13].copy_from_slice(&(last_stream_id & 0x7fff_ffff).to_be_bytes());
    frame[13..].copy_from_slice(&u32::from(reason).to_be_bytes());
    frame
}

/// Shuts the writes down (FIN; `close_notify` first over TLS), then reads
/// until the peer closes (at most a second), so that the close is not
/// turned into a reset by unread input.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let _ = io.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(1..) = io.read(&mut sink).await {}
    })
    .await;
}

/// What the upstream does with one stream.
#[derive(Debug)]
enum Act {
    /// Answer, after an optional wait.
    Reply(Option<Duration>, Reply),
    /// A fault.
    Fault(H2Fault),
    /// A 200 whose body is cut by `RST_STREAM(INTERNAL_ERROR)`.
    CutBody,
}

/// A whole response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
}

fn ok(hit: u64) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("x-request-id", format!("req_h2_{hit}")),
        ],
        body: r#"{"ok":true}"#,
    }
}

fn error(status: u16, body: &'static str) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", "application/json".to_owned())],
        body,
    }
}

/// The route table.
fn route(path: &str, query: &str, hit: u64) -> Act {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let reply = |reply| Act::Reply(None, reply);
    match parts.as_slice() {
        ["ok"] => reply(ok(hit)),
        ["status", code] => match code.parse::<u16>() {
            Ok(status @ 200..=599) => {
                let mut answer = error(
                    status,
                    r#"{"error":{"message":"status from the h2 upstream","type":"upstream_error"}}"#,
                );
                if let Some(secs) = query_value(query, "retry_after") {
                    answer.headers.push(("retry-after", secs.to_owned()));
                }
                reply(answer)
            }
            _ => reply(error(404, r#"{"error":"no such status"}"#)),
        },
        ["flaky", n, name] => match (n.parse::<u64>(), H2Fault::from_name(name)) {
            (Ok(n), Some(fault)) if hit < n => Act::Fault(fault),
            (Ok(_), Some(_)) => reply(ok(hit)),
            _ => reply(error(404, r#"{"error":"bad flaky route"}"#)),
        },
        ["h2", "rst-mid-body"] => Act::CutBody,
        ["h2", "slow"] => {
            let ms = query_value(query, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            Act::Reply(Some(Duration::from_millis(ms)), ok(hit))
        }
        ["h2", ..] => H2Fault::ALL
            .into_iter()
            .find(|fault| fault.path() == path)
            .map_or_else(
                || reply(error(404, r#"{"error":"no such h2 fault"}"#)),
                Act::Fault,
            ),
        _ => reply(error(404, r#"{"error":"no such route"}"#)),
    }
}

/// A 200 that declares 100,000 bytes, sends 1,000, then resets the stream.
async fn cut_body(mut respond: SendResponse<Bytes>) {
    let Ok(response) = Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream")
        .header("content-length", "100000")
        .body(())
    else {
        return;
    };
    if let Ok(mut stream) = respond.send_response(response, false) {
        let _ = stream.send_data(Bytes::from(vec![b'x'; 1000]), false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream.send_reset(Reason::INTERNAL_ERROR);
    }
}

/// Reads the request body, waits, answers.
async fn answer(
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    wait: Option<Duration>,
    reply: Reply,
) {
    // Answering before the end of an upload would reset the upload.
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if let Some(wait) = wait {
        tokio::time::sleep(wait).await;
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value.as_str());
    }
    let Ok(response) = response.header("content-length", reply.body.len()).body(()) else {
        return respond.send_reset(Reason::INTERNAL_ERROR);
    };
    let end = reply.body.is_empty();
    if let Ok(mut stream) = respond.send_response(response, end) {
        if !end {
            let _ = stream.send_data(Bytes::from_static(reply.body.as_bytes()), true);
        }
    }
}

/// The connection's transport, shared with h2 so that a fault can take it
/// back to write raw frames or close it. Counts the frames h2 writes, to
/// know whether a raw frame can follow.
struct Tap<S>(Arc<Mutex<TapState<S>>>);

struct TapState<S> {
    io: Option<S>,
    frames: FrameCursor,
}

impl<S> Clone for Tap<S> {
    fn clone(&self) -> Self {
        Tap(Arc::clone(&self.0))
    }
}

impl<S> Tap<S> {
    fn new(io: S) -> Tap<S> {
        Tap(Arc::new(Mutex::new(TapState {
            io: Some(io),
            frames: FrameCursor::default(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapState<S>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the transport away from h2 (which then reads EOF and fails to
    /// write), and whether h2's last frame was written whole.
    fn reclaim(&self) -> Option<(S, bool)> {
        let mut state = self.lock();
        let at_boundary = state.frames.at_boundary();
        state.io.take().map(|io| (io, at_boundary))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.lock().io.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.lock();
        let TapState { io, frames } = &mut *state;
        let Some(io) = io.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let n = ready!(Pin::new(io).poll_write(cx, buf))?;
        frames.advance(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.lock().io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.lock().io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Where the outbound byte stream is within HTTP/2 frames (a server sends
/// no connection preface string: its first bytes are a frame).
#[derive(Debug, Default)]
struct FrameCursor {
    head: [u8; 9],
    head_len: usize,
    payload_left: usize,
}

impl FrameCursor {
    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let k = self.payload_left.min(bytes.len());
                self.payload_left -= k;
                bytes = &bytes[k..];
                continue;
            }
            let k = (9 - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + k].copy_from_slice(&bytes[..k]);
            self.head_len += k;
            bytes = &bytes[k..];
            if self.head_len == 9 {
                let [a, b, c, ..] = self.head;
                self.payload_left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.head_len = 0;
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_finds_frame_boundaries() {
        let mut cursor = FrameCursor::default();
        let frame = goaway_frame(5, Reason::NO_ERROR);
        cursor.advance(&frame[..4]);
        assert!(!cursor.at_boundary());
        cursor.advance(&frame[4..12]);
        assert!(!cursor.at_boundary());
        cursor.advance(&frame[12..]);
        assert!(cursor.at_boundary());
        cursor.advance(&[0, 0, 0, 4, 1, 0, 0, 0, 0]);
        assert!(cursor.at_boundary(), "an empty frame");
    }

    #[test]
    fn a_goaway_frame_is_encoded() {
        assert_eq!(
            goaway_frame(3, Reason::INTERNAL_ERROR),
            [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2]
        );
    }

    #[test]
    fn routes_name_faults() {
        for fault in H2Fault::ALL {
            assert_eq!(H2Fault::from_name(fault.name()), Some(fault));
            assert!(matches!(route(fault.path(), "", 0), Act::Fault(f) if f == fault));
            let flaky = format!("/flaky/1/{}", fault.name());
            assert!(matches!(route(&flaky, "", 0), Act::Fault(f) if f == fault));
            assert!(matches!(route(&flaky, "", 1), Act::Reply(None, r) if r.status == 200));
        }
        assert!(
            matches!(route("/h2/slow", "ms=5", 0), Act::Reply(Some(d), _) if d == Duration::from_millis(5))
        );
        assert!(
            matches!(route("/status/503", "retry_after=7", 0), Act::Reply(None, r) if r.status == 503 && r.headers.contains(&("retry-after", "7".to_owned())))
        );
    }
}
