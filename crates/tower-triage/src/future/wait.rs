//! The waits of a call: the backoff before a retry, a slot of the route's
//! pool, and an open route's verification probe; and the refusal of an
//! open route.

use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::{Request, Response};
use tokio::time::Instant;
use tower::Service;
use triage_core::{
    BoxError, Diagnosis, Error, Evidence, PacketBuilder, Profile, Stage, Stop, TimeoutPhase,
    classify,
};

use super::attempt::expired;
use super::judge;
use super::{Flow, Projection, State, StateProj, StateReplace, method, random, uri};
use crate::body::TryCloneBody;
use crate::notify;
use crate::observer::{Call, RouteEvent};
use crate::route::{Admit, Closed, route_of};
use crate::transport::classify_error;

/// Phase `Waiting`: the backoff before the next attempt (or, for a request
/// held by pacing, before its first). The route's rate window may have
/// closed meanwhile: the attempt then waits for its reset. The route may
/// have opened meanwhile (another request's failure was proven permanent):
/// the retry is then refused like a new request.
pub(super) fn waiting<S, B, R>(this: &mut Projection<'_, S, B, R>, cx: &mut Context<'_>) -> Flow<R>
where
    S: Service<Request<B>>,
{
    let StateProj::Waiting { timer } = this.state.as_mut().project() else {
        unreachable!("dispatched to its phase")
    };
    if timer.as_mut().poll(cx).is_pending() {
        return Flow::Pending;
    }
    // Pacing: another request's answer may have closed the route's rate
    // window meanwhile; the attempt waits for its reset. A quota stop ends
    // the request.
    if this.config.paces.any() {
        let now = Instant::now();
        if let Some(closed) = this.config.paces.closed(&route_of(uri!(this)), now) {
            if closed.quota {
                let error = quota_stopped(this, &closed, closed.until - now);
                this.state.set(State::Refused { error });
                return Flow::Moved;
            }
            timer.as_mut().reset(closed.until);
            if timer.as_mut().poll(cx).is_pending() {
                return Flow::Pending;
            }
        }
    }
    if *this.breaker_on && this.config.routes.any() {
        let route = route_of(uri!(this));
        if let Some(refusal) = this.config.routes.refuse_retry(&route) {
            let error = refused_retry(this, refusal);
            this.state.set(State::Refused { error });
            return Flow::Moved;
        }
    }
    this.state.set(State::Ready);
    Flow::Moved
}

/// The packet of a request stopped while it waited: its attempts so far,
/// or a fresh one when it made none.
fn packet_so_far<S, B, R>(this: &mut Projection<'_, S, B, R>) -> PacketBuilder
where
    S: Service<Request<B>>,
{
    match this.packet.take() {
        Some(builder) => *builder,
        None => PacketBuilder::new(method!(this), uri!(this), this.profile, SystemTime::now()),
    }
}

/// The error of a request whose route's quota was stopped while it waited
/// to retry: the diagnosis that stopped it, and this request's own packet
/// (its attempts so far).
fn quota_stopped<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    closed: &Closed,
    left: Duration,
) -> Box<Error>
where
    S: Service<Request<B>>,
{
    let stop = Stop::QuotaStopped(left);
    let builder = packet_so_far(this).unsent(&closed.evidence, &closed.diagnosis, stop);
    let packet = judge::with_head(this, builder).finish(this.started.elapsed());
    Box::new(Error::new(
        closed.diagnosis,
        stop,
        &closed.evidence,
        packet,
        None,
    ))
}

/// The error of a request whose route opened while it waited to retry:
/// the diagnosis that opened the route, and this request's own packet (its
/// attempts so far), stopped by the route.
fn refused_retry<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    (diagnosis, evidence, opened, refused): (Diagnosis, Evidence, SystemTime, u64),
) -> Box<Error>
where
    S: Service<Request<B>>,
{
    let builder = packet_so_far(this);
    let mut packet = judge::with_head(this, builder).finish(this.started.elapsed());
    packet.stopped_by_route(opened, refused);
    Box::new(Error::new(
        diagnosis,
        Stop::RouteOpen,
        &evidence,
        packet,
        None,
    ))
}

