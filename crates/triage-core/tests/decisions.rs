//! Properties of a whole retry loop driven by `RetryRules::decide`: whatever
//! the upstream answers, a request never makes more attempts than allowed,
//! never waits past its deadline, and never waits longer than the caps.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;
use triage_core::{
    AttemptContext, Backoff, Decision, Evidence, Fault, Profile, RetryBudget, RetryRules, Stage,
    Stop, TimeoutPhase, TransportFailure, classify,
};

#[derive(Debug, Clone)]
enum Answer {
    Status(u16, Option<u32>),
    Transport(Stage, Fault),
}

fn answer() -> impl Strategy<Value = Answer> {
    let statuses = prop::sample::select(vec![
        200u16, 400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504, 529,
    ]);
    let transports = prop::sample::select(vec![
        (Stage::Dns, Fault::NameNotFound),
        (Stage::Dns, Fault::ResolverFailed),
        (Stage::Connect, Fault::Refused),
        (Stage::Connect, Fault::Timeout(TimeoutPhase::Connect)),
        (Stage::AwaitHeaders, Fault::Reset),
        (Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers)),
        (Stage::Body, Fault::Reset),
    ]);
    prop_oneof![
        (statuses, prop::option::of(0u32..400)).prop_map(|(s, r)| Answer::Status(s, r)),
        transports.prop_map(|(s, f)| Answer::Transport(s, f)),
    ]
}

fn evidence(answer: &Answer, profile: &Profile) -> Evidence {
    match answer {
        Answer::Status(status, retry_after) => {
            let mut headers = HeaderMap::new();
            if let Some(secs) = retry_after {
                headers.insert(
                    "retry-after",
                    HeaderValue::from_str(&secs.to_string()).unwrap(),
                );
            }
            let status = StatusCode::from_u16(*status).unwrap();
            Evidence::from_response(status, &headers, profile, SystemTime::now())
        }
        Answer::Transport(stage, fault) => {
            Evidence::from_transport(TransportFailure::new(*stage, *fault))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_retry_loop_respects_attempts_deadline_and_caps(
        max_retries in 0u32..8,
        deadline_ms in prop::option::of(0u64..60_000),
        cap_s in 1u64..300,
        method in prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::PATCH]),
        answers in prop::collection::vec((answer(), 0u64..5_000, 0.0f64..1.0), 1..20),
    ) {
        let profile = Profile::generic();
        let rules = RetryRules::default()
            .max_retries(max_retries)
            .deadline(deadline_ms.map(Duration::from_millis))
            .max_retry_after(Duration::from_secs(cap_s))
            .backoff(Backoff::new(Duration::from_millis(500), Duration::from_secs(8)).unwrap());
        let budget = RetryBudget::unlimited();
        let start = Instant::now();
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0u32;
        for (answer, took_ms, random) in answers.iter().cycle().take(64) {
            attempts += 1;
            elapsed += Duration::from_millis(*took_ms);
            let ev = evidence(answer, profile);
            let diagnosis = classify(&ev, profile);
            let ctx = AttemptContext::new(attempts, &method).elapsed(elapsed).random(*random);
            match rules.decide(&diagnosis, &ev, profile, &ctx, &budget, start + elapsed) {
                Decision::Retry(retry) => {
                    prop_assert!(attempts <= max_retries, "retried after attempt {attempts} of {max_retries} retries");
                    prop_assert!(retry.delay() <= Duration::from_secs(cap_s).max(Duration::from_secs(8)));
                    if let Some(deadline) = deadline_ms {
                        prop_assert!(elapsed + retry.delay() < Duration::from_millis(deadline));
                    }
                    elapsed += retry.delay();
                }
                Decision::Stop(stop) => {
                    if let Stop::WaitTooLong(wait) = stop {
                        prop_assert!(wait > Duration::from_secs(cap_s));
                    }
                    break;
                }
            }
        }
        prop_assert!(attempts <= max_retries + 1);
    }

    #[test]
    fn the_budget_bounds_retries_of_a_failing_fleet(requests in 1u32..2_000) {
        // Every request hits an always-503 upstream; the shared budget lets at
        // most 20% of requests plus the reserve retry.
        let profile = Profile::generic();
        let rules = RetryRules::default();
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2).unwrap();
        let now = Instant::now();
        let ev = evidence(&Answer::Status(503, None), profile);
        let diagnosis = classify(&ev, profile);
        let mut upstream = 0u32;
        for _ in 0..requests {
            budget.deposit(now);
            let mut n = 1;
            upstream += 1;
            while rules
                .decide(&diagnosis, &ev, profile, &AttemptContext::new(n, &Method::GET), &budget, now)
                .is_retry()
            {
                n += 1;
                upstream += 1;
            }
        }
        let allowed = f64::from(requests) * 1.2 + 1.0;
        prop_assert!(f64::from(upstream) <= allowed, "{upstream} upstream requests for {requests}");
    }
}

/// Issue 14, item 11: a server wait over the cap stops the call as a wait
/// too long — for every header form, and for values past the 366-day bound
/// of the parsers or past what a number holds — instead of being dropped
/// and replaced by the backoff.
#[test]
fn every_wait_over_the_cap_stops_the_call() {
    let profile = Profile::generic();
    let just_over_a_year = (366 * 24 * 60 * 60 + 1).to_string();
    let just_over_a_year_ms = format!("{just_over_a_year}000");
    let huge = "9".repeat(40);
    let cases: Vec<(&str, &str)> = vec![
        ("retry-after", "121"),
        ("retry-after", just_over_a_year.as_str()),
        ("retry-after", huge.as_str()),
        ("retry-after-ms", "120001"),
        ("retry-after-ms", just_over_a_year_ms.as_str()),
        ("retry-after-ms", huge.as_str()),
        ("x-amz-retry-after", just_over_a_year_ms.as_str()),
        ("x-amz-retry-after", huge.as_str()),
    ];
    for (name, value) in cases {
        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).unwrap());
            let evidence = Evidence::from_response(status, &headers, profile, SystemTime::now());
            let diagnosis = classify(&evidence, profile);
            let get = Method::GET;
            let decision = RetryRules::default().decide(
                &diagnosis,
                &evidence,
                profile,
                &AttemptContext::new(1, &get),
                &RetryBudget::default(),
                Instant::now(),
            );
            // A 503 (or 429) that asks for a day or more is a period quota:
            // stopped too, as never retryable.
            let long_wait = value.len() > 6;
            let stopped = match decision {
                Decision::Stop(Stop::WaitTooLong(_)) => true,
                Decision::Stop(Stop::NotRetryable(triage_core::Owner::Quota)) => {
                    status == StatusCode::SERVICE_UNAVAILABLE && long_wait
                }
                _ => false,
            };
            assert!(stopped, "{status} {name}: {value}: {decision:?}");
        }
    }
}
