//! The happy path allocates nothing: reading a successful response's head
//! (request ID, rate headers) and classifying it.
//!
//! A counting global allocator wraps the system one; the counter is
//! per-thread so that the test harness's own threads do not disturb it.
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; the library itself forbids unsafe code.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use triage_core::{
    AttemptContext, Decision, Evidence, Profile, RetryBudget, RetryRules, Stop, classify,
};

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

fn openai_success_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("date", "Sun, 22 Nov 2026 18:42:32 GMT"),
        ("content-type", "application/json"),
        ("content-length", "312"),
        ("server", "cloudflare"),
        ("cf-ray", "8c135d3eeec4a97a-SYD"),
        ("openai-processing-ms", "412"),
        ("x-request-id", "req_5f2c8e0f0b3a4d2c9f1e7a6b5c4d3e2f"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-limit-tokens", "2000000"),
        ("x-ratelimit-remaining-tokens", "1999950"),
        ("x-ratelimit-reset-tokens", "1ms"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h
}

#[test]
fn success_path_allocates_nothing() {
    let headers = openai_success_headers();
    let profile = Profile::openai();
    let budget = RetryBudget::default();
    let rules = RetryRules::default();
    let method = Method::POST;
    let now = SystemTime::now();
    let instant = Instant::now();

    // Warm up anything lazily initialised, then count.
    let warm = Evidence::from_response(StatusCode::OK, &headers, profile, now);
    let _ = classify(&warm, profile);
    budget.deposit(instant);

    let before = allocations();
    for _ in 0..100 {
        budget.deposit(instant);
        let evidence = Evidence::from_response(StatusCode::OK, &headers, profile, now);
        let diagnosis = classify(&evidence, profile);
        let decision = rules.decide(
            &diagnosis,
            &evidence,
            profile,
            &AttemptContext::new(1, &method),
            &budget,
            instant,
        );
        assert_eq!(decision, Decision::Stop(Stop::Success));
        assert_eq!(evidence.rate().requests.remaining, Some(9999));
        assert!(evidence.request_id().is_some());
        std::hint::black_box(&evidence);
    }
    let after = allocations();
    assert_eq!(after - before, 0, "the success path allocated");
}

#[test]
fn counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let before = allocations();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(64));
    drop(v);
    assert!(allocations() > before);
}
