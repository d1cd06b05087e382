//! The same-path test (feature `rustls`): one request through the layer and
//! the library's tagged connectors, as a service would send it, with every
//! attempt captured from its start (a [`ConnectionLog`]): DNS, TCP, proxy
//! and TLS each timed, then the answer, naming the first point where the
//! evidence changed. The verdict, the attempts and the escalation packet
//! are the layer's own, with the same retry rules; every failure has a
//! packet. `triage probe` prints it; a service can serve it from inside its
//! own runtime (a laptop test proves nothing about a container's egress).
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
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use tower::{Service, ServiceExt};
use triage_core::{
    Class, Detail, Diagnosis, Fault, Owner, Packet, Profile, RetryRules, Stage, TransportFailure,
    redact,
};

use crate::capture::ConnectionLog;
use crate::layer::TriageLayer;
use crate::options::RequestOptions;
use crate::report::ReportExt;

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
    /// The request's answer, through the layer.
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
    /// The connection stages of the last attempt that made a connection,
    /// in order, then the answer's (`http`) when they all went through.
    pub stages: Vec<StageResult>,
    /// The diagnosis: of the failing stage, or of the request's answer.
    pub diagnosis: Diagnosis,
    /// The status, if an answer came back.
    pub status: Option<u16>,
    /// The origin's request ID, if any.
    pub request_id: Option<String>,
    /// The escalation packet: there is one for every failure (and for a
    /// success that needed a retry), with every attempt, the connection
    /// detail of each failed one, and [`Packet::finding`].
    pub packet: Option<Packet>,
    /// Attempts the request made.
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
    /// `finding` (the packet's sentence), `stages` (each timed to 0.1 ms,
    /// with what it found, scrubbed) and `packet`.
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
            "finding": report.packet.as_ref().map(|p| p.finding()),
            "stages": report.stages.iter().map(|s| serde_json::json!({
                "stage": s.stage.as_str(),
                "ok": s.ok,
                "elapsed_ms": (s.elapsed.as_secs_f64() * 10_000.0).round() / 10.0,
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
            writeln!(f, "{packet}")?;
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

    /// The longest a probe with these options can take, its total
    /// deadline: every attempt its timeout (which covers its connection
    /// too), and 10 s of waits between them (a server's `Retry-After`
    /// cannot stretch it). 40 s with the defaults; a diagnostic, not a
    /// workload.
    pub fn bound(&self) -> Duration {
        self.timeout * (self.max_retries + 1) + Duration::from_secs(10)
    }
    /// Resolves `host:port` to `addr`, like curl's `--resolve`, for the
    /// origin's host and port, or the proxy's (repeat it for more than one
    /// address: each is tried in turn). A host that is an IP address is
    /// never looked up.
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
    /// The connect timeout of each attempt: DNS, TCP, proxy and TLS
    /// together, within the attempt's timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// The timeout of each attempt, from its connection to the end of a
    /// small body.
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

/// The probe's resolver: the `--resolve` overrides for the origin's or
/// the proxy's host and port, else the system's.
#[derive(Clone)]
struct Overrides {
    fixed: Arc<Vec<(String, IpAddr)>>,
    system: GaiResolver,
}

impl Service<Name> for Overrides {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let fixed: Vec<SocketAddr> = self
            .fixed
            .iter()
            .filter(|(host, _)| host.eq_ignore_ascii_case(name.as_str()))
            .map(|(_, addr)| SocketAddr::new(*addr, 0))
            .collect();
        if !fixed.is_empty() {
            return Box::pin(std::future::ready(Ok(fixed.into_iter())));
        }
        let lookup = self.system.call(name);
        Box::pin(async move {
            Ok(lookup
                .await
                .map_err(std::io::Error::other)?
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

/// Runs the same-path test for `url`: one request through
/// [`TriageLayer`] over the library's tagged connectors (through the proxy
/// when one is set, TLS with the origin inside its tunnel), every attempt
/// captured from its start by a [`ConnectionLog`]. The stages, owner,
/// attempts and packet are the layer's own.
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
    let host = url
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let profile = options
        .profile
        .clone()
        .unwrap_or_else(|| Profile::detect(&host).clone());
    let log = ConnectionLog::new();
    let request = match request_for(&url, &options, &log) {
        Ok(request) => request,
        Err(e) => {
            let detail = format!("invalid request: {e}");
            return stopped(report, (ProbeStage::Http, Stage::Write), detail, started);
        }
    };
    let t = Instant::now();
    let layer = layer_for(&options, profile.clone());
    let result = match through(&url, &options, &layer, request).await {
        Ok(result) => result,
        Err(setup) => {
            let detail = format!("TLS setup failed: {setup}");
            return stopped(report, (ProbeStage::Tls, Stage::Tls), detail, started);
        }
    };
    let http = read_answer(&mut report, result, t.elapsed());
    if let Some(packet) = report.packet.as_mut() {
        // Without retries the layer keeps no copy of the body to read the
        // model from: the probe has it in memory.
        if packet.model().is_none() && profile.model_in_body() {
            if let Some(model) = triage_core::body::request_model(&options.body) {
                packet.set_model(&model);
            }
        }
    }
    report.stages = connection_stages(
        &log.details(),
        &report.diagnosis,
        options.proxy.is_some(),
        options.connect_timeout,
    );
    // The request's own stage, once the connection went through.
    if report.stages.iter().all(|s| s.ok) {
        report.stages.push(http);
    }
    report.elapsed = started.elapsed();
    report
}

/// The report of a probe that could not send its request (`detail` says
/// why): one failed stage, an unknown fault at `at`, never permanent.
fn stopped(
    mut report: ProbeReport,
    (stage, at): (ProbeStage, Stage),
    detail: String,
    started: Instant,
) -> ProbeReport {
    report.stages.push(StageResult {
        stage,
        ok: false,
        elapsed: Duration::ZERO,
        detail,
    });
    report.diagnosis = failure(at, Fault::Unknown);
    report.elapsed = started.elapsed();
    report
}

/// The probe's request: its method, headers and body, with the options
/// that log every attempt's connection and keep no route state (one
/// diagnosis: nothing to keep or be refused by).
fn request_for(
    url: &Uri,
    options: &ProbeOptions,
    log: &ConnectionLog,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut request = Request::builder()
        .method(options.method.clone())
        .uri(url.clone());
    if let Some(h) = request.headers_mut() {
        h.extend(options.headers.clone());
    }
    request
        .extension(
            RequestOptions::new()
                .connection_log(log.clone())
                .breaker(false)
                .diagnosis_window(false),
        )
        .body(Full::new(options.body.clone()))
}

/// The layer the probe sends through: its retries under its total
/// deadline, its timeouts, and whole-body mode (the body is read inside the
/// attempt, under its timeout and the deadline, and a body that breaks is
/// the attempt's failure; a body over the cap, or a stream, is not read:
/// the probe keeps its bound).
fn layer_for(options: &ProbeOptions, profile: Profile) -> TriageLayer {
    let rules = RetryRules::default()
        .max_retries(options.max_retries)
        .deadline(Some(options.bound()));
    TriageLayer::new()
        .rules(rules)
        .attempt_timeout(Some(options.timeout))
        .connect_timeout(Some(options.connect_timeout))
        .whole_body(Some(crate::DEFAULT_WHOLE_BODY_CAP))
        .profile(profile)
}

/// The resolver of the probe: the `--resolve` entries for the first hop
/// (the origin, or the proxy), else the system's.
fn resolver_for(url: &Uri, options: &ProbeOptions) -> Overrides {
    let https = url.scheme_str() == Some("https");
    let hop = match &options.proxy {
        Some(p) => (p.host().unwrap_or(""), p.port_u16().unwrap_or(80)),
        None => (
            url.host()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']'),
            url.port_u16().unwrap_or(if https { 443 } else { 80 }),
        ),
    };
    let fixed = options
        .resolve
        .iter()
        .filter(|(h, p, _)| h.eq_ignore_ascii_case(hop.0) && *p == hop.1)
        .map(|(h, _, a)| (h.clone(), *a))
        .collect();
    Overrides {
        fixed: Arc::new(fixed),
        system: GaiResolver::new(),
    }
}

/// The roots trusted: the options', else the system's.
fn roots_for(options: &ProbeOptions) -> rustls::RootCertStore {
    options.roots.clone().unwrap_or_else(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    })
}

/// What a request through the layer came back with.
type Answer =
    Result<http::Response<crate::ResponseBody<hyper::body::Incoming>>, triage_core::Error>;

/// Sends `request` through `layer` over the tagged connectors: through a
/// proxy, HTTPS is TLS with the origin inside the tunnel, always (the
/// request never crosses the proxy in clear). `Err` when TLS cannot be set
/// up with the roots.
async fn through(
    url: &Uri,
    options: &ProbeOptions,
    layer: &TriageLayer,
    request: Request<Full<Bytes>>,
) -> Result<Answer, rustls::Error> {
    let resolver = resolver_for(url, options);
    let roots = roots_for(options);
    Ok(match &options.proxy {
        Some(proxy) => {
            let connector =
                crate::connect::proxied_https_connector(resolver, proxy.clone(), None, roots)?;
            send(layer, connector, request).await
        }
        None => {
            send(
                layer,
                crate::connect::https_connector_with(resolver, roots)?,
                request,
            )
            .await
        }
    })
}

/// Reads the layer's answer into `report` (diagnosis, attempts, status,
/// request ID, packet); the `http` stage, which took `elapsed`.
fn read_answer(report: &mut ProbeReport, result: Answer, elapsed: Duration) -> StageResult {
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
            StageResult {
                stage: ProbeStage::Http,
                ok: report.diagnosis.is_success(),
                elapsed,
                detail: format!("status {}", status.as_u16()),
            }
        }
        Err(error) => {
            report.diagnosis = *error.diagnosis();
            report.attempts = error.attempts();
            report.status = error.status().map(|s| s.as_u16());
            report.request_id = error.request_id().map(remote_id);
            report.packet = Some(error.packet().clone());
            StageResult {
                stage: ProbeStage::Http,
                ok: false,
                elapsed,
                detail: redact::text(&error.to_string()).into_owned(),
            }
        }
    }
}

/// The connection stages of the last attempt that made a connection, as
/// the probe reports them (the first proxy stage, through a proxy, is the
/// TCP connection to it); a connection stage that never ended (its timeout
/// fired) is added as failed.
fn connection_stages(
    details: &[Detail],
    diagnosis: &Diagnosis,
    proxied: bool,
    connect_timeout: Duration,
) -> Vec<StageResult> {
    let Some(detail) = details
        .iter()
        .rev()
        .find(|d| !d.stages().is_empty() || d.name().is_some())
    else {
        return Vec::new();
    };
    let mut stages = Vec::new();
    let mut before = Duration::ZERO;
    let mut to_proxy = proxied;
    let error = detail.error_chain().join(": ");
    for mark in detail.stages() {
        let elapsed = mark.at().saturating_sub(before);
        before = mark.at();
        // Through a proxy, the first proxy stage is the TCP connection.
        let tcp_to_proxy = to_proxy && mark.stage() == Stage::Proxy;
        to_proxy &= !tcp_to_proxy;
        if let Some((stage, text)) = stage_found(detail, mark, tcp_to_proxy, &error) {
            stages.push(StageResult {
                stage,
                ok: mark.ok(),
                elapsed,
                detail: text,
            });
        }
    }
    // A connection stage whose timeout fired never ended: it failed.
    let open = diagnosis
        .stage()
        .filter(|s| matches!(s, Stage::Dns | Stage::Connect | Stage::Proxy | Stage::Tls));
    if let (Some(stage), true) = (open, stages.iter().all(|s| s.ok)) {
        let stage = match stage {
            Stage::Dns => ProbeStage::Dns,
            Stage::Proxy if to_proxy => ProbeStage::Connect,
            Stage::Proxy => ProbeStage::Proxy,
            Stage::Tls => ProbeStage::Tls,
            _ => ProbeStage::Connect,
        };
        let what = match (stage, detail.name()) {
            (ProbeStage::Dns, Some(name)) => format!("{name}: "),
            _ => String::new(),
        };
        stages.push(StageResult {
            stage,
            ok: false,
            elapsed: connect_timeout.saturating_sub(before),
            detail: if error.is_empty() {
                format!("{what}no answer in {connect_timeout:?}")
            } else {
                format!("{what}{error}")
            },
        });
    }
    stages
}

/// The probe stage a connection stage's `mark` is, and what it found;
/// `None` for a stage the probe does not list.
fn stage_found(
    detail: &Detail,
    mark: &triage_core::StageMark,
    tcp_to_proxy: bool,
    error: &str,
) -> Option<(ProbeStage, String)> {
    let name = detail.name().unwrap_or("?");
    Some(match (mark.stage(), mark.ok()) {
        (Stage::Dns, true) => (
            ProbeStage::Dns,
            format!("{name} -> {}", detail.answers().join(", ")),
        ),
        (Stage::Dns, false) => (ProbeStage::Dns, format!("{name}: {error}")),
        (Stage::Connect, _) | (Stage::Proxy, _)
            if mark.stage() == Stage::Connect || tcp_to_proxy =>
        {
            let text = match (mark.ok(), detail.connected()) {
                (true, Some(addr)) => connected_to(detail, addr),
                (true, None) => "connected".to_owned(),
                (false, _) => tried(detail, error),
            };
            (ProbeStage::Connect, text)
        }
        (Stage::Proxy, true) => (
            ProbeStage::Proxy,
            format!("tunnel open: {}", detail.proxy_status().unwrap_or("")),
        ),
        (Stage::Proxy, false) => (
            ProbeStage::Proxy,
            match detail.proxy_status() {
                Some(line) => format!("proxy answered: {line}"),
                None => error.to_owned(),
            },
        ),
        (Stage::Tls, ok) => {
            let presented = detail
                .peer()
                .map(|p| format!("; certificate {p}"))
                .unwrap_or_default();
            let text = if ok {
                format!("handshake done{presented}")
            } else {
                format!("{error}{presented}")
            };
            (ProbeStage::Tls, text)
        }
        _ => return None,
    })
}

/// `connected to ADDR`, with the answers tried before it.
fn connected_to(detail: &Detail, addr: &str) -> String {
    let ip = addr
        .parse::<SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let before: Vec<&str> = detail
        .answers()
        .iter()
        .map(String::as_str)
        .take_while(|a| *a != ip)
        .collect();
    if before.is_empty() || before.len() == detail.answers().len() {
        format!("connected to {addr}")
    } else {
        format!("connected to {addr} (tried first: {})", before.join(", "))
    }
}

/// What a failed connect tried, and why it failed.
fn tried(detail: &Detail, error: &str) -> String {
    if detail.answers().is_empty() {
        error.to_owned()
    } else {
        format!("tried {}: {error}", detail.answers().join(", "))
    }
}

fn failure(stage: Stage, fault: Fault) -> Diagnosis {
    let evidence = triage_core::Evidence::from_transport(TransportFailure::new(stage, fault));
    triage_core::classify(&evidence, Profile::generic())
}

/// One request through `layer` over hyper-util's client with `connector`.
async fn send<C>(
    layer: &TriageLayer,
    connector: C,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<crate::ResponseBody<hyper::body::Incoming>>, triage_core::Error>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut svc = crate::connect::client_with::<_, Full<Bytes>>(layer, connector);
    match svc.ready().await {
        Ok(svc) => svc.call(request).await,
        Err(e) => Err(e),
    }
}

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
