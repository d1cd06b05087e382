//! [`ResponseBody`]: the response body handed to the caller, with every byte
//! the layer peeked at put back in front, counted as it goes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::time::Duration;

use tokio::time::{Sleep, sleep};
use triage_core::{BoxError, Profile, TimeoutPhase};

use crate::events;
use crate::observer::{BodyOutcome, Observer};
use crate::report::ProfileRef;
use crate::transport::{TimeoutError, classify_error};

pin_project! {
    /// The body of a response returned by [`Triage`](crate::Triage).
    ///
    /// A successful response's body passes through untouched (its data as
    /// [`Bytes`]). For a failure status the layer has read up to 16 KiB to
    /// classify it; those bytes come first, then the rest of the stream, so
    /// the caller still gets every byte.
    ///
    /// It counts what it delivers: a stream that breaks, or is dropped
    /// before its end, is reported (an event, and
    /// [`Observer::on_body`](crate::Observer::on_body)) with the bytes
    /// received and the stage `body`.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
        bytes: u64,
        done: bool,
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
        permit: Option<Box<tokio::sync::OwnedSemaphorePermit>>,
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
            report_body(this.observer.as_ref(), outcome);
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Passthrough { #[pin] inner: B },
        Peeked { prefix: Option<Bytes>, rest: Option<Pin<Box<B>>> },
    }
}

/// The event and observer call for a body's end (complete or dropped).
fn report_body(observer: Option<&Arc<dyn Observer>>, outcome: BodyOutcome) {
    match outcome {
        BodyOutcome::Complete { bytes } => events::body_complete(bytes),
        BodyOutcome::Dropped { bytes } => events::body_dropped(bytes),
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
            .finish_non_exhaustive()
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn passthrough(inner: B, observer: Option<Arc<dyn Observer>>) -> ResponseBody<B> {
        ResponseBody {
            done: inner.is_end_stream(),
            kind: Kind::Passthrough { inner },
            bytes: 0,
            ended: AtomicBool::new(false),
            observer,
            idle_timeout: None,
            idle: None,
            profile: None,
            permit: None,
        }
    }

    /// `prefix` was read already; `rest` is the remaining stream (`None` when
    /// the body ended within the prefix).
    pub(crate) fn peeked(
        prefix: Bytes,
        rest: Option<Pin<Box<B>>>,
        observer: Option<Arc<dyn Observer>>,
    ) -> ResponseBody<B> {
        ResponseBody {
            done: prefix.is_empty() && rest.as_ref().is_none_or(|r| r.is_end_stream()),
            kind: Kind::Peeked {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
            bytes: 0,
            ended: AtomicBool::new(false),
            observer,
            idle_timeout: None,
            idle: None,
            profile: None,
            permit: None,
        }
    }

    /// Keeps the call's profile, for [`ReportExt`](crate::ReportExt) to
    /// read the report from the head later.
    pub(crate) fn with_profile(mut self, profile: ProfileRef) -> ResponseBody<B> {
        self.profile = Some(profile);
        self
    }

    /// Holds the call's pool slot until the body ends or is dropped.
    pub(crate) fn with_permit(
        mut self,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> ResponseBody<B> {
        self.permit = permit.map(Box::new);
        self
    }

    /// Fails the body when no frame arrives for `timeout`.
    pub(crate) fn with_idle_timeout(mut self, timeout: Option<Duration>) -> ResponseBody<B> {
        self.idle_timeout = timeout;
        self
    }
}

impl<B> ResponseBody<B> {
    /// Bytes delivered so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
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

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let inner = match this.kind.project() {
            KindProj::Passthrough { inner } => inner,
            KindProj::Peeked { prefix, rest } => {
                if let Some(bytes) = prefix.take() {
                    *this.bytes += bytes.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                match rest {
                    Some(body) => body.as_mut(),
                    None => {
                        *this.done = true;
                        return Poll::Ready(None);
                    }
                }
            }
        };
        let polled = inner.poll_frame(cx);
        let idle = this.idle;
        let polled = match (polled, *this.idle_timeout) {
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
                // Any progress re-arms the idle timer.
                if polled.is_ready() {
                    *idle = None;
                }
                polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
            }
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                *this.done = true;
                let failure = classify_error(&*error, true);
                events::body_failed(*this.bytes, failure.fault());
                if let Some(observer) = this.observer {
                    observer.on_body(&BodyOutcome::Failed { bytes: *this.bytes });
                }
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                *this.done = true;
                *this.permit = None;
                report_body(
                    this.observer.as_ref(),
                    BodyOutcome::Complete { bytes: *this.bytes },
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
        };
        if ended {
            self.ended.store(true, Ordering::Relaxed);
        }
        ended
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { inner } => inner.size_hint(),
            Kind::Peeked { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let mut hint = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
                hint.set_lower(hint.lower().saturating_add(extra));
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper.saturating_add(extra));
                }
                hint
            }
        }
    }
}
