//! TLS failures through the tagged HTTPS connector, against a rustls server
//! on 127.0.0.1 with certificates made at test time: each is the TLS stage,
//! names its certificate problem, and is never retried.
#![cfg(feature = "rustls")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{CertificateProblem, Fault, Owner, Stage};
use tower_triage::{ReportExt, TriageLayer};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    // Each CA gets its own name: two CAs with rcgen's default name would
    // make a foreign chain look like a bad signature, not an unknown issuer.
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().clone();
    Ca { params, key, der }
}

#[derive(Clone, Copy, PartialEq)]
enum Problem {
    None,
    UnknownIssuer,
    WrongName,
    Expired,
}

/// A TLS server for `svc.test` answering every request with 200 "secure".
async fn tls_server(trusted: &Ca, problem: Problem) -> (SocketAddr, Arc<AtomicU32>) {
    let other = ca("other test CA");
    let issuer_ca = if problem == Problem::UnknownIssuer {
        &other
    } else {
        trusted
    };
    let name = if problem == Problem::WrongName {
        "other.test"
    } else {
        "svc.test"
    };
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    if problem == Problem::Expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&issuer_ca.params, &issuer_ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone(), issuer_ca.der.clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&handshakes);
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, handshakes)
}

async fn call(
    trusted: &Ca,
    addr: SocketAddr,
) -> Result<
    http::Response<tower_triage::ResponseBody<hyper::body::Incoming>>,
    tower_triage::core::Error,
> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der.clone()).unwrap();
    let connector =
        tower_triage::connect::https_connector_with(triage_testkit::Resolver::new(), roots)
            .unwrap();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = TriageLayer::new().layer(client);
    let request = Request::get(format!("https://svc.test:{}/v1", addr.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.ready().await.unwrap().call(request).await
}

#[tokio::test]
async fn a_trusted_certificate_works() {
    let trusted = ca("triage test CA");
    let (addr, _) = tls_server(&trusted, Problem::None).await;
    let response = call(&trusted, addr).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.report().unwrap().attempts(), 1);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "secure"
    );
}

#[tokio::test]
async fn certificate_problems_are_the_tls_stage_and_never_retried() {
    let trusted = ca("triage test CA");
    for (problem, expected) in [
        (Problem::UnknownIssuer, CertificateProblem::UnknownIssuer),
        (Problem::WrongName, CertificateProblem::WrongName),
        (Problem::Expired, CertificateProblem::Expired),
    ] {
        let (addr, handshakes) = tls_server(&trusted, problem).await;
        let error = call(&trusted, addr).await.unwrap_err();
        assert_eq!(error.owner(), Some(Owner::ConnectionPath));
        assert_eq!(error.stage(), Some(Stage::Tls), "{expected:?}: {error}");
        assert_eq!(
            error.class().transport().map(|t| t.fault()),
            Some(Fault::Certificate(expected)),
            "{:?}",
            error.packet().error_chain()
        );
        assert_eq!(error.attempts(), 1);
        assert_eq!(
            handshakes.load(Ordering::SeqCst),
            1,
            "{expected:?} was retried"
        );
    }
}

#[tokio::test]
async fn a_plain_port_spoken_to_with_tls_is_a_tls_failure_not_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let trusted = ca("triage test CA");
    let error = call(&trusted, addr).await.unwrap_err();
    assert_eq!(
        error.stage(),
        Some(Stage::Tls),
        "{:?}",
        error.packet().error_chain()
    );
    assert_eq!(
        error.class().transport().map(|t| t.fault()),
        Some(Fault::TlsProtocol),
        "{:?}",
        error.packet().error_chain()
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
