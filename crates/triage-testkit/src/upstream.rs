//! [`Upstream`] and [`TlsUpstream`]: the loopback servers.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::routes::{Action, Cut, route};
use crate::tls::CertProblem;

/// Requests received per path, and the rate windows of `/window/` paths.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hits {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    windows: Arc<Mutex<HashMap<String, RateWindow>>>,
}

/// A fixed rate window of a `/window/LIMIT/MS` path: LIMIT requests per
/// MS milliseconds, the first window starting at the path's first request.
#[derive(Debug)]
struct RateWindow {
    start: std::time::Instant,
    used: u64,
    /// When this window was used up (its last admitted request).
    closed_at: Option<std::time::Instant>,
    /// For each refusal, how long after its window was used up it came
    /// (at most [`MAX_REFUSALS`] kept).
    refusals: Vec<Duration>,
    refused: u64,
}

/// At most this many refusals' times are kept per path.
const MAX_REFUSALS: usize = 100_000;

impl Hits {
    /// The answer of a `/window/LIMIT/MS` path (`None` for other paths): a
    /// 200 while the window has room, a 429 once it is used up; both tell
    /// the window (`x-ratelimit-limit`, `-remaining`, `-reset` as a Go
    /// duration in milliseconds), the 429 also `retry-after-ms`.
    pub(crate) fn window(&self, path: &str) -> Option<Action> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let ["window", limit, ms] = parts.as_slice() else {
            return None;
        };
        let (limit, len) = (limit.parse::<u64>().ok()?, ms.parse::<u64>().ok()?.max(1));
        let now = std::time::Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.entry(path.to_owned()).or_insert(RateWindow {
            start: now,
            used: 0,
            closed_at: None,
            refusals: Vec::new(),
            refused: 0,
        });
        let len = Duration::from_millis(len);
        let elapsed = now.duration_since(window.start);
        if elapsed >= len {
            // Later windows are aligned to the first one.
            let windows_passed = elapsed.as_nanos() / len.as_nanos();
            window.start += len * u32::try_from(windows_passed).unwrap_or(u32::MAX);
            window.used = 0;
            window.closed_at = None;
        }
        let reset = len.saturating_sub(now.duration_since(window.start));
        // Rounded up, as a server should: a client that waits exactly this
        // long finds the next window open.
        let reset_ms = reset.as_nanos().div_ceil(1_000_000).max(1);
        let admitted = window.used < limit;
        if admitted {
            window.used += 1;
            if window.used == limit {
                window.closed_at = Some(now);
            }
        } else {
            window.refused += 1;
            let after = window
                .closed_at
                .map_or(Duration::ZERO, |closed| now.duration_since(closed));
            if window.refusals.len() < MAX_REFUSALS {
                window.refusals.push(after);
            }
        }
        let mut headers = vec![
            ("x-ratelimit-limit".to_owned(), limit.to_string()),
            (
                "x-ratelimit-remaining".to_owned(),
                (limit - window.used.min(limit)).to_string(),
            ),
            ("x-ratelimit-reset".to_owned(), format!("{reset_ms}ms")),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let (status, body) = if admitted {
            (200, r#"{"ok":true}"#)
        } else {
            headers.push(("retry-after-ms".to_owned(), reset_ms.to_string()));
            (
                429,
                r#"{"error":{"message":"rate limit reached","type":"rate_limit"}}"#,
            )
        };
        Some(Action::Reply {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        })
    }

    /// Requests a `/window/` path refused so far, and for each (the first
    /// 100,000), how long after its window was used up it came.
    pub(crate) fn refused(&self, path: &str) -> (u64, Vec<Duration>) {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows
            .get(path)
            .map_or((0, Vec::new()), |w| (w.refused, w.refusals.clone()))
    }

    /// Counts a hit and returns how many came before it.
    pub(crate) fn count(&self, path: &str) -> u64 {
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(path.to_owned()).or_insert(0);
        *n += 1;
        *n - 1
    }

    pub(crate) fn get(&self, path: &str) -> u64 {
        let map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(path).copied().unwrap_or(0)
    }

    pub(crate) fn total(&self) -> u64 {
        let map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().sum()
    }

    pub(crate) fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A plain HTTP/1.1 server on 127.0.0.1 that reproduces failures by path
/// (see the [crate docs](crate) for the routes). Every answer closes its
/// connection. Dropping it stops the server.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    hits: Hits,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts the server on 127.0.0.1, on a free port.
    pub async fn start() -> io::Result<Upstream> {
        Upstream::serve(TcpListener::bind(("127.0.0.1", 0)).await?)
    }

    /// Starts the server on `listener` (non-blocking; e.g. a
    /// [`RefusingPort`](crate::RefusingPort) that now listens).
    pub fn start_on(listener: std::net::TcpListener) -> io::Result<Upstream> {
        Upstream::serve(TcpListener::from_std(listener)?)
    }

    fn serve(listener: TcpListener) -> io::Result<Upstream> {
        let addr = listener.local_addr()?;
        let hits = Hits::default();
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve_tcp(stream, counter).await;
                });
            }
        });
        Ok(Upstream { addr, hits, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://svc.test:PORT/path` (resolve `svc.test` with
    /// [`Resolver`](crate::Resolver)).
    pub fn url(&self, path: &str) -> String {
        format!("http://svc.test:{}{}", self.addr.port(), path)
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn ip_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.addr.port(), path)
    }

    /// Requests received on `path` (without its query).
    pub fn hits(&self, path: &str) -> u64 {
        self.hits.get(path)
    }

    /// Requests received in all.
    pub fn total_hits(&self) -> u64 {
        self.hits.total()
    }

    /// Requests a `/window/LIMIT/MS` path answered with a 429 (its window
    /// was used up), and for each (the first 100,000) how long after the
    /// window's last admitted request it came: a refusal that came well
    /// after it was sent into a window a client could have known closed.
    pub fn refused(&self, path: &str) -> (u64, Vec<Duration>) {
        self.hits.refused(path)
    }

    /// Forgets every count (and every rate window).
    pub fn reset_hits(&self) {
        self.hits.reset();
    }
}

