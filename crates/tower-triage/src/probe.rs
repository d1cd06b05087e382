//! The same-path test (feature `rustls`): resolve, connect, proxy, TLS, then
//! the request through the layer, each stage timed, naming the first point
//! where the evidence changed. `triage probe` prints it; a service can serve
//! it from inside its own runtime (a laptop test proves nothing about a
//! container's egress).
//!
//! # Example
//!
//! ```no_run
//! use tower_triage::probe::{probe, ProbeOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let report = probe("https://api.openai.com/v1/models".parse()?, ProbeOptions::new()).await;
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{Layer, Service, ServiceExt};
use triage_core::{
    Class, Diagnosis, Fault, Owner, Packet, Profile, RetryRules, Stage, TransportFailure, redact,
};

use crate::capture::{self, Capture};
use crate::layer::TriageLayer;
use crate::report::ReportExt;
use crate::transport::classify_error;

/// A stage of the probe.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStage {
    /// Resolving the host (or the proxy's host).
    Dns,
    /// Opening the TCP connection.
    Connect,
    /// The proxy's `CONNECT`.
    Proxy,
    /// The TLS handshake.
    Tls,
    /// The request through the layer.
    Http,
}

impl ProbeStage {
    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProbeStage::Dns => "dns",
            ProbeStage::Connect => "connect",
            ProbeStage::Proxy => "proxy",
            ProbeStage::Tls => "tls",
            ProbeStage::Http => "http",
        }
    }
}

/// One stage's result.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// The stage.
    pub stage: ProbeStage,
    /// Whether it went through.
    pub ok: bool,
    /// How long it took.
    pub elapsed: Duration,
    /// What it found (addresses, the proxy's answer, the TLS version, the status).
    pub detail: String,
}

/// What the probe found.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The URL probed, without secrets.
    pub url: String,
    /// The stages run, in order (the probe stops at the first failure).
    pub stages: Vec<StageResult>,
    /// The diagnosis: of the failing stage, or of the request's answer.
    pub diagnosis: Diagnosis,
    /// The status, if an answer came back.
    pub status: Option<u16>,
    /// The origin's request ID, if any.
    pub request_id: Option<String>,
    /// The escalation packet of the request, when it failed.
    pub packet: Option<Packet>,
    /// Attempts the request made (0 when an earlier stage failed).
    pub attempts: u32,
    /// Total time.
    pub elapsed: Duration,
    /// The longest the probe could have taken ([`ProbeOptions::bound`]).
    pub bound: Duration,
}

impl ProbeReport {
    /// Whether every stage went through and the answer was a success.
    pub fn ok(&self) -> bool {
        self.diagnosis.is_success()
    }

    /// The first stage that failed: the point where the evidence changed.
    pub fn first_failure(&self) -> Option<ProbeStage> {
        self.stages.iter().find(|s| !s.ok).map(|s| s.stage)
    }

