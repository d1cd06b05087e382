//! Whole-body mode: a success's body read to its end inside the attempt, so
//! that a reset, a truncation or a stall while reading it is that attempt's
//! failure (stage `body`), judged and retried like any other, and the caller
//! gets either the whole body or an error, never a half.
//!
//! Off by default ([`TriageLayer::whole_body`](crate::TriageLayer::whole_body),
//! [`RequestOptions::whole_body`](crate::RequestOptions::whole_body)). When on,
//! a response with a status from 200 to 399 is read whole if its declared size
//! (the body's size hint, else `Content-Length`) fits the cap and its
//! `Content-Type` is not a streaming one
//! ([`is_streaming_media_type`]:
//! server-sent events, JSON lines, gRPC, ...). A body of unknown size that
//! grows past the cap stops being buffered: the bytes read so far come first,
//! then the rest of the stream ([`BodyMode::Stream`] from then on). The cap
//! is a hard bound on what the layer buffers.
//!
//! # Example
//!
//! ```
//! use tower_triage::{DEFAULT_WHOLE_BODY_CAP, RequestOptions, TriageLayer};
//!
//! // Small JSON answers are read whole (and retried if they break mid-way).
//! let layer = TriageLayer::new().whole_body(Some(DEFAULT_WHOLE_BODY_CAP));
//! // ... except this request's, which streams as it arrives.
//! let mut request = http::Request::get("https://api.example.com/v1/export").body(()).unwrap();
//! request.extensions_mut().insert(RequestOptions::new().whole_body(None));
//! # let _ = layer;
//! ```

use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use http_body::Body;
use tokio::time::{Instant, Sleep, sleep};
use triage_core::BoxError;
use triage_core::headers::{is_streaming_media_type, parse_count};

/// The cap to pass to [`TriageLayer::whole_body`](crate::TriageLayer::whole_body)
/// when in doubt: 1 MiB, far above a typical JSON answer, far below what a
/// process should hold per call.
pub const DEFAULT_WHOLE_BODY_CAP: u64 = 1 << 20;

/// How an attempt's response body was handled.
///
/// In events it is the field `body_mode`; see also
/// [`Report::body_mode`](crate::Report::body_mode) and
/// [`AttemptInfo::body_mode`](crate::AttemptInfo::body_mode).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyMode {
    /// Read to its end inside the attempt (whole-body mode): a failure while
    /// reading was that attempt's, and the caller gets every byte at once.
    Whole,
    /// Handed on as it arrives: a failure mid-way reaches the caller as a
    /// body error (reported with its byte count) and is not retried.
    Stream,
}

impl BodyMode {
    /// A stable, lowercase name: `whole`, `stream`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BodyMode::Whole => "whole",
            BodyMode::Stream => "stream",
        }
    }
}

impl fmt::Display for BodyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cap of a whole-body setting (`Some(0)` turns the mode off).
pub(crate) fn cap(setting: Option<u64>) -> Option<NonZeroU64> {
    setting.and_then(NonZeroU64::new)
}

/// Whether a response is read whole under `cap`: `Some(bytes to reserve)`,
/// or `None` to stream it.
pub(crate) fn plan<R: Body>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &R,
    cap: NonZeroU64,
) -> Option<usize> {
    let cap = cap.get();
    // 1xx (an upgrade, say) has no body of its own; failures are peeked.
    if !(200..400).contains(&status.as_u16()) {
        return None;
    }
    if body.is_end_stream() {
        return Some(0);
    }
    if headers
        .get(CONTENT_TYPE)
        .is_some_and(|t| is_streaming_media_type(t.as_bytes()))
    {
        return None;
    }
    let declared = body.size_hint().upper().or_else(|| {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|v| parse_count(v.as_bytes()))
    });
    match declared {
        Some(size) if size > cap => None,
        // Known and small: room for all of it at once.
        Some(size) => Some(usize::try_from(size).unwrap_or(0)),
        // Unknown: grow as it comes, up to the cap.
        None => Some(0),
    }
}

