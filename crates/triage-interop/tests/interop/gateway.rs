//! nginx as the gateway in front of the testkit's upstream: its own pages
//! (502, 504, `limit_req`) are the route's, an origin's answer passed
//! through is the origin's.

use tokio::net::TcpListener;
use tower_triage::core::Owner;
use triage_interop::{Scratch, nginx};
use triage_testkit::{Upstream, closed_port};

use crate::support::{Expect, get, plain, seen, verify};

fn proxy_to(port: u16, extra: &str) -> String {
    format!("    location / {{\n      proxy_pass http://127.0.0.1:{port};\n      {extra}\n    }}")
}

pub(crate) async fn dead_upstream_is_the_gateways_502() -> Result<(), String> {
    let dir = Scratch::new("nginx-dead").map_err(|e| e.to_string())?;
    let dead = closed_port().map_err(|e| e.to_string())?;
    let nginx = nginx(&dir, "", &proxy_to(dead.port(), ""))?;
    let url = format!("http://svc.test:{}/v1/models", nginx.addr().port());
    let seen = seen(get(plain(), &url).await).await;
    verify(
        "nginx in front of a closed port",
        &seen,
        Expect {
            status: Some(502),
            owner: Some(Some(Owner::Route)),
            class: Some("gateway.unavailable"),
            stage: Some(None),
            attempts: Some(3),
            decision: Some("attempts_exhausted"),
            ..Expect::default()
        },
    )
    .map_err(|e| format!("{e}\n{}", nginx.log_text()))
}

/// Accepts connections and never answers, for as long as it lives.
struct Stalled {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stalled() -> Result<Stalled, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while held.len() < 64 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => return,
            }
        }
        std::future::pending::<()>().await;
    });
    Ok(Stalled { port, task })
}

pub(crate) async fn stalled_upstream_is_the_gateways_504() -> Result<(), String> {
    let dir = Scratch::new("nginx-stall").map_err(|e| e.to_string())?;
    let upstream = stalled().await?;
    let nginx = nginx(&dir, "", &proxy_to(upstream.port, "proxy_read_timeout 1s;"))?;
    let url = format!(
        "http://svc.test:{}/v1/chat/completions",
        nginx.addr().port()
    );
    let seen = seen(get(plain(), &url).await).await;
    verify(
        "nginx with proxy_read_timeout 1s in front of a silent upstream",
        &seen,
        Expect {
            status: Some(504),
            owner: Some(Some(Owner::Route)),
            class: Some("gateway.upstream_timeout"),
            stage: Some(None),
            attempts: Some(3),
            decision: Some("attempts_exhausted"),
            ..Expect::default()
        },
    )
}

async fn limited(status: Option<u16>) -> Result<(crate::support::Seen, Upstream), String> {
    let dir = Scratch::new("nginx-limit").map_err(|e| e.to_string())?;
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let status_line = status.map_or(String::new(), |s| format!("limit_req_status {s};"));
    let nginx = nginx(
        &dir,
        "  limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
        &proxy_to(
            upstream.addr().port(),
            &format!("limit_req zone=one;\n      {status_line}"),
        ),
    )?;
    let url = format!("http://svc.test:{}/ok", nginx.addr().port());
    // The first request of the minute passes; the next are refused.
    let first = seen(get(plain(), &url).await).await;
    if first.status != Some(200) {
        return Err(format!("the first request should pass: {first:?}"));
    }
    Ok((seen(get(plain(), &url).await).await, upstream))
}

pub(crate) async fn limit_req_429_is_a_rate_limit() -> Result<(), String> {
    let (seen, upstream) = limited(Some(429)).await?;
    verify(
        "nginx limit_req with limit_req_status 429",
        &seen,
        Expect {
            status: Some(429),
            owner: Some(Some(Owner::RateLimit)),
            class: Some("rate_limited"),
            stage: Some(None),
            attempts: Some(3),
            decision: Some("attempts_exhausted"),
            ..Expect::default()
        },
    )?;
    // Refused at the gateway: the origin saw only the first request.
    match upstream.hits("/ok") {
        1 => Ok(()),
        n => Err(format!("the origin saw {n} requests, expected 1")),
    }
}

pub(crate) async fn limit_req_503_is_the_gateway() -> Result<(), String> {
    let (seen, upstream) = limited(None).await?;
    verify(
        "nginx limit_req with its default 503",
        &seen,
        Expect {
            status: Some(503),
            owner: Some(Some(Owner::Route)),
            class: Some("gateway.unavailable"),
            stage: Some(None),
            attempts: Some(3),
            decision: Some("attempts_exhausted"),
            ..Expect::default()
        },
    )?;
    match upstream.hits("/ok") {
        1 => Ok(()),
        n => Err(format!("the origin saw {n} requests, expected 1")),
    }
}

pub(crate) async fn origin_500_with_its_request_id_is_the_server() -> Result<(), String> {
    let dir = Scratch::new("nginx-origin").map_err(|e| e.to_string())?;
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let nginx = nginx(&dir, "", &proxy_to(upstream.addr().port(), ""))?;
    let path = "/status/500?request_id=req_interop_origin_1";
    let url = format!("http://svc.test:{}{path}", nginx.addr().port());
    let seen = seen(get(plain(), &url).await).await;
    verify(
        "nginx passing through an origin's 500",
        &seen,
        Expect {
            status: Some(500),
            owner: Some(Some(Owner::Server)),
            request_id: Some("req_interop_origin_1"),
            class: Some("server_error.500"),
            stage: Some(None),
            attempts: Some(3),
            decision: Some("attempts_exhausted"),
        },
    )?;
    let hits = upstream.hits("/status/500");
    if u64::from(seen.attempts) != hits {
        return Err(format!(
            "triage counted {} attempts, the origin saw {hits}",
            seen.attempts
        ));
    }
    Ok(())
}
