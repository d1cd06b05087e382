//! What a hyper 1 HTTP/2 client observes from each route of `H2Upstream`:
//! the `h2::Error` under the `hyper::Error` (reason, reset or go-away,
//! remote), what happens to the connection, hit and connection counts, and
//! h2 negotiated over TLS. These are the facts tabulated in `src/h2.rs`.
#![cfg(feature = "http2")]

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::Reason;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use triage_testkit::{CertProblem, H2Fault, H2Upstream, Resolver};

/// Every test is bounded by this.
const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("the test took too long")
}

/// One HTTP/2 client connection and its driver task.
struct H2Client {
    sender: SendRequest<Empty<Bytes>>,
    conn: JoinHandle<Result<(), hyper::Error>>,
}

async fn handshake<T>(io: T) -> H2Client
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .expect("h2 handshake");
    H2Client {
        sender,
        conn: tokio::spawn(conn),
    }
}

async fn h2c(upstream: &H2Upstream) -> H2Client {
    handshake(TcpStream::connect(upstream.addr()).await.unwrap()).await
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// One GET on a connection, with its whole body.
async fn fetch(sender: &mut SendRequest<Empty<Bytes>>, url: &str) -> Result<Answer, hyper::Error> {
    sender.ready().await?;
    let request = Request::get(url).body(Empty::new()).unwrap();
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

impl H2Client {
    async fn get(&mut self, url: &str) -> Result<Answer, hyper::Error> {
        fetch(&mut self.sender, url).await
    }

    /// The result of the connection's driver, once it has ended.
    async fn ended(self) -> Result<(), hyper::Error> {
        drop(self.sender);
        self.conn.await.unwrap()
    }
}

/// Each error of the `source()` chain, `Display` and `Debug`.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(err);
    while let Some(err) = next {
        out.push_str(&format!("[{err} | {err:?}] "));
        next = err.source();
    }
    out
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// What the client saw of a failed request: the h2 error's facts.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    reason: Option<Reason>,
    reset: bool,
    go_away: bool,
    remote: bool,
}

fn seen(err: &hyper::Error) -> Seen {
    let h2 = find::<h2::Error>(err).unwrap_or_else(|| panic!("no h2::Error in {}", chain(err)));
    Seen {
        reason: h2.reason(),
        reset: h2.is_reset(),
        go_away: h2.is_go_away(),
        remote: h2.is_remote(),
    }
}

fn reset(reason: Reason) -> Seen {
    Seen {
        reason: Some(reason),
        reset: true,
        go_away: false,
        remote: true,
    }
}

fn go_away(reason: Reason) -> Seen {
    Seen {
        reason: Some(reason),
        reset: false,
        go_away: true,
        remote: true,
    }
}

fn assert_plain_h2_error(err: &hyper::Error) {
    assert_eq!(err.to_string(), "http2 error", "{}", chain(err));
    assert!(!err.is_canceled() && !err.is_closed() && !err.is_incomplete_message());
}

#[tokio::test]
async fn answers_multiplex_on_one_connection() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        let mut client = h2c(&upstream).await;

        let ok = client.get(&upstream.url("/ok")).await.unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.headers["content-type"], "application/json");
        assert_eq!(ok.headers["x-request-id"], "req_h2_0");
        assert_eq!(ok.body, r#"{"ok":true}"#);
        let again = client.get(&upstream.url("/ok")).await.unwrap();
        assert_eq!(again.headers["x-request-id"], "req_h2_1");

        let limited = client
            .get(&upstream.url("/status/429?retry_after=7"))
            .await
            .unwrap();
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers["retry-after"], "7");
        assert!(limited.body.starts_with(b"{\"error\""));
        let unavailable = client.get(&upstream.url("/status/503")).await.unwrap();
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!unavailable.headers.contains_key("retry-after"));

        // A slow stream does not hold the others back.
        let started = Instant::now();
        let mut slow_sender = client.sender.clone();
        let slow_url = upstream.url("/h2/slow?ms=800");
        let slow = tokio::spawn(async move { fetch(&mut slow_sender, &slow_url).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let fast = client.get(&upstream.url("/ok")).await.unwrap();
        assert_eq!(fast.status, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_millis(800));
        assert!(!slow.is_finished());
        let slow = slow.await.unwrap().unwrap();
        assert_eq!(slow.status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(800));

        assert_eq!(upstream.connections(), 1);
        assert_eq!(upstream.hits("/ok"), 3);
        assert_eq!(upstream.hits("/status/429"), 1);
        assert_eq!(upstream.hits("/h2/slow"), 1);
        assert_eq!(upstream.total_hits(), 6);
        let missing = client.get(&upstream.url("/nope")).await.unwrap();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn stream_resets_leave_the_connection_usable() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        let mut client = h2c(&upstream).await;
        for (fault, reason) in [
            (H2Fault::RefusedStream, Reason::REFUSED_STREAM),
            (H2Fault::ResetInternal, Reason::INTERNAL_ERROR),
            (H2Fault::ResetCancel, Reason::CANCEL),
            (H2Fault::ResetProtocol, Reason::PROTOCOL_ERROR),
            (H2Fault::EnhanceYourCalm, Reason::ENHANCE_YOUR_CALM),
        ] {
            let err = client
                .get(&upstream.url(fault.path()))
                .await
                .err()
                .unwrap_or_else(|| panic!("{fault:?} answered"));
            eprintln!("{fault:?}: {}", chain(&err));
            assert_plain_h2_error(&err);
            assert_eq!(seen(&err), reset(reason), "{fault:?}");
            assert_eq!(upstream.hits(fault.path()), 1);
            // The same connection goes on.
            let ok = client.get(&upstream.url("/ok")).await.unwrap();
            assert_eq!(ok.status, StatusCode::OK);
        }
        assert_eq!(upstream.connections(), 1);
    })
    .await;
}