/// What reading a body whole came to.
pub(crate) enum Read {
    /// The body ended: all of it, and its trailers.
    Complete {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// It grew past the cap: what was buffered, and the frame that crossed
    /// the cap; the rest of the stream follows.
    Spilled { prefix: Bytes, crossing: Bytes },
    /// The body failed.
    Failed(BoxError),
    /// No frame came for the body idle timeout.
    Idle(Duration),
    /// The call's total deadline passed, this long after it started.
    Deadline(Duration),
}

/// A response whose body is being read whole (boxed in the call's state:
/// it exists only in whole-body mode).
pub(crate) struct Whole<R> {
    pub(crate) parts: http::response::Parts,
    body: Pin<Box<R>>,
    // A body of one frame is kept as it came, without a copy.
    first: Option<Bytes>,
    buf: BytesMut,
    reserve: usize,
    len: u64,
    trailers: Option<HeaderMap>,
    cap: u64,
    idle_limit: Option<Duration>,
    idle: Option<Pin<Box<Sleep>>>,
}

impl<R> Whole<R> {
    pub(crate) fn new(
        parts: http::response::Parts,
        body: R,
        cap: NonZeroU64,
        reserve: usize,
        idle_limit: Option<Duration>,
    ) -> Whole<R> {
        Whole {
            parts,
            body: Box::pin(body),
            first: None,
            buf: BytesMut::new(),
            reserve,
            len: 0,
            trailers: None,
            cap: cap.get(),
            idle_limit,
            idle: None,
        }
    }

    /// Body bytes received so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.len
    }

    /// The head, and the body for the rest of the stream.
    pub(crate) fn into_parts(self) -> (http::response::Parts, Pin<Box<R>>) {
        (self.parts, self.body)
    }

    fn buffered(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => self.buf.split().freeze(),
        }
    }

    fn push(&mut self, data: Bytes) {
        if self.first.is_none() && self.buf.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(first) = self.first.take() {
            // `reserve` is at most the cap: the declared size that fit it.
            self.buf.reserve(self.reserve.max(first.len() + data.len()));
            self.buf.extend_from_slice(&first);
        }
        self.buf.extend_from_slice(&data);
    }
}

