//! The Observer sees what the events carry, as values; response bodies are
//! counted and a mid-body break or an early drop is reported.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_triage::core::{Fault, Owner};
use tower_triage::{AttemptInfo, BodyOutcome, Observer, Outcome, TriageLayer};

#[derive(Default)]
struct Seen {
    attempts: Mutex<Vec<(u32, Option<Owner>, &'static str)>>,
    outcomes: Mutex<Vec<String>>,
    bodies: Mutex<Vec<BodyOutcome>>,
    elapsed: Mutex<Vec<Duration>>,
}

#[derive(Clone, Default)]
struct Record(Arc<Seen>);

impl Observer for Record {
    fn on_attempt(&self, a: &AttemptInfo<'_>) {
        self.0
            .attempts
            .lock()
            .unwrap()
            .push((a.attempt, a.diagnosis.owner(), a.decision.reason()));
    }
    fn on_outcome(&self, outcome: &Outcome<'_>) {
        let call = outcome.call();
        self.0.elapsed.lock().unwrap().push(call.elapsed);
        let host = call.uri.host().unwrap_or("");
        let text = match outcome {
            Outcome::Response {
                attempts,
                diagnosis,
                status,
                ..
            } => format!(
                "response {} {host} {} {attempts} {}",
                call.method,
                status.as_u16(),
                diagnosis.class()
            ),
            Outcome::Failed { error, .. } => {
                format!("failed {} {host} {}", call.method, error.packet().outcome())
            }
            Outcome::Cancelled {
                attempts, stage, ..
            } => format!("cancelled {attempts} {stage:?}"),
            _ => String::from("other"),
        };
        self.0.outcomes.lock().unwrap().push(text);
    }
    fn on_body(&self, body: &BodyOutcome) {
        self.0.bodies.lock().unwrap().push(*body);
    }
}

/// A body that yields its chunks, then fails (or ends).
struct Chunks(VecDeque<Result<Bytes, io::Error>>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(self.0.pop_front().map(|r| r.map(Frame::data)))
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

fn chunks(parts: &[&'static str], fail: bool) -> Chunks {
    let mut q: VecDeque<_> = parts
        .iter()
        .map(|p| Ok(Bytes::from_static(p.as_bytes())))
        .collect();
    if fail {
        q.push_back(Err(io::Error::from(io::ErrorKind::ConnectionReset)));
    }
    Chunks(q)
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_every_attempt_and_the_outcome() {
    let record = Record::default();
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let status = if n == 0 { 502 } else { 200 };
            Ok::<_, io::Error>(
                Response::builder()
                    .status(status)
                    .body(chunks(&["ok"], false))
                    .unwrap(),
            )
        }
    });
    let mut svc = TriageLayer::new().observer(record.clone()).layer(inner);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::get("http://a.test/")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
    let attempts = record.0.attempts.lock().unwrap().clone();
    assert_eq!(
        attempts,
        vec![(1, Some(Owner::Server), "retry"), (2, None, "success")]
    );
    assert_eq!(
        record.0.outcomes.lock().unwrap().clone(),
        vec!["response GET a.test 200 2 success".to_owned()]
    );
    assert_eq!(
        record.0.bodies.lock().unwrap().clone(),
        vec![BodyOutcome::Complete { bytes: 2 }],
        "a body read to its end is reported complete with its bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_breaks_is_reported_with_its_bytes() {
    let record = Record::default();
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, io::Error>(Response::new(chunks(&["hello ", "wor"], true)))
    });
    let mut svc = TriageLayer::new().observer(record.clone()).layer(inner);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::get("http://a.test/")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let error = response.into_body().collect().await.unwrap_err();
    assert!(
        error.to_string().contains("reset") || error.to_string().contains("Reset"),
        "{error}"
    );
    assert_eq!(
        record.0.bodies.lock().unwrap().clone(),
        vec![BodyOutcome::Failed {
            bytes: 9,
            fault: Fault::Reset
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_dropped_early_is_reported_and_an_empty_one_is_not() {
    let record = Record::default();
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let body = if req.uri().path() == "/empty" {
            chunks(&[], false)
        } else {
            chunks(&["a", "b", "c"], false)
        };
        Ok::<_, io::Error>(Response::new(body))
    });
    let mut svc = TriageLayer::new().observer(record.clone()).layer(inner);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::get("http://a.test/full")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "a");
    drop(body);
    assert_eq!(
        record.0.bodies.lock().unwrap().clone(),
        vec![BodyOutcome::Dropped { bytes: 1 }]
    );

    // A body that is empty from the start is not "dropped early".
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::get("http://a.test/empty")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body();
    assert!(http_body::Body::is_end_stream(&body));
    drop(body);
    assert_eq!(record.0.bodies.lock().unwrap().len(), 1);
}

/// Issue 16: more than one observer, each told every event (three, to
/// cover a fan-out of a fan-out).
#[tokio::test(start_paused = true)]
async fn every_observer_added_sees_every_event() {
    let records = [Record::default(), Record::default(), Record::default()];
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let status = if n == 0 { 503 } else { 200 };
            Ok::<_, io::Error>(
                Response::builder()
                    .status(status)
                    .body(chunks(&["ok"], false))
                    .unwrap(),
            )
        }
    });
    let mut svc = TriageLayer::new()
        .observer(records[0].clone())
        .observer(records[1].clone())
        .observer(records[2].clone())
        .layer(inner);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::get("http://a.test/")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let _ = response.into_body().collect().await.unwrap();
    for record in &records {
        assert_eq!(
            record.0.attempts.lock().unwrap().clone(),
            vec![(1, Some(Owner::Server), "retry"), (2, None, "success")]
        );
        assert_eq!(
            record.0.outcomes.lock().unwrap().clone(),
            vec!["response GET a.test 200 2 success".to_owned()]
        );
        assert_eq!(
            record.0.bodies.lock().unwrap().clone(),
            vec![BodyOutcome::Complete { bytes: 2 }]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_is_told_with_what_was_asked_and_its_whole_time() {
    let record = Record::default();
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(io::Error::from(io::ErrorKind::ConnectionRefused))
    });
    let mut svc = TriageLayer::new().observer(record.clone()).layer(inner);
    let started = tokio::time::Instant::now();
    let error = svc
        .ready()
        .await
        .unwrap()
        .call(
            Request::post("http://b.test/v1/things")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    let attempts = record.0.attempts.lock().unwrap().clone();
    assert!(
        attempts.len() > 1,
        "a refused connection is retried: {attempts:?}"
    );
    assert_eq!(
        record.0.outcomes.lock().unwrap().clone(),
        vec![format!("failed POST b.test {}", error.packet().outcome())]
    );
    let elapsed = record.0.elapsed.lock().unwrap().clone();
    assert_eq!(elapsed.len(), 1);
    assert!(
        elapsed[0] > Duration::ZERO && elapsed[0] <= took,
        "the call's time spans its attempts and waits: {elapsed:?} of {took:?}"
    );
}
