//! `classify()` cost: the happy path (a 200 with the usual OpenAI headers) and an
//! OpenAI 429 (head, failure body, classification and decision).
//!
//! Run: `cargo bench -p triage-core --bench classify`.

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use triage_core::{AttemptContext, Evidence, Profile, RetryBudget, RetryRules, classify};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(*name, HeaderValue::from_static(value));
    }
    h
}

const COMMON: &[(&str, &str)] = &[
    ("date", "Sun, 22 Nov 2026 18:42:32 GMT"),
    ("content-type", "application/json"),
    ("server", "cloudflare"),
    ("cf-ray", "8c135d3eeec4a97a-SYD"),
    ("openai-processing-ms", "412"),
    ("x-request-id", "req_5f2c8e0f0b3a4d2c9f1e7a6b5c4d3e2f"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-limit-tokens", "2000000"),
    ("x-ratelimit-remaining-tokens", "1999950"),
    ("x-ratelimit-reset-tokens", "1ms"),
];

const QUOTA_BODY: &[u8] = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;

fn bench(c: &mut Criterion) {
    let profile = Profile::openai();
    let now = SystemTime::now();
    let instant = Instant::now();
    let rules = RetryRules::default();
    let budget = RetryBudget::default();
    let method = Method::POST;

    let mut ok = headers(COMMON);
    ok.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("9999"),
    );
    ok.insert(
        "x-ratelimit-reset-requests",
        HeaderValue::from_static("6ms"),
    );

    let mut limited = headers(COMMON);
    limited.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("0"),
    );
    limited.insert("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));

    let ok_evidence = Evidence::from_response(StatusCode::OK, &ok, profile, now);
    let mut quota_evidence =
        Evidence::from_response(StatusCode::TOO_MANY_REQUESTS, &limited, profile, now);
    quota_evidence.read_failure_body(&limited, QUOTA_BODY);

    let mut group = c.benchmark_group("classify");
    group.bench_function("200", |b| {
        b.iter(|| classify(black_box(&ok_evidence), profile))
    });
    group.bench_function("429_openai_insufficient_quota", |b| {
        b.iter(|| classify(black_box(&quota_evidence), profile))
    });
    group.finish();

    let mut group = c.benchmark_group("evidence");
    group.bench_function("200_openai_head", |b| {
        b.iter(|| Evidence::from_response(black_box(StatusCode::OK), black_box(&ok), profile, now))
    });
    group.bench_function("429_openai_head_and_body", |b| {
        b.iter(|| {
            let mut evidence = Evidence::from_response(
                black_box(StatusCode::TOO_MANY_REQUESTS),
                black_box(&limited),
                profile,
                now,
            );
            evidence.read_failure_body(&limited, black_box(QUOTA_BODY));
            evidence
        })
    });
    group.finish();

    let mut group = c.benchmark_group("attempt");
    group.bench_function("200_status_only", |b| {
        b.iter(|| {
            budget.deposit(instant);
            let evidence = Evidence::from_status(black_box(StatusCode::OK));
            let diagnosis = classify(&evidence, profile);
            black_box(rules.decide(
                &diagnosis,
                &evidence,
                profile,
                &AttemptContext::new(1, &method),
                &budget,
                instant,
            ))
        })
    });
    group.bench_function("200_openai_head", |b| {
        b.iter(|| {
            budget.deposit(instant);
            let evidence =
                Evidence::from_response(black_box(StatusCode::OK), black_box(&ok), profile, now);
            let diagnosis = classify(&evidence, profile);
            black_box(rules.decide(
                &diagnosis,
                &evidence,
                profile,
                &AttemptContext::new(1, &method),
                &budget,
                instant,
            ))
        })
    });
    group.bench_function("429_openai_insufficient_quota", |b| {
        b.iter(|| {
            let mut evidence = Evidence::from_response(
                black_box(StatusCode::TOO_MANY_REQUESTS),
                black_box(&limited),
                profile,
                now,
            );
            evidence.read_failure_body(&limited, black_box(QUOTA_BODY));
            let diagnosis = classify(&evidence, profile);
            black_box(rules.decide(
                &diagnosis,
                &evidence,
                profile,
                &AttemptContext::new(1, &method),
                &budget,
                instant,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