#[tokio::test]
async fn flaky_refused_stream_fails_twice_then_answers() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        let mut client = h2c(&upstream).await;
        let url = upstream.url("/flaky/2/refused-stream");
        for _ in 0..2 {
            let err = client.get(&url).await.err().expect("refused");
            assert_eq!(seen(&err), reset(Reason::REFUSED_STREAM));
        }
        let ok = client.get(&url).await.unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.body, r#"{"ok":true}"#);
        assert_eq!(upstream.hits("/flaky/2/refused-stream"), 3);
        assert_eq!(upstream.connections(), 1);
    })
    .await;
}

#[tokio::test]
async fn goaway_unprocessed_is_no_error_on_the_stream_and_a_clean_end() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        // As the first stream (last-stream-id 0) and as the third (1).
        for warm_up in [false, true] {
            let mut client = h2c(&upstream).await;
            if warm_up {
                client.get(&upstream.url("/ok")).await.unwrap();
            }
            let err = client
                .get(&upstream.url("/h2/goaway-unprocessed"))
                .await
                .err()
                .expect("not processed");
            eprintln!("goaway-unprocessed (warm {warm_up}): {}", chain(&err));
            assert_plain_h2_error(&err);
            assert_eq!(seen(&err), go_away(Reason::NO_ERROR));
            // The connection ends cleanly: hyper takes GOAWAY(NO_ERROR) for
            // a graceful shutdown.
            let ended = client.ended().await;
            assert!(ended.is_ok(), "{ended:?}");
        }
        assert_eq!(upstream.hits("/h2/goaway-unprocessed"), 2);
        assert_eq!(upstream.connections(), 2);
    })
    .await;
}

#[tokio::test]
async fn goaway_after_fails_the_stream_as_a_broken_pipe_and_the_connection_as_internal_error() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        let mut client = h2c(&upstream).await;
        client.get(&upstream.url("/ok")).await.unwrap();
        let err = client
            .get(&upstream.url("/h2/goaway-after"))
            .await
            .err()
            .expect("processed, then GOAWAY");
        // The stream is at or below the last-stream-id, so h2 keeps it open
        // after the GOAWAY; the close that follows fails it as a broken
        // pipe, exactly like `/h2/close`: hyper::Error(Io, Custom { kind:
        // BrokenPipe, error: "stream closed because of a broken pipe" }),
        // Display "connection error", with no h2::Error in the chain. Only
        // the connection's own future reports the GOAWAY.
        eprintln!("goaway-after: {}", chain(&err));
        assert_eq!(err.to_string(), "connection error", "{}", chain(&err));
        assert!(!err.is_canceled() && !err.is_closed() && !err.is_incomplete_message());
        assert!(find::<h2::Error>(&err).is_none(), "{}", chain(&err));
        let io = find::<std::io::Error>(&err).expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
        let ended = client.ended().await.expect_err("the connection failed");
        eprintln!("goaway-after, connection: {}", chain(&ended));
        assert_eq!(ended.to_string(), "http2 error");
        assert_eq!(seen(&ended), go_away(Reason::INTERNAL_ERROR));
        assert_eq!(upstream.hits("/h2/goaway-after"), 1);

        // A new connection answers.
        let mut client = h2c(&upstream).await;
        let ok = client.get(&upstream.url("/ok")).await.unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(upstream.connections(), 2);
    })
    .await;
}

