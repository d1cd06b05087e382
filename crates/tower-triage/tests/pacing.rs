//! Pacing: once an answer says its route's rate window is used up, the
//! next requests on the route wait for the reset instead of being sent to
//! be refused; a request whose deadline ends first fails at once, unsent.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::{ErrorKind, Owner, Profile, RetryRules, Stop};
use tower_triage::{ReportExt, RequestOptions, TriageLayer};

type Answer = Result<Response<Full<Bytes>>, io::Error>;

/// When each request reached the upstream, and its path.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

/// An upstream that answers with `script(n, path)` and notes each arrival.
fn upstream(
    script: impl Fn(usize, &str) -> Answer + Send + Sync + 'static,
) -> (
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = io::Error,
        Future = impl Send,
    > + Clone,
    Seen,
) {
    let seen = Seen::default();
    let kept = Arc::clone(&seen);
    let script = Arc::new(script);
    let service = service_fn(move |request: Request<Full<Bytes>>| {
        let path = request.uri().path().to_owned();
        let n = {
            let mut seen = kept.lock().unwrap();
            seen.push((Instant::now(), path.clone()));
            seen.len() - 1
        };
        let answer = script(n, &path);
        async move { answer }
    });
    (service, seen)
}

fn answer(code: u16, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(code);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://api.test{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn with_deadline(mut request: Request<Full<Bytes>>, deadline: Duration) -> Request<Full<Bytes>> {
    request
        .extensions_mut()
        .insert(RequestOptions::new().deadline(Some(deadline)));
    request
}

fn layer() -> TriageLayer {
    TriageLayer::new().profile(Profile::openai().clone())
}

/// The arrival of request `n`, measured from `start`.
fn arrived(seen: &Seen, n: usize, start: Instant) -> Duration {
    seen.lock().unwrap()[n].0 - start
}

