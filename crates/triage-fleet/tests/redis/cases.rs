//! The cases that run in this process: layers over an in-process upstream
//! (a `service_fn`), fleets over a real `redis-server`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::util::BoxService;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::{Profile, RetryRules, Stop};
use tower_triage::{RequestOptions, ResponseBody, TriageLayer};
use triage_fleet::{Fleet, redis};

use crate::server::{Redis, free_port};

/// The wait a `/limited` answer asks for.
const WAIT_MS: &str = "30000";
const SCOPE: &str = "suite";

/// A replica's layer: no retries (every request counted once), sharing
/// through `fleet` when there is one.
fn layer(fleet: Option<&Fleet>) -> TriageLayer {
    let layer = TriageLayer::new()
        .profile(Profile::generic().clone())
        .rules(RetryRules::default().max_retries(0));
    match fleet {
        Some(fleet) => layer.share(fleet.clone()),
        None => layer,
    }
}

type Service_ = BoxService<
    Request<Full<Bytes>>,
    Response<ResponseBody<Full<Bytes>>>,
    tower_triage::core::Error,
>;

/// A replica: its layer over its own upstream, and what reached it.
pub(crate) struct Replica {
    service: Service_,
    sent: Arc<AtomicUsize>,
}

/// How a request came out.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Status(u16),
    /// Refused unsent: the route's rate window is closed past its deadline.
    Held,
    /// Refused unsent: the route's quota is stopped.
    QuotaStopped,
    Failed(String),
}

impl Replica {
    /// A replica with [`layer`]`(fleet)`.
    fn new(fleet: Option<&Fleet>) -> Replica {
        Replica::over(layer(fleet))
    }

