//! An axum service that calls an upstream through the layer and maps each
//! failure's owner to its own answer: 502 for a route or connection failure,
//! 503 with `Retry-After` for an upstream rate limit, 500 carrying the
//! upstream's request ID for a server failure.
//!
//! Run: `cargo run -p triage-examples --example axum_gateway`

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::connect::{TagConnect, TagResolver};
use tower_triage::core::{Owner, Profile, RetryRules};
use tower_triage::{Triage, TriageLayer};
use triage_testkit::{Resolver, Upstream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Upstreams = Triage<Client<TagConnect<HttpConnector<TagResolver<Resolver>>>, Full<Bytes>>>;

#[derive(Clone)]
struct AppState {
    client: Upstreams,
    upstream: Arc<Upstream>,
}

/// The gateway's answer for a failed upstream call.
fn answer(error: &tower_triage::core::Error) -> Response {
    let owner = error.owner().map_or("none", |o| o.as_str());
    let mut response = match error.owner() {
        Some(Owner::RateLimit) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "5")],
            "upstream rate limited; retry later\n",
        )
            .into_response(),
        Some(Owner::Quota) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream quota exhausted; retrying will not help\n",
        )
            .into_response(),
        Some(Owner::Server) => {
            let id = error.request_id().unwrap_or("none").to_owned();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("x-upstream-request-id", id)],
                "upstream server error\n",
            )
                .into_response()
        }
        _ => (
            StatusCode::BAD_GATEWAY,
            format!("upstream failed: {}\n", error.next_step()),
        )
            .into_response(),
    };
    if let Ok(value) = owner.parse() {
        response.headers_mut().insert("x-triage-owner", value);
    }
    response
}

async fn proxy(
    State(state): State<AppState>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut client = state.client.clone();
    let target = match query {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    };
    let Ok(request) = http::Request::get(state.upstream.url(&target)).body(Full::new(Bytes::new()))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let result = match client.ready().await {
        Ok(ready) => ready.call(request).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(response) => {
            let status = response.status();
            match response.into_body().collect().await {
                Ok(body) => (status, Body::from(body.to_bytes())).into_response(),
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Err(error) => answer(&error),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let upstream = Arc::new(Upstream::start().await?);
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let client = TriageLayer::new()
        .profile(Profile::openai().clone())
        .rules(RetryRules::default().max_retries(1))
        .errors_for_status(true)
        .layer(client);
    let app = Router::new()
        .route("/proxy/{*path}", get(proxy))
        .with_state(AppState { client, upstream });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Call the gateway itself, as its clients would.
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let expected = [
        ("ok", 200),
        ("gateway/nginx/502", 502),
        ("openai/429/rate", 503),
        ("status/500?request_id=req_upstream_42", 500),
        ("openai/429/quota", 503),
    ];
    for (path, want) in expected {
        let uri = format!("http://{addr}/proxy/{path}");
        let response = plain
            .request(http::Request::get(uri).body(Full::new(Bytes::new()))?)
            .await?;
        let status = response.status();
        let owner = response
            .headers()
            .get("x-triage-owner")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let id = response
            .headers()
            .get("x-upstream-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The example doubles as a check (CI runs it).
        assert_eq!(status.as_u16(), want, "{path}");
        println!(
            "/proxy/{path:<40} -> {status} owner={owner}{}{}",
            retry
                .map(|r| format!(" retry-after={r}"))
                .unwrap_or_default(),
            id.map(|i| format!(" upstream-request-id={i}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
