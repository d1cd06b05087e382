//! A streamed success (server-sent events, JSON lines): its first event is
//! held inside the attempt, up to the commit point. Until the first byte of
//! the body reaches the caller, a failure (an error event first, a stall
//! before the first event, a reset) is the attempt's, retried under the
//! usual rules and idempotency gate; after it, nothing is retried, and an
//! error event later in the stream is reported by the body.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::Body;
use tokio::time::{Instant, Sleep};
use tower::Service;
use triage_core::body::stream::{MAX_EVENT, StreamKind};
use triage_core::redact::Fingerprint;
use triage_core::{BodyProgress, BoxError, Stage, TimeoutPhase, TransportFailure};

use super::attempt::expired;
use super::peek::{self, Peeked};
use super::{Flow, Next, Projection, State, StateProj, StateReplace, Timer, judge, method, uri};
use crate::body::TryCloneBody;
use crate::response_body::ResponseBody;
use crate::stream_watch::StreamWatch;
use crate::transport::classify_error;
use crate::whole_body::BodyMode;

/// What the phase holds: the head, the body, the start of the stream, and
/// its timers.
pub(super) struct FirstEvent<R> {
    pub(super) parts: http::response::Parts,
    pub(super) body: Pin<Box<R>>,
    pub(super) buf: BytesMut,
    pub(super) kind: StreamKind,
    /// Time to first byte: armed while nothing arrived.
    pub(super) first_byte: Option<(Duration, Pin<Box<Sleep>>)>,
    /// The body idle timeout, between the first event's pieces.
    pub(super) idle: Option<(Duration, Timer)>,
}

impl<R> FirstEvent<R> {
    /// The phase for a streamed success whose head is `parts`, with the
    /// call's first-byte and idle timeouts.
    pub(super) fn new(
        parts: http::response::Parts,
        body: R,
        kind: StreamKind,
        (first_byte, idle): (Option<Duration>, Option<Duration>),
    ) -> FirstEvent<R> {
        FirstEvent {
            parts,
            body: Box::pin(body),
            buf: BytesMut::new(),
            kind,
            first_byte: first_byte.map(|limit| (limit, Box::pin(tokio::time::sleep(limit)))),
            idle: idle.map(|limit| (limit, None)),
        }
    }
}

/// How the first event's read ended.
enum Found {
    /// The first event is complete at this index.
    Event(usize),
    /// No event end within [`MAX_EVENT`] bytes: committed as it is.
    TooLong,
    /// The body ended (or sent its trailers) before a whole event.
    End(Option<HeaderMap>),
    /// The body broke.
    Failed(BoxError),
    /// A timeout of this phase and limit.
    Timeout(TimeoutPhase, Duration),
}

/// Phase `Streaming`: reads until the first event is whole, then judges it.
pub(super) fn streaming<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    cx: &mut Context<'_>,
) -> Flow<R>
where
    S: Service<Request<B>, Response = Response<R>>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    let StateProj::Streaming { first } = this.state.as_mut().project() else {
        unreachable!("dispatched to its phase")
    };
    let found = loop {
        match first.body.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        first.buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                    if !first.buf.is_empty() {
                        first.first_byte = None;
                    }
                    if let Some((_, timer)) = &mut first.idle {
                        *timer = None;
                    }
                    if let Some(end) = first.kind.event_end(&first.buf) {
                        break Found::Event(end);
                    }
                    if first.buf.len() >= MAX_EVENT {
                        break Found::TooLong;
                    }
                }
                Err(frame) => break Found::End(frame.into_trailers().ok()),
            },
            Poll::Ready(Some(Err(error))) => break Found::Failed(error.into()),
            Poll::Ready(None) => break Found::End(None),
            Poll::Pending => {
                if let Some(timeout) = waited_too_long(first, cx) {
                    break timeout;
                }
                return Flow::Pending;
            }
        }
    };
    let StateReplace::Streaming { first } = this.state.as_mut().project_replace(State::Done) else {
        unreachable!("streaming")
    };
    Flow::Judged(first_event(this, *first, found))
}