#[tokio::test(start_paused = true)]
async fn a_success_that_uses_up_the_window_holds_the_next_request_until_the_reset() {
    let (inner, seen) = upstream(|n, _| {
        Ok(if n == 0 {
            answer(
                200,
                &[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "3s"),
                ],
            )
        } else {
            answer(200, &[("x-ratelimit-remaining-requests", "9")])
        })
    });
    let mut svc = layer().layer(inner);
    let start = Instant::now();
    svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    let second = svc.ready().await.unwrap().call(get("/b")).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.report().unwrap().attempts(), 1);
    assert!(arrived(&seen, 0, start) < Duration::from_millis(1));
    let waited = arrived(&seen, 1, start);
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3100),
        "the second request was sent at {waited:?}, not at the reset"
    );
    // The window reopened: a third goes at once.
    let before = Instant::now();
    svc.ready().await.unwrap().call(get("/c")).await.unwrap();
    assert!(arrived(&seen, 2, before) < Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn after_a_429_that_asks_to_wait_no_other_request_is_sent_into_the_window() {
    // The upstream refuses everything until 2 s after its first refusal.
    let first_refusal: Arc<Mutex<Option<Instant>>> = Arc::default();
    let refusals = Arc::new(Mutex::new(0u32));
    let (inner, seen) = {
        let first_refusal = Arc::clone(&first_refusal);
        let refusals = Arc::clone(&refusals);
        upstream(move |_, _| {
            let now = Instant::now();
            let mut first = first_refusal.lock().unwrap();
            let open = first.is_some_and(|t| now >= t + Duration::from_secs(2));
            if open {
                return Ok(answer(200, &[]));
            }
            first.get_or_insert(now);
            *refusals.lock().unwrap() += 1;
            Ok(answer(429, &[("retry-after-ms", "2000")]))
        })
    };
    let svc = layer().layer(inner);
    // One request meets the 429; then eight more start during the window.
    let mut lead = svc.clone();
    let leader = tokio::spawn(async move { lead.ready().await.unwrap().call(get("/x")).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut followers = Vec::new();
    for n in 0..8 {
        let mut svc = svc.clone();
        followers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100 * n)).await;
            svc.ready().await.unwrap().call(get("/y")).await
        }));
    }
    assert_eq!(leader.await.unwrap().unwrap().status(), 200);
    for follower in followers {
        let response = follower.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.report().unwrap().attempts(), 1, "never refused");
    }
    assert_eq!(
        *refusals.lock().unwrap(),
        1,
        "only the first request was refused"
    );
    assert_eq!(seen.lock().unwrap().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn without_pacing_the_same_requests_are_refused() {
    let first_refusal: Arc<Mutex<Option<Instant>>> = Arc::default();
    let refusals = Arc::new(Mutex::new(0u32));
    let (inner, _seen) = {
        let first_refusal = Arc::clone(&first_refusal);
        let refusals = Arc::clone(&refusals);
        upstream(move |_, _| {
            let now = Instant::now();
            let mut first = first_refusal.lock().unwrap();
            if first.is_some_and(|t| now >= t + Duration::from_secs(2)) {
                return Ok(answer(200, &[]));
            }
            first.get_or_insert(now);
            *refusals.lock().unwrap() += 1;
            Ok(answer(429, &[("retry-after-ms", "2000")]))
        })
    };
    let svc = layer().pacing(false).layer(inner);
    let mut calls = Vec::new();
    for n in 0..5 {
        let mut svc = svc.clone();
        calls.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 + 100 * n)).await;
            svc.ready().await.unwrap().call(get("/y")).await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        *refusals.lock().unwrap(),
        5,
        "each was sent into the closed window"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_ends_before_the_reset_fails_at_once_unsent() {
    let (inner, seen) = upstream(|_, _| {
        Ok(answer(
            200,
            &[
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "30s"),
                ("x-request-id", "req_window"),
            ],
        ))
    });
    let mut svc = layer().layer(inner);
    svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    let start = Instant::now();
    let request = with_deadline(get("/b"), Duration::from_secs(5));
    let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1), "failed at once");
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing sent");
    assert_eq!(error.kind(), ErrorKind::RateLimit);
    assert_eq!(error.owner(), Some(Owner::RateLimit));
    assert!(
        matches!(error.stop(), Stop::RateWindowClosed(wait) if wait > Duration::from_secs(29)),
        "{:?}",
        error.stop()
    );
    let packet = error.packet();
    assert_eq!(packet.outcome(), "rate_window_closed");
    assert_eq!(packet.attempts_total(), 0);
    assert!(packet.rate().is_some_and(|r| r.tokens.remaining == Some(0)));
    assert!(
        packet.next_step().contains("rate window"),
        "{}",
        packet.next_step()
    );

    // A deadline that the reset fits in waits instead.
    let request = with_deadline(get("/c"), Duration::from_secs(60));
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(arrived(&seen, 1, start) >= Duration::from_secs(29));
}

