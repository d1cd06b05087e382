//! The write timeout with real sockets: an upload the peer stops reading
//! fails at the write stage once no progress is made for the limit; an
//! upload that keeps moving, however slowly, is left alone.
#![cfg(feature = "hyper-util")]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::body::ReplayBody;
use tower_triage::core::{Fault, Owner, Stage, TimeoutPhase};
use triage_testkit::Resolver;

/// `left` bytes in 64 KiB frames, made on demand.
struct Chunks {
    left: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left as u64)
    }
}

/// A server that reads `per_tick` bytes every `tick` (0: never reads after
/// the first bytes), and answers 200 once it has read `total`.
async fn reader(per_tick: usize, tick: Duration, total: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < total {
            if per_tick == 0 {
                // Hold the connection, read nothing more.
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            let mut this_tick = 0;
            while this_tick < per_tick && read + this_tick < total {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => this_tick += n,
                }
            }
            read += this_tick;
            tokio::time::sleep(tick).await;
        }
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    });
    port
}

async fn upload(
    port: u16,
    size: usize,
    write_timeout: Duration,
) -> Result<u16, tower_triage::core::Error> {
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, ReplayBody<Chunks>>(connector);
    let mut svc = TriageLayer::new()
        .write_timeout(Some(write_timeout))
        .layer(client);
    let request = Request::put(format!("http://svc.test:{port}/upload"))
        .body(ReplayBody::new(Chunks { left: size }))
        .unwrap();
    let response = svc.ready().await?.call(request).await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn an_upload_nobody_reads_fails_at_the_write_stage() {
    let port = reader(0, Duration::ZERO, usize::MAX).await;
    let started = Instant::now();
    let error = upload(port, 256 * 1024 * 1024, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(error.stage(), Some(Stage::Write), "{error}");
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Timeout(TimeoutPhase::Write))
    );
    assert_eq!(error.owner(), Some(Owner::ConnectionPath));
    // Past the replay cap, so not sent again.
    assert_eq!(error.attempts(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_upload_that_keeps_moving_is_not_a_write_timeout() {
    // 4 MiB every 50 ms, well inside a 300 ms write timeout: 64 MiB, far
    // more than the sockets' buffers hold, in about a second.
    let size = 64 * 1024 * 1024;
    let port = reader(4 * 1024 * 1024, Duration::from_millis(50), size).await;
    let status = upload(port, size, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(status, 200);
}
