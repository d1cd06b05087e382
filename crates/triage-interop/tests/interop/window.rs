//! The diagnosis window against real servers: the second request to an
//! `openssl s_server` with an expired certificate carries that certificate's
//! subject, issuer and validity as openssl wrote them; the second request
//! through tinyproxy refusing a port carries tinyproxy's own status line.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{Detail, Stage};
use tower_triage::{Breaker, TriageLayer};
use triage_interop::{Scratch, openssl_ca, openssl_leaf, openssl_server, tinyproxy};
use triage_testkit::{Resolver, Upstream};

use crate::support::https_trusting;

/// Two GETs of `url` through one layer (breaker off, window on); the
/// second's captured detail.
async fn second_detail<C>(connector: C, url: &str) -> Result<Detail, String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut service = TriageLayer::new()
        .breaker(Breaker::disabled())
        .layer(client);
    let mut last = None;
    for _ in 0..2 {
        let request = Request::get(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let ready = service.ready().await.map_err(|e| e.to_string())?;
        match ready.call(request).await {
            Ok(response) => return Err(format!("{url}: answered {}", response.status())),
            Err(error) => last = Some(error),
        }
    }
    let error = last.ok_or("no request made")?;
    match error.packet().details() {
        [detail] => Ok(detail.clone()),
        other => Err(format!(
            "{} details, expected 1:\n{}",
            other.len(),
            error.packet()
        )),
    }
}

pub(crate) async fn window_reads_openssls_expired_certificate() -> Result<(), String> {
    let dir = Scratch::new("window-openssl").map_err(|e| e.to_string())?;
    let ca = openssl_ca(&dir, "triage interop CA")?;
    let leaf = openssl_leaf(&dir, &ca, "svc.test", -1)?;
    let server = openssl_server(&dir, &leaf, Some(&ca))?;
    let url = format!("https://svc.test:{}/", server.addr().port());
    let detail = second_detail(https_trusting(&ca.cert)?, &url).await?;
    let peer = detail
        .peer()
        .ok_or_else(|| format!("no peer certificate in {detail}"))?;
    let now = SystemTime::now();
    let checks = [
        (peer.subject() == "CN=svc.test", "subject CN=svc.test"),
        (
            peer.issuer() == "CN=triage interop CA",
            "issuer CN=triage interop CA",
        ),
        (
            peer.not_after().is_some_and(|t| t < now),
            "expired (not after < now)",
        ),
        (
            detail.stages().last().map(|m| (m.stage(), m.ok())) == Some((Stage::Tls, false)),
            "the TLS stage failed last",
        ),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err(format!("expected {what}: {detail}\n{}", server.log_text())),
        None => Ok(()),
    }
}

pub(crate) async fn window_reads_tinyproxys_status_line() -> Result<(), String> {
    let dir = Scratch::new("window-tinyproxy").map_err(|e| e.to_string())?;
    // Tunnels only to port 443: the origin's port is refused.
    let proxy = tinyproxy(&dir, "ConnectPort 443")?;
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let connector = tower_triage::connect::proxied_connector(
        Resolver::new(),
        format!("http://127.0.0.1:{}", proxy.addr().port())
            .parse()
            .map_err(|e| format!("{e}"))?,
        Some(HeaderValue::from_static("Basic aW50ZXJvcDpzM2NyM3Q=")),
    );
    let url = format!("http://127.0.0.1:{}/ok", upstream.addr().port());
    let detail = second_detail(connector, &url).await?;
    let line = detail.proxy_status().unwrap_or("");
    if !line.starts_with("HTTP/1.") || !line.contains(" 403 ") {
        return Err(format!(
            "expected tinyproxy's 403 line, got {line:?}: {detail}\n{}",
            proxy.log_text()
        ));
    }
    if detail.to_string().contains("aW50ZXJvcDpzM2NyM3Q=") {
        return Err(format!("the credentials leaked: {detail}"));
    }
    Ok(())
}
