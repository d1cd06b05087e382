//! Cancellation against real sockets on 127.0.0.1: a call dropped mid-connect,
//! mid-attempt or mid-wait between attempts, and a response body dropped
//! mid-stream, leave nothing behind.
//!
//! For each case:
//!
//! - the caller's cancellation is reported, as an event (target
//!   `tower_triage`) and as an [`Observer`] callback, with the stage the call
//!   was at (`connect`, `await_headers`, none while waiting) or, for a body,
//!   the bytes delivered so far;
//! - no task is left behind: the client runtime's alive tasks come back to
//!   what they were before the call (hyper-util's connection task included);
//! - no timer fires later: the attempt timeout, the total deadline, the
//!   backoff and the body idle timeout of the dropped call are all waited
//!   past, and the observer hears nothing more;
//! - the upstream sees no further attempt (its hits stay the same after the
//!   would-be retry);
//! - the retry budget stays consistent: the layer's budget, probed afterwards
//!   with a call that retries until the budget refuses, allows exactly what a
//!   fresh identical budget allows after one deposit per call and one
//!   withdrawal per retry decision the observer saw. A withdrawal is made when
//!   a retry is decided; a call cancelled while waiting for that retry keeps
//!   it spent (the budget has no refund), and makes no other.
//!
//! The upstream runs on its own runtime, so that its tasks (a stalled answer
//! sleeps for seconds) are not counted among the client's.
#![cfg(feature = "hyper-util")]

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_triage::core::{RetryBudget, RetryRules, Stage};
use tower_triage::{
    AttemptInfo, BodyOutcome, Observer, Outcome, ReportExt, RequestOptions, TriageLayer,
};
use triage_testkit::{EventLog, Resolver, Upstream};

/// Retries the probe call may make at most; the budget refuses before.
const PROBE_RETRIES: u32 = 8;

// ---------------------------------------------------------------- observer

#[derive(Default)]
struct Seen {
    /// Every callback, of any kind.
    calls: AtomicU64,
    /// `(attempt, decision reason, is_retry)`.
    attempts: Mutex<Vec<(u32, &'static str, bool)>>,
    cancelled: Mutex<Vec<(u32, Option<Stage>)>>,
    outcomes: Mutex<Vec<String>>,
    bodies: Mutex<Vec<BodyOutcome>>,
}

#[derive(Clone, Default)]
struct Record(Arc<Seen>);

impl Observer for Record {
    fn on_attempt(&self, a: &AttemptInfo<'_>) {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0.attempts.lock().unwrap().push((
            a.attempt,
            a.decision.reason(),
            a.decision.is_retry(),
        ));
    }
    fn on_outcome(&self, outcome: &Outcome<'_>) {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let text = match outcome {
            Outcome::Response {
                attempts,
                diagnosis,
                ..
            } => format!("response {attempts} {}", diagnosis.class()),
            Outcome::Failed { error, .. } => format!("failed {}", error.packet().outcome()),
            Outcome::Cancelled {
                attempts, stage, ..
            } => {
                self.0.cancelled.lock().unwrap().push((*attempts, *stage));
                format!("cancelled {attempts} {stage:?}")
            }
            _ => String::from("other"),
        };
        self.0.outcomes.lock().unwrap().push(text);
    }
    fn on_body(&self, body: &BodyOutcome) {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0.bodies.lock().unwrap().push(*body);
    }
}

impl Record {
    fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::SeqCst)
    }
    fn attempts(&self) -> Vec<(u32, &'static str, bool)> {
        self.0.attempts.lock().unwrap().clone()
    }
    fn retry_decisions(&self) -> u32 {
        self.attempts().iter().filter(|a| a.2).count() as u32
    }
    fn cancelled(&self) -> Vec<(u32, Option<Stage>)> {
        self.0.cancelled.lock().unwrap().clone()
    }
    fn outcomes(&self) -> Vec<String> {
        self.0.outcomes.lock().unwrap().clone()
    }
    fn bodies(&self) -> Vec<BodyOutcome> {
        self.0.bodies.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------- events

const CANCELLED: &str = "request cancelled by the caller";
const BODY_DROPPED: &str = "response body dropped by the caller before its end";

// ---------------------------------------------------------------- set-up

/// The upstream, on a runtime of its own (its tasks are not the client's).
fn upstream() -> (Runtime, Upstream) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let upstream = rt.block_on(Upstream::start()).unwrap();
    (rt, upstream)
}