/// The phase's timeouts, checked while the stream is pending: time to
/// first byte while nothing arrived, then the body idle timeout.
fn waited_too_long<R>(first: &mut FirstEvent<R>, cx: &mut Context<'_>) -> Option<Found> {
    if let Some((limit, timer)) = &mut first.first_byte {
        if timer.as_mut().poll(cx).is_ready() {
            return Some(Found::Timeout(TimeoutPhase::FirstByte, *limit));
        }
        return None;
    }
    let (limit, timer) = first.idle.as_mut()?;
    let limit = *limit;
    timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    expired(timer, cx).then_some(Found::Timeout(TimeoutPhase::BodyIdle, limit))
}

/// The first event judged: an error event is the attempt's failure (with
/// the status its type stands for), a failure or a timeout of the stream
/// is one at stage `body`; any other end commits the response.
fn first_event<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    first: FirstEvent<R>,
    found: Found,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let FirstEvent {
        parts,
        body,
        buf,
        kind,
        ..
    } = first;
    let now = Instant::now();
    let (fault, error) = match found {
        Found::Event(end) => match kind.error_payload(&buf[..end]) {
            Some(payload) => {
                let mut evidence = judge::success_evidence(this, parts.status, &parts.headers, now);
                evidence.set_stream_error(payload);
                evidence.set_body(BodyProgress::Partial(buf.len() as u64));
                let peeked = Peeked {
                    parts,
                    progress: BodyProgress::Partial(buf.len() as u64),
                    seen: buf.freeze(),
                    rest: Some(body),
                };
                return peek::answer_judged(this, evidence, peeked);
            }
            None => return commit(this, (parts, buf, Some(body)), (kind, end)),
        },
        Found::TooLong => {
            let end = buf.len();
            return commit(this, (parts, buf, Some(body)), (kind, end));
        }
        Found::End(None) => {
            let end = buf.len();
            return commit(this, (parts, buf, None), (kind, end));
        }
        Found::End(Some(trailers)) => {
            // Nothing left to stream: the prefix and the trailers.
            let observer = this.config.observer.clone();
            let body = ResponseBody::buffered(buf.freeze(), None, Some(trailers), None, observer);
            let response = Response::from_parts(parts, body);
            return Next::Respond(judge::success(this, response, (BodyMode::Stream, None)));
        }
        Found::Failed(error) => (classify_error(&*error, true, None).fault(), error),
        Found::Timeout(phase, limit) => judge::timed_out(phase, limit),
    };
    // The head came back, then the stream broke before its first event:
    // the attempt's failure, at stage `body`; the bytes go with it.
    let mut evidence = judge::success_evidence(this, parts.status, &parts.headers, now);
    evidence.set_transport(TransportFailure::new(Stage::Body, fault));
    evidence.set_body(BodyProgress::Failed(buf.len() as u64));
    let judged = judge::Judged {
        evidence,
        error,
        body_mode: Some(BodyMode::Stream),
        now,
    };
    judge::judge_evidence(this, judged, true)
}

/// The commit point: the response goes to the caller with the start of the
/// stream first; the body watches the rest for an error event (the first
/// event, up to `checked`, was seen already).
fn commit<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    (parts, buf, rest): (http::response::Parts, BytesMut, Option<Pin<Box<R>>>),
    (kind, checked): (StreamKind, usize),
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let call = (method!(this), uri!(this), *this.started);
    // The values the request's headers carried, by fingerprint: from the
    // head kept for retries, or those taken when it was not kept.
    let prints = match this.head.headers().is_empty() {
        true => *this.prints,
        false => Fingerprint::of_headers(this.head.headers()),
    };
    let profile = (this.profile.clone(), prints);
    let watch = StreamWatch::new(kind, call, profile, checked as u64);
    let observer = this.config.observer.clone();
    let buf = buf.freeze();
    let unread = buf.slice(checked..);
    let mut body = ResponseBody::peeked(buf, rest, observer);
    body.set_stream_watch(watch, &unread);
    let response = Response::from_parts(parts, body);
    Next::Respond(judge::success(this, response, (BodyMode::Stream, None)))
}
