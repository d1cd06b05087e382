//! [`ResponseFuture`]: one call, attempt by attempt, as a state machine of
//! phases. Each phase owns its data and its timer, and has a module:
//!
//! - [`start`]: the call's settings, the route's admission (refused, probed
//!   or passed), a pool slot, the copy of the request kept for retries;
//! - [`attempt`]: waiting for the service, then the attempt in flight under
//!   its timeouts (attempt, connect, write), and where its answer goes;
//! - [`peek`]: a failure status's body, read to learn why;
//! - [`whole`]: whole-body mode, a success's body read inside the attempt;
//! - [`wait`]: the backoff before a retry, a pool slot, an open route's
//!   refusal and its verification probe;
//! - [`judge`]: evidence, diagnosis and decision of each attempt, the route
//!   breaker's record, and what the caller gets;
//! - [`request`]: the requests the call sends (again).
//!
//! `poll` checks the total deadline, then dispatches to the phase until one
//! is pending or the call is over.

mod attempt;
mod first_event;
mod judge;
mod peek;
mod request;
mod start;
mod wait;
mod whole;

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::{Method, Request, Response, Uri};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};
use tower::Service;
use triage_core::redact::Fingerprint;
use triage_core::{
    BoxError, Decision, Error, Evidence, PacketBuilder, Profile, RetryRules, Stage, Stop,
    TimeoutPhase, classify,
};

use crate::body::TryCloneBody;
use crate::capture::{Capture, ConnectionLog};
use crate::config::{Config, Extras, ProfileRef};
use crate::notify;
use crate::observer::Call;
use crate::response_body::ResponseBody;
use crate::route::route_of;
use crate::transport::classify_error;
use crate::whole_body::{Read, Whole};

use peek::Peek;

/// The request's method, from the kept head.
macro_rules! method {
    ($this:ident) => {
        $this.head.method()
    };
}

/// The request's URI, likewise.
macro_rules! uri {
    ($this:ident) => {
        $this.head.uri()
    };
}

pub(crate) use {method, uri};

/// A timer of a phase (boxed: a phase without one costs a null pointer).
type Timer = Option<Pin<Box<Sleep>>>;

/// A pool slot being waited for.
type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, R> {
        /// Waiting for the service to be ready for another attempt.
        Ready,
        /// An attempt is in flight: its attempt timer, and while a tagged
        /// connector says it is connecting, the connect timer and the stage.
        Calling {
            #[pin]
            future: F,
            timer: Timer,
            connect_timer: Timer,
            connecting: Option<Stage>,
        },
        /// A failure status came back; reading its body to learn why.
        Peeking { peek: Box<Peek<R>> },
        /// Whole-body mode: a success came back; reading all of its body
        /// inside the attempt, under the attempt's timer.
        Buffering { whole: Box<Whole<R>>, timer: Timer },
        /// A streamed success came back; holding its first event until it
        /// is whole (the commit point).
        Streaming { first: Box<first_event::FirstEvent<R>> },
        /// Waiting before the next attempt.
        Waiting { timer: Pin<Box<Sleep>> },
        /// Refused by an open route: the error goes out at the first poll.
        Refused { error: Box<Error> },
        /// The verification probe of an open route is out; the request
        /// waits for its answer.
        Probing { #[pin] future: F },
        /// Waiting for a slot of the route's pool (`TriageLayer::pool`).
        Acquiring { acquire: Acquire, timer: Timer },
        /// Finished.
        Done,
    }
}

/// Which phase a call is in (for a dispatch that needs no borrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Calling,
    Peeking,
    Buffering,
    Streaming,
    Waiting,
    Refused,
    Probing,
    Acquiring,
    Done,
}

impl<F, R> State<F, R> {
    fn phase(&self) -> Phase {
        match self {
            State::Ready => Phase::Ready,
            State::Calling { .. } => Phase::Calling,
            State::Peeking { .. } => Phase::Peeking,
            State::Buffering { .. } => Phase::Buffering,
            State::Streaming { .. } => Phase::Streaming,
            State::Waiting { .. } => Phase::Waiting,
            State::Refused { .. } => Phase::Refused,
            State::Probing { .. } => Phase::Probing,
            State::Acquiring { .. } => Phase::Acquiring,
            State::Done => Phase::Done,
        }
    }
}