fn client_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One retry per call made, no reserve: whole numbers, and every deposit or
/// withdrawal shows in what is available.
fn budget() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(10), 0, 1.0).unwrap()
}

type Svc = tower_triage::Triage<
    Client<
        tower_triage::connect::TagConnect<
            hyper_util::client::legacy::connect::HttpConnector<
                tower_triage::connect::TagResolver<Resolver>,
            >,
        >,
        Full<Bytes>,
    >,
>;

fn service(layer: TriageLayer, resolver: Resolver) -> Svc {
    let connector = tower_triage::connect::tagged_connector(resolver);
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    layer.budget(budget()).layer(client)
}

fn get(uri: String) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Polls `call` until `ready()` holds; fails if the call finishes first or
/// `ready()` does not hold within `limit`.
async fn drive_until<F, T>(
    call: Pin<&mut F>,
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) where
    F: Future<Output = T>,
    T: Debug,
{
    let deadline = Instant::now() + limit;
    let wait = async {
        while !ready() {
            assert!(Instant::now() < deadline, "no {what} within {limit:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::select! {
        biased;
        out = call => panic!("the call ended before {what}: {out:?}"),
        () = wait => {}
    }
}

/// Polls `call` for `how_long`; fails if it finishes.
async fn drive_for<F, T>(call: Pin<&mut F>, how_long: Duration)
where
    F: Future<Output = T>,
    T: Debug,
{
    tokio::select! {
        biased;
        out = call => panic!("the call ended within {how_long:?}: {out:?}"),
        () = tokio::time::sleep(how_long) => {}
    }
}

/// Waits (at most `limit`) until the client runtime is back to `tasks`
/// alive tasks; the count is checked by the caller.
async fn settle(tasks: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let now = alive_tasks();
        if now == tasks || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sleeps until `at`.
async fn sleep_until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

/// Checks the layer's budget by spending it: a call answered 429 (the
/// server asks for a 5 ms wait) is retried until the budget refuses. Its
/// attempts must be one plus what a fresh identical budget has after
/// `calls_before + 1` deposits (one per call, this probe included) and
/// `withdrawals` withdrawals.
async fn assert_budget_consistent(
    svc: &mut Svc,
    upstream: &Upstream,
    record: &Record,
    calls_before: u32,
    withdrawals: u32,
) {
    let reference = budget();
    let now = Instant::now();
    for _ in 0..=calls_before {
        reference.deposit(now);
    }
    for _ in 0..withdrawals {
        assert!(reference.try_withdraw(now));
    }
    let available = u32::try_from(reference.available(now)).unwrap();
    assert!(
        available < PROBE_RETRIES,
        "the probe must exhaust the budget"
    );

    let before = upstream.hits("/status/429");
    let seen = record.attempts().len();
    let mut probe = get(upstream.url("/status/429?retry_after_ms=5"));
    probe
        .extensions_mut()
        .insert(RequestOptions::new().max_retries(PROBE_RETRIES));
    let response = tokio::time::timeout(
        Duration::from_secs(2),
        svc.ready().await.unwrap().call(probe),
    )
    .await
    .expect("the probe ends")
    .expect("a 429 is handed back as a response");
    assert_eq!(response.status(), 429);
    let attempts = response.report().expect("a report").attempts();
    let _ = response.into_body().collect().await;
    assert_eq!(
        attempts,
        1 + available,
        "the budget allowed {} retries; a fresh budget after {} deposit(s) and {withdrawals} \
         withdrawal(s) allows {available}",
        attempts - 1,
        calls_before + 1,
    );
    let last = record.attempts()[seen..].last().copied();
    assert_eq!(
        last.map(|a| a.1),
        Some("budget_exhausted"),
        "{:?}",
        record.attempts()
    );
    assert_eq!(upstream.hits("/status/429") - before, u64::from(attempts));
}

// ---------------------------------------------------------------- tests

/// (a) Dropped while the TCP connect hangs (a full accept queue drops the
/// SYN): the cancellation names the connect stage.
#[test]
fn a_call_dropped_mid_connect_reports_the_connect_stage_and_leaves_nothing() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (server, upstream) = upstream();
    let backlog = triage_testkit::full_backlog().unwrap();
    client_runtime().block_on(async {
        let record = Record::default();
        let resolver = Resolver::new();
        let attempt_timeout = Duration::from_millis(300);
        let layer = TriageLayer::new()
            .observer(record.clone())
            .attempt_timeout(Some(attempt_timeout));
        let mut svc = service(layer, resolver.clone());
        let tasks = alive_tasks();
        let started = Instant::now();
        let uri = format!("http://svc.test:{}/v1/connect", backlog.addr().port());
        let mut call = Box::pin(svc.ready().await.unwrap().call(get(uri)));
        drive_until(call.as_mut(), "lookup", Duration::from_secs(1), || {
            resolver.lookups() == 1
        })
        .await;
        // The connect is under way and cannot finish: keep polling a while.
        drive_for(call.as_mut(), Duration::from_millis(100)).await;
        drop(call);

        assert_eq!(record.cancelled(), vec![(1, Some(Stage::Connect))]);
        assert!(record.attempts().is_empty(), "{:?}", record.attempts());
        let events = capture.matching(CANCELLED);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("owner=caller"), "{}", events[0]);
        assert!(
            events[0].contains("stage=connect") && events[0].contains("attempts=1"),
            "{}",
            events[0]
        );

        assert_eq!(
            settle(tasks, Duration::from_secs(1)).await,
            tasks,
            "no task left behind"
        );
        let calls = record.calls();
        sleep_until(started + attempt_timeout + Duration::from_millis(200)).await;
        assert_eq!(
            record.calls(),
            calls,
            "the attempt timer of a dropped call fired: {:?}",
            record.outcomes()
        );
        assert_eq!(resolver.lookups(), 1, "no further attempt");
        assert_eq!(alive_tasks(), tasks);

        assert_budget_consistent(&mut svc, &upstream, &record, 1, 0).await;
    });
    drop(upstream);
    server.shutdown_background();
}

/// (b) Dropped while awaiting the response head (the upstream received the
/// request and stalls for 5 s).
#[test]
fn a_call_dropped_awaiting_headers_reports_that_stage_and_leaves_nothing() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (server, upstream) = upstream();
    client_runtime().block_on(async {
        let record = Record::default();
        let attempt_timeout = Duration::from_millis(400);
        let deadline = Duration::from_millis(700);
        let layer = TriageLayer::new()
            .observer(record.clone())
            .attempt_timeout(Some(attempt_timeout))
            .rules(RetryRules::default().deadline(Some(deadline)));
        let mut svc = service(layer, Resolver::new());
        let tasks = alive_tasks();
        let started = Instant::now();
        let path = "/fault/slow-headers";
        let mut call = Box::pin(
            svc.ready()
                .await
                .unwrap()
                .call(get(upstream.url(&format!("{path}?ms=5000")))),
        );
        drive_until(
            call.as_mut(),
            "request at the upstream",
            Duration::from_secs(1),
            || upstream.hits(path) == 1,
        )
        .await;
        assert!(
            alive_tasks() > tasks,
            "hyper-util's connection task is running"
        );
        drop(call);

        assert_eq!(record.cancelled(), vec![(1, Some(Stage::AwaitHeaders))]);
        let events = capture.matching(CANCELLED);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("owner=caller"), "{}", events[0]);
        assert!(
            events[0].contains("stage=await_headers") && events[0].contains("attempts=1"),
            "{}",
            events[0]
        );

        assert_eq!(
            settle(tasks, Duration::from_secs(1)).await,
            tasks,
            "the connection task ends with the call"
        );
        let calls = record.calls();
        // Past the attempt timeout and the total deadline.
        sleep_until(started + deadline + Duration::from_millis(200)).await;
        assert_eq!(
            record.calls(),
            calls,
            "a timer of the dropped call fired: {:?}",
            record.outcomes()
        );
        assert_eq!(upstream.hits(path), 1, "no further attempt");
        assert_eq!(alive_tasks(), tasks);

        assert_budget_consistent(&mut svc, &upstream, &record, 1, 0).await;
    });
    drop(upstream);
    server.shutdown_background();
}

