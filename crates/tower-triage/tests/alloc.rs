//! The layer's happy path allocates nothing of its own: a success at the
//! first attempt costs the same allocations as the bare call, plus, when
//! retries are on, exactly the copy of the request that a retry would send
//! (the copy every retrying middleware keeps; `tower::retry` makes the same).
//!
//! A counting global allocator wraps the system one; the counter is
//! per-thread so that the test harness's own threads do not disturb it.
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; the library itself forbids unsafe code.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::RetryRules;
use tower_triage::{Report, ReportExt, TriageLayer};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is a thread-local counter that does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Polls a future that completes without waiting (no runtime: the services
/// here never wait, and the layer needs no timer without timeouts).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("nothing here waits"),
    }
}

fn answer() -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-request-id", "req_5f2c8e0f0b3a4d2c9f1e7a6b5c4d3e2f")
        .header("x-ratelimit-remaining-requests", "9999")
        .header("x-ratelimit-reset-requests", "6ms")
        .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
        .unwrap()
}

fn request() -> Request<Full<Bytes>> {
    Request::post("https://api.openai.com/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(Full::new(Bytes::from_static(br#"{"model":"x"}"#)))
        .unwrap()
}

/// Allocations of one call through `service` (request built outside the
/// count, body read to its end inside), after a warm-up.
fn cost<S, B>(service: &mut S) -> u64
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut one = || {
        let request = request();
        let before = allocations();
        now(async {
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            assert!(response.status().is_success());
            response.into_body().collect().await.unwrap();
        });
        allocations() - before
    };
    for _ in 0..3 {
        one();
    }
    one()
}

#[test]
fn a_first_attempt_success_allocates_nothing_of_its_own() {
    let inner =
        service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, std::io::Error>(answer()) });
    let bare = cost(&mut inner.clone());

    // Retries off: no copy of the request is kept.
    let mut once = TriageLayer::new()
        .rules(RetryRules::default().max_retries(0))
        .layer(inner);
    assert_eq!(cost(&mut once), bare, "the layer itself allocates nothing");

    // Retries on: what a kept copy of the request costs, and nothing else.
    let request = request();
    let before = allocations();
    let copy = {
        let mut head = Request::new(());
        *head.method_mut() = request.method().clone();
        *head.uri_mut() = request.uri().clone();
        *head.headers_mut() = request.headers().clone();
        head
    };
    let copying = allocations() - before;
    drop((copy, request));
    let mut retrying = TriageLayer::new().layer(inner);
    assert_eq!(cost(&mut retrying), bare + copying);
}

#[tokio::test]
async fn the_report_of_a_first_attempt_success_is_read_from_the_head() {
    let inner =
        service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, std::io::Error>(answer()) });
    let mut client = TriageLayer::new().layer(inner);
    let response = client.ready().await.unwrap().call(request()).await.unwrap();
    assert!(response.extensions().get::<Report>().is_none());
    let report = response.report().expect("a report");
    assert_eq!(report.attempts(), 1);
    assert!(report.diagnosis().is_success());
    assert_eq!(
        report.request_id().unwrap(),
        "req_5f2c8e0f0b3a4d2c9f1e7a6b5c4d3e2f"
    );
    // The OpenAI profile, detected from the host, reads its rate headers.
    assert_eq!(report.rate().requests.remaining, Some(9999));
    assert_eq!(
        report.rate().requests.reset,
        Some(std::time::Duration::from_millis(6))
    );
}
