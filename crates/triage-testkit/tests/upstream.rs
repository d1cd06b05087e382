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

#[tokio::test]
async fn flaky_bodies_are_cut_then_whole() {
    let upstream = Upstream::start().await.unwrap();
    // A FIN after 1,000 of the 50,000 bytes declared: a truncated body.
    let cut = get(&upstream, "/flaky-body/1/fin/50000?after=1000")
        .await
        .unwrap();
    let body_at = cut.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(String::from_utf8_lossy(&cut[..body_at]).contains("content-length: 50000"));
    assert_eq!(cut.len() - body_at, 1000);
    // The next request gets all of it.
    let whole = get(&upstream, "/flaky-body/1/fin/50000").await.unwrap();
    let body_at = whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut hash = Fnv::new();
    hash.write(&whole[body_at..]);
    assert_eq!(hash.finish(), pattern_checksum(50_000));
    assert_eq!(upstream.hits("/flaky-body/1/fin/50000"), 2);

    // A reset: the reader gets at most the bytes sent, then an error.
    let reset = get(&upstream, "/flaky-body/1/rst/50000?after=1000").await;
    assert!(
        reset.as_ref().map_or(true, |answer| answer.len() < 50_000),
        "{:?}",
        reset.map(|a| a.len())
    );
    // Chunked, whole on the second request: the last chunk ends it.
    let _ = get(&upstream, "/flaky-body/1/fin/70000?chunked=1").await;
    let chunked = get(&upstream, "/flaky-body/1/fin/70000?chunked=1")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&chunked);
    assert!(text.contains("transfer-encoding: chunked"));
    assert!(chunked.ends_with(b"0\r\n\r\n"));
}
