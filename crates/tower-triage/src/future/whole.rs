//! Whole-body mode: a success's body read inside the attempt, under its
//! timer; a body that breaks is the attempt's failure, at stage `body`.

use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tokio::time::Instant;
use tower::Service;
use triage_core::{BodyProgress, BoxError, Fault, Stage, TimeoutPhase, TransportFailure};

use super::attempt::expired;
use super::judge;
use super::{Flow, Next, Projection, State, StateProj, StateReplace};
use crate::body::TryCloneBody;
use crate::response_body::ResponseBody;
use crate::transport::classify_error;
use crate::whole_body::{BodyMode, Read, Whole};

/// Phase `Buffering`: reads until the body ends, breaks, spills past the
/// cap or goes idle, or the attempt's timer fires.
pub(super) fn buffering<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    cx: &mut Context<'_>,
) -> Flow<R>
where
    S: Service<Request<B>, Response = Response<R>>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    let StateProj::Buffering { whole, timer } = this.state.as_mut().project() else {
        unreachable!("dispatched to its phase")
    };
    let read = match whole.poll_read(cx) {
        Poll::Ready(read) => Some(read),
        // The attempt timeout, while reading the body.
        Poll::Pending if expired(timer, cx) => None,
        Poll::Pending => return Flow::Pending,
    };
    let StateReplace::Buffering { whole, .. } = this.state.as_mut().project_replace(State::Done)
    else {
        unreachable!("buffering")
    };
    Flow::Judged(read_whole(this, *whole, read, true))
}

/// The end of a whole-body read: the response with its whole body (or,
/// past the cap, the prefix and the rest of the stream), or a failure of
/// this attempt at the body stage. `read` is `None` when the attempt
/// timeout fired; `may_retry` is false once the total deadline passed.
pub(super) fn read_whole<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    whole: Whole<R>,
    read: Option<Read>,
    may_retry: bool,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let bytes = whole.bytes();
    let observer = this.config.observer.clone();
    let (fault, error): (Fault, BoxError) = match read {
        Some(Read::Complete { data, trailers }) => {
            let (parts, _) = whole.into_parts();
            // The body has ended: its pool slot is free now.
            *this.permit = None;
            let body = ResponseBody::buffered(data, None, trailers, None, observer);
            let response = Response::from_parts(parts, body);
            return Next::Respond(judge::success(this, response, (BodyMode::Whole, None)));
        }
        Some(Read::Spilled { prefix, crossing }) => {
            let (parts, rest) = whole.into_parts();
            let body = ResponseBody::buffered(prefix, Some(crossing), None, Some(rest), observer);
            let response = Response::from_parts(parts, body);
            return Next::Respond(judge::success(this, response, (BodyMode::Stream, None)));
        }
        Some(Read::Failed(error)) => (classify_error(&*error, true, None).fault(), error),
        Some(Read::Idle(limit)) => judge::timed_out(TimeoutPhase::BodyIdle, limit),
        Some(Read::Deadline(limit)) => judge::timed_out(TimeoutPhase::Total, limit),
        None => judge::timed_out(TimeoutPhase::Body, this.attempt_timeout.unwrap_or_default()),
    };
    // The head came back, then the body broke: the evidence keeps both,
    // and the partial bytes go with `whole`, never to the caller.
    let now = Instant::now();
    let mut evidence = judge::success_evidence(this, whole.parts.status, &whole.parts.headers, now);
    evidence.set_transport(TransportFailure::new(Stage::Body, fault));
    evidence.set_body(BodyProgress::Failed(bytes));
    drop(whole);
    let judged = judge::Judged {
        evidence,
        error,
        body_mode: Some(BodyMode::Whole),
        now,
    };
    judge::judge_evidence(this, judged, may_retry)
}