pin_project! {
    /// The future of a [`Triage`](crate::Triage) call.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, R>,
        // The total deadline and its timer (armed at the first poll).
        deadline: Timer,
        deadline_at: Option<Instant>,
        // Rules of the request's own (`None`: the layer's).
        rules: Option<Box<RetryRules>>,
        attempt_timeout: Option<Duration>,
        body_idle_timeout: Option<Duration>,
        // The write timeout and its timer (boxed: only when one is set).
        write: Option<Box<attempt::WriteWatch>>,
        connect_timeout: Option<Duration>,
        // Whole-body mode's cap (`None`: off).
        whole_body: Option<NonZeroU64>,
        service: S,
        // The request's head: whole when a retry can re-send it (a copy of
        // the body was made), otherwise method and URI only.
        head: Request<()>,
        // The body kept to copy for a retry, and the copy for the next one.
        body: Option<B>,
        next: Option<B>,
        profile: ProfileRef,
        config: Arc<Config>,
        attempt: u32,
        started: Instant,
        attempt_started: Instant,
        // The route breaker applies to this request.
        breaker_on: bool,
        // The diagnosis window applies to this request.
        window_on: bool,
        // This request is the probe of its open route (its body type
        // cannot make an empty body for a probe of its own).
        trial: bool,
        // The request waiting for the probe's answer, or for a pool slot.
        held: Option<Box<Request<B>>>,
        // The pool slot held from the first attempt to the body's end.
        permit: Option<OwnedSemaphorePermit>,
        // What the attempt's connection showed, while its route's
        // diagnosis window is open or the request keeps a connection log.
        capture: Option<Box<Capture>>,
        // The connection log and the correlation ID, when the request
        // carries either.
        extras: Option<Box<Extras>>,
        // Fingerprints of the sensitive header values, when the head was
        // not kept (no retries): a failure's packet and events are scrubbed
        // of them without a copy.
        prints: [Fingerprint; PRINTS],
        packet: Option<Box<PacketBuilder>>,
        // The call's span (disabled unless DEBUG is on for the target).
        span: tracing::Span,
    }

    impl<S, B, R> PinnedDrop for ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let phase = this.state.as_ref().get_ref().phase();
            if phase == Phase::Done {
                // Finished: nothing was left in progress.
                return;
            }
            if (*this.trial || this.held.is_some()) && matches!(phase, Phase::Probing | Phase::Calling) {
                // The probe's answer will not come: another request may probe.
                this.config.routes.probe_abandoned(&route_of(this.head.uri()));
            }
            let stage = match this.state.project() {
                StateProj::Done | StateProj::Refused { .. } => return,
                StateProj::Probing { .. } | StateProj::Acquiring { .. } => Some(Stage::Connect),
                StateProj::Calling { connecting, .. } => Some(connecting.unwrap_or(Stage::AwaitHeaders)),
                StateProj::Ready => Some(Stage::AwaitHeaders),
                StateProj::Peeking { .. }
                | StateProj::Buffering { .. }
                | StateProj::Streaming { .. } => Some(Stage::Body),
                // Between attempts: no stage was in progress.
                StateProj::Waiting { .. } => None,
            };
            // Dropped before it finished: the caller cancelled.
            let call = Call::new(method!(this), uri!(this), this.started.elapsed());
            notify::cancelled(this.config.observer.as_ref(), call, *this.attempt, stage);
        }
    }
}

pub(crate) use crate::config::PRINTS;

type Projection<'a, S, B, R> = ResponseFutureProj<'a, S, B, R>;

impl<S, B, R> std::fmt::Debug for ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("method", self.head.method())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// The call's span, entered for one poll without a clone of its handle
/// (a clone costs the subscriber a reference count and a close), so that
/// the projection stays free to borrow.
struct InSpan(Option<(tracing::Id, tracing::Dispatch)>);

impl InSpan {
    #[inline]
    fn enter(span: &tracing::Span) -> InSpan {
        if span.is_none() {
            // No span (DEBUG off everywhere): nothing to enter.
            return InSpan(None);
        }
        InSpan(span.with_subscriber(|(id, dispatch)| {
            dispatch.enter(id);
            (id.clone(), dispatch.clone())
        }))
    }
}

impl Drop for InSpan {
    fn drop(&mut self) {
        if let Some((id, dispatch)) = &self.0 {
            dispatch.exit(id);
        }
    }
}

/// What an attempt ended with, once judged.
// A value of a moment, moved once: boxing the response would cost an
// allocation on every call.
#[allow(clippy::large_enum_variant)]
enum Next<R> {
    Retry(Duration),
    Respond(Response<ResponseBody<R>>),
    Fail(Error),
}

/// What a phase did when polled.
// Returned by value from each phase, like `Next`.
#[allow(clippy::large_enum_variant)]
enum Flow<R> {
    /// It moved the call to another phase: poll that one.
    Moved,
    /// It waits (a wake-up is registered).
    Pending,
    /// The attempt was judged.
    Judged(Next<R>),
}

