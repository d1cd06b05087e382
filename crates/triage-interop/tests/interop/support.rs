//! What every case uses: clients through the layer, and what triage said.

use std::path::Path;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Error, Owner, Stage};
use tower_triage::{ReportExt, ResponseBody, TriageLayer};
use triage_testkit::Resolver;

/// What triage reported about one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub(crate) status: Option<u16>,
    pub(crate) owner: Option<Owner>,
    pub(crate) class: String,
    pub(crate) stage: Option<Stage>,
    pub(crate) attempts: u32,
    /// The final decision (`success`, `not_retryable`, `attempts_exhausted`, ...).
    pub(crate) decision: &'static str,
    pub(crate) request_id: Option<String>,
    /// The error chain or the body, for failure messages.
    pub(crate) detail: String,
}

/// What a case expects; `None` fields are not checked.
#[derive(Debug, Default)]
pub(crate) struct Expect {
    pub(crate) status: Option<u16>,
    pub(crate) owner: Option<Option<Owner>>,
    pub(crate) class: Option<&'static str>,
    pub(crate) stage: Option<Option<Stage>>,
    pub(crate) attempts: Option<u32>,
    pub(crate) decision: Option<&'static str>,
    pub(crate) request_id: Option<&'static str>,
}

impl Expect {
    pub(crate) fn check(&self, seen: &Seen) -> Result<(), String> {
        let mut wrong = Vec::new();
        macro_rules! field {
            ($name:ident, $seen:expr) => {
                if let Some(want) = &self.$name {
                    if *want != $seen {
                        wrong.push(format!(
                            "{}: expected {:?}, got {:?}",
                            stringify!($name),
                            want,
                            $seen
                        ));
                    }
                }
            };
        }
        field!(status, seen.status.unwrap_or(0));
        field!(owner, seen.owner);
        field!(class, seen.class.as_str());
        field!(stage, seen.stage);
        field!(attempts, seen.attempts);
        field!(decision, seen.decision);
        field!(request_id, seen.request_id.as_deref().unwrap_or(""));
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{}\n  seen: {seen:?}", wrong.join("\n")))
        }
    }
}

pub(crate) type Reply = Result<http::Response<ResponseBody<Incoming>>, Error>;

/// Reads what triage said; the body of a response is read to its end.
pub(crate) async fn seen(reply: Reply) -> Seen {
    match reply {
        Ok(response) => {
            let report = response.report().expect("every response has a report");
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_else(|e| format!("(body failed: {e})"));
            let diagnosis = report.diagnosis();
            Seen {
                status: Some(status),
                owner: diagnosis.owner(),
                class: diagnosis.class().to_string(),
                stage: diagnosis.stage(),
                attempts: report.attempts(),
                decision: report.packet().map_or("success", |p| p.outcome()),
                request_id: report
                    .request_id()
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                detail: body.chars().take(300).collect(),
            }
        }
        Err(error) => Seen {
            status: error.status().map(|s| s.as_u16()),
            owner: error.owner(),
            class: error.class().to_string(),
            stage: error.stage(),
            attempts: error.attempts(),
            decision: error.packet().outcome(),
            request_id: error.request_id().map(str::to_owned),
            detail: error.packet().error_chain().join(" <- "),
        },
    }
}

/// One GET of `url` through the layer (default settings) over `connector`.
pub(crate) async fn get<C>(connector: C, url: &str) -> Reply
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut service = TriageLayer::new().layer(client);
    let request = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    service.ready().await?.call(request).await
}

/// The plain tagged connector over the testkit's resolver (`*.test` is
/// 127.0.0.1; nothing real is resolved).
pub(crate) fn plain() -> impl Connect + Clone + Send + Sync + 'static {
    tower_triage::connect::tagged_connector(Resolver::new())
}

/// The tagged HTTPS connector trusting only the CA in `ca_pem`.
pub(crate) fn https_trusting(
    ca_pem: &Path,
) -> Result<impl Connect + Clone + Send + Sync + 'static, String> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(ca_pem).map_err(|e| format!("{ca_pem:?}: {e}"))?;
    roots.add(ca).map_err(|e| e.to_string())?;
    tower_triage::connect::https_connector_with(Resolver::new(), roots).map_err(|e| e.to_string())
}

/// Checks `seen` against `expect`, naming the case's setting on failure.
pub(crate) fn verify(what: &str, seen: &Seen, expect: Expect) -> Result<(), String> {
    if std::env::var_os("TRIAGE_INTEROP_VERBOSE").is_some() {
        println!("  {what}: {seen:?}");
    }
    expect
        .check(seen)
        .map_err(|why| format!("{what}:\n{why}\n  detail: {}", seen.detail))
}
