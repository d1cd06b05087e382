//! The shortest axum recipe (feature `axum`): a handler uses `?` on a call
//! through the layer, and a failed upstream call answers the handler's own
//! caller as `application/problem+json`, its status following the owner
//! (502 for the upstream's side, 503 with `Retry-After` for a rate limit
//! or quota, 504 for a timeout). Nothing of the upstream's body, nothing
//! the request carried.
//!
//! Run: `cargo run -p triage-examples --example axum_problem`

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_triage::connect::{TagConnect, TagResolver};
use tower_triage::core::RetryRules;
use tower_triage::{Triage, TriageLayer};
use triage_testkit::{Resolver, Upstream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client in the state. Against a real API, `connect::HttpsClient`
/// (built by `connect::https_client(&layer)`) names it in one word.
type Upstreams = Triage<Client<TagConnect<HttpConnector<TagResolver<Resolver>>>, Full<Bytes>>>;

#[derive(Clone)]
struct AppState {
    client: Upstreams,
    base: String,
}

/// `?` is all the error handling: `tower_triage::core::Error` is an
/// `IntoResponse`.
async fn call_upstream(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<String, tower_triage::core::Error> {
    let request = http::Request::get(format!("{}/{path}", state.base))
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let response = state.client.oneshot(request).await?;
    Ok(format!("the upstream answered {}\n", response.status()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let upstream = Upstream::start().await?;
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = TriageLayer::new()
        .rules(RetryRules::none())
        .errors_for_status(true)
        .layer(Client::builder(TokioExecutor::new()).build(connector));
    let state = AppState {
        client,
        base: format!("http://svc.test:{}", upstream.addr().port()),
    };
    let app = Router::new()
        .route("/upstream/{*path}", get(call_upstream))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for (path, want) in [
        ("ok", 200),
        ("openai/429/rate", 503),
        ("gateway/nginx/502", 502),
    ] {
        let uri = format!("http://{addr}/upstream/{path}");
        let response = plain
            .request(http::Request::get(uri).body(Full::new(Bytes::new()))?)
            .await?;
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let body = response.into_body().collect().await?.to_bytes();
        // The example doubles as a check (CI runs it).
        assert_eq!(status.as_u16(), want, "{path}");
        println!(
            "/upstream/{path:<20} -> {status} {kind}\n    {}",
            String::from_utf8_lossy(&body).trim_end()
        );
    }
    Ok(())
}
