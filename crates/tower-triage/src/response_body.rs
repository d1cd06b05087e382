//! [`ResponseBody`]: the response body handed to the caller, with every byte
//! the layer read (a failure's peek, a whole body) put back in front,
//! counted as it goes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::time::Duration;

use tokio::time::{Sleep, sleep};
use triage_core::{BoxError, Profile, TimeoutPhase};

use crate::config::ProfileRef;
use crate::error::TimeoutError;
use crate::notify;
use crate::observer::{BodyOutcome, Observer};
use crate::stream_watch::{StreamError, StreamWatch};
use crate::transport::classify_error;
use crate::whole_body::BodyMode;

pin_project! {
    /// The body of a response returned by [`Triage`](crate::Triage).
    ///
    /// A successful response's body passes through untouched (its data as
    /// [`Bytes`]). For a failure status the layer has read up to 16 KiB to
    /// classify it; those bytes come first, then the rest of the stream, so
    /// the caller still gets every byte. In whole-body mode
    /// ([`TriageLayer::whole_body`](crate::TriageLayer::whole_body)) a
    /// success's body was read whole inside the attempt: it comes as one
    /// frame (then its trailers, if any), and `Content-Length` still holds.
    ///
    /// It counts what it delivers: a stream that breaks, or is dropped
    /// before its end, is reported (an event, and
    /// [`Observer::on_body`](crate::Observer::on_body)) with the bytes
    /// received, the fault and the stage `body`.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
        bytes: u64,
        done: bool,
        // Its end or its failure was told (event and observer).
        told: bool,
        mode: BodyMode,
        // Set when `is_end_stream` said so (the consumer may not poll again).
        ended: AtomicBool,
        observer: Option<Arc<dyn Observer>>,
        idle_timeout: Option<Duration>,
        // Boxed: armed only when a timeout is set and the stream is pending.
        idle: Option<Pin<Box<Sleep>>>,
        // The call's profile, when its report is read lazily (a success at
        // the first attempt: no report in the extensions).
        profile: Option<ProfileRef>,
        // The call's pool slot, freed when the body ends or is dropped
        // (boxed: only with a pool limit, and it keeps the body small).
        // The call's pool slot and span, when it has either (boxed: most
        // calls have neither, and it keeps the body small).
        extras: Option<Box<BodyExtras>>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.done {
                return;
            }
            // `is_end_stream` said the body ended, and the consumer stopped.
            let outcome = if this.ended.load(Ordering::Relaxed) {
                BodyOutcome::Complete { bytes: *this.bytes }
            } else {
                BodyOutcome::Dropped { bytes: *this.bytes }
            };
            let _entered = span_of(this.extras).map(tracing::Span::enter);
            report_body(this.observer.as_ref(), outcome, *this.mode);
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Passthrough { #[pin] inner: B },
        Peeked { prefix: Option<Bytes>, rest: Option<Pin<Box<B>>> },
        // Boxed: only in whole-body mode, and it keeps the body small.
        Buffered { front: Option<Box<Front>>, rest: Option<Pin<Box<B>>> },
    }
}

/// What a whole-body read kept: the body (or its buffered prefix), the
/// frame that crossed the cap, the trailers; handed out in that order.
#[derive(Debug)]
struct Front {
    data: Option<Bytes>,
    crossing: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Front {
    fn next(&mut self) -> Option<Frame<Bytes>> {
        if let Some(data) = self.data.take().or_else(|| self.crossing.take()) {
            return Some(Frame::data(data));
        }
        self.trailers.take().map(Frame::trailers)
    }

    fn is_empty(&self) -> bool {
        self.data.is_none() && self.crossing.is_none() && self.trailers.is_none()
    }

    fn len(&self) -> u64 {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        len(&self.data) + len(&self.crossing)
    }
}

/// The event and observer call for a body's end (complete or dropped).
/// A frame polled from the stream, under the idle timeout (`limit`): a
/// stream that stays pending for `limit` fails with a body-idle timeout;
/// any progress re-arms the timer.
#[inline(always)]
fn idle_watched<D, E: Into<BoxError>>(
    polled: Poll<Option<Result<Frame<D>, E>>>,
    idle: &mut Option<Pin<Box<Sleep>>>,
    limit: Option<Duration>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<D>, BoxError>>> {
    match (polled, limit) {
        (Poll::Pending, Some(limit)) => {
            let timer = idle.get_or_insert_with(|| Box::pin(sleep(limit)));
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    *idle = None;
                    Poll::Ready(Some(Err(BoxError::from(TimeoutError::new(
                        TimeoutPhase::BodyIdle,
                        limit,
                    )))))
                }
                Poll::Pending => Poll::Pending,
            }
        }
        (polled, _) => {
            if polled.is_ready() {
                *idle = None;
            }
            polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
        }
    }
}

