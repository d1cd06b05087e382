//! tinyproxy as the forward proxy: a tunnel that works, and each way the
//! proxy hop fails, owned by the proxy hop and never blamed on the origin.

use http::{HeaderValue, Uri};
use tower_triage::connect::proxied_connector;
use tower_triage::core::{Owner, Stage};
use triage_interop::{Scratch, tinyproxy};
use triage_testkit::{Resolver, Upstream, closed_port};

use crate::support::{Expect, get, seen, verify};

fn through(
    proxy: &str,
    auth: Option<&'static str>,
) -> Result<impl hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static, String>
{
    let proxy: Uri = proxy.parse().map_err(|e| format!("{proxy}: {e}"))?;
    Ok(proxied_connector(
        Resolver::new(),
        proxy,
        auth.map(HeaderValue::from_static),
    ))
}

/// The origin by address: the proxy resolves the `CONNECT` target itself,
/// and must not be asked for a name.
fn origin(upstream: &Upstream, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", upstream.addr().port())
}

pub(crate) async fn connect_allowed_reaches_the_origin() -> Result<(), String> {
    let dir = Scratch::new("tinyproxy-open").map_err(|e| e.to_string())?;
    let proxy = tinyproxy(&dir, "")?;
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let connector = through(&format!("http://127.0.0.1:{}", proxy.addr().port()), None)?;
    let seen = seen(get(connector, &origin(&upstream, "/ok")).await).await;
    verify(
        "a CONNECT tunnel through tinyproxy",
        &seen,
        Expect {
            status: Some(200),
            owner: Some(None),
            attempts: Some(1),
            decision: Some("success"),
            ..Expect::default()
        },
    )
    .map_err(|e| format!("{e}\n{}", proxy.log_text()))?;
    match upstream.hits("/ok") {
        1 => Ok(()),
        n => Err(format!("the origin saw {n} requests, expected 1")),
    }
}

async fn proxy_failure(
    what: &str,
    config: &str,
    auth: Option<&'static str>,
    class: &'static str,
) -> Result<(), String> {
    let dir = Scratch::new("tinyproxy").map_err(|e| e.to_string())?;
    let proxy = tinyproxy(&dir, config)?;
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let connector = through(&format!("http://127.0.0.1:{}", proxy.addr().port()), auth)?;
    let seen = seen(get(connector, &origin(&upstream, "/ok")).await).await;
    verify(
        what,
        &seen,
        Expect {
            status: Some(0),
            owner: Some(Some(Owner::ConnectionPath)),
            stage: Some(Some(Stage::Proxy)),
            class: Some(class),
            attempts: Some(1),
            decision: Some("not_retryable"),
            ..Expect::default()
        },
    )
    .map_err(|e| format!("{e}\n{}", proxy.log_text()))?;
    match upstream.total_hits() {
        0 => Ok(()),
        n => Err(format!(
            "{what}: the origin saw {n} requests, expected none"
        )),
    }
}

pub(crate) async fn connect_denied_by_the_acl_is_the_proxy() -> Result<(), String> {
    // Tunnels only to port 443: the origin's port is refused (403).
    proxy_failure(
        "tinyproxy with ConnectPort 443",
        "ConnectPort 443",
        None,
        "transport.proxy.proxy_rejected",
    )
    .await
}

pub(crate) async fn proxy_authentication_required_is_the_proxy() -> Result<(), String> {
    proxy_failure(
        "tinyproxy with BasicAuth, no credentials sent",
        "BasicAuth triage s3cret-interop",
        None,
        "transport.proxy.proxy_auth_required",
    )
    .await
}

pub(crate) async fn proxy_not_listening_is_the_proxy() -> Result<(), String> {
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let nobody = closed_port().map_err(|e| e.to_string())?;
    let connector = through(&format!("http://127.0.0.1:{}", nobody.port()), None)?;
    let seen = seen(get(connector, &origin(&upstream, "/ok")).await).await;
    verify(
        "a proxy address where nothing listens",
        &seen,
        Expect {
            status: Some(0),
            owner: Some(Some(Owner::ConnectionPath)),
            stage: Some(Some(Stage::Proxy)),
            class: Some("transport.proxy.refused"),
            // A proxy that is not there is not retried.
            attempts: Some(1),
            decision: Some("not_retryable"),
            ..Expect::default()
        },
    )?;
    match upstream.total_hits() {
        0 => Ok(()),
        n => Err(format!("the origin saw {n} requests, expected none")),
    }
}
