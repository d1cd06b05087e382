//! [`Proxy`]: a small forward proxy for `CONNECT`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the proxy answers `CONNECT`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyBehavior {
    /// Opens the tunnel (to 127.0.0.1 only, whatever host is named).
    Tunnel,
    /// Answers 407 Proxy Authentication Required.
    AuthRequired,
    /// Answers this status (e.g. 403 for a denied destination).
    Refuse(u16),
    /// Opens the tunnel only for `Proxy-Authorization: Basic` with these
    /// credentials (`user:password`); answers 407 otherwise.
    Basic(&'static str),
    /// Answers `CONNECT` with these bytes, whatever they are (a hostile
    /// proxy: escape codes, binary), then closes.
    Answer(&'static [u8]),
}

/// What the proxy saw: the heads of the `CONNECT` requests, and the first
/// [`Seen::TUNNEL_LIMIT`] bytes the client sent through each tunnel.
#[derive(Debug, Default)]
struct Seen {
    heads: Vec<String>,
    tunneled: Vec<u8>,
}

impl Seen {
    /// Bytes kept of what went through the tunnels, in all.
    const TUNNEL_LIMIT: usize = 256 * 1024;
}

/// A forward proxy on 127.0.0.1. Dropping it stops it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    connects: Arc<AtomicU64>,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts the proxy.
    pub async fn start(behavior: ProxyBehavior) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let connects = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (count, record) = (Arc::clone(&connects), Arc::clone(&seen));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (count, record) = (Arc::clone(&count), Arc::clone(&record));
                tokio::spawn(async move {
                    let _ = handle(client, behavior, count, record).await;
                });
            }
        });
        Ok(Proxy {
            addr,
            connects,
            seen,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://proxy.test:PORT`.
    pub fn url(&self) -> String {
        format!("http://proxy.test:{}", self.addr.port())
    }

    /// `CONNECT` requests received.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::SeqCst)
    }

    /// The heads of the `CONNECT` requests received, as text.
    pub fn connect_heads(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .heads
            .clone()
    }

    /// What clients sent through the tunnels once they were open (the
    /// first 256 KiB in all): over HTTPS, nothing but TLS records.
    pub fn tunneled(&self) -> Vec<u8> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tunneled
            .clone()
    }
}

/// Standard base64 of `bytes` (for `Proxy-Authorization: Basic`).
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

async fn handle(
    mut client: TcpStream,
    behavior: ProxyBehavior,
    count: Arc<AtomicU64>,
    seen: Arc<Mutex<Seen>>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Ok(());
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .heads
        .push(head.clone());
    let behavior = match behavior {
        ProxyBehavior::Basic(credentials) => {
            let expected = format!("basic {}", base64(credentials.as_bytes()));
            let given = head.lines().any(|line| {
                line.split_once(':').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("proxy-authorization")
                        && value.trim().eq_ignore_ascii_case(&expected)
                })
            });
            if given {
                ProxyBehavior::Tunnel
            } else {
                ProxyBehavior::AuthRequired
            }
        }
        other => other,
    };
    let Some(target) = head
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split(' ').next())
    else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    count.fetch_add(1, Ordering::SeqCst);
    match behavior {
        // (`Basic` was resolved to one of the others above.)
        ProxyBehavior::AuthRequired | ProxyBehavior::Basic(_) => {
            client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"triage\"\r\ncontent-length: 0\r\n\r\n")
                .await?;
        }
        ProxyBehavior::Answer(bytes) => {
            client.write_all(bytes).await?;
            let _ = client.shutdown().await;
        }
        ProxyBehavior::Refuse(code) => {
            client
                .write_all(
                    format!("HTTP/1.1 {code} Refused\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                )
                .await?;
        }
        ProxyBehavior::Tunnel => {
            let port: u16 = target
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(443);
            let upstream = TcpStream::connect(("127.0.0.1", port)).await?;
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?;
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_upstream, mut to_upstream) = upstream.into_split();
            let down = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
            });
            let mut buf = [0u8; 8192];
            loop {
                let n = from_client.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                {
                    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = Seen::TUNNEL_LIMIT.saturating_sub(seen.tunneled.len());
                    seen.tunneled.extend_from_slice(&buf[..n.min(room)]);
                }
                to_upstream.write_all(&buf[..n]).await?;
            }
            let _ = to_upstream.shutdown().await;
            let _ = down.await;
        }
    }
    Ok(())
}