/// A body's rare companions: its call's pool slot (freed when the body
/// ends) and its call's span (when enabled).
#[derive(Debug, Default)]
struct BodyExtras {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    span: Option<tracing::Span>,
    /// A committed stream's watch for error events.
    watch: Option<StreamWatch>,
}

/// Feeds `data`, the next bytes delivered, to the stream's watch (if
/// any); an error event found in it is told (event and observer). Out of
/// line: most bodies have no watch (the caller tests `extras` first).
#[inline(never)]
fn watch_stream(
    extras: &mut Option<Box<BodyExtras>>,
    observer: Option<&Arc<dyn Observer>>,
    data: &[u8],
) {
    let Some(extras) = extras.as_deref_mut() else {
        return;
    };
    let Some(found) = extras.watch.as_mut().and_then(|w| w.feed(data)) else {
        return;
    };
    let _entered = extras.span.as_ref().map(tracing::Span::enter);
    notify::body_stream_error(found);
    if let Some(observer) = observer {
        observer.on_body(&BodyOutcome::StreamError {
            bytes: found.bytes(),
            diagnosis: *found.diagnosis(),
        });
    }
}

/// The call's span, if the body keeps it.
fn span_of(extras: &Option<Box<BodyExtras>>) -> Option<&tracing::Span> {
    extras.as_deref().and_then(|e| e.span.as_ref())
}

/// The body ended: its pool slot is free.
fn free_slot(extras: &mut Option<Box<BodyExtras>>) {
    if let Some(extras) = extras.as_deref_mut() {
        extras.permit = None;
    }
}

/// The stream broke after `bytes`: the event and observer call (out of
/// line: the rare path keeps `poll_frame` small enough to inline).
#[cold]
#[inline(never)]
fn body_failed(
    extras: &Option<Box<BodyExtras>>,
    observer: Option<&Arc<dyn Observer>>,
    (bytes, mode): (u64, BodyMode),
    error: &BoxError,
) {
    let fault = classify_error(&**error, true, None).fault();
    let _entered = span_of(extras).map(tracing::Span::enter);
    notify::body_failed(bytes, fault, mode);
    if let Some(observer) = observer {
        observer.on_body(&BodyOutcome::Failed { bytes, fault });
    }
}

