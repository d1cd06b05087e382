//! [`Proxy`]: a small forward proxy for `CONNECT`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

/// A forward proxy on 127.0.0.1. Dropping it stops it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    connects: Arc<AtomicU64>,
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
        let count = Arc::clone(&connects);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let _ = handle(client, behavior, count).await;
                });
            }
        });
        Ok(Proxy {
            addr,
            connects,
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
}

async fn handle(
    mut client: TcpStream,
    behavior: ProxyBehavior,
    count: Arc<AtomicU64>,
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
        ProxyBehavior::AuthRequired => {
            client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"triage\"\r\ncontent-length: 0\r\n\r\n")
                .await?;
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
            let mut upstream = TcpStream::connect(("127.0.0.1", port)).await?;
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?;
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        }
    }
    Ok(())
}