    /// A replica with `layer` over its own upstream on `http://api.test`:
    /// `/limited` answers 429 asking to wait [`WAIT_MS`], `/no-quota` 429
    /// with OpenAI's `insufficient_quota`, anything else 200.
    fn over(layer: TriageLayer) -> Replica {
        let sent = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&sent);
        let inner = service_fn(move |request: Request<Full<Bytes>>| {
            counted.fetch_add(1, Ordering::SeqCst);
            let (answer, body): (_, &'static [u8]) = match request.uri().path() {
                "/limited" => (
                    Response::builder()
                        .status(429)
                        .header("retry-after-ms", WAIT_MS),
                    b"{}",
                ),
                "/no-quota" => (
                    Response::builder()
                        .status(429)
                        .header("content-type", "application/json"),
                    br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                ),
                _ => (Response::builder().status(200), b"{}"),
            };
            let answer = answer.body(Full::new(Bytes::from_static(body)));
            async move { answer.map_err(io::Error::other) }
        });
        Replica {
            service: BoxService::new(layer.layer(inner)),
            sent,
        }
    }

    /// Sends `path` with a 1 s deadline (a closed window holds it past
    /// that: it comes back [`Outcome::Held`], unsent), within 5 s whatever
    /// Redis does.
    async fn call(&mut self, path: &str) -> Outcome {
        let mut request = Request::get(format!("http://api.test{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        request
            .extensions_mut()
            .insert(RequestOptions::new().deadline(Some(Duration::from_secs(1))));
        let call = async {
            match self.service.ready().await {
                Ok(ready) => ready.call(request).await,
                Err(e) => Err(e),
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Err(_) => Outcome::Failed("the call did not finish within 5 s".into()),
            Ok(Ok(response)) => Outcome::Status(response.status().as_u16()),
            Ok(Err(e)) if matches!(e.stop(), Stop::RateWindowClosed(_)) => Outcome::Held,
            Ok(Err(e)) if matches!(e.stop(), Stop::QuotaStopped(_)) => Outcome::QuotaStopped,
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

fn expect(what: &str, got: Outcome, want: Outcome) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got:?}, expected {want:?}"))
    }
}

/// Polls `condition` every 20 ms for at most `within`.
async fn eventually(
    within: Duration,
    what: &str,
    condition: impl Fn() -> bool,
) -> Result<(), String> {
    let rounds = within.as_millis() / 20;
    for _ in 0..rounds.max(1) {
        if condition() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{what}: not within {within:?}"))
}

/// Waits (at most `within`) until each of `fleets` is listening.
async fn until_listening(fleets: &[&Fleet], within: Duration) -> Result<(), String> {
    eventually(within, "listening", || {
        fleets.iter().all(|f| f.is_listening())
    })
    .await
}

/// A fleet on `url` that is listening (subscribed, keys read), given to a
/// new replica.
async fn listening(url: &str) -> Result<(Fleet, Replica), String> {
    let fleet = Fleet::new(url, SCOPE).map_err(|e| e.to_string())?;
    let replica = Replica::new(Some(&fleet));
    until_listening(&[&fleet], Duration::from_secs(5)).await?;
    Ok((fleet, replica))
}

/// Replica A meets a 429 that asks to wait: the next request of replica B
/// (another fleet handle, as another process would have), is held unsent.
async fn learn_and_check(a: &mut Replica, b: &mut Replica) -> Result<(), String> {
    expect(
        "A's limited call",
        a.call("/limited").await,
        Outcome::Status(429),
    )?;
    // The window travels through Redis: give it a moment (loopback
    // delivers in well under a millisecond).
    let before = b.sent();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if b.call("/other").await == Outcome::Held {
            return Ok(());
        }
    }
    Err(format!(
        "B never held a request for A's window (B sent {} meanwhile)",
        b.sent() - before
    ))
}

pub(crate) async fn a_window_one_layer_learns_holds_the_others_requests() -> Result<(), String> {
    let redis = Redis::start(free_port(), &[]).await?;
    let (fa, mut a) = listening(&redis.url()).await?;
    let (fb, mut b) = listening(&redis.url()).await?;
    expect(
        "B before the window",
        b.call("/other").await,
        Outcome::Status(200),
    )?;
    learn_and_check(&mut a, &mut b).await?;
    // Nothing from B reached the upstream once it held: its one request
    // before, and at most the probes sent before the window arrived.
    let sent = b.sent();
    expect("B, still held", b.call("/other").await, Outcome::Held)?;
    if b.sent() != sent {
        return Err("B sent into the closed window".into());
    }
    // What each fleet says it did.
    let (sa, sb) = (fa.stats(), fb.stats());
    if sa.published != 1 || sb.published != 0 || sb.received == 0 || sa.dropped != 0 {
        return Err(format!("stats: A {sa:?}, B {sb:?}"));
    }
    // The key layout: the window under the scope, with a TTL.
    let client = redis::Client::open(redis.url()).map_err(|e| e.to_string())?;
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let key = format!("triage:{SCOPE}:win:http://api.test:80:route");
    let (value, ttl): (Option<String>, i64) = redis::pipe()
        .cmd("GET")
        .arg(&key)
        .cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    let value = value.ok_or(format!("no key {key}"))?;
    if !value.ends_with("|generic") || !(25_000..=30_000).contains(&ttl) {
        return Err(format!("key {key} = {value:?} with TTL {ttl} ms"));
    }
    Ok(())
}

pub(crate) async fn a_replica_that_starts_later_reads_the_open_windows() -> Result<(), String> {
    let redis = Redis::start(free_port(), &[]).await?;
    let (_fa, mut a) = listening(&redis.url()).await?;
    expect(
        "A's limited call",
        a.call("/limited").await,
        Outcome::Status(429),
    )?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // C starts after the window was published: it reads it from its key.
    let (_fc, mut c) = listening(&redis.url()).await?;
    expect("C's first call", c.call("/other").await, Outcome::Held)?;
    if c.sent() != 0 {
        return Err("C sent into the open window".into());
    }
    Ok(())
}

/// Calls through a fleet whose Redis is `url` (down, silent or full): they
/// all come back as the upstream answered, local pacing still holds the
/// route after a 429, and the fleet says it is degraded.
async fn calls_go_on(url: &str) -> Result<(), String> {
    let fleet = Fleet::new(url, SCOPE).map_err(|e| e.to_string())?;
    let mut a = Replica::new(Some(&fleet));
    for _ in 0..20 {
        expect("a call", a.call("/other").await, Outcome::Status(200))?;
    }
    expect(
        "the limited call",
        a.call("/limited").await,
        Outcome::Status(429),
    )?;
    expect(
        "the next call, paced locally",
        a.call("/other").await,
        Outcome::Held,
    )?;
    eventually(
        Duration::from_secs(5),
        "the fleet saying it is degraded",
        || fleet.is_degraded(),
    )
    .await
}

pub(crate) async fn redis_down_never_fails_a_call() -> Result<(), String> {
    // Nothing listens on the port.
    calls_go_on(&format!("redis://127.0.0.1:{}/", free_port())).await
}

pub(crate) async fn a_silent_redis_never_delays_a_call() -> Result<(), String> {
    // A server that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = silent.local_addr().map_err(|e| e.to_string())?.port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let result = calls_go_on(&format!("redis://127.0.0.1:{port}/")).await;
    holder.abort();
    result
}

pub(crate) async fn a_full_redis_never_fails_a_call() -> Result<(), String> {
    // Writes are refused (OOM): publishing fails.
    let redis = Redis::start(
        free_port(),
        &["--maxmemory", "1", "--maxmemory-policy", "noeviction"],
    )
    .await?;
    calls_go_on(&redis.url()).await?;
    // The publisher backs off from a server that refuses, as from one that
    // is down: a handful of connections a second at most, not a storm.
    let client = redis::Client::open(redis.url()).map_err(|e| e.to_string())?;
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let before = connections_received(&mut c).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = connections_received(&mut c).await? - before;
    if during > 10 {
        return Err(format!("{during} connections in a second to a full Redis"));
    }
    Ok(())
}

/// The server's count of connections received (`INFO stats`).
async fn connections_received(c: &mut redis::aio::MultiplexedConnection) -> Result<u64, String> {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(c)
        .await
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no connection count in INFO: {info}"))
}

pub(crate) async fn redis_killed_mid_run_then_restarted_sharing_resumes() -> Result<(), String> {
    let port = free_port();
    let redis = Redis::start(port, &[]).await?;
    let (fa, mut a) = listening(&redis.url()).await?;
    let (fb, mut b) = listening(&redis.url()).await?;
    redis.kill().await;
    for _ in 0..20 {
        expect(
            "A, Redis gone",
            a.call("/other").await,
            Outcome::Status(200),
        )?;
        expect(
            "B, Redis gone",
            b.call("/other").await,
            Outcome::Status(200),
        )?;
    }
    eventually(Duration::from_secs(5), "B's fleet degraded", || {
        fb.is_degraded()
    })
    .await?;
    if !crate::events::seen(tracing::Level::WARN, "fleet sharing degraded") {
        return Err("no WARN event said sharing was degraded".into());
    }
    let _redis = Redis::start(port, &[]).await?;
    // The listeners reconnect within their backoff (at most 5 s).
    until_listening(&[&fa, &fb], Duration::from_secs(15)).await?;
    learn_and_check(&mut a, &mut b).await?;
    eventually(Duration::from_secs(5), "A's fleet restored", || {
        !fa.is_degraded()
    })
    .await?;
    if !crate::events::seen(tracing::Level::INFO, "fleet sharing restored") {
        return Err("no INFO event said sharing was back".into());
    }
    Ok(())
}

pub(crate) async fn auth_is_required_and_honoured() -> Result<(), String> {
    let port = free_port();
    let _redis = Redis::start(port, &["--requirepass", "fleet-pass-1"]).await?;
    // A wrong password: degraded, calls unaffected.
    calls_go_on(&format!("redis://:wrong@127.0.0.1:{port}/")).await?;
    let url = format!("redis://:fleet-pass-1@127.0.0.1:{port}/");
    let (_fa, mut a) = listening(&url).await?;
    let (_fb, mut b) = listening(&url).await?;
    learn_and_check(&mut a, &mut b).await
}

pub(crate) async fn tls_with_a_private_ca() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("triage-fleet-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ca = crate::server::write_certificates(&dir)?;
    let port = free_port();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca_file) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let _redis = Redis::start_tls(
        port,
        &[
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca_file,
            "--tls-auth-clients",
            "no",
        ],
    )
    .await?;
    let url = format!("rediss://127.0.0.1:{port}/");
    let tls_fleet = || -> Result<Fleet, String> {
        let client = redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            },
        )
        .map_err(|e| e.to_string())?;
        Fleet::with_client(client, SCOPE).map_err(|e| e.to_string())
    };
    let (fa, fb) = (tls_fleet()?, tls_fleet()?);
    let (mut a, mut b) = (Replica::new(Some(&fa)), Replica::new(Some(&fb)));
    until_listening(&[&fa, &fb], Duration::from_secs(5)).await?;
    learn_and_check(&mut a, &mut b).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub(crate) async fn a_quota_stop_one_replica_learns_refuses_the_others_requests()