/// The same routes over TLS, with a certificate for `svc.test` that has the
/// chosen problem. Dropping it stops the server.
#[derive(Debug)]
pub struct TlsUpstream {
    addr: SocketAddr,
    hits: Hits,
    handshakes: Arc<Mutex<u64>>,
    ca: Vec<u8>,
    task: JoinHandle<()>,
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsUpstream {
    /// Starts the server with a certificate that has `problem`.
    pub async fn start(problem: CertProblem) -> io::Result<TlsUpstream> {
        let ca = crate::tls::shared_ca().map_err(io::Error::other)?;
        let acceptor = ca.acceptor(problem).map_err(io::Error::other)?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let hits = Hits::default();
        let handshakes = Arc::new(Mutex::new(0u64));
        let (counter, shakes) = (hits.clone(), Arc::clone(&handshakes));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, acceptor, shakes) =
                    (counter.clone(), acceptor.clone(), Arc::clone(&shakes));
                tokio::spawn(async move {
                    *shakes.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = serve(tls, counter, None).await;
                    }
                });
            }
        });
        Ok(TlsUpstream {
            addr,
            hits,
            handshakes,
            ca: ca.der().to_vec(),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://svc.test:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://svc.test:{}{}", self.addr.port(), path)
    }

    /// The DER of the CA a client must trust (for every problem but
    /// [`CertProblem::UnknownIssuer`], it signed the server's certificate).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca
    }

    /// Requests received on `path` after a completed handshake.
    pub fn hits(&self, path: &str) -> u64 {
        self.hits.get(path)
    }

    /// TCP connections accepted (handshakes attempted).
    pub fn handshakes(&self) -> u64 {
        *self
            .handshakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn serve_tcp(stream: TcpStream, hits: Hits) -> io::Result<()> {
    // Keep a handle for resets; the stream itself is served below.
    let std_stream = stream.into_std()?;
    let resetter = std_stream.try_clone()?;
    let stream = TcpStream::from_std(std_stream)?;
    serve(stream, hits, Some(resetter)).await
}

/// Reads one request and acts on it. `resetter` (a clone of the TCP socket)
/// is used to reset the connection; without one, a reset is a close.
async fn serve<S>(
    mut stream: S,
    hits: Hits,
    resetter: Option<std::net::TcpStream>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some((path, query)) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let hit = hits.count(&path);
    let reset = move |stream: S| {
        if let Some(socket) = &resetter {
            let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
        }
        drop(stream);
    };
    let action = hits
        .window(&path)
        .unwrap_or_else(|| route(&path, &query, hit));
    match action {
        Action::Reply {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            ));
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await?;
        }
        Action::Bytes(n) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let mut sent = 0u64;
            let mut chunk = vec![0u8; 16 * 1024];
            while sent < n {
                let len = (n - sent).min(chunk.len() as u64) as usize;
                for (i, b) in chunk[..len].iter_mut().enumerate() {
                    *b = crate::pattern_byte(sent + i as u64);
                }
                stream.write_all(&chunk[..len]).await?;
                sent += len as u64;
            }
            stream.shutdown().await?;
        }
        Action::Body {
            len,
            content_type,
            chunked,
            cut,
        } => {
            let framing = if chunked {
                "transfer-encoding: chunked".to_owned()
            } else {
                format!("content-length: {len}")
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\n{framing}\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let upto = cut.map_or(len, |(_, after)| after);
            write_pattern(&mut stream, upto, chunked).await?;
            match cut {
                None => {
                    if chunked {
                        stream.write_all(b"0\r\n\r\n").await?;
                    }
                    stream.shutdown().await?;
                }
                Some((Cut::Fin, _)) => stream.shutdown().await?,
                Some((Cut::Rst, _)) => {
                    // Let the bytes arrive before the reset.
                    stream.flush().await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    reset(stream);
                }
            }
        }
        Action::FinBeforeHeaders => stream.shutdown().await?,
        Action::RstBeforeHeaders => reset(stream),
        Action::RstMidBody(after) => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
                .await?;
            stream.write_all(&vec![b'x'; after]).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(stream);
        }
        Action::TruncatedBody(after) => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                .await?;
            stream.write_all(&vec![b'x'; after]).await?;
            stream.shutdown().await?;
        }
        Action::SlowHeaders(wait) => {
            tokio::time::sleep(wait).await;
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow")
                .await?;
            stream.shutdown().await?;
        }
        Action::SlowBody(pause, chunks) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                chunks * 10
            );
            stream.write_all(head.as_bytes()).await?;
            for _ in 0..chunks {
                stream.flush().await?;
                tokio::time::sleep(pause).await;
                stream.write_all(b"0123456789").await?;
            }
            stream.shutdown().await?;
        }
        Action::Garbage => {
            stream
                .write_all(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
                .await?;
            stream.shutdown().await?;
        }
        Action::Stream(script) => {
            if serve_stream(&mut stream, &script).await? {
                stream.flush().await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                reset(stream);
            }
        }
    }
    Ok(())
}

