//! Poll-level tests of each phase: the future polled by hand, step by step,
//! on a paused clock, over a scripted inner service (tower-test's style,
//! without its dependency). Each test names the phase it checks and the
//! transitions it drives.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use tower::{Layer, Service};
use triage_core::{Owner, RetryRules, Stage, Stop, TimeoutPhase};

use super::{Phase, ResponseFuture};
use crate::layer::TriageLayer;
use crate::route::Breaker;
use crate::service::Triage;

/// What the scripted service does for one call.
#[derive(Clone, Copy)]
enum Step {
    /// Answers with this status, headers and whole body.
    Answer(u16, &'static [(&'static str, &'static str)], &'static [u8]),
    /// Answers with this status, then its body gives `prefix` and stalls.
    Stall(u16, &'static [u8]),
    /// Never answers.
    Hang,
    /// Fails with an error of this kind.
    Fail(io::ErrorKind),
}

/// A body that gives its bytes, then ends, or stalls for ever.
struct Scripted {
    data: Option<Bytes>,
    stall: bool,
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.data.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None if self.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

/// The inner service: each call takes the next step of the script.
#[derive(Clone, Default)]
struct Script {
    steps: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<AtomicU32>,
}

impl Script {
    fn new(steps: &[Step]) -> Script {
        Script {
            steps: Arc::new(Mutex::new(steps.iter().cloned().collect())),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

type Answer = Result<Response<Scripted>, io::Error>;

impl Service<Request<Full<Bytes>>> for Script {
    type Response = Response<Scripted>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.steps.lock().unwrap().pop_front().unwrap_or(Step::Hang);
        match step {
            Step::Answer(status, headers, body) => {
                let mut response = Response::new(Scripted {
                    data: Some(Bytes::from_static(body)),
                    stall: false,
                });
                *response.status_mut() = status.try_into().unwrap();
                let map: &mut HeaderMap = response.headers_mut();
                for (name, value) in headers {
                    map.insert(*name, value.parse().unwrap());
                }
                Box::pin(std::future::ready(Ok(response)))
            }
            Step::Stall(status, prefix) => {
                let mut response = Response::new(Scripted {
                    data: Some(Bytes::from_static(prefix)),
                    stall: true,
                });
                *response.status_mut() = status.try_into().unwrap();
                Box::pin(std::future::ready(Ok(response)))
            }
            Step::Hang => Box::pin(std::future::pending()),
            Step::Fail(kind) => Box::pin(std::future::ready(Err(io::Error::from(kind)))),
        }
    }
}

type Call = ResponseFuture<Script, Full<Bytes>, Scripted>;

fn start(svc: &mut Triage<Script>) -> Pin<Box<Call>> {
    let request = Request::get("http://svc.test/v1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    Box::pin(svc.call(request))
}

/// One poll, with a waker that does nothing: the test polls again itself
/// after moving the clock.
fn poll(call: &mut Pin<Box<Call>>) -> Poll<<Call as Future>::Output> {
    call.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn phase(call: &Pin<Box<Call>>) -> Phase {
    call.as_ref().get_ref().state.phase()
}

async fn advance(ms: u64) {
    tokio::time::advance(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn calling_ends_at_its_attempt_timeout() {
    let script = Script::new(&[Step::Hang]);
    let mut svc = TriageLayer::new()
        .rules(RetryRules::none())
        .attempt_timeout(Some(Duration::from_secs(1)))
        .layer(script.clone());
    let mut call = start(&mut svc);
    assert!(poll(&mut call).is_pending());
    assert_eq!(phase(&call), Phase::Calling);
    advance(999).await;
    assert!(poll(&mut call).is_pending(), "before its timeout");
    advance(2).await;
    let Poll::Ready(Err(error)) = poll(&mut call) else {
        panic!("timed out")
    };
    assert_eq!(error.diagnosis().stage(), Some(Stage::AwaitHeaders));
    assert_eq!(
        error.diagnosis().class().to_string(),
        format!("transport.await_headers.timeout.{}", TimeoutPhase::Headers)
    );
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn waiting_holds_the_retry_for_the_servers_wait() {
    let script = Script::new(&[
        Step::Answer(503, &[("retry-after-ms", "300")], b""),
        Step::Answer(200, &[], b"ok"),
    ]);
    let mut svc = TriageLayer::new().layer(script.clone());
    let mut call = start(&mut svc);
    assert!(poll(&mut call).is_pending());
    assert_eq!(phase(&call), Phase::Waiting, "the 503 is waited out");
    assert_eq!(script.calls(), 1);
    advance(299).await;
    assert!(poll(&mut call).is_pending());
    assert_eq!(script.calls(), 1, "not before the server's wait");
    advance(2).await;
    let Poll::Ready(Ok(response)) = poll(&mut call) else {
        panic!("the retry answered")
    };
    assert_eq!(response.status(), 200);
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn peeking_reads_a_failure_body_until_the_peek_timeout() {
    let script = Script::new(&[Step::Stall(500, b"{\"error\":")]);
    let mut svc = TriageLayer::new()
        .rules(RetryRules::none())
        .peek_timeout(Duration::from_millis(200))
        .layer(script.clone());
    let mut call = start(&mut svc);
    assert!(poll(&mut call).is_pending());
    assert_eq!(phase(&call), Phase::Peeking);
    advance(199).await;
    assert!(poll(&mut call).is_pending());
    advance(2).await;
    let Poll::Ready(Ok(response)) = poll(&mut call) else {
        panic!("the failure handed back")
    };
    assert_eq!(response.status(), 500);
    let report = crate::Report::of(&response).expect("a failure carries its report");
    assert_eq!(report.diagnosis().owner(), Some(Owner::Server));
    // The peeked bytes go to the caller first.
    let mut body = std::pin::pin!(response.into_body());
    let Poll::Ready(Some(Ok(frame))) = body
        .as_mut()
        .poll_frame(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("the peeked bytes")
    };
    assert_eq!(frame.into_data().unwrap(), "{\"error\":");
}

#[tokio::test(start_paused = true)]
async fn buffering_reads_the_body_under_the_attempt_timer() {
    let script = Script::new(&[Step::Stall(200, b"{\"par")]);
    let mut svc = TriageLayer::new()
        .rules(RetryRules::none())
        .whole_body(Some(1024))
        .attempt_timeout(Some(Duration::from_secs(1)))
        .layer(script.clone());
    let mut call = start(&mut svc);
    assert!(poll(&mut call).is_pending());
    assert_eq!(phase(&call), Phase::Buffering);
    advance(1001).await;
    let Poll::Ready(Err(error)) = poll(&mut call) else {
        panic!("the body's read timed out")
    };
    assert_eq!(error.diagnosis().stage(), Some(Stage::Body));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(200));
}

#[tokio::test(start_paused = true)]
async fn acquiring_waits_for_a_pool_slot_then_times_out() {
    let script = Script::new(&[Step::Hang, Step::Hang]);
    let mut svc = TriageLayer::new()
        .rules(RetryRules::none())
        .pool(1, Some(Duration::from_millis(500)))
        .layer(script.clone());
    let mut holder = start(&mut svc);
    assert!(poll(&mut holder).is_pending());
    assert_eq!(phase(&holder), Phase::Calling, "it holds the slot");
    let mut call = start(&mut svc);
    assert!(poll(&mut call).is_pending());
    assert_eq!(phase(&call), Phase::Acquiring);
    advance(501).await;
    let Poll::Ready(Err(error)) = poll(&mut call) else {
        panic!("no slot in time")
    };
    assert_eq!(
        error.diagnosis().class().to_string(),
        format!("transport.connect.timeout.{}", TimeoutPhase::Pool)
    );
    assert_eq!(script.calls(), 1, "the waiting request was never sent");
}

#[tokio::test(start_paused = true)]
async fn refused_answers_at_the_first_poll_once_a_route_opened() {
    let script = Script::new(&[Step::Fail(io::ErrorKind::ConnectionRefused); 2]);
    let mut svc = TriageLayer::new()
        .rules(RetryRules::none())
        .breaker(Breaker::new().consecutive_failures(2))
        .layer(script.clone());
    for _ in 0..2 {
        let mut call = start(&mut svc);
        assert!(matches!(poll(&mut call), Poll::Ready(Err(_))));
    }
    let mut call = start(&mut svc);
    assert_eq!(phase(&call), Phase::Refused);
    let Poll::Ready(Err(error)) = poll(&mut call) else {
        panic!("refused")
    };
    assert_eq!(error.stop(), Stop::RouteOpen);
    assert_eq!(script.calls(), 2, "no call for the refused request");
}

#[tokio::test(start_paused = true)]
async fn the_total_deadline_ends_the_attempt_after_a_wait() {
    let script = Script::new(&[
        Step::Answer(503, &[("retry-after-ms", "500")], b""),
        Step::Hang,
    ]);
    let mut svc = TriageLayer::new()
        .rules(RetryRules::default().deadline(Some(Duration::from_millis(700))))
        .layer(script.clone());
    let mut call = start(&mut svc);
    assert!(poll(&mut call).is_pending());
    assert_eq!(phase(&call), Phase::Waiting);
    advance(501).await;
    assert!(poll(&mut call).is_pending());
    assert_eq!(phase(&call), Phase::Calling, "the retry is out");
    advance(200).await;
    let Poll::Ready(Err(error)) = poll(&mut call) else {
        panic!("the deadline passed")
    };
    assert_eq!(
        error.diagnosis().class().to_string(),
        format!("transport.await_headers.timeout.{}", TimeoutPhase::Total)
    );
    assert_eq!(error.attempts(), 2);
    assert_eq!(script.calls(), 2, "no attempt after the deadline");
}