-> Result<(), String> {
    let redis = Redis::start(free_port(), &[]).await?;
    let stops = |fleet: &Fleet| {
        TriageLayer::new()
            .profile(Profile::openai().clone())
            .rules(RetryRules::default().max_retries(0))
            .quota_stops(Some(Duration::from_secs(60)))
            .share(fleet.clone())
    };
    let fa = Fleet::new(&redis.url(), SCOPE).map_err(|e| e.to_string())?;
    let fb = Fleet::new(&redis.url(), SCOPE).map_err(|e| e.to_string())?;
    let (mut a, mut b) = (Replica::over(stops(&fa)), Replica::over(stops(&fb)));
    until_listening(&[&fa, &fb], Duration::from_secs(5)).await?;
    expect(
        "A meets the used-up quota",
        a.call("/no-quota").await,
        Outcome::Status(429),
    )?;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if b.call("/other").await == Outcome::QuotaStopped {
            let client = redis::Client::open(redis.url()).map_err(|e| e.to_string())?;
            let mut c = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let key = format!("triage:{SCOPE}:win:http://api.test:80:quota.billing");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            if !(55_000..=60_000).contains(&ttl) {
                return Err(format!("key {key}: TTL {ttl} ms"));
            }
            return Ok(());
        }
    }
    Err(format!(
        "B's requests were never stopped (B sent {})",
        b.sent()
    ))
}

pub(crate) async fn a_dropped_layer_stops_listening() -> Result<(), String> {
    let redis = Redis::start(free_port(), &[]).await?;
    let (fleet, replica) = listening(&redis.url()).await?;
    drop(replica);
    // The listener checks its layer every second.
    eventually(Duration::from_secs(5), "the listener ending", || {
        !fleet.is_listening()
    })
    .await
}