#[tokio::test(start_paused = true)]
async fn requests_and_tokens_are_separate_windows() {
    // Tokens used up for 4 s; a later answer about requests does not
    // reopen them.
    let (inner, seen) = upstream(|n, _| {
        Ok(match n {
            0 => answer(
                200,
                &[
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "4s"),
                ],
            ),
            1 => answer(
                200,
                &[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "1s"),
                    ("x-ratelimit-remaining-tokens", "500"),
                ],
            ),
            _ => answer(200, &[]),
        })
    });
    let svc = layer().layer(inner);
    let start = Instant::now();
    let mut a = svc.clone();
    a.ready().await.unwrap().call(get("/a")).await.unwrap();
    let mut b = svc.clone();
    b.ready().await.unwrap().call(get("/b")).await.unwrap();
    let mut c = svc.clone();
    c.ready().await.unwrap().call(get("/c")).await.unwrap();
    let b_at = arrived(&seen, 1, start);
    let c_at = arrived(&seen, 2, start);
    assert!(b_at >= Duration::from_secs(4), "{b_at:?}");
    // The second closed requests for 1 s more: the third waits for it.
    assert!(
        c_at >= b_at + Duration::from_secs(1),
        "{c_at:?} after {b_at:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_window_past_the_wait_cap_or_on_another_route_holds_nothing() {
    let (inner, seen) = upstream(|n, _| {
        Ok(if n == 0 {
            answer(
                200,
                &[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "1h0m0s"),
                ],
            )
        } else {
            answer(200, &[])
        })
    });
    let mut svc = layer().layer(inner);
    let start = Instant::now();
    svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    svc.ready().await.unwrap().call(get("/b")).await.unwrap();
    assert!(arrived(&seen, 1, start) < Duration::from_millis(1));

    let (inner, seen) = upstream(|n, _| {
        Ok(if n == 0 {
            answer(429, &[("retry-after", "5")])
        } else {
            answer(200, &[])
        })
    });
    let mut svc = layer().rules(RetryRules::none()).layer(inner);
    let start = Instant::now();
    svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    let other = Request::get("http://other.test/b")
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.ready().await.unwrap().call(other).await.unwrap();
    assert!(
        arrived(&seen, 1, start) < Duration::from_millis(1),
        "another route is not held"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_for_a_window_another_request_closed() {
    // Request A meets a 500 (backoff 0.5 s at most); meanwhile B's answer
    // closes the route for 3 s: A's retry waits for the reset.
    let (inner, seen) = upstream(|_, path| {
        Ok(match path {
            "/a" => answer(500, &[]),
            _ => answer(
                200,
                &[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "3s"),
                ],
            ),
        })
    });
    let svc = layer()
        .rules(RetryRules::default().max_retries(1))
        .layer(inner);
    let start = Instant::now();
    let mut b = svc.clone();
    let mut a = svc.clone();
    let retried = tokio::spawn(async move { a.ready().await.unwrap().call(get("/a")).await });
    tokio::task::yield_now().await;
    b.ready().await.unwrap().call(get("/b")).await.unwrap();
    let response = retried.await.unwrap().unwrap();
    assert_eq!(response.report().unwrap().attempts(), 2);
    let seen = seen.lock().unwrap();
    let retry = seen
        .iter()
        .filter(|(_, p)| p == "/a")
        .nth(1)
        .map(|(t, _)| *t - start)
        .unwrap();
    assert!(
        retry >= Duration::from_secs(3),
        "the retry went at {retry:?}"
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `at` (the civil-from-days algorithm).
fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[tokio::test(start_paused = true)]
async fn anthropic_and_ietf_windows_pace_too() {
    // Anthropic: an RFC 3339 reset about 3 s away (whole seconds: 2 to 3 s).
    let reset = rfc3339(std::time::SystemTime::now() + Duration::from_secs(3));
    let (inner, seen) = upstream(move |n, _| {
        Ok(if n == 0 {
            answer(
                200,
                &[
                    ("anthropic-ratelimit-requests-remaining", "0"),
                    ("anthropic-ratelimit-requests-reset", reset.as_str()),
                ],
            )
        } else {
            answer(200, &[])
        })
    });
    let mut svc = TriageLayer::new()
        .profile(Profile::anthropic().clone())
        .layer(inner);
    let start = Instant::now();
    svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    svc.ready().await.unwrap().call(get("/b")).await.unwrap();
    let waited = arrived(&seen, 1, start);
    assert!(
        waited >= Duration::from_secs(1) && waited <= Duration::from_secs(3),
        "{waited:?}"
    );

    // The IETF `RateLimit` field (the generic profile): r=0, t=2.
    let (inner, seen) = upstream(|n, _| {
        Ok(if n == 0 {
            answer(200, &[("ratelimit", "\"default\";r=0;t=2")])
        } else {
            answer(200, &[])
        })
    });
    let mut svc = TriageLayer::new()
        .profile(Profile::generic().clone())
        .layer(inner);
    let start = Instant::now();
    svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    svc.ready().await.unwrap().call(get("/b")).await.unwrap();
    let waited = arrived(&seen, 1, start);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
        "{waited:?}"
    );
}

/// Replicas linked in process: what one publishes, every attached inbox
/// (its own included) receives.
#[derive(Debug, Clone, Default)]
struct Loopback(
    Arc<Mutex<Vec<tower_triage::Inbox>>>,
    Arc<Mutex<Vec<tower_triage::SharedWindow>>>,
);

impl tower_triage::Share for Loopback {
    fn publish(&self, window: &tower_triage::SharedWindow) {
        self.1.lock().unwrap().push(window.clone());
        for inbox in self.0.lock().unwrap().iter() {
            inbox.receive(window);
        }
    }

    fn attach(&self, inbox: tower_triage::Inbox) {
        self.0.lock().unwrap().push(inbox);
    }
}

#[tokio::test(start_paused = true)]
async fn a_window_one_replica_learns_holds_the_others_requests() {
    let share = Loopback::default();
    let (a_inner, a_seen) = upstream(|n, _| {
        Ok(if n == 0 {
            answer(429, &[("retry-after-ms", "2000")])
        } else {
            answer(200, &[])
        })
    });
    let (b_inner, b_seen) = upstream(|_, _| Ok(answer(200, &[])));
    let mut a = layer().share(share.clone()).layer(a_inner);
    let mut b = layer().share(share.clone()).layer(b_inner);
    let start = Instant::now();
    let replica_a = tokio::spawn(async move { a.ready().await.unwrap().call(get("/x")).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.ready().await.unwrap().call(get("/y")).await.unwrap();
    replica_a.await.unwrap().unwrap();
    let published = share.1.lock().unwrap().clone();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].route, "http://api.test:80");
    assert_eq!(published[0].profile, "openai");
    assert_eq!(published[0].bucket, tower_triage::RateBucket::Route);
    let waited = arrived(&b_seen, 0, start);
    assert!(
        waited >= Duration::from_millis(1900),
        "replica B sent into the window replica A learned: {waited:?}"
    );
    assert_eq!(a_seen.lock().unwrap().len(), 2);
}

/// OpenAI's answer when the account has no credit left.
fn no_quota() -> Response<Full<Bytes>> {
    Response::builder()
        .status(429)
        .header("content-type", "application/json")
        .header("x-request-id", "req_quota")
        .body(Full::new(Bytes::from_static(
            br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        )))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn without_quota_stops_a_used_up_quota_stops_nothing_else() {
    let (inner, seen) = upstream(|n, _| Ok(if n == 0 { no_quota() } else { answer(200, &[]) }));
    let mut svc = layer().layer(inner);
    let first = svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    assert_eq!(
        first.report().unwrap().diagnosis().owner(),
        Some(Owner::Quota)
    );
    let next = svc.ready().await.unwrap().call(get("/b")).await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 2, "the second request was sent");
}

#[tokio::test(start_paused = true)]
async fn a_quota_stop_refuses_the_routes_requests_unsent_until_it_ends() {
    let (inner, seen) = upstream(|n, _| Ok(if n == 0 { no_quota() } else { answer(200, &[]) }));
    let log = triage_testkit::EventLog::new();
    let _guard = tracing::subscriber::set_default(log.clone());
    let mut svc = layer()
        .quota_stops(Some(Duration::from_secs(60)))
        .layer(inner);
    let first = svc.ready().await.unwrap().call(get("/a")).await.unwrap();
    assert_eq!(first.status(), 429);
    // Another path on the route, a generous deadline: refused at once.
    let start = Instant::now();
    let request = with_deadline(get("/b"), Duration::from_secs(600));
    let error = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1), "failed at once");
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing sent");
    assert_eq!(error.kind(), ErrorKind::RateLimit);
    assert_eq!(error.owner(), Some(Owner::Quota));
    assert!(
        matches!(error.stop(), Stop::QuotaStopped(left) if left > Duration::from_secs(59)),
        "{:?}",
        error.stop()
    );
    let packet = error.packet();
    assert_eq!(packet.outcome(), "quota_stopped");
    assert_eq!(packet.attempts_total(), 0);
    assert!(
        packet.next_step().contains("quota"),
        "{}",
        packet.next_step()
    );
    let told = log.matching("request refused unsent").join("\n");
    assert!(told.contains("the route's quota is stopped"), "{told}");
    assert!(told.contains("decision=quota_stopped"), "{told}");
    // Another route is not stopped.
    let other = Request::get("http://other.test/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(other)
            .await
            .unwrap()
            .status(),
        200
    );
    // Once the stop ends, requests go again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let later = svc.ready().await.unwrap().call(get("/c")).await.unwrap();
    assert_eq!(later.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_quota_stop_one_replica_learns_refuses_the_others_requests() {
    let share = Loopback::default();
    let (a_inner, _) = upstream(|_, _| Ok(no_quota()));
    let (b_inner, b_seen) = upstream(|_, _| Ok(answer(200, &[])));
    let (c_inner, c_seen) = upstream(|_, _| Ok(answer(200, &[])));
    let stops = || layer().quota_stops(Some(Duration::from_secs(30)));
    let mut a = stops().share(share.clone()).layer(a_inner);
    let mut b = stops().share(share.clone()).layer(b_inner);
    // C does not stop on quotas: what it is sent, it does not take.
    let mut c = layer().share(share.clone()).layer(c_inner);
    a.ready().await.unwrap().call(get("/x")).await.unwrap();
    let published = share.1.lock().unwrap().clone();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        published[0].bucket,
        tower_triage::RateBucket::Quota(tower_triage::core::QuotaKind::Billing)
    );
    let error = b.ready().await.unwrap().call(get("/y")).await.unwrap_err();
    assert!(
        matches!(error.stop(), Stop::QuotaStopped(_)),
        "{:?}",
        error.stop()
    );
    assert_eq!(error.owner(), Some(Owner::Quota));
    assert!(b_seen.lock().unwrap().is_empty(), "B sent nothing");
    c.ready().await.unwrap().call(get("/z")).await.unwrap();
    assert_eq!(c_seen.lock().unwrap().len(), 1);
}