impl<R> Whole<R>
where
    R: Body,
    R::Error: Into<BoxError>,
{
    /// Reads until the body ends, fails, grows past the cap, or stalls for
    /// the idle limit.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Read> {
        loop {
            if self.body.is_end_stream() {
                return Poll::Ready(self.complete());
            }
            match self.body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(limit), Some(idle)) = (self.idle_limit, self.idle.as_mut()) {
                        idle.as_mut().reset(Instant::now() + limit);
                    }
                    match frame.into_data() {
                        Ok(mut data) => {
                            let data = data.copy_to_bytes(data.remaining());
                            let n = data.len() as u64;
                            if self.len.saturating_add(n) > self.cap {
                                // Stop buffering: the cap is a hard bound.
                                self.len += n;
                                let prefix = self.buffered();
                                return Poll::Ready(Read::Spilled {
                                    prefix,
                                    crossing: data,
                                });
                            }
                            self.len += n;
                            if !data.is_empty() {
                                self.push(data);
                            }
                        }
                        Err(frame) => {
                            if let Ok(trailers) = frame.into_trailers() {
                                match &mut self.trailers {
                                    Some(kept) => kept.extend(trailers),
                                    None => self.trailers = Some(trailers),
                                }
                            }
                        }
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Read::Failed(error.into())),
                Poll::Ready(None) => return Poll::Ready(self.complete()),
                Poll::Pending => {
                    let Some(limit) = self.idle_limit else {
                        return Poll::Pending;
                    };
                    let idle = self.idle.get_or_insert_with(|| Box::pin(sleep(limit)));
                    return match idle.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Read::Idle(limit)),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn complete(&mut self) -> Read {
        Read::Complete {
            data: self.buffered(),
            trailers: self.trailers.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    use http_body::Frame;
    use http_body_util::Full;

    fn cap(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    /// Frames given in advance; no size hint.
    struct Frames(VecDeque<Result<Frame<Bytes>, BoxError>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    fn frames(parts: Vec<Result<Frame<Bytes>, BoxError>>) -> Frames {
        Frames(parts.into())
    }

    #[test]
    fn only_successes_of_known_small_or_unknown_size_and_no_streaming_type_are_read_whole() {
        let ok = StatusCode::OK;
        let small = Full::new(Bytes::from_static(b"{}"));
        let big = Full::new(Bytes::from(vec![0u8; 2048]));
        let none = HeaderMap::new();
        assert_eq!(plan(ok, &none, &small, cap(1024)), Some(2));
        assert_eq!(plan(ok, &none, &big, cap(1024)), None);
        assert_eq!(plan(StatusCode::NOT_FOUND, &none, &small, cap(1024)), None);
        assert_eq!(
            plan(StatusCode::SWITCHING_PROTOCOLS, &none, &small, cap(1024)),
            None
        );
        let sse = headers(&[("content-type", "text/event-stream")]);
        assert_eq!(plan(ok, &sse, &small, cap(1024)), None);
        let json = headers(&[("content-type", "application/json")]);
        assert_eq!(plan(ok, &json, &small, cap(1024)), Some(2));
        // An ended body is whole at once, whatever it declares.
        let empty = Full::new(Bytes::new());
        let lying = headers(&[("content-length", "999999")]);
        assert_eq!(plan(ok, &lying, &empty, cap(1024)), Some(0));
    }

    #[test]
    fn content_length_decides_when_the_body_gives_no_upper_bound() {
        let unknown = frames(vec![Ok(Frame::data(Bytes::from_static(b"x")))]);
        let ok = StatusCode::OK;
        assert_eq!(plan(ok, &HeaderMap::new(), &unknown, cap(1024)), Some(0));
        let declared = headers(&[("content-length", "4096")]);
        assert_eq!(plan(ok, &declared, &unknown, cap(1024)), None);
        let declared = headers(&[("content-length", "512")]);
        assert_eq!(plan(ok, &declared, &unknown, cap(1024)), Some(512));
    }

    fn read<R>(whole: &mut Whole<R>) -> Read
    where
        R: Body,
        R::Error: Into<BoxError>,
    {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match whole.poll_read(&mut cx) {
            Poll::Ready(read) => read,
            Poll::Pending => panic!("nothing here waits"),
        }
    }

    fn parts() -> http::response::Parts {
        http::Response::new(()).into_parts().0
    }

    #[test]
    fn frames_and_trailers_are_gathered_into_one_buffer() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        let body = frames(vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"whole "))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
            Ok(Frame::trailers(trailers)),
        ]);
        let mut whole = Whole::new(parts(), body, cap(1024), 0, None);
        match read(&mut whole) {
            Read::Complete { data, trailers } => {
                assert_eq!(&data[..], b"hello whole world");
                assert_eq!(trailers.unwrap()["x-checksum"], "abc");
            }
            _ => panic!("a whole body"),
        }
        assert_eq!(whole.bytes(), 17);
    }

    #[test]
    fn a_body_that_grows_past_the_cap_spills_what_it_holds() {
        let body = frames(vec![
            Ok(Frame::data(Bytes::from_static(b"0123456789"))),
            Ok(Frame::data(Bytes::from_static(b"abcdefghij"))),
            Ok(Frame::data(Bytes::from_static(b"never read"))),
        ]);
        let mut whole = Whole::new(parts(), body, cap(15), 0, None);
        match read(&mut whole) {
            Read::Spilled { prefix, crossing } => {
                assert_eq!(&prefix[..], b"0123456789");
                assert_eq!(&crossing[..], b"abcdefghij");
            }
            _ => panic!("a spill"),
        }
        // Nothing past the crossing frame was read.
        let (_, rest) = whole.into_parts();
        assert_eq!(rest.0.len(), 1);
    }

    #[test]
    fn a_failure_mid_way_keeps_the_count_of_bytes_received() {
        let body = frames(vec![
            Ok(Frame::data(Bytes::from_static(b"partial"))),
            Err("connection reset".into()),
        ]);
        let mut whole = Whole::new(parts(), body, cap(1024), 0, None);
        assert!(matches!(read(&mut whole), Read::Failed(_)));
        assert_eq!(whole.bytes(), 7);
    }
}
