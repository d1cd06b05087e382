//! Feature `axum`, with a real axum server in front of the testkit: a
//! handler that uses `?` on a triage call answers its own caller with
//! `application/problem+json`, its status following the owner (502 for the
//! upstream's server, 503 with `Retry-After` for a rate limit, 504 for a
//! timeout), never with the upstream's body or what the request carried;
//! the statuses are configurable; and an empty `axum::body::Body` (a
//! `GET`'s) is sent again on a retryable failure.
#![cfg(all(feature = "axum", feature = "hyper-util"))]

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use triage_core::problem::{Problem, Statuses};
use triage_core::{Backoff, Owner, RetryRules};
use triage_testkit::{Resolver, Upstream};

const KEY: &str = "zq9LongSecretValue77";

type Upstreams = tower_triage::Triage<
    Client<
        tower_triage::connect::TagConnect<
            hyper_util::client::legacy::connect::HttpConnector<
                tower_triage::connect::TagResolver<Resolver>,
            >,
        >,
        Full<Bytes>,
    >,
>;

#[derive(Clone)]
struct AppState {
    upstream: Upstreams,
    base: String,
}

fn client(layer: tower_triage::TriageLayer) -> Upstreams {
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    layer.layer(Client::builder(TokioExecutor::new()).build(connector))
}

/// Calls the upstream's `path` (percent-encoded in this server's path):
/// the upstream's failure is this handler's error, answered by `?`.
async fn call(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<String, triage_core::Error> {
    let request = Request::get(format!("{}/{path}", state.base))
        .header("x-api-key", KEY)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = state.upstream.clone().oneshot(request).await?;
    Ok(format!("upstream said {}", response.status()))
}

/// The same, answered with custom statuses: a gateway that passes its
/// caller's rate limit on as a 429.
async fn call_as_429(state: State<AppState>, path: Path<String>) -> Response {
    match call(state, path).await {
        Ok(text) => text.into_response(),
        Err(error) => {
            let statuses =
                Statuses::default().owner(Owner::RateLimit, StatusCode::TOO_MANY_REQUESTS);
            Problem::new(&error).statuses(statuses).into_response()
        }
    }
}

/// The axum server, in front of `upstream`; its base URL.
async fn serve(upstream: &Upstream, layer: tower_triage::TriageLayer) -> String {
    let state = AppState {
        upstream: client(layer),
        base: format!("http://svc.test:{}", upstream.addr().port()),
    };
    let app = Router::new()
        .route("/call/{path}", get(call))
        .route("/as429/{path}", get(call_as_429))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// What the axum server answered: status, content type, `Retry-After`,
/// body.
async fn get_from(url: &str) -> (StatusCode, String, Option<String>, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .request(Request::get(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type.unwrap_or_default(),
        retry_after,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn layer() -> tower_triage::TriageLayer {
    tower_triage::TriageLayer::new()
        .rules(RetryRules::none())
        .errors_for_status(true)
        .attempt_timeout(Some(Duration::from_millis(300)))
}

#[tokio::test]
async fn a_handlers_error_answers_with_a_problem_whose_status_follows_the_owner() {
    let upstream = Upstream::start().await.unwrap();
    let server = serve(&upstream, layer()).await;

    // The upstream's server failed: 502.
    let (status, content_type, retry_after, body) =
        get_from(&format!("{server}/call/status%2F500%3Frequest_id%3Dreq-77")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(retry_after, None);
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 502);
    assert_eq!(problem["owner"], "server");
    // The upstream echoed a value the request carried (its query's) as its
    // request ID: scrubbed.
    assert_eq!(problem["request_ids"][0], "[redacted]");
    assert_eq!(problem["attempts"], 1);
    assert!(problem["detail"].as_str().unwrap().len() > 10);
    // Never the upstream's body, never what the request carried.
    assert!(
        !body.contains("status 500") && !body.contains(KEY),
        "{body}"
    );

    // A rate limit: 503, with the upstream's wait as Retry-After.
    let (status, _, retry_after, body) =
        get_from(&format!("{server}/call/status%2F429%3Fretry_after%3D7")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("7"));
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["owner"], "rate_limit");
    assert_eq!(problem["retry_after_s"], 7);

    // An exhausted quota: 503, with the upstream's own request ID.
    let (status, _, _, body) = get_from(&format!("{server}/call/openai%2F429%2Fquota")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["owner"], "quota");
    assert_eq!(problem["request_ids"][0], "req_quota_1");

    // A timeout: 504.
    let (status, _, _, body) =
        get_from(&format!("{server}/call/fault%2Fslow-headers%3Fms%3D5000")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["owner"], "connection_path");
    assert_eq!(problem["stage"], "await_headers");

    // The statuses are the handler's to choose.
    let (status, content_type, retry_after, _) =
        get_from(&format!("{server}/as429/status%2F429%3Fretry_after%3D3")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(retry_after.as_deref(), Some("3"));

    // A success passes through.
    let (status, _, _, body) = get_from(&format!("{server}/call/ok")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "upstream said 200 OK");
}

#[tokio::test]
async fn an_empty_axum_body_is_sent_again() {
    let upstream = Upstream::start().await.unwrap();
    let rules = RetryRules::default()
        .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(5)).unwrap());
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, axum::body::Body>(connector);
    let svc = tower_triage::TriageLayer::new().rules(rules).layer(client);
    let request = Request::get(upstream.url("/flaky/1/503"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200, "retried once, then the success");
    assert_eq!(upstream.hits("/flaky/1/503"), 2);

    // A body with bytes in it cannot be read twice: not sent again, and
    // the next step says why.
    let connector = tower_triage::connect::tagged_connector(Resolver::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, axum::body::Body>(connector);
    let svc = tower_triage::TriageLayer::new()
        .rules(RetryRules::default())
        .errors_for_status(true)
        .layer(client);
    let request = Request::post(upstream.url("/flaky/3/503"))
        .header("idempotency-key", "k-1")
        .body(axum::body::Body::from("{\"a\":1}"))
        .unwrap();
    let error = svc.oneshot(request).await.unwrap_err();
    assert_eq!(error.stop(), triage_core::Stop::BodyNotReplayable);
    assert!(
        error.next_step().contains("ReplayBody"),
        "{}",
        error.next_step()
    );
    assert!(error.packet().next_step().contains("ReplayBody"));
}
