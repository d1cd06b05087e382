//! The upstream answers as its routes say, counts hits, and streams large
//! bodies exactly; the fixtures refuse and hang as promised.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use triage_testkit::{Fnv, Upstream, closed_port, full_backlog, pattern_checksum};

/// Sends one GET and reads the whole answer (every answer closes).
async fn get(upstream: &Upstream, path: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream.addr()).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: svc.test\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    Ok(out)
}

fn status(answer: &[u8]) -> &str {
    std::str::from_utf8(&answer[9..12]).unwrap()
}

#[tokio::test]
async fn flaky_routes_count_and_recover() {
    let upstream = Upstream::start().await.unwrap();
    assert_eq!(
        status(&get(&upstream, "/flaky/2/503").await.unwrap()),
        "503"
    );
    assert_eq!(
        status(&get(&upstream, "/flaky/2/503?x=1").await.unwrap()),
        "503"
    );
    assert_eq!(
        status(&get(&upstream, "/flaky/2/503").await.unwrap()),
        "200"
    );
    assert_eq!(upstream.hits("/flaky/2/503"), 3);
    assert_eq!(upstream.total_hits(), 3);
}

#[tokio::test]
async fn large_bodies_are_exact() {
    let upstream = Upstream::start().await.unwrap();
    let answer = get(&upstream, "/bytes/3000000").await.unwrap();
    let body_at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &answer[body_at..];
    assert_eq!(body.len(), 3_000_000);
    let mut hash = Fnv::new();
    hash.write(body);
    assert_eq!(hash.finish(), pattern_checksum(3_000_000));
}

#[tokio::test]
async fn a_closed_port_refuses_and_a_full_backlog_hangs() {
    let refused = TcpStream::connect(closed_port().unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let backlog = full_backlog().unwrap();
    let hang = tokio::time::timeout(
        Duration::from_millis(300),
        TcpStream::connect(backlog.addr()),
    )
    .await;
    assert!(hang.is_err(), "the connect should still be pending");
}
