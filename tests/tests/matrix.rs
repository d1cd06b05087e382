//! The differential matrix: every fault of the set, through every
//! composition, against real loopback servers (HTTP/1 from
//! `triage_testkit::Upstream`, HTTP/2 from `H2Upstream`, TLS with the
//! testkit's CA), must get the verdict that hyper-util over HTTP/1 gets:
//! the same owner, class family, attempts and breaker state. After every
//! fault that is not permanent, a healthy call on the same route succeeds;
//! after a permanent one (an unknown CA), the route refuses it.

use std::any::Any;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Layer, service_fn};
use tower_triage::core::Owner;
use triage_matrix::{After, Composition, Log, Svc, Verdict, build, layer, roots, unify};
use triage_testkit::{CertProblem, H2Upstream, TlsUpstream, Upstream, refusing_port};

/// The fault set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Refused,
    ResetBeforeHeaders,
    ClosedBeforeHeaders,
    Stall,
    RateLimited,
    Unavailable,
    MidBodyReset,
    UnknownCa,
}

/// Which servers a composition needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    H2c,
    H2Tls,
}

/// A composition under test: one of the crate's, or reqwest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Under {
    Hyper(Composition),
    /// The layer over a `service_fn` that sends through reqwest.
    Reqwest,
    /// reqwest with the layer as its middleware.
    ReqwestMiddleware,
}

impl Under {
    fn proto(self) -> Proto {
        match self {
            Under::Hyper(Composition::H2c) => Proto::H2c,
            Under::Hyper(Composition::H2Tls) => Proto::H2Tls,
            _ => Proto::Http1,
        }
    }

    fn build(self, log: &Log) -> Svc {
        match self {
            Under::Hyper(composition) => build(composition, roots(), log),
            Under::Reqwest => reqwest_composition(log),
            Under::ReqwestMiddleware => middleware_composition(log),
        }
    }
}

/// A reqwest client over HTTP/1, rustls with the ring provider trusting the
/// testkit's CA, `svc.test` pinned to 127.0.0.1: no real name is ever
/// resolved.
fn reqwest_client() -> reqwest::Client {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots())
        .with_no_client_auth();
    reqwest::Client::builder()
        .no_proxy()
        .resolve("svc.test", "127.0.0.1:0".parse().unwrap())
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

/// (h) reqwest with [`TriageMiddleware`](tower_triage::reqwest::TriageMiddleware)
/// built from the same layer, called through reqwest-middleware's client;
/// its error is unwrapped to triage's, its response read as an
/// `http::Response` (the report rides in the extensions).
fn middleware_composition(log: &Log) -> Svc {
    let client = reqwest_middleware::ClientBuilder::new(reqwest_client())
        .with(tower_triage::reqwest::TriageMiddleware::new(layer(
            true, log,
        )))
        .build();
    let send = service_fn(move |request: http::Request<Full<Bytes>>| {
        let client = client.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let sent = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(bytes)
                .send()
                .await;
            match sent {
                Ok(response) => Ok(http::Response::from(response)),
                Err(reqwest_middleware::Error::Middleware(error)) => {
                    let error = error
                        .downcast::<tower_triage::core::Error>()
                        .unwrap_or_else(|other| panic!("not triage's error: {other}"));
                    Err(triage_matrix::BoxError::from(error))
                }
                Err(reqwest_middleware::Error::Reqwest(error)) => {
                    panic!("the client's error came past the middleware: {error}")
                }
            }
        }
    });
    unify(send)
}

/// (g) the layer over a `service_fn` that sends through reqwest.
fn reqwest_composition(log: &Log) -> Svc {
    let client = reqwest_client();
    let send = service_fn(move |request: http::Request<Full<Bytes>>| {
        let client = client.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let request = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(bytes)
                .build()?;
            let response = client.execute(request).await?;
            Ok::<_, reqwest::Error>(http::Response::from(response))
        }
    });
    unify(layer(true, log).layer(send))
}

/// The servers of one case, the URL of the fault and of the healthy call
/// on the same route; a refusing port starts serving after the fault.
struct Case {
    fault_url: String,
    healthy_url: String,
    _servers: Vec<Box<dyn Any + Send>>,
    pending: Option<(triage_testkit::RefusingPort, Proto)>,
}