impl<S, B, R> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<R>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Every attempt's event is inside the call's span.
        let _entered = InSpan::enter(this.span);
        if let Some(over) = past_deadline(&mut this, cx) {
            return Poll::Ready(over);
        }
        loop {
            let flow = match this.state.as_ref().get_ref().phase() {
                Phase::Ready => attempt::ready(&mut this, cx),
                Phase::Calling => attempt::calling(&mut this, cx),
                Phase::Peeking => peek::peeking(&mut this, cx),
                Phase::Buffering => whole::buffering(&mut this, cx),
                Phase::Streaming => first_event::streaming(&mut this, cx),
                Phase::Waiting => wait::waiting(&mut this, cx),
                Phase::Acquiring => wait::acquiring(&mut this, cx),
                Phase::Refused => return Poll::Ready(Err(wait::refused(&mut this))),
                Phase::Probing => wait::probing(&mut this, cx),
                Phase::Done => panic!("ResponseFuture polled after completion"),
            };
            match flow {
                Flow::Moved => {}
                Flow::Pending => return Poll::Pending,
                Flow::Judged(Next::Retry(delay)) => {
                    let timer = Box::pin(tokio::time::sleep(delay));
                    this.state.set(State::Waiting { timer });
                }
                Flow::Judged(Next::Respond(response)) => return Poll::Ready(Ok(response)),
                Flow::Judged(Next::Fail(error)) => return Poll::Ready(Err(error)),
            }
        }
    }
}

/// The total deadline: once it has passed, the call ends with the phase it
/// was in judged as timed out (a body being read whole, with the head that
/// came back and the bytes read). `None` while it has not.
fn past_deadline<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    cx: &mut Context<'_>,
) -> Option<Result<Response<ResponseBody<R>>, Error>>
where
    S: Service<Request<B>, Response = Response<R>>,
    B: TryCloneBody,
    R: Body,
{
    let at = (*this.deadline_at)?;
    let timer = this
        .deadline
        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
    if timer.as_mut().poll(cx).is_pending() {
        return None;
    }
    let limit = this.started.elapsed();
    let judged = match this.state.as_mut().project_replace(State::Done) {
        StateReplace::Done => {
            // Finished already: nothing to judge.
            this.state.set(State::Done);
            return None;
        }
        StateReplace::Buffering { whole, .. } => {
            whole::read_whole(this, *whole, Some(Read::Deadline(limit)), false)
        }
        StateReplace::Peeking { .. } | StateReplace::Streaming { .. } => {
            judge::timeout(this, Stage::Body, TimeoutPhase::Total, limit, false)
        }
        StateReplace::Calling { connecting, .. } => {
            let stage = connecting.unwrap_or(Stage::AwaitHeaders);
            judge::timeout(this, stage, TimeoutPhase::Total, limit, false)
        }
        _ => judge::timeout(this, Stage::AwaitHeaders, TimeoutPhase::Total, limit, false),
    };
    Some(match judged {
        Next::Fail(error) => Err(error),
        Next::Respond(response) => Ok(response),
        Next::Retry(_) => unreachable!("an attempt judged with retries refused is not retried"),
    })
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(0x7269_6167_6500_u64) | 1
    });
}

/// A uniform sample in `[0, 1)` for the backoff jitter (xorshift64*).
fn random() -> f64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The error of an inner service that failed to become ready: `error`
/// judged by the typed detection like any attempt's (an error nothing
/// recognises is `unknown`, never permanent), for `method` and `uri` when
/// a request is known (the call's), nothing sent, no retry (readiness is
/// the service's, not the request's).
pub(crate) fn readiness_error(method: &Method, uri: &Uri, error: BoxError) -> Error {
    let failure = classify_error(&*error, false, None);
    let evidence = Evidence::from_transport(failure);
    let profile = Profile::generic();
    let diagnosis = classify(&evidence, profile);
    let stop = match diagnosis.owner() {
        Some(owner) => Stop::NotRetryable(owner),
        None => Stop::Success,
    };
    let packet = PacketBuilder::new(method, uri, profile, SystemTime::now())
        .attempt(&evidence, &diagnosis, &Decision::Stop(stop))
        .error(&*error)
        .finish(Duration::ZERO);
    Error::new(diagnosis, stop, &evidence, packet, Some(error))
}

impl<S, B, R> ResponseFutureProj<'_, S, B, R>
where
    S: Service<Request<B>>,
{
    /// The request's connection log, if it keeps one.
    fn log(&self) -> Option<&ConnectionLog> {
        self.extras.as_deref().and_then(|e| e.log.as_ref())
    }

    /// The inbound request's ID this call serves, if known.
    fn correlation(&self) -> Option<&str> {
        self.extras
            .as_deref()
            .and_then(|e| e.correlation.as_deref())
    }
}

#[cfg(test)]
mod tests;