/// (c) Dropped while waiting between attempts: a 503, then openai-python's
/// backoff (375 to 500 ms before the first retry) is cut short.
#[test]
fn a_call_dropped_between_attempts_makes_no_retry_and_leaves_nothing() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (server, upstream) = upstream();
    client_runtime().block_on(async {
        let record = Record::default();
        let layer = TriageLayer::new().observer(record.clone());
        let mut svc = service(layer, Resolver::new());
        let tasks = alive_tasks();
        let path = "/status/503";
        let mut call = Box::pin(svc.ready().await.unwrap().call(get(upstream.url(path))));
        drive_until(
            call.as_mut(),
            "retry decision",
            Duration::from_secs(1),
            || !record.attempts().is_empty(),
        )
        .await;
        let decided = Instant::now();
        assert_eq!(record.attempts(), vec![(1, "retry", true)]);
        assert_eq!(upstream.hits(path), 1);
        drop(call);

        assert_eq!(record.cancelled(), vec![(1, None)]);
        let events = capture.matching(CANCELLED);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("owner=caller"), "{}", events[0]);
        assert!(
            events[0].contains("waiting=true") && events[0].contains("attempts=1"),
            "{}",
            events[0]
        );
        assert!(!events[0].contains("stage="), "{}", events[0]);

        assert_eq!(
            settle(tasks, Duration::from_secs(1)).await,
            tasks,
            "no task left behind"
        );
        let calls = record.calls();
        // Past the longest first backoff (500 ms).
        sleep_until(decided + Duration::from_millis(650)).await;
        assert_eq!(
            record.calls(),
            calls,
            "the backoff timer of the dropped call fired"
        );
        assert_eq!(upstream.hits(path), 1, "no retry after the caller left");
        assert_eq!(alive_tasks(), tasks);

        // The retry was decided, so its withdrawal was made, and only it.
        assert_eq!(record.retry_decisions(), 1);
        assert_budget_consistent(&mut svc, &upstream, &record, 1, 1).await;
    });
    drop(upstream);
    server.shutdown_background();
}

