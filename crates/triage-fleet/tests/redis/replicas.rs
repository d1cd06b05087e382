//! Four replica processes (this test binary, started again with
//! [`CHILD`]), each with its own layer over hyper-util, against one testkit
//! upstream that enforces one rate window for all of them: with sharing
//! off, every replica has to be refused once per window to learn it; with
//! sharing on, the window one replica learns (from the answer that used it
//! up, `remaining: 0`) holds the others' requests.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::process::Command;
use tower::{Service, ServiceExt};
use tower_triage::TriageLayer;
use tower_triage::core::{Profile, RetryRules};
use triage_fleet::Fleet;
use triage_testkit::{Resolver, Upstream};

use crate::server::{Redis, free_port};

/// The argument that makes this binary a replica.
pub(crate) const CHILD: &str = "--fleet-replica";

const REPLICAS: usize = 4;
/// The upstream admits 10 requests per 2 s window.
const PATH: &str = "/window/10/2000";
const WINDOWS: u64 = 4;
/// Each replica sends one request, then waits SPACING and a random part
/// of JITTER (so that the replicas do not send in step: requests that meet
/// in flight as a window closes are refused whatever a client knows).
const SPACING: Duration = Duration::from_millis(50);
const JITTER: u64 = 100;
/// A refusal this long after its window was used up was sent after the
/// answer that used it up had reached its replica, and been shared
/// (loopback and Redis deliver within a millisecond or two; this leaves
/// room for a loaded 2-core machine).
const LATE: Duration = Duration::from_millis(50);

fn millis_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One run of the replicas: the upstream's count of refusals, and of those
/// that came later than [`LATE`] after their window closed.
struct Run {
    sent: u64,
    refused: u64,
    late: usize,
    /// For each refusal, how long after its window closed it came.
    after_close: Vec<Duration>,
}

async fn run(upstream: &Upstream, redis: Option<&str>) -> Result<Run, String> {
    upstream.reset_hits();
    let start_at = millis_now() + 2_000;
    let run_ms = 2_000 * WINDOWS;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let scope = format!("replicas-{}", std::process::id());
    let mut children = Vec::new();
    for _ in 0..REPLICAS {
        let child = Command::new(&exe)
            .arg(CHILD)
            .args([
                upstream.url(PATH),
                redis.unwrap_or("off").to_owned(),
                scope.clone(),
                start_at.to_string(),
                run_ms.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("a replica did not start: {e}"))?;
        children.push(child);
    }
    for child in children {
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .map_err(|_| "a replica did not finish within 60 s".to_owned())?
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "a replica failed: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    let (refused, after_close) = upstream.refused(PATH);
    Ok(Run {
        sent: upstream.hits(PATH),
        refused,
        late: after_close.iter().filter(|after| **after > LATE).count(),
        after_close,
    })
}

pub(crate) async fn four_replica_processes_send_nothing_into_a_shared_window() -> Result<(), String>
{
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let redis = Redis::start(free_port(), &[]).await?;
    let off = run(&upstream, None).await?;
    let on = run(&upstream, Some(&redis.url())).await?;
    println!(
        "  {REPLICAS} replica processes, one request each per {}-{} ms, an upstream window of 10 per 2 s, {WINDOWS} windows:",
        SPACING.as_millis(),
        SPACING.as_millis() + u128::from(JITTER)
    );
    for (name, r) in [("sharing off", &off), ("sharing on", &on)] {
        println!(
            "  {name:<12} sent {:>4}, refused {:>3} ({:.1} per window), refused > {} ms after the window closed: {}",
            r.sent,
            r.refused,
            r.refused as f64 / WINDOWS as f64,
            LATE.as_millis(),
            r.late
        );
    }
    // Without sharing each replica has to be refused to learn a window:
    // the three that did not use it up, in (almost) every window.
    if off.refused < 2 * WINDOWS {
        return Err(format!(
            "without sharing, {} refusals in {WINDOWS} windows: the setup does not show what sharing does",
            off.refused
        ));
    }
    // With sharing, only requests already in flight when a window closed
    // may be refused (the replicas are out of step: rarely any).
    if on.late != 0 || on.refused > WINDOWS {
        return Err(format!(
            "with sharing, {} refusals in {WINDOWS} windows, {} of them late (each came this long after its window closed: {:?})",
            on.refused, on.late, on.after_close
        ));
    }
    Ok(())
}

/// A replica: `URL REDIS|off SCOPE START_AT_MS RUN_MS`. Sends one request
/// every [`SPACING`] (and jitter) from `START_AT_MS` for `RUN_MS`, waiting out the windows its
/// layer knows (retries off: every request counts once). Exit code 0, or 1
/// with the reason on stdout.
pub(crate) fn child(args: &[String]) -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(replica(args)) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(why) => {
            println!("{why}");
            1
        }
    }
}

async fn replica(args: &[String]) -> Result<String, String> {
    let [url, redis, scope, start_at, run_ms] = args else {
        return Err(format!("replica arguments: {args:?}"));
    };
    let number = |s: &str| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
    let (start_at, run_ms) = (number(start_at)?, number(run_ms)?);
    let mut layer = TriageLayer::new()
        .profile(Profile::generic().clone())
        .rules(RetryRules::default().max_retries(0));
    if redis != "off" {
        let fleet = Fleet::new(redis, scope).map_err(|e| e.to_string())?;
        layer = layer.share(fleet.clone());
        for _ in 0..250 {
            if fleet.is_listening() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !fleet.is_listening() {
            return Err("the fleet was not listening within 5 s".into());
        }
    }
    let mut svc = tower_triage::connect::client_with::<_, Full<Bytes>>(
        &layer,
        tower_triage::connect::tagged_connector(Resolver::new()),
    );
    tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(millis_now()))).await;
    let stop = start_at + run_ms;
    let (mut sent, mut ok) = (0u32, 0u32);
    let mut jitter = Jitter::new();
    while millis_now() < stop {
        let request = Request::get(url.as_str())
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let ready = svc.ready().await.map_err(|e| e.to_string())?;
        sent += 1;
        if let Ok(response) = ready.call(request).await {
            ok += u32::from(response.status() == 200);
            let _ = response.into_body().collect().await;
        }
        tokio::time::sleep(SPACING + Duration::from_millis(jitter.next() % JITTER)).await;
    }
    Ok(format!("sent {sent}, ok {ok}"))
}

/// Pseudo-random numbers, seeded differently in each process.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        use std::hash::{BuildHasher, RandomState};
        Jitter(RandomState::new().hash_one(std::process::id()) | 1)
    }

    /// xorshift64.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