#[tokio::test]
async fn close_and_tcp_reset_are_io_errors() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        for (fault, kind) in [
            (H2Fault::Close, std::io::ErrorKind::BrokenPipe),
            (H2Fault::RstTcp, std::io::ErrorKind::ConnectionReset),
        ] {
            let mut client = h2c(&upstream).await;
            client.get(&upstream.url("/ok")).await.unwrap();
            let err = client
                .get(&upstream.url(fault.path()))
                .await
                .err()
                .unwrap_or_else(|| panic!("{fault:?} answered"));
            // Observed:
            // Close:  hyper::Error(Io, Kind(BrokenPipe)), Display
            //         "connection error"; h2 reports EOF with open streams
            //         as io::ErrorKind::BrokenPipe.
            // RstTcp: hyper::Error(Io, Os { code: 104, kind:
            //         ConnectionReset, .. }), Display "connection error".
            // Both: is_canceled, is_closed, is_incomplete_message all false.
            eprintln!(
                "{fault:?}: {} canceled={} closed={} incomplete={}",
                chain(&err),
                err.is_canceled(),
                err.is_closed(),
                err.is_incomplete_message()
            );
            assert_eq!(err.to_string(), "connection error", "{}", chain(&err));
            assert!(!err.is_canceled() && !err.is_closed() && !err.is_incomplete_message());
            assert!(
                find::<h2::Error>(&err).is_none_or(|h2| h2.reason().is_none() && h2.is_io()),
                "{}",
                chain(&err)
            );
            let io = find::<std::io::Error>(&err).expect("an io::Error");
            assert_eq!(io.kind(), kind, "{fault:?}: {}", chain(&err));
            let ended = client.ended().await.expect_err("the connection failed");
            eprintln!("{fault:?}, connection: {}", chain(&ended));
            let io = find::<std::io::Error>(&ended).expect("an io::Error");
            assert_eq!(io.kind(), kind, "{fault:?}: {}", chain(&ended));
            assert_eq!(upstream.hits(fault.path()), 1);
        }
        assert_eq!(upstream.connections(), 2);
    })
    .await;
}

#[tokio::test]
async fn flaky_connection_faults_recover_on_a_new_connection() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        for name in ["close", "goaway-after", "goaway-unprocessed", "rst-tcp"] {
            let url = upstream.url(&format!("/flaky/1/{name}"));
            let mut client = h2c(&upstream).await;
            assert!(client.get(&url).await.is_err(), "{name}");
            let mut client = h2c(&upstream).await;
            assert_eq!(client.get(&url).await.unwrap().status, StatusCode::OK);
            assert_eq!(upstream.hits(&format!("/flaky/1/{name}")), 2);
        }
        assert_eq!(upstream.connections(), 8);
    })
    .await;
}

/// hyper-util's legacy client (`retry_canceled_requests` on, the default)
/// retries none of the faults, even on a reused pooled connection: each
/// request fails once, and the next one gets its 200.
#[tokio::test]
async fn the_legacy_client_retries_none_of_them() {
    bounded(async {
        let upstream = H2Upstream::start().await.unwrap();
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(HttpConnector::new_with_resolver(Resolver::new()));
        let get = |path: &str| {
            let request = Request::get(upstream.url(path)).body(Empty::new()).unwrap();
            client.request(request)
        };
        for fault in H2Fault::ALL {
            // Warm (or re-open) the pooled connection first.
            assert_eq!(get("/ok").await.unwrap().status(), StatusCode::OK);
            let path = format!("/flaky/1/{}", fault.name());
            let err = get(&path).await.expect_err(fault.name());
            eprintln!("legacy {fault:?}: {}", chain(&err));
            assert!(!err.is_connect(), "{fault:?}");
            let hyper_err = find::<hyper::Error>(&err).expect("a hyper::Error");
            assert!(!hyper_err.is_canceled(), "{fault:?}");
            assert_eq!(upstream.hits(&path), 1, "{fault:?}: not retried");
            assert_eq!(get(&path).await.unwrap().status(), StatusCode::OK);
        }
        // One connection, and one more after each of the 4 connection faults.
        assert_eq!(upstream.connections(), 5);
    })
    .await;
}

fn tls_connector(upstream: &H2Upstream, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(upstream.ca_der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_negotiates_h2_and_serves_the_faults() {
    bounded(async {
        let upstream = H2Upstream::start_tls(CertProblem::None).await.unwrap();
        assert!(upstream.url("/ok").starts_with("https://svc.test:"));
        assert!(!upstream.ca_der().is_empty());
        let connector = tls_connector(&upstream, &[b"h2", b"http/1.1"]);
        let name = ServerName::try_from("svc.test").unwrap();
        let tcp = TcpStream::connect(upstream.addr()).await.unwrap();
        let tls = connector.connect(name.clone(), tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut client = handshake(tls).await;
        let ok = client.get(&upstream.url("/ok")).await.unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        let err = client
            .get(&upstream.url("/h2/refused-stream"))
            .await
            .err()
            .expect("refused");
        assert_eq!(seen(&err), reset(Reason::REFUSED_STREAM));
        // The raw GOAWAY goes through TLS too.
        let err = client
            .get(&upstream.url("/h2/goaway-unprocessed"))
            .await
            .err()
            .expect("not processed");
        eprintln!("tls goaway-unprocessed: {}", chain(&err));
        assert_eq!(seen(&err), go_away(Reason::NO_ERROR));
        assert!(client.ended().await.is_ok());

        // A client that offers only http/1.1 is closed after the handshake.
        let http1 = tls_connector(&upstream, &[b"http/1.1"]);
        let tcp = TcpStream::connect(upstream.addr()).await.unwrap();
        let mut tls = http1.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let mut buf = [0u8; 16];
        assert_eq!(tls.read(&mut buf).await.unwrap(), 0);
        assert_eq!(upstream.connections(), 2);
        assert_eq!(upstream.hits("/ok"), 1);
    })
    .await;
}