    /// The report as one JSON object: `url`, `ok`, `owner`, `class`,
    /// `stage` (the transport stage, or the probe stage that failed),
    /// `status`, `request_id`, `attempts` (each with its status, stage,
    /// owner, class, decision), `retries`, `elapsed_ms`, `next_step`,
    /// `stages` (each timed, with what it found, scrubbed) and `packet`.
    /// For an admin endpoint; `triage probe --json` prints the same.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn to_json(&self) -> String {
        let report = self;
        let attempts: Vec<serde_json::Value> = report
            .packet
            .as_ref()
            .map(|p| {
                p.attempts()
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "n": a.n(),
                            "status": a.status(),
                            "stage": a.stage().map(|s| s.as_str()),
                            "owner": a.owner().map(|o| o.as_str()),
                            "class": a.class(),
                            "has_body": a.has_body(),
                            "request_id": a.request_id(),
                            "decision": a.decision(),
                            "delay_ms": a.delay_ms(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The transport stage when there is one (dns, connect, proxy, tls,
        // await_headers, body...), else the probe stage that failed (http for a
        // failure status).
        let stage = report
            .diagnosis
            .stage()
            .map(|s| s.as_str().to_owned())
            .or_else(|| report.first_failure().map(|s| s.as_str().to_owned()));
        serde_json::json!({
            "url": report.url,
            "ok": report.ok(),
            "owner": owner_name(&report.diagnosis),
            "class": if report.ok() { None } else { Some(class_name(&report.diagnosis)) },
            "stage": stage,
            "status": report.status,
            "request_id": report.request_id,
            "attempts": attempts,
            "retries": report.attempts.saturating_sub(1),
            "elapsed_ms": report.elapsed.as_millis() as u64,
            "bound_ms": report.bound.as_millis() as u64,
            "next_step": report.diagnosis.next_step(),
            "stages": report.stages.iter().map(|s| serde_json::json!({
                "stage": s.stage.as_str(),
                "ok": s.ok,
                "elapsed_ms": s.elapsed.as_secs_f64() * 1000.0,
                "detail": shown(&s.detail),
            })).collect::<Vec<_>>(),
            "packet": report.packet.as_ref().and_then(|p| serde_json::from_str::<serde_json::Value>(&p.to_json()).ok()),
        })
        .to_string()
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "probe {}", self.url)?;
        for s in &self.stages {
            writeln!(
                f,
                "  {:<8} {:<4} {:>9.1} ms  {}",
                s.stage.as_str(),
                if s.ok { "ok" } else { "FAIL" },
                s.elapsed.as_secs_f64() * 1000.0,
                shown(&s.detail)
            )?;
        }
        match self.first_failure() {
            Some(stage) => writeln!(
                f,
                "first point where the evidence changed: {}",
                stage.as_str()
            )?,
            None if self.ok() => writeln!(f, "every stage went through")?,
            None => writeln!(f, "first point where the evidence changed: http")?,
        }
        match self.diagnosis.owner() {
            Some(owner) => writeln!(f, "owner: {owner} ({})", self.diagnosis.class())?,
            None => writeln!(f, "owner: none (success)")?,
        }
        writeln!(f, "next step: {}", self.diagnosis.next_step())?;
        writeln!(
            f,
            "took {:.1} s of a bound of {} s",
            self.elapsed.as_secs_f64(),
            self.bound.as_secs()
        )?;
        if let Some(packet) = &self.packet {
            writeln!(f)?;
            write!(f, "{packet}")?;
        }
        Ok(())
    }
}

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    resolve: Vec<(String, u16, IpAddr)>,
    proxy: Option<Uri>,
    roots: Option<rustls::RootCertStore>,
    connect_timeout: Duration,
    timeout: Duration,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    profile: Option<Profile>,
    max_retries: u32,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            resolve: Vec::new(),
            proxy: None,
            roots: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            method: Method::GET,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            profile: None,
            max_retries: 2,
        }
    }
}

impl ProbeOptions {
    /// A GET with the system resolver and roots, 10 s timeouts, 2 retries.
    pub fn new() -> ProbeOptions {
        ProbeOptions::default()
    }

    /// The longest a probe with these options can take: each connection
    /// stage (DNS, TCP, proxy, TLS) its connect timeout, then the request's
    /// attempts their timeout each and the waits between them, which a
    /// total deadline bounds (a server's `Retry-After` cannot stretch it).
    /// 80 s with the defaults; a diagnostic, not a workload.
    pub fn bound(&self) -> Duration {
        self.connect_timeout * 4 + self.request_bound()
    }

    /// The request stage's total deadline: every attempt, and 10 s of
    /// waits between them.
    fn request_bound(&self) -> Duration {
        self.timeout * (self.max_retries + 1) + Duration::from_secs(10)
    }
    /// Resolves `host:port` to `addr`, like curl's `--resolve`.
    pub fn resolve(mut self, host: &str, port: u16, addr: IpAddr) -> Self {
        self.resolve.push((host.to_ascii_lowercase(), port, addr));
        self
    }
    /// Goes through this HTTP proxy (with `CONNECT`).
    pub fn proxy(mut self, proxy: Option<Uri>) -> Self {
        self.proxy = proxy;
        self
    }
    /// Trusts these roots instead of the system's.
    pub fn roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }
    /// The connect timeout (each of DNS, TCP, proxy and TLS).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// The per-attempt timeout of the request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// The request's method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    /// The request's headers (never printed: redacted).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }
    /// The request's body.
    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }
    /// The provider profile (detected from the host otherwise).
    pub fn profile(mut self, profile: Option<Profile>) -> Self {
        self.profile = profile;
        self
    }
    /// Retries of the request.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }
}

/// A resolver that answers with the addresses the probe found.
#[derive(Clone)]
struct Fixed(Vec<SocketAddr>);

impl Service<Name> for Fixed {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, std::io::Error>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(self.0.clone().into_iter()))
    }
}

fn failure(stage: Stage, fault: Fault) -> Diagnosis {
    let evidence = triage_core::Evidence::from_transport(TransportFailure::new(stage, fault));
    triage_core::classify(&evidence, Profile::generic())
}

