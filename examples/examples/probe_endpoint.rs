//! The same-path test from inside a service: an axum admin route that runs
//! `tower_triage::probe` (resolve, connect, proxy, TLS, then the request
//! through the layer) against one of the service's own upstreams and
//! answers its report as JSON — a laptop test proves nothing about a
//! container's egress; this runs where the calls run.
//!
//! The route probes only upstreams the service is configured with, by
//! name (`/admin/probe/{name}`): an endpoint that probes any URL it is
//! given would let anyone reach inside the network.
//!
//! Run: `cargo run -p triage-examples --example probe_endpoint`

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_triage::probe::{ProbeOptions, probe};
use triage_testkit::{CertProblem, TlsUpstream, Upstream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream the service calls, and how to reach it.
#[derive(Clone)]
struct Target {
    url: Uri,
    options: ProbeOptions,
}

async fn probe_route(
    State(targets): State<Arc<HashMap<String, Target>>>,
    Path(name): Path<String>,
) -> Response {
    let Some(target) = targets.get(&name) else {
        return (StatusCode::NOT_FOUND, "no such upstream\n").into_response();
    };
    let report = probe(target.url.clone(), target.options.clone()).await;
    let status = if report.ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    (
        status,
        [("content-type", "application/json")],
        report.to_json(),
    )
        .into_response()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // Two upstreams of this service: one healthy, one whose certificate
    // this service does not trust.
    let api = Upstream::start().await?;
    let billing = TlsUpstream::start(CertProblem::UnknownIssuer).await?;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let options = |port: u16| {
        ProbeOptions::new()
            .resolve("svc.test", port, local)
            .timeout(Duration::from_secs(5))
    };
    let targets: HashMap<String, Target> = [
        (
            "api".to_owned(),
            Target {
                url: api.url("/ok").parse()?,
                options: options(api.addr().port()),
            },
        ),
        (
            "billing".to_owned(),
            Target {
                url: billing.url("/ok").parse()?,
                options: options(billing.addr().port()),
            },
        ),
    ]
    .into();
    let app = Router::new()
        .route("/admin/probe/{name}", get(probe_route))
        .with_state(Arc::new(targets));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // What an operator's `curl` would see.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for name in ["api", "billing"] {
        let uri: Uri = format!("http://{admin}/admin/probe/{name}").parse()?;
        let response = client.get(uri).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let report: serde_json::Value = serde_json::from_slice(&body)?;
        println!("GET /admin/probe/{name} -> {status}\n{report:#}\n");
        match name {
            "api" => {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(report["ok"], true);
            }
            _ => {
                assert_eq!(status, StatusCode::BAD_GATEWAY);
                assert_eq!(report["owner"], "connection_path");
                assert_eq!(report["stage"], "tls");
            }
        }
    }
    Ok(())
}