impl Case {
    async fn new(fault: Fault, proto: Proto) -> Case {
        let path = |h1: &str, h2: &str| {
            if proto == Proto::Http1 {
                h1.to_owned()
            } else {
                h2.to_owned()
            }
        };
        let fault_path = match fault {
            Fault::ResetBeforeHeaders => path("/fault/rst-before-headers", "/h2/rst-tcp"),
            Fault::ClosedBeforeHeaders => path("/fault/fin-before-headers", "/h2/close"),
            Fault::Stall => path("/fault/slow-headers?ms=2000", "/h2/slow?ms=2000"),
            Fault::RateLimited => "/status/429?retry_after=0".to_owned(),
            Fault::Unavailable => "/status/503".to_owned(),
            Fault::MidBodyReset => path("/fault/rst-mid-body?after=1000", "/h2/rst-mid-body"),
            Fault::Refused | Fault::UnknownCa => "/ok".to_owned(),
        };
        match fault {
            Fault::Refused => {
                let port = refusing_port().unwrap();
                let scheme = if proto == Proto::H2Tls {
                    "https"
                } else {
                    "http"
                };
                let url = format!("{scheme}://svc.test:{}/ok", port.addr().port());
                Case {
                    fault_url: url.clone(),
                    healthy_url: url,
                    _servers: Vec::new(),
                    pending: Some((port, proto)),
                }
            }
            Fault::UnknownCa => {
                let (url, server): (String, Box<dyn Any + Send>) = match proto {
                    Proto::Http1 => {
                        let s = TlsUpstream::start(CertProblem::UnknownIssuer)
                            .await
                            .unwrap();
                        (s.url("/ok"), Box::new(s))
                    }
                    Proto::H2c | Proto::H2Tls => {
                        let s = H2Upstream::start_tls(CertProblem::UnknownIssuer)
                            .await
                            .unwrap();
                        (s.url("/ok"), Box::new(s))
                    }
                };
                Case {
                    fault_url: url.clone(),
                    healthy_url: url,
                    _servers: vec![server],
                    pending: None,
                }
            }
            _ => {
                let (fault_url, healthy_url, server): (String, String, Box<dyn Any + Send>) =
                    match proto {
                        Proto::Http1 => {
                            let s = Upstream::start().await.unwrap();
                            (s.url(&fault_path), s.url("/ok"), Box::new(s))
                        }
                        Proto::H2c => {
                            let s = H2Upstream::start().await.unwrap();
                            (s.url(&fault_path), s.url("/ok"), Box::new(s))
                        }
                        Proto::H2Tls => {
                            let s = H2Upstream::start_tls(CertProblem::None).await.unwrap();
                            (s.url(&fault_path), s.url("/ok"), Box::new(s))
                        }
                    };
                Case {
                    fault_url,
                    healthy_url,
                    _servers: vec![server],
                    pending: None,
                }
            }
        }
    }

    /// A refusing port starts serving (the route's service came back).
    fn serve_now(&mut self) {
        if let Some((port, proto)) = self.pending.take() {
            let listener = port.listen().unwrap();
            let server: Box<dyn Any + Send> = match proto {
                Proto::Http1 => Box::new(Upstream::start_on(listener).unwrap()),
                Proto::H2c => Box::new(H2Upstream::start_on(listener).unwrap()),
                Proto::H2Tls => {
                    Box::new(H2Upstream::start_tls_on(listener, CertProblem::None).unwrap())
                }
            };
            self._servers.push(server);
        }
    }
}

/// One composition's verdict on one fault, with its own servers and layer.
async fn verdict(fault: Fault, under: Under) -> Verdict {
    let mut case = Case::new(fault, under.proto()).await;
    let log = Log::default();
    let mut svc = under.build(&log);
    let mut verdict = triage_matrix::judge(&mut svc, &case.fault_url, &log).await;
    // A refusing port serves from now on: the route's service came back.
    case.serve_now();
    verdict.after = triage_matrix::after(&mut svc, &case.healthy_url).await;
    verdict
}

fn every_composition() -> Vec<Under> {
    let mut all: Vec<Under> = Composition::ALL.into_iter().map(Under::Hyper).collect();
    all.push(Under::Reqwest);
    all.push(Under::ReqwestMiddleware);
    all
}

/// Runs `fault` through every composition, checks the reference verdict
/// and that every composition gets the same.
async fn the_same_everywhere(fault: Fault, expected: Verdict) {
    let reference = verdict(fault, Under::Hyper(Composition::Http1)).await;
    assert_eq!(reference, expected, "the reference verdict for {fault:?}");
    let mut differ = Vec::new();
    for under in every_composition() {
        let got = verdict(fault, under).await;
        eprintln!("{fault:?} / {under:?}: {got:?}");
        if got != reference {
            differ.push(format!("{under:?}: {got:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{fault:?}: reference {reference:?}, but\n{}",
        differ.join("\n")
    );
}

fn transient(owner: Owner, family: &str, attempts: u32) -> Verdict {
    Verdict {
        owner: Some(owner),
        family: family.to_owned(),
        attempts,
        after: After::Healthy,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused() {
    // The healthy call goes to the same port once it serves.
    let expected = transient(Owner::ConnectionPath, "transport.connect.refused", 3);
    the_same_everywhere(Fault::Refused, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_before_headers() {
    let expected = transient(Owner::ConnectionPath, "transport.exchange.lost", 3);
    the_same_everywhere(Fault::ResetBeforeHeaders, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_before_headers() {
    let expected = transient(Owner::ConnectionPath, "transport.exchange.lost", 3);
    the_same_everywhere(Fault::ClosedBeforeHeaders, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_past_the_attempt_timeout() {
    let expected = transient(Owner::ConnectionPath, "transport.exchange.timeout", 3);
    the_same_everywhere(Fault::Stall, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_with_retry_after() {
    let expected = transient(Owner::RateLimit, "rate_limited", 3);
    the_same_everywhere(Fault::RateLimited, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_unavailable() {
    let expected = transient(Owner::Server, "server_error", 3);
    the_same_everywhere(Fault::Unavailable, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_reset_mid_way() {
    let expected = transient(Owner::ConnectionPath, "transport.body.lost", 1);
    the_same_everywhere(Fault::MidBodyReset, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_opens_the_route() {
    let expected = Verdict {
        owner: Some(Owner::ConnectionPath),
        family: "transport.tls.certificate".to_owned(),
        attempts: 1,
        after: After::RouteOpen,
    };
    the_same_everywhere(Fault::UnknownCa, expected).await;
}
