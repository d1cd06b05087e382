//! Failures at the proxy hop, through the tagged `CONNECT` connector and a
//! small forward proxy on 127.0.0.1: each is owned by the proxy stage, never
//! blamed on the origin, and not retried.
#![cfg(feature = "hyper-util")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Fault, Owner, Stage};
use tower_triage::{ReportExt, TriageLayer};

#[derive(Clone, Copy)]
enum Behaviour {
    Tunnel,
    AuthRequired,
    Refuse,
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8(head).ok()
}

/// A forward proxy; tunnels only to 127.0.0.1 ports (any name it is given
/// is mapped there). Counts CONNECT requests.
async fn proxy(behaviour: Behaviour) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connects = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&connects);
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let Some(head) = read_head(&mut client).await else {
                    return;
                };
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                match behaviour {
                    Behaviour::AuthRequired => {
                        let _ = client
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"triage\"\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                    Behaviour::Refuse => {
                        let _ = client
                            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                    Behaviour::Tunnel => {
                        let port: u16 = target
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0);
                        let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
                            return;
                        };
                        let _ = client
                            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                            .await;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                }
            });
        }
    });
    (addr, connects)
}

/// An origin answering 200 "through the proxy".
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_some() {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\nconnection: close\r\n\r\nthrough proxy")
                        .await;
                }
            });
        }
    });
    addr
}

async fn call(
    proxy_addr: SocketAddr,
    origin_port: u16,
) -> Result<
    http::Response<tower_triage::ResponseBody<hyper::body::Incoming>>,
    tower_triage::core::Error,
> {
    let proxy_uri: Uri = format!("http://proxy.test:{}", proxy_addr.port())
        .parse()
        .unwrap();
    let connector =
        tower_triage::connect::proxied_connector(triage_testkit::Resolver::new(), proxy_uri, None);
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new().layer(client);
    let request = Request::get(format!("http://svc.test:{origin_port}/v1"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.ready().await.unwrap().call(request).await
}

#[tokio::test]
async fn a_tunnel_carries_the_request() {
    let origin = origin().await;
    let (proxy_addr, connects) = proxy(Behaviour::Tunnel).await;
    let response = call(proxy_addr, origin.port()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().attempts(), 1);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "through proxy"
    );
    assert_eq!(connects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn proxy_failures_are_the_proxy_stage_and_not_retried() {
    let origin = origin().await;
    for (behaviour, fault) in [
        (Behaviour::AuthRequired, Fault::ProxyAuthRequired),
        (Behaviour::Refuse, Fault::ProxyRejected),
    ] {
        let (proxy_addr, connects) = proxy(behaviour).await;
        let error = call(proxy_addr, origin.port()).await.unwrap_err();
        assert_eq!(error.owner(), Some(Owner::ConnectionPath));
        assert_eq!(
            error.stage(),
            Some(Stage::Proxy),
            "{:?}",
            error.packet().error_chain()
        );
        assert_eq!(
            error.class().transport().map(|t| t.fault()),
            Some(fault),
            "{:?}",
            error.packet().error_chain()
        );
        assert_eq!(error.attempts(), 1);
        assert_eq!(connects.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_proxy_that_is_not_listening_is_the_proxy_stage() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let origin = origin().await;
    let error = call(closed, origin.port()).await.unwrap_err();
    assert_eq!(
        error.stage(),
        Some(Stage::Proxy),
        "{:?}",
        error.packet().error_chain()
    );
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::Refused)
    );
    assert_eq!(error.attempts(), 1, "a blocked proxy is not retried");
    assert!(error.next_step().contains("proxy"), "{}", error.next_step());
}