/// (d) The response body dropped mid-stream (ten bytes every 100 ms, with a
/// 250 ms body idle timeout that must not fire after the drop).
#[test]
fn a_body_dropped_mid_stream_reports_its_bytes_and_leaves_nothing() {
    let capture = EventLog::new();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (server, upstream) = upstream();
    client_runtime().block_on(async {
        let record = Record::default();
        let idle = Duration::from_millis(250);
        let layer = TriageLayer::new()
            .observer(record.clone())
            .body_idle_timeout(Some(idle));
        let mut svc = service(layer, Resolver::new());
        let tasks = alive_tasks();
        let path = "/fault/slow-body";
        let response = tokio::time::timeout(
            Duration::from_secs(1),
            svc.ready()
                .await
                .unwrap()
                .call(get(upstream.url(&format!("{path}?ms=100&chunks=50")))),
        )
        .await
        .expect("the head comes at once")
        .expect("a 200");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut delivered = 0u64;
        let deadline = Instant::now() + Duration::from_secs(2);
        while delivered < 20 {
            assert!(Instant::now() < deadline, "the body stalled");
            let frame = tokio::time::timeout(Duration::from_secs(1), body.frame())
                .await
                .expect("a frame within 1 s")
                .expect("not the end yet")
                .expect("no error");
            if let Some(data) = frame.data_ref() {
                delivered += data.len() as u64;
            }
        }
        assert!(delivered < 500);
        assert_eq!(body.bytes(), delivered);
        assert!(record.bodies().is_empty());
        assert!(
            alive_tasks() > tasks,
            "hyper-util's connection task is streaming the body"
        );
        drop(body);

        assert_eq!(
            record.bodies(),
            vec![BodyOutcome::Dropped { bytes: delivered }]
        );
        assert_eq!(record.outcomes(), vec!["response 1 success".to_owned()]);
        assert!(record.cancelled().is_empty());
        let events = capture.matching(BODY_DROPPED);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("owner=caller"), "{}", events[0]);
        assert!(
            events[0].contains(&format!("bytes={delivered}")) && events[0].contains("stage=body"),
            "{}",
            events[0]
        );

        assert_eq!(
            settle(tasks, Duration::from_secs(1)).await,
            tasks,
            "the connection task ends with the body"
        );
        let calls = record.calls();
        let dropped = Instant::now();
        sleep_until(dropped + idle + Duration::from_millis(150)).await;
        assert_eq!(
            record.calls(),
            calls,
            "the idle timer of the dropped body fired: {:?}",
            record.bodies()
        );
        assert_eq!(upstream.hits(path), 1, "no further attempt");
        assert_eq!(alive_tasks(), tasks);

        assert_budget_consistent(&mut svc, &upstream, &record, 1, 0).await;
    });
    drop(upstream);
    server.shutdown_background();
}