/// The error of a request refused unsent because its route's rate window
/// (`closed`) reopens only after its total deadline, in `wait`, or because
/// the route's quota is stopped for `wait` more: what the answer that
/// closed the window said, and a packet with no attempt.
pub(super) fn unsent_error(
    head: &Request<()>,
    profile: &Profile,
    closed: &Closed,
    wait: Duration,
) -> Box<Error> {
    let stop = if closed.quota {
        Stop::QuotaStopped(wait)
    } else {
        Stop::RateWindowClosed(wait)
    };
    let packet = PacketBuilder::new(head.method(), head.uri(), profile, SystemTime::now())
        .unsent(&closed.evidence, &closed.diagnosis, stop)
        .finish(Duration::ZERO);
    Box::new(Error::new(
        closed.diagnosis,
        stop,
        &closed.evidence,
        packet,
        None,
    ))
}

/// Phase `Acquiring`: waits for a slot of the route's pool, at most the
/// pool's timeout (then a `pool` timeout of the connection path).
pub(super) fn acquiring<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    cx: &mut Context<'_>,
) -> Flow<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let StateProj::Acquiring { acquire, timer } = this.state.as_mut().project() else {
        unreachable!("dispatched to its phase")
    };
    let limit = this.config.pool.as_ref().and_then(|p| p.timeout);
    if timer.is_none() {
        if let Some(limit) = limit {
            *timer = Some(Box::pin(tokio::time::sleep(limit)));
        }
    }
    if let Poll::Ready(slot) = acquire.as_mut().poll(cx) {
        // The semaphore is never closed.
        *this.permit = slot.ok();
        // Pacing: a rate window (or a quota stop) may have closed on the
        // route while the request waited for its slot; `Waiting` holds it
        // for the reset (or refuses it), as it does a retry.
        if this.config.paces.any() {
            let now = Instant::now();
            if let Some(closed) = this.config.paces.closed(&route_of(uri!(this)), now) {
                // A quota stop is refused at `Waiting`'s first look.
                let until = if closed.quota { now } else { closed.until };
                let timer = Box::pin(tokio::time::sleep_until(until));
                this.state.set(State::Waiting { timer });
                return Flow::Moved;
            }
        }
        this.state.set(State::Ready);
        return Flow::Moved;
    }
    if !expired(timer, cx) {
        return Flow::Pending;
    }
    this.state.set(State::Done);
    *this.held = None;
    *this.attempt = 1;
    let limit = limit.unwrap_or_default();
    Flow::Judged(judge::timeout(
        this,
        Stage::Connect,
        TimeoutPhase::Pool,
        limit,
        true,
    ))
}

/// Phase `Refused`: the open route's refusal goes out, told.
pub(super) fn refused<S, B, R>(this: &mut Projection<'_, S, B, R>) -> Error
where
    S: Service<Request<B>>,
{
    let StateReplace::Refused { error } = this.state.as_mut().project_replace(State::Done) else {
        unreachable!("dispatched to its phase")
    };
    let route = route_of(this.head.uri());
    let call = Call::new(method!(this), uri!(this), this.started.elapsed());
    notify::route_refused(this.config.observer.as_ref(), call, &route, &error);
    *error
}

/// Phase `Probing`: the open route's verification probe is out. Any answer
/// from the far side proves the path: the route closes and the held
/// request goes ahead; a failure keeps the route open, backs its next probe
/// off, and the held request is refused like the others.
pub(super) fn probing<S, B, R>(this: &mut Projection<'_, S, B, R>, cx: &mut Context<'_>) -> Flow<R>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
{
    let StateProj::Probing { future } = this.state.as_mut().project() else {
        unreachable!("dispatched to its phase")
    };
    let answer = match crate::capture::scope(this.capture, || future.poll(cx)) {
        Poll::Pending => return Flow::Pending,
        Poll::Ready(answer) => answer,
    };
    let route = route_of(this.head.uri());
    let now = Instant::now();
    let capture = this.capture.take();
    let routes = &this.config.routes;
    let e: BoxError = match answer {
        Ok(_) => {
            routes.reached(&route, now, this.config.observer.as_ref());
            this.state.set(State::Ready);
            return Flow::Moved;
        }
        Err(e) => e.into(),
    };
    let evidence = Evidence::from_transport(classify_error(&*e, true, None));
    let diagnosis = classify(&evidence, this.profile);
    let observer = this.config.observer.as_ref();
    if let Some(detail) = judge::captured(routes, observer, &route, capture, &diagnosis, &e) {
        routes.note_probe(&route, detail);
    }
    routes.probe_failed(&route, now, random(), &this.config.breaker);
    let event = RouteEvent::ProbeFailed {
        route: &route,
        diagnosis: &diagnosis,
    };
    notify::route(observer, &event);
    // The waiting request is refused like the others.
    match routes.admit(&route, now) {
        Admit::Refuse(error) => this.state.set(State::Refused { error }),
        _ => this.state.set(State::Ready),
    }
    Flow::Moved
}