/// A request that waits for a pool slot while another's answer closes the
/// route's window is held for the reset once it has the slot, not sent
/// into the window.
#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_pool_slot_is_paced_too() {
    let seen = Seen::default();
    let kept = Arc::clone(&seen);
    let inner = service_fn(move |request: Request<Full<Bytes>>| {
        let path = request.uri().path().to_owned();
        let n = {
            let mut seen = kept.lock().unwrap();
            seen.push((Instant::now(), path));
            seen.len() - 1
        };
        async move {
            if n == 0 {
                // The first answer takes 100 ms and closes the window.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok::<_, io::Error>(answer(429, &[("retry-after-ms", "2000")]));
            }
            Ok(answer(200, &[]))
        }
    });
    let svc = layer()
        .rules(RetryRules::default().max_retries(0))
        .pool(1, None)
        .layer(inner);
    let start = Instant::now();
    let first = tokio::spawn({
        let mut svc = svc.clone();
        async move {
            let response = svc.ready().await.unwrap().call(get("/a")).await.unwrap();
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap();
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Waits for the slot the first request holds until its body ends.
    let mut second = svc.clone();
    let response = second.ready().await.unwrap().call(get("/b")).await.unwrap();
    first.await.unwrap();
    assert_eq!(response.status(), 200);
    let waited = arrived(&seen, 1, start);
    assert!(
        waited >= Duration::from_millis(2000),
        "sent into the closed window after {waited:?}"
    );
}

/// The answers of one window say the same reset again and again: a layer
/// shares a window once, not once per answer.
#[tokio::test(start_paused = true)]
async fn a_window_is_shared_once_however_many_answers_say_it() {
    let share = Loopback::default();
    let inner = service_fn(|_request: Request<Full<Bytes>>| async {
        // Slow enough that all the requests are out before any answer.
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, io::Error>(answer(429, &[("retry-after-ms", "2000")]))
    });
    let svc = layer()
        .rules(RetryRules::default().max_retries(0))
        .share(share.clone())
        .layer(inner);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { svc.ready().await.unwrap().call(get("/x")).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 429);
    }
    let published = share.1.lock().unwrap().clone();
    assert_eq!(published.len(), 1, "{published:?}");
    // A later window (the next one) is news again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut svc = svc.clone();
    svc.ready().await.unwrap().call(get("/y")).await.unwrap();
    assert_eq!(share.1.lock().unwrap().len(), 2);
}