fn report_body(observer: Option<&Arc<dyn Observer>>, outcome: BodyOutcome, mode: BodyMode) {
    match outcome {
        BodyOutcome::Complete { bytes } => notify::body_complete(bytes, mode),
        BodyOutcome::Dropped { bytes } => notify::body_dropped(bytes, mode),
        _ => {}
    }
    if let Some(observer) = observer {
        observer.on_body(&outcome);
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("bytes", &self.bytes)
            .field("done", &self.done)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<B: Body> ResponseBody<B> {
    /// A body of `kind`, nothing delivered yet.
    #[inline]
    fn new(
        kind: Kind<B>,
        done: bool,
        mode: BodyMode,
        observer: Option<Arc<dyn Observer>>,
    ) -> ResponseBody<B> {
        ResponseBody {
            kind,
            done,
            mode,
            observer,
            bytes: 0,
            told: false,
            ended: AtomicBool::new(false),
            idle_timeout: None,
            idle: None,
            profile: None,
            extras: None,
        }
    }

    #[inline]
    pub(crate) fn passthrough(inner: B, observer: Option<Arc<dyn Observer>>) -> ResponseBody<B> {
        let done = inner.is_end_stream();
        ResponseBody::new(
            Kind::Passthrough { inner },
            done,
            BodyMode::Stream,
            observer,
        )
    }

    /// `prefix` was read already; `rest` is the remaining stream (`None` when
    /// the body ended within the prefix).
    pub(crate) fn peeked(
        prefix: Bytes,
        rest: Option<Pin<Box<B>>>,
        observer: Option<Arc<dyn Observer>>,
    ) -> ResponseBody<B> {
        let done = prefix.is_empty() && rest.as_ref().is_none_or(|r| r.is_end_stream());
        let prefix = (!prefix.is_empty()).then_some(prefix);
        ResponseBody::new(
            Kind::Peeked { prefix, rest },
            done,
            BodyMode::Stream,
            observer,
        )
    }

    /// What a whole-body read kept: `data` (all of the body, or the prefix
    /// buffered before it grew past the cap), the frame that `crossing` the
    /// cap, the `trailers`, then `rest` of the stream (`None` when it
    /// ended). Whole when nothing is left to stream.
    pub(crate) fn buffered(
        data: Bytes,
        crossing: Option<Bytes>,
        trailers: Option<HeaderMap>,
        rest: Option<Pin<Box<B>>>,
        observer: Option<Arc<dyn Observer>>,
    ) -> ResponseBody<B> {
        let front = Front {
            data: (!data.is_empty()).then_some(data),
            crossing: crossing.filter(|c| !c.is_empty()),
            trailers,
        };
        let mode = if rest.is_none() {
            BodyMode::Whole
        } else {
            BodyMode::Stream
        };
        let done = front.is_empty() && rest.as_ref().is_none_or(|r| r.is_end_stream());
        let front = (!front.is_empty()).then(|| Box::new(front));
        ResponseBody::new(Kind::Buffered { front, rest }, done, mode, observer)
    }

    /// Keeps the call's profile, for [`ReportExt`](crate::ReportExt) to
    /// read the report from the head later.
    /// (In place, like the other settings: a body moved for each costs a
    /// copy of it, on every call.)
    #[inline]
    pub(crate) fn set_profile(&mut self, profile: ProfileRef) {
        self.profile = Some(profile);
    }

    /// Holds the call's pool slot until the body ends or is dropped.
    #[inline]
    pub(crate) fn set_permit(&mut self, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
        if let Some(permit) = permit {
            self.extras.get_or_insert_with(Box::default).permit = Some(permit);
        }
    }

    /// Tells the body's outcome inside the call's `span`, when it is
    /// enabled.
    /// (In place: the body is not moved for it, on every call.)
    #[inline]
    pub(crate) fn set_span(&mut self, span: &tracing::Span) {
        if !span.is_disabled() {
            self.extras.get_or_insert_with(Box::default).span = Some(span.clone());
        }
    }

    /// Watches the rest of a committed stream for an error event, from
    /// `unread`, the bytes of the held prefix after its judged first event.
    pub(crate) fn set_stream_watch(&mut self, watch: StreamWatch, unread: &[u8]) {
        self.extras.get_or_insert_with(Box::default).watch = Some(watch);
        if !unread.is_empty() {
            watch_stream(&mut self.extras, self.observer.as_ref(), unread);
        }
    }

    /// Fails the body when no frame arrives for `timeout`.
    #[inline]
    pub(crate) fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout;
    }
}

impl<B> ResponseBody<B> {
    /// Bytes delivered so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// An error event that arrived in a streamed body (server-sent events,
    /// JSON lines) after its first bytes reached the caller: what it says,
    /// after how many bytes, and its packet. Before that commit point an
    /// error event is the attempt's failure, retried under the usual rules
    /// (see [`TriageLayer::stream_first_event`](crate::TriageLayer::stream_first_event)).
    /// The event itself is delivered like any other.
    pub fn stream_error(&self) -> Option<&StreamError> {
        self.extras
            .as_deref()
            .and_then(|e| e.watch.as_ref())
            .and_then(StreamWatch::found)
    }

    /// Whether the body was read whole inside the attempt
    /// ([`BodyMode::Whole`]) or streams as it arrives.
    pub fn body_mode(&self) -> BodyMode {
        self.mode
    }

    /// Bytes read by the layer and not delivered yet.
    pub(crate) fn buffered_len(&self) -> u64 {
        match &self.kind {
            Kind::Passthrough { .. } => 0,
            Kind::Peeked { prefix, .. } => prefix.as_ref().map_or(0, |p| p.len() as u64),
            Kind::Buffered { front, .. } => front.as_ref().map_or(0, |f| f.len()),
        }
    }

    pub(crate) fn profile(&self) -> Option<&Profile> {
        self.profile.as_deref()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let inner = match this.kind.project() {
            KindProj::Passthrough { inner } => Some(inner),
            KindProj::Peeked { prefix, rest } => {
                if let Some(bytes) = prefix.take() {
                    *this.bytes += bytes.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                rest.as_mut().map(|body| body.as_mut())
            }
            KindProj::Buffered { front, rest } => {
                if let Some(kept) = front.as_deref_mut() {
                    let frame = kept.next();
                    if kept.is_empty() {
                        *front = None;
                    }
                    if let Some(frame) = frame {
                        if let Some(data) = frame.data_ref() {
                            *this.bytes += data.len() as u64;
                        }
                        return Poll::Ready(Some(Ok(frame)));
                    }
                }
                rest.as_mut().map(|body| body.as_mut())
            }
        };
        // Nothing left to stream: the body ended with what was read.
        let Some(inner) = inner else {
            *this.done = true;
            // Told once: a body polled again after its end, or after it
            // broke, is not told again.
            if std::mem::replace(this.told, true) {
                return Poll::Ready(None);
            }
            free_slot(this.extras);
            let _entered = span_of(this.extras).map(tracing::Span::enter);
            report_body(
                this.observer.as_ref(),
                BodyOutcome::Complete { bytes: *this.bytes },
                *this.mode,
            );
            return Poll::Ready(None);
        };
        let polled = inner.poll_frame(cx);
        match idle_watched(polled, this.idle, *this.idle_timeout, cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                    if this.extras.is_some() {
                        watch_stream(this.extras, this.observer.as_ref(), data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                *this.done = true;
                if std::mem::replace(this.told, true) {
                    return Poll::Ready(Some(Err(error)));
                }
                body_failed(
                    this.extras,
                    this.observer.as_ref(),
                    (*this.bytes, *this.mode),
                    &error,
                );
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                *this.done = true;
                if std::mem::replace(this.told, true) {
                    return Poll::Ready(None);
                }
                free_slot(this.extras);
                let _entered = span_of(this.extras).map(tracing::Span::enter);
                report_body(
                    this.observer.as_ref(),
                    BodyOutcome::Complete { bytes: *this.bytes },
                    *this.mode,
                );
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        let ended = match &self.kind {
            Kind::Passthrough { inner } => inner.is_end_stream(),
            Kind::Peeked { prefix, rest } => {
                prefix.is_none() && rest.as_ref().is_none_or(|r| r.is_end_stream())
            }
            Kind::Buffered { front, rest } => {
                front.is_none() && rest.as_ref().is_none_or(|r| r.is_end_stream())
            }
        };
        if ended {
            self.ended.store(true, Ordering::Relaxed);
        }
        ended
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { inner } => inner.size_hint(),
            Kind::Peeked { rest, .. } | Kind::Buffered { rest, .. } => {
                with_front(self.buffered_len(), rest)
            }
        }
    }
}

/// The size hint of `extra` bytes in front of `rest`.
fn with_front<B: Body>(extra: u64, rest: &Option<Pin<Box<B>>>) -> SizeHint {
    let mut hint = rest
        .as_ref()
        .map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
    // The upper bound first: `set_lower` must never pass it.
    if let Some(upper) = hint.upper() {
        hint.set_upper(upper.saturating_add(extra));
    }
    hint.set_lower(hint.lower().saturating_add(extra));
    hint
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    type Rest = Option<Pin<Box<Full<Bytes>>>>;

    #[test]
    fn bytes_read_in_front_count_in_the_size_hint() {
        // A failure body peeked to its end (this once panicked: the lower
        // bound was raised past the upper one).
        let peeked = ResponseBody::peeked(Bytes::from_static(b"abc"), None as Rest, None);
        assert_eq!(peeked.size_hint().exact(), Some(3));
        let rest = Some(Box::pin(Full::new(Bytes::from_static(b"defg"))));
        let peeked = ResponseBody::peeked(Bytes::from_static(b"abc"), rest, None);
        assert_eq!(peeked.size_hint().exact(), Some(7));
        let whole =
            ResponseBody::buffered(Bytes::from_static(b"abc"), None, None, None as Rest, None);
        assert_eq!(whole.size_hint().exact(), Some(3));
        assert_eq!(whole.body_mode(), BodyMode::Whole);
    }

    #[tokio::test]
    async fn a_whole_body_is_one_frame_then_its_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body = ResponseBody::buffered(
            Bytes::from_static(b"all of it"),
            None,
            Some(trailers),
            None as Rest,
            None,
        );
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(&collected.to_bytes()[..], b"all of it");
    }

    #[tokio::test]
    async fn a_spilled_body_gives_its_prefix_the_crossing_frame_and_the_rest() {
        let rest = Some(Box::pin(Full::new(Bytes::from_static(b" rest"))));
        let mut body = ResponseBody::buffered(
            Bytes::from_static(b"prefix"),
            Some(Bytes::from_static(b" crossing")),
            None,
            rest,
            None,
        );
        assert_eq!(body.body_mode(), BodyMode::Stream);
        assert_eq!(body.size_hint().exact(), Some(20));
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(frames, ["prefix", " crossing", " rest"]);
        assert_eq!(body.bytes(), 20);
        assert!(body.is_end_stream());
    }
}
