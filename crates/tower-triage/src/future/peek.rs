//! A failure status's body, read (up to [`PEEK_LIMIT`] bytes, under the
//! peek timeout) to learn why, then judged; the caller gets every byte.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body;
use tokio::time::{Instant, Sleep};
use tower::Service;
use triage_core::{BodyProgress, Decision, Error, Evidence, PacketBuilder};

use super::judge;
use super::{Flow, Next, Projection, State, StateProj, StateReplace, method, uri};
use crate::body::TryCloneBody;
use crate::config::PEEK_LIMIT;
use crate::notify;
use crate::response_body::ResponseBody;
use crate::whole_body::BodyMode;

/// What the phase holds: the failure's head, its body being read, what was
/// read, and the peek timeout's timer.
pub(super) struct Peek<R> {
    pub(super) status: StatusCode,
    pub(super) parts: http::response::Parts,
    pub(super) body: Pin<Box<R>>,
    pub(super) buf: BytesMut,
    pub(super) ended: bool,
    pub(super) timer: Pin<Box<Sleep>>,
}

/// A failure status once its body was peeked at (or a stream whose first
/// event was an error).
pub(super) struct Peeked<R> {
    pub(super) parts: http::response::Parts,
    /// The bytes read.
    pub(super) seen: Bytes,
    /// The rest of the body, when it did not end.
    pub(super) rest: Option<Pin<Box<R>>>,
    /// How far the body got.
    pub(super) progress: BodyProgress,
}

/// Phase `Peeking`: reads the failure's body until it ends, breaks, passes
/// the limit or the timer fires, then judges the status.
pub(super) fn peeking<S, B, R>(this: &mut Projection<'_, S, B, R>, cx: &mut Context<'_>) -> Flow<R>
where
    S: Service<Request<B>, Response = Response<R>>,
    B: TryCloneBody,
    R: Body,
{
    let StateProj::Peeking { peek } = this.state.as_mut().project() else {
        unreachable!("dispatched to its phase")
    };
    let mut failed = false;
    let mut timed_out = false;
    while !peek.ended && peek.buf.len() < PEEK_LIMIT {
        match peek.body.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        peek.buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                failed = true;
                peek.ended = true;
            }
            Poll::Ready(None) => peek.ended = true,
            Poll::Pending => {
                if peek.timer.as_mut().poll(cx).is_pending() {
                    return Flow::Pending;
                }
                timed_out = true;
                break;
            }
        }
    }
    let StateReplace::Peeking { peek } = this.state.as_mut().project_replace(State::Done) else {
        unreachable!("peeking")
    };
    let Peek {
        status,
        parts,
        body,
        mut buf,
        ended,
        ..
    } = *peek;
    let rest = if ended { None } else { Some(body) };
    let seen = buf.split().freeze();
    let bytes = seen.len() as u64;
    let progress = match (failed, rest.is_some() || timed_out) {
        (true, _) => BodyProgress::Failed(bytes),
        (false, true) => BodyProgress::Partial(bytes),
        (false, false) => BodyProgress::Complete(bytes),
    };
    let peeked = Peeked {
        parts,
        seen,
        rest,
        progress,
    };
    Flow::Judged(failure_status(this, status, peeked))
}

/// A failure status, judged: retried, an error (`errors_for_status`), or
/// the response handed back with its report and every byte of its body.
fn failure_status<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    status: StatusCode,
    peeked: Peeked<R>,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let mut evidence = Evidence::from_response(
        status,
        &peeked.parts.headers,
        this.profile,
        SystemTime::now(),
    )
    .with_elapsed(Instant::now().saturating_duration_since(*this.attempt_started));
    evidence.read_failure_body(&peeked.parts.headers, &peeked.seen);
    evidence.set_body(peeked.progress);
    answer_judged(this, evidence, peeked)
}

/// An answer that failed (a failure status, or an error event first in a
/// stream) with `evidence`, judged: retried, an error
/// (`errors_for_status`), or the response handed back with its report and
/// every byte of its body.
pub(super) fn answer_judged<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    evidence: Evidence,
    peeked: Peeked<R>,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let Peeked {
        parts, seen, rest, ..
    } = peeked;
    let now = Instant::now();
    // A failure's body is peeked at, then handed on as a stream.
    let mode = BodyMode::Stream;
    let (diagnosis, decision) = judge::decide(this, &evidence, now, Some(mode), true);
    judge::breaker_record(this, &evidence, &diagnosis, None, now);
    let stop = match decision {
        Decision::Retry(retry) => return Next::Retry(retry.delay()),
        Decision::Stop(stop) => stop,
    };
    if this.config.errors_for_status {
        let (packet, elapsed) = match this.packet.take() {
            Some(p) => (*p, this.started.elapsed()),
            None => (
                PacketBuilder::new(method!(this), uri!(this), this.profile, SystemTime::now()),
                Duration::ZERO,
            ),
        };
        let packet = (judge::with_head(this, packet), elapsed);
        let error = Error::deferred(diagnosis, stop, &evidence, packet, None);
        judge::failed(this, &error, Some(mode));
        return Next::Fail(error);
    }
    let report = judge::report(this, &evidence, diagnosis, mode);
    if let Some(packet) = report.packet() {
        notify::outcome(method!(this), uri!(this), packet, Some(mode));
    }
    // Every byte is handed back, so Content-Length still holds.
    let mut body = ResponseBody::peeked(seen, rest, this.config.observer.clone());
    body.set_idle_timeout(*this.body_idle_timeout);
    body.set_permit(this.permit.take());
    body.set_span(this.span);
    let mut response = Response::from_parts(parts, body);
    response.extensions_mut().insert(report);
    Next::Respond(response)
}