/// Runs the same-path test for `url`.
pub async fn probe(url: Uri, options: ProbeOptions) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport {
        url: redact::uri(&url),
        stages: Vec::new(),
        diagnosis: failure(Stage::Connect, Fault::Unknown),
        status: None,
        request_id: None,
        packet: None,
        attempts: 0,
        elapsed: Duration::ZERO,
        bound: options.bound(),
    };
    let https = url.scheme_str() == Some("https");
    let host = url
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    // The first hop: the proxy, or the origin.
    let (hop_host, hop_port) = match &options.proxy {
        Some(p) => (
            p.host().unwrap_or("").to_owned(),
            p.port_u16().unwrap_or(80),
        ),
        None => (host.clone(), port),
    };
    let limit = options.connect_timeout;
    let connect_phase = triage_core::TimeoutPhase::Connect;

    // DNS
    let t = Instant::now();
    let overridden: Vec<SocketAddr> = options
        .resolve
        .iter()
        .filter(|(h, p, _)| h.eq_ignore_ascii_case(&hop_host) && *p == hop_port)
        .map(|(_, p, a)| SocketAddr::new(*a, *p))
        .collect();
    let addrs: Vec<SocketAddr> = if !overridden.is_empty() {
        overridden
    } else if let Ok(ip) = hop_host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, hop_port)]
    } else {
        match tokio::time::timeout(
            limit,
            tokio::net::lookup_host((hop_host.as_str(), hop_port)),
        )
        .await
        {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => {
                let fault = classify_error(&e, false, Some(Stage::Dns)).fault();
                return finish(
                    report,
                    ProbeStage::Dns,
                    t,
                    format!("{hop_host}: {e}"),
                    failure(Stage::Dns, fault),
                    started,
                );
            }
            Err(_) => {
                return finish(
                    report,
                    ProbeStage::Dns,
                    t,
                    format!("{hop_host}: no answer in {limit:?}"),
                    failure(Stage::Dns, Fault::ResolverFailed),
                    started,
                );
            }
        }
    };
    if addrs.is_empty() {
        return finish(
            report,
            ProbeStage::Dns,
            t,
            format!("{hop_host}: no address"),
            failure(Stage::Dns, Fault::NameNotFound),
            started,
        );
    }
    report.stages.push(StageResult {
        stage: ProbeStage::Dns,
        ok: true,
        elapsed: t.elapsed(),
        detail: format!(
            "{hop_host} -> {}",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });

    // TCP
    let t = Instant::now();
    let tcp_stage = if options.proxy.is_some() {
        Stage::Proxy
    } else {
        Stage::Connect
    };
    // Every address the name resolved to is tried in turn, as hyper-util's
    // connector and curl do, within one connect timeout split among them;
    // the detail lists each one tried.
    let mut tried: Vec<String> = Vec::new();
    let mut connected = None;
    let mut last_fault = Fault::Unknown;
    let tries = addrs.len().clamp(1, MAX_ADDRESSES);
    let per_address = limit / u32::try_from(tries).unwrap_or(1);
    for addr in addrs.iter().take(MAX_ADDRESSES) {
        match tokio::time::timeout(per_address, TcpStream::connect(*addr)).await {
            Ok(Ok(s)) => {
                connected = Some((s, *addr));
                break;
            }
            Ok(Err(e)) => {
                last_fault = classify_error(&e, false, Some(tcp_stage)).fault();
                tried.push(format!("{addr}: {e}"));
            }
            Err(_) => {
                last_fault = Fault::Timeout(connect_phase);
                tried.push(format!("{addr}: no answer in {per_address:?}"));
            }
        }
    }
    let Some((mut stream, addr)) = connected else {
        return finish(
            report,
            ProbeStage::Connect,
            t,
            tried.join("; "),
            failure(tcp_stage, last_fault),
            started,
        );
    };
    let detail = if tried.is_empty() {
        format!("connected to {addr}")
    } else {
        format!("connected to {addr} (tried first: {})", tried.join("; "))
    };
    report.stages.push(StageResult {
        stage: ProbeStage::Connect,
        ok: true,
        elapsed: t.elapsed(),
        detail,
    });

    // Proxy CONNECT
    if options.proxy.is_some() {
        let t = Instant::now();
        // Credentials in the proxy URL's user info go as Basic, never printed.
        let credentials = options
            .proxy
            .as_ref()
            .and_then(crate::connect::proxy_authorization)
            .and_then(|v| {
                v.to_str()
                    .ok()
                    .map(|v| format!("Proxy-Authorization: {v}\r\n"))
            })
            .unwrap_or_default();
        let request =
            format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{credentials}\r\n");
        let answer = tokio::time::timeout(limit, async {
            stream.write_all(request.as_bytes()).await?;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            Ok::<_, std::io::Error>(
                String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .await;
        let line = match answer {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                return finish(
                    report,
                    ProbeStage::Proxy,
                    t,
                    e.to_string(),
                    failure(
                        Stage::Proxy,
                        classify_error(&e, false, Some(Stage::Proxy)).fault(),
                    ),
                    started,
                );
            }
            Err(_) => {
                return finish(
                    report,
                    ProbeStage::Proxy,
                    t,
                    "no answer".into(),
                    failure(Stage::Proxy, Fault::Timeout(connect_phase)),
                    started,
                );
            }
        };
        let code = line.split_whitespace().nth(1).unwrap_or("");
        if !code.starts_with('2') {
            let fault = if code == "407" {
                Fault::ProxyAuthRequired
            } else {
                Fault::ProxyRejected
            };
            return finish(
                report,
                ProbeStage::Proxy,
                t,
                format!("proxy answered: {line}"),
                failure(Stage::Proxy, fault),
                started,
            );
        }
        report.stages.push(StageResult {
            stage: ProbeStage::Proxy,
            ok: true,
            elapsed: t.elapsed(),
            detail: format!("tunnel open: {line}"),
        });
    }

    // TLS
    let roots = match options.roots.clone() {
        Some(roots) => roots,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        }
    };
    if https {
        let t = Instant::now();
        // The connectors' verifier, which shows the server's certificate to
        // a capture: the report names what the server presented.
        let config = crate::connect::tls_config(roots.clone());
        let (Ok(config), Ok(name)) = (config, ServerName::try_from(host.clone())) else {
            return finish(
                report,
                ProbeStage::Tls,
                t,
                "invalid TLS setup or host name".into(),
                failure(Stage::Tls, Fault::Unknown),
                started,
            );
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut capture = Some(Capture::new(0));
        let mut handshake = std::pin::pin!(connector.connect(name, stream));
        let shaken = tokio::time::timeout(
            limit,
            std::future::poll_fn(|cx| capture::scope(&mut capture, || handshake.as_mut().poll(cx))),
        )
        .await;
        // `; certificate subject "…" issued by "…" valid …`, when the server
        // showed one.
        let presented = capture
            .map(|c| c.into_detail())
            .and_then(|d| d.peer().map(|p| format!("; certificate {p}")))
            .unwrap_or_default();
        match shaken {
            Ok(Ok(tls)) => {
                let version = tls
                    .get_ref()
                    .1
                    .protocol_version()
                    .map_or("?".to_owned(), |v| format!("{v:?}"));
                report.stages.push(StageResult {
                    stage: ProbeStage::Tls,
                    ok: true,
                    elapsed: t.elapsed(),
                    detail: format!("handshake done ({version}){presented}"),
                });
            }
            Ok(Err(e)) => {
                // The same judgement as the layer's, at the TLS stage.
                let fault = classify_error(&e, false, Some(Stage::Tls)).fault();
                return finish(
                    report,
                    ProbeStage::Tls,
                    t,
                    format!("{}{presented}", redact::text(&e.to_string())),
                    failure(Stage::Tls, fault),
                    started,
                );
            }
            Err(_) => {
                return finish(
                    report,
                    ProbeStage::Tls,
                    t,
                    "no handshake in time".into(),
                    failure(Stage::Tls, Fault::Timeout(connect_phase)),
                    started,
                );
            }
        }
    }

    // HTTP through the layer, on the same path (the addresses found above).
    let t = Instant::now();
    let rules = RetryRules::default()
        .max_retries(options.max_retries)
        .deadline(Some(options.request_bound()));
    // Whole-body mode: the body is read inside the attempt, under its
    // timeout and the deadline, and a body that breaks is the attempt's
    // failure (stage body). A body over the cap, or a stream, is not read:
    // the probe keeps its bound.
    let mut layer = TriageLayer::new()
        .rules(rules)
        .attempt_timeout(Some(options.timeout))
        .whole_body(Some(crate::DEFAULT_WHOLE_BODY_CAP));
    if let Some(profile) = options.profile.clone() {
        layer = layer.profile(profile);
    }
    let mut request = Request::builder()
        .method(options.method.clone())
        .uri(url.clone());
    if let Some(h) = request.headers_mut() {
        h.extend(options.headers.clone());
    }
    let Ok(request) = request.body(Full::new(options.body.clone())) else {
        return finish(
            report,
            ProbeStage::Http,
            t,
            "invalid request".into(),
            failure(Stage::Write, Fault::Unknown),
            started,
        );
    };
    let resolver = Fixed(addrs.clone());
    // Through a proxy, HTTPS is TLS with the origin inside the tunnel,
    // always: the request never crosses the proxy in clear.
    let result = match &options.proxy {
        Some(proxy) => {
            match crate::connect::proxied_https_connector(resolver, proxy.clone(), None, roots) {
                Ok(connector) => send(&layer, connector, request).await,
                Err(e) => Err(e.to_string()),
            }
        }
        None => match crate::connect::https_connector_with(resolver, roots) {
            Ok(connector) => send(&layer, connector, request).await,
            Err(e) => Err(e.to_string()),
        },
    };
    let result = match result {
        Ok(result) => result,
        Err(setup) => {
            return finish(
                report,
                ProbeStage::Http,
                t,
                setup,
                failure(Stage::Tls, Fault::Unknown),
                started,
            );
        }
    };
    match result {
        Ok(response) => {
            let status = response.status();
            let info = response.report();
            // Read whole already, or a stream the probe leaves unread.
            drop(response);
            if let Some(info) = info {
                report.diagnosis = *info.diagnosis();
                report.attempts = info.attempts();
                report.request_id = info
                    .request_id()
                    .and_then(|v| v.to_str().ok())
                    .map(remote_id);
                report.packet = info.packet().cloned();
            }
            report.status = Some(status.as_u16());
            let ok = report.diagnosis.is_success();
            report.stages.push(StageResult {
                stage: ProbeStage::Http,
                ok,
                elapsed: t.elapsed(),
                detail: format!("status {}", status.as_u16()),
            });
        }
        Err(error) => {
            report.diagnosis = *error.diagnosis();
            report.attempts = error.attempts();
            report.status = error.status().map(|s| s.as_u16());
            report.request_id = error.request_id().map(remote_id);
            report.packet = Some(error.packet().clone());
            report.stages.push(StageResult {
                stage: ProbeStage::Http,
                ok: false,
                elapsed: t.elapsed(),
                detail: redact::text(&error.to_string()).into_owned(),
            });
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// One request through `layer` over hyper-util's client with `connector`.
async fn send<C>(
    layer: &TriageLayer,
    connector: C,
    request: http::Request<Full<Bytes>>,
) -> Result<
    Result<http::Response<crate::ResponseBody<hyper::body::Incoming>>, triage_core::Error>,
    String,
>
where
    C: tower::Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read
        + hyper::rt::Write
        + hyper_util::client::legacy::connect::Connection
        + Unpin
        + Send
        + 'static,
    C::Future: Send + Unpin + 'static,
    C::Error: Into<triage_core::BoxError>,
{
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut svc = layer.layer(client);
    Ok(match svc.ready().await {
        Ok(svc) => svc.call(request).await,
        Err(e) => Err(e),
    })
}

/// The most resolved addresses the connect stage tries.
const MAX_ADDRESSES: usize = 8;

/// The longest stage detail printed.
const MAX_DETAIL: usize = 1024;

/// The longest request ID kept.
const MAX_REQUEST_ID: usize = 256;

/// A stage's detail as printed: secrets scrubbed, no character that would
/// break or disguise the line (escape codes, CR/LF), capped.
fn shown(detail: &str) -> String {
    redact::printable(&redact::text(detail), MAX_DETAIL).into_owned()
}

/// A request ID the far side sent, as kept: scrubbed, printable, capped.
fn remote_id(id: &str) -> String {
    redact::printable(&redact::text(id), MAX_REQUEST_ID).into_owned()
}

fn finish(
    mut report: ProbeReport,
    stage: ProbeStage,
    started_stage: Instant,
    detail: String,
    diagnosis: Diagnosis,
    started: Instant,
) -> ProbeReport {
    report.stages.push(StageResult {
        stage,
        ok: false,
        elapsed: started_stage.elapsed(),
        detail,
    });
    report.diagnosis = diagnosis;
    report.elapsed = started.elapsed();
    report
}

/// The owner of a diagnosis, for reports (`None` on success).
pub fn owner_name(diagnosis: &Diagnosis) -> Option<&'static str> {
    diagnosis.owner().map(Owner::as_str)
}

/// The class of a diagnosis, as its dotted name.
pub fn class_name(diagnosis: &Diagnosis) -> String {
    match diagnosis.class() {
        Class::Success => "success".into(),
        other => other.to_string(),
    }
}
