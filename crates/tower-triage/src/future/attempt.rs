//! An attempt: waiting for the service to be ready, then the call in
//! flight under its timeouts, and where its answer goes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response, Uri};
use http_body::Body;
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tower::Service;
use triage_core::{BoxError, Fault, Stage, TimeoutPhase, TransportFailure};

use super::first_event::FirstEvent;
use super::judge;
use super::peek::Peek;
use super::request::with_body;
use super::{Flow, Next, Projection, State, StateProj, StateReplace, Timer, method, uri};
use crate::body::TryCloneBody;
use crate::capture::{self, Capture};
use crate::config::Config;
use crate::error::SharedConnectError;
use crate::response_body::ResponseBody;
use crate::route::route_of;
use crate::transport::{classify_error, watch_connect};
use crate::whole_body::{self, BodyMode, Whole};
use triage_core::body::stream::StreamKind;

/// A capture for attempt `attempt` (0: a probe) on `uri`'s route, when the
/// request keeps a connection log (`logged`), or when the route has an open
/// diagnosis window (one atomic load while no route has a failure on
/// record) for a request the window applies to (`on`).
pub(super) fn watch(
    (on, logged): (bool, bool),
    config: &Config,
    uri: &Uri,
    now: Instant,
    attempt: u32,
) -> Option<Box<Capture>> {
    (logged || (on && config.routes.any() && config.routes.watching(&route_of(uri), now)))
        .then(|| Capture::new(attempt))
}

/// Whether `timer` is set and has fired (registering the wake-up if not).
pub(super) fn expired(timer: &mut Timer, cx: &mut Context<'_>) -> bool {
    timer
        .as_mut()
        .is_some_and(|t| t.as_mut().poll(cx).is_ready())
}

/// The write timeout of a call: a request body that makes no progress
/// for `limit` while it is being sent fails the attempt.
#[derive(Debug)]
pub(super) struct WriteWatch {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl WriteWatch {
    pub(super) fn new(limit: Duration) -> WriteWatch {
        WriteWatch { limit, timer: None }
    }

