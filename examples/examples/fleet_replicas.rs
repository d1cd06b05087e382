//! Two replicas sharing a rate window through Redis: replica A uses up the
//! upstream's window, and replica B, which has had no answer from it yet,
//! waits for the reset instead of being refused.
//!
//! It starts `redis-server` itself (Debian's package `redis-server`) on a
//! free loopback port, with no persistence, and stops it at the end. When
//! `redis-server` is not installed, it says so in one line and stops.
//!
//! Run: `cargo run -p triage-examples --example fleet_replicas`

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::core::{Profile, RetryRules};
use triage_fleet::Fleet;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The upstream admits 3 requests per 2-second window.
const PATH: &str = "/window/3/2000";

/// `redis-server`, killed when dropped.
struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program` on a free loopback port; its URL once it accepts
/// connections (at most 5 s).
fn start_redis(program: PathBuf) -> Result<(Redis, String), BoxError> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let redis = Redis(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
            return Ok((redis, format!("redis://127.0.0.1:{port}/")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("redis-server did not accept connections within 5 s".into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let Some(program) = triage_testkit::suite::find_program("redis-server") else {
        println!(
            "fleet_replicas: redis-server is not installed (Debian: apt install redis-server); nothing to share through, so nothing to show"
        );
        return Ok(());
    };
    let (_redis, url) = start_redis(program)?;
    let upstream = triage_testkit::Upstream::start().await?;

    // Two replicas: each its own layer, client and fleet handle (its own
    // Redis connections), as two processes would have.
    let replica = |fleet: &Fleet| {
        let layer = TriageLayer::new()
            .profile(Profile::generic().clone())
            .rules(RetryRules::default().max_retries(0))
            .share(fleet.clone());
        let connector = tower_triage::connect::tagged_connector(triage_testkit::Resolver::new());
        layer.layer(Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector))
    };
    let (fleet_a, fleet_b) = (Fleet::new(&url, "example")?, Fleet::new(&url, "example")?);
    let (mut a, mut b) = (replica(&fleet_a), replica(&fleet_b));
    for _ in 0..250 {
        if fleet_a.is_listening() && fleet_b.is_listening() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("redis-server on {url}, an upstream that admits 3 requests per 2 s window\n");

    for n in 1..=3 {
        let request = http::Request::get(upstream.url(PATH)).body(Full::new(Bytes::new()))?;
        let response = a.ready().await?.call(request).await?;
        let remaining = response.headers().get("x-ratelimit-remaining").cloned();
        println!(
            "replica A, request {n}: {} (remaining: {})",
            response.status(),
            remaining
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
        );
        response.into_body().collect().await?;
    }
    // The window is used up; A shared it. B's request waits for the reset.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let request = http::Request::get(upstream.url(PATH)).body(Full::new(Bytes::new()))?;
    let response = b.ready().await?.call(request).await?;
    println!(
        "replica B, request 1: {} after waiting {} ms for the window A used up",
        response.status(),
        started.elapsed().as_millis()
    );
    let (refused, _) = upstream.refused(PATH);
    println!("requests the upstream refused: {refused}");
    println!(
        "\nwithout sharing, B's request would have been sent at once and refused (429); see the README's \"Running many replicas\""
    );
    Ok(())
}
