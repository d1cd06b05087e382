//! Kernel-level faults: `tc netem` delay on the loopback of a namespace of
//! the case's own, giving a connect timeout and a headers timeout, each
//! classified by its phase. Where the kernel has no netem (`Specified qdisc
//! kind is unknown`), the cases say so and are skipped.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::core::{Owner, Stage};
use triage_interop::find;
use triage_testkit::{Resolver, Upstream};

use crate::netns::in_namespace;
use crate::support::{Expect, seen, verify};

pub(crate) async fn netem_delay_is_a_connect_timeout() -> Result<(), String> {
    in_namespace("netem-connect").await
}

pub(crate) async fn netem_delay_is_a_headers_timeout() -> Result<(), String> {
    in_namespace("netem-headers").await
}

/// Delays every packet on loopback by `delay`.
fn netem(delay: Duration) -> Result<(), String> {
    let tc = find("tc").ok_or(format!("{}tc (iproute2) is not installed", crate::SKIP))?;
    let output = Command::new(tc)
        .args(["qdisc", "add", "dev", "lo", "root", "netem", "delay"])
        .arg(format!("{}ms", delay.as_millis()))
        .output()
        .map_err(|e| format!("cannot run tc: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    if said.contains("unknown") || said.contains("No such file") {
        Err(format!(
            "{}this kernel has no netem ({})",
            crate::SKIP,
            said.trim()
        ))
    } else {
        Err(format!("tc qdisc add ... netem failed: {said}"))
    }
}

/// Inside the namespace: the delay, an upstream, one call with the
/// timeouts of the case, and the verdict.
pub(crate) async fn inner(case: &str) -> Result<(), String> {
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let url = format!("http://svc.test:{}/ok", upstream.addr().port());
    let mut connector = tower_triage::connect::tagged_connector(Resolver::new());
    let (delay, expect) = match case {
        // Every packet waits 1.5 s: the handshake cannot finish within the
        // connect timeout.
        "netem-connect" => {
            connector
                .get_mut()
                .set_connect_timeout(Some(Duration::from_millis(500)));
            (
                Duration::from_millis(1500),
                Expect {
                    status: Some(0),
                    owner: Some(Some(Owner::ConnectionPath)),
                    stage: Some(Some(Stage::Connect)),
                    class: Some("transport.connect.timeout.connect"),
                    attempts: Some(3),
                    decision: Some("attempts_exhausted"),
                    ..Expect::default()
                },
            )
        }
        // 600 ms a packet: connected after about 1.2 s, the answer would
        // need 1.2 s more; the attempt timeout (2 s) falls in between.
        "netem-headers" => {
            connector
                .get_mut()
                .set_connect_timeout(Some(Duration::from_secs(5)));
            (
                Duration::from_millis(600),
                Expect {
                    status: Some(0),
                    owner: Some(Some(Owner::ConnectionPath)),
                    stage: Some(Some(Stage::AwaitHeaders)),
                    class: Some("transport.await_headers.timeout.headers"),
                    ..Expect::default()
                },
            )
        }
        other => return Err(format!("no kernel case {other:?}")),
    };
    netem(delay)?;
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let mut service = TriageLayer::new()
        .attempt_timeout(Some(Duration::from_secs(2)))
        .layer(client);
    let request = Request::get(url.as_str())
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let reply = match service.ready().await {
        Ok(ready) => ready.call(request).await,
        Err(e) => Err(e),
    };
    verify(case, &seen(reply).await, expect)
}