/// Writes a stream of events as `script` says, each event its own chunk
/// (flushed: a client sees them one by one). Returns whether the
/// connection is to be reset now.
async fn serve_stream<S: AsyncWrite + Unpin>(
    stream: &mut S,
    script: &crate::routes::StreamScript,
) -> io::Result<bool> {
    let content_type = if script.lines {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\nx-request-id: req_stream\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    let chunk = |event: String| format!("{:x}\r\n{event}\r\n", event.len());
    for i in 0..=script.events {
        if let Some((_, pause)) = script.stall.filter(|(at, _)| *at == i) {
            tokio::time::sleep(pause).await;
        }
        if script.reset_at == Some(i) {
            return Ok(true);
        }
        let event = match &script.error_at {
            Some((at, kind)) if *at == i => {
                let error = format!(
                    r#"{{"type":"error","error":{{"type":"{kind}","message":"{kind} in the stream"}}}}"#
                );
                let event = if script.lines {
                    format!("{error}\n")
                } else {
                    format!("event: error\ndata: {error}\n\n")
                };
                stream.write_all(chunk(event).as_bytes()).await?;
                break;
            }
            _ if i == script.events => {
                if script.lines {
                    break;
                }
                "data: [DONE]\n\n".to_owned()
            }
            _ => {
                let pad = if i == 0 {
                    "x".repeat(script.pad)
                } else {
                    String::new()
                };
                if script.lines {
                    format!("{{\"n\":{i},\"text\":\"event {i}{pad}\"}}\n")
                } else {
                    format!("event: delta\ndata: {{\"n\":{i},\"text\":\"event {i}{pad}\"}}\n\n")
                }
            }
        };
        stream.write_all(chunk(event).as_bytes()).await?;
        stream.flush().await?;
    }
    stream.write_all(b"0\r\n\r\n").await?;
    stream.shutdown().await?;
    Ok(false)
}

/// Writes the first `n` bytes of the pattern, in 16 KiB pieces (chunks of
/// the chunked coding when `chunked`, without the last chunk).
async fn write_pattern<S: AsyncWrite + Unpin>(
    stream: &mut S,
    n: u64,
    chunked: bool,
) -> io::Result<()> {
    let mut sent = 0u64;
    let mut piece = Vec::with_capacity(16 * 1024 + 16);
    while sent < n {
        let len = (n - sent).min(16 * 1024);
        piece.clear();
        if chunked {
            piece.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        }
        piece.extend((0..len).map(|i| crate::pattern_byte(sent + i)));
        if chunked {
            piece.extend_from_slice(b"\r\n");
        }
        stream.write_all(&piece).await?;
        sent += len;
    }
    Ok(())
}

/// Reads a request head and any `content-length` body; the path without its
/// query, and the query. `None` when the peer closed first.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<Option<(String, String)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
        .min(64 * 1024 * 1024);
    // Read the body: closing with unread input would reset the connection.
    let mut remaining = length.saturating_sub(buf.len() - end);
    while remaining > 0 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        remaining = remaining.saturating_sub(n);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    Ok(Some((path, query)))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