    /// Whether the body being sent (watched through the kept original,
    /// `body`) has made no progress for the limit; otherwise arms the timer
    /// for the moment it would have.
    fn stalled<B: TryCloneBody>(&mut self, body: &B, cx: &mut Context<'_>) -> bool {
        let now = Instant::now();
        // The client sends the body from its own task: nothing wakes this
        // future when a frame goes, so the timer brings it back to look.
        let due = match (body.fully_sent(), body.last_progress()) {
            (Some(false), Some(progress)) => {
                let due = Instant::from_std(progress) + self.limit;
                if now >= due {
                    return true;
                }
                due
            }
            // Not started yet (connecting, or the head is going): look
            // again later.
            (Some(false), None) => now + self.limit,
            // Sent, or a body that cannot tell: nothing to watch.
            _ => {
                self.timer = None;
                return false;
            }
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        // Registers the wake-up; it cannot be due yet.
        let _ = timer.as_mut().poll(cx);
        false
    }
}

/// Phase `Ready`: once the service is ready, the next attempt goes out
/// (the request held for a probe or a pool slot, or a copy for a retry).
pub(super) fn ready<S, B, R>(this: &mut Projection<'_, S, B, R>, cx: &mut Context<'_>) -> Flow<R>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
{
    match this.service.poll_ready(cx) {
        Poll::Pending => return Flow::Pending,
        Poll::Ready(Err(e)) => {
            this.state.set(State::Done);
            let error = super::readiness_error(method!(this), uri!(this), e.into());
            return Flow::Judged(Next::Fail(error));
        }
        Poll::Ready(Ok(())) => {}
    }
    // The request that waited for its route's probe or a pool slot, else
    // the copy a retry was decided with (a retry is only decided with one
    // in hand).
    let request = match (this.held.take(), this.next.take()) {
        (Some(held), _) => *held,
        (None, Some(body)) => with_body(this.head, body),
        (None, None) => unreachable!("an attempt without a request"),
    };
    let future = this.service.call(request);
    *this.attempt += 1;
    *this.attempt_started = Instant::now();
    *this.capture = watch(
        (*this.window_on, this.log().is_some()),
        this.config,
        uri!(this),
        *this.attempt_started,
        *this.attempt,
    );
    if let Some(watch) = this.write.as_deref_mut() {
        watch.timer = None;
    }
    this.state.set(State::Calling {
        future,
        timer: None,
        connect_timer: None,
        connecting: None,
    });
    Flow::Moved
}

/// Phase `Calling`: the attempt in flight, under the attempt timeout, the
/// connect timeout while a tagged connector says it is connecting, and the
/// write timeout while the body is being sent.
pub(super) fn calling<S, B, R>(this: &mut Projection<'_, S, B, R>, cx: &mut Context<'_>) -> Flow<R>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    let StateProj::Calling {
        future,
        timer,
        connect_timer,
        connecting,
    } = this.state.as_mut().project()
    else {
        unreachable!("dispatched to its phase")
    };
    if timer.is_none() {
        if let Some(limit) = *this.attempt_timeout {
            *timer = Some(Box::pin(sleep(limit)));
        }
    }
    let timed_out = expired(timer, cx);
    let write_stalled = match (this.write.as_deref_mut(), this.body.as_ref()) {
        (Some(watch), Some(body)) => watch.stalled(body, cx),
        _ => false,
    };
    // Armed only while connecting (see below).
    let connect_stalled = connecting.is_some() && expired(connect_timer, cx);
    if write_stalled && !timed_out {
        let limit = this.write.as_ref().map(|w| w.limit).unwrap_or_default();
        this.state.set(State::Done);
        if let Some(watch) = this.write.as_deref_mut() {
            watch.timer = None;
        }
        let next = judge::timeout(this, Stage::Write, TimeoutPhase::Write, limit, true);
        return Flow::Judged(next);
    }
    if timed_out || connect_stalled {
        let limit = match (connect_stalled, *this.connect_timeout) {
            (true, Some(limit)) => limit,
            _ => this.attempt_timeout.unwrap_or_default(),
        };
        // Still connecting (a tagged connector said so): the request never
        // left, and the connection path is what was slow.
        let (stage, phase) = match *connecting {
            Some(stage) => (stage, TimeoutPhase::Connect),
            None => (Stage::AwaitHeaders, TimeoutPhase::Headers),
        };
        this.state.set(State::Done);
        return Flow::Judged(judge::timeout(this, stage, phase, limit, true));
    }
    let (polled, now_connecting) =
        capture::scope(this.capture, || watch_connect(|| future.poll(cx)));
    *connecting = now_connecting;
    match polled {
        Poll::Pending => {
            match (now_connecting, *this.connect_timeout) {
                (Some(_), Some(limit)) => {
                    let due = *this.attempt_started + limit;
                    let timer = connect_timer.get_or_insert_with(|| Box::pin(sleep_until(due)));
                    if timer.as_mut().poll(cx).is_ready() {
                        // Judged at the top of the phase.
                        return Flow::Moved;
                    }
                }
                _ => *connect_timer = None,
            }
            Flow::Pending
        }
        Poll::Ready(Err(e)) => {
            this.state.set(State::Done);
            let e: BoxError = e.into();
            // Without a body that knows, a failure after the connection is
            // judged as awaiting the head.
            let sent = this
                .body
                .as_ref()
                .and_then(TryCloneBody::fully_sent)
                .unwrap_or(true);
            let failure = classify_error(&*e, sent, now_connecting);
            let (failure, e) = shared_connect(this, failure, e);
            Flow::Judged(judge::transport(this, failure, e, true))
        }
        Poll::Ready(Ok(response)) => answered(this, response),
    }
}

/// The far side answered: a success streams back (or, in whole-body mode,
/// has its body read inside the attempt); a failure status has its body
/// peeked at.
fn answered<S, B, R>(this: &mut Projection<'_, S, B, R>, response: Response<R>) -> Flow<R>
where
    S: Service<Request<B>, Response = Response<R>>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    // The connection log keeps what was captured; a window has nothing to
    // count.
    if let Some(capture) = this.capture.take() {
        if let Some(log) = this.log() {
            log.push(capture.into_detail());
        }
    }
    if let Some(fields) = crate::notify::span_fields(this.span) {
        let version = crate::notify::protocol_version(response.version());
        this.span.record(&fields.version, version);
    }
    let status = response.status();
    if status.as_u16() >= 400 {
        let (parts, body) = response.into_parts();
        let peek = Peek {
            status,
            parts,
            body: Box::pin(body),
            buf: BytesMut::new(),
            ended: false,
            timer: Box::pin(sleep(this.config.peek_timeout)),
        };
        this.state.set(State::Peeking {
            peek: Box::new(peek),
        });
        return Flow::Moved;
    }
    let plan = this.whole_body.and_then(|cap| {
        let (head, body) = (response.headers(), response.body());
        whole_body::plan(status, head, body, cap).map(|reserve| (cap, reserve))
    });
    if let Some((cap, reserve)) = plan {
        let StateReplace::Calling { timer, .. } = this.state.as_mut().project_replace(State::Done)
        else {
            unreachable!("answered while calling")
        };
        let (parts, body) = response.into_parts();
        // The attempt timer runs on: it bounds the body's read too.
        let idle = *this.body_idle_timeout;
        let whole = Whole::new(parts, body, cap, reserve, idle);
        this.state.set(State::Buffering {
            whole: Box::new(whole),
            timer,
        });
        return Flow::Moved;
    }
    // One pass over the head: the content type (a stream's first event is
    // held) and whether a rate window is used up (pacing).
    let scan = (this.config.stream_first_event || this.config.pacing)
        .then(|| this.profile.scan_head(response.headers()));
    let exhausted = scan.map(|s| s.exhausted);
    let stream = scan
        .and_then(|s| s.content_type)
        .filter(|_| this.config.stream_first_event)
        .and_then(|t| StreamKind::of(t.as_bytes()));
    if let Some(kind) = stream {
        // Up to the commit point, the stream's failures are the attempt's.
        let (parts, body) = response.into_parts();
        let timeouts = (this.config.first_byte_timeout, *this.body_idle_timeout);
        let first = FirstEvent::new(parts, body, kind, timeouts);
        this.state.set(State::Streaming {
            first: Box::new(first),
        });
        return Flow::Moved;
    }
    // The attempt is over: its future and timers dropped in place (a
    // replace would move them out first).
    this.state.set(State::Done);
    let observer = this.config.observer.clone();
    let response = response.map(|body| ResponseBody::passthrough(body, observer));
    Flow::Judged(Next::Respond(judge::success(
        this,
        response,
        (BodyMode::Stream, exhausted),
    )))
}

/// An attempt whose connect failed in a way nothing recognises
/// (`connect: unknown`) may have waited for another request's connection:
/// hyper-util's pool shares one HTTP/2 connect among the requests to a
/// route, and tells the waiters only that their checkout was cancelled.
/// When this layer judged a failure of the connection on the same route
/// since this attempt started, that failure is this attempt's too, and the
/// error says so.
fn shared_connect<S, B, R>(
    this: &Projection<'_, S, B, R>,
    failure: TransportFailure,
    error: BoxError,
) -> (TransportFailure, BoxError)
where
    S: Service<Request<B>>,
{
    if failure != TransportFailure::new(Stage::Connect, Fault::Unknown) || !this.config.routes.any()
    {
        return (failure, error);
    }
    let route = route_of(uri!(this));
    match this
        .config
        .routes
        .shared_connect_failure(&route, *this.attempt_started)
    {
        Some(shared) => (shared, Box::new(SharedConnectError::new(shared, error))),
        None => (failure, error),
    }
}
