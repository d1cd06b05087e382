//! Request bodies that can be sent again.
//!
//! A retry must send the same request again, body included, and must never
//! send it empty or cut short. [`TryCloneBody`] says whether a body can be
//! copied for another attempt:
//!
//! - in-memory bodies ([`Full`], [`Empty`], [`String`]) clone at no cost;
//! - a streaming body goes through [`ReplayBody`], which keeps what the first
//!   attempt sent, up to a cap (64 KiB by default), so that a later attempt
//!   can replay it; past the cap the request is not retried;
//! - a boxed body (`BoxBody`, `UnsyncBoxBody`, and with feature `axum`,
//!   `axum::body::Body`) is copied when it is known to be empty, as a
//!   `GET`'s is; any other cannot be read twice: such a request is
//!   classified and reported, but not retried (wrap it in [`ReplayBody`]).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower_triage::body::{ReplayBody, TryCloneBody};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A Full body clones for free.
//! let full = Full::new(Bytes::from_static(b"{\"model\":\"x\"}"));
//! assert!(full.try_clone_body().is_some());
//!
//! // Any other body replays what it sent, up to the cap.
//! let body = ReplayBody::new(String::from("hello world"));
//! let again = body.try_clone_body().expect("under the cap");
//! assert_eq!(body.collect().await.unwrap().to_bytes(), "hello world");
//! assert_eq!(again.collect().await.unwrap().to_bytes(), "hello world");
//! # }
//! ```
//!
//! [`Full`]: http_body_util::Full
//! [`Empty`]: http_body_util::Empty

mod replay;

use bytes::{Buf, Bytes};
use http_body::Body;
use http_body_util::{BodyExt, Either, Empty, Full};

pub use replay::{DEFAULT_REPLAY_CAP, ReplayBody, ReplayError};

/// A request body that may be copied for another attempt.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot say whether it can be sent again",
    label = "the layer needs a body it can copy for a retry",
    note = "wrap the body in `tower_triage::body::ReplayBody::new(body)`: it keeps what the first attempt sent (up to 64 KiB) to send again",
    note = "in-memory bodies (`Full`, `Empty`, `String`) and empty boxed bodies work as they are"
)]
pub trait TryCloneBody: Body + Sized {
    /// A copy that will send the same bytes again from the start, or `None`
    /// when that is not possible (a stream over its replay cap, a stream
    /// that failed, a body type that cannot be copied).
    fn try_clone_body(&self) -> Option<Self>;

    /// Whether the last copy sent was handed over to the client whole:
    /// `Some(false)` means a failure happened while the body was still being
    /// written (the write stage), `Some(true)` after it (waiting for the
    /// response head); `None` when the body does not know (the default).
    fn fully_sent(&self) -> Option<bool> {
        None
    }

    /// When the copy being sent last handed a frame to the client (`None`
    /// before its first frame, and for body types that do not know, the
    /// default). With [`TriageLayer::write_timeout`](crate::TriageLayer::write_timeout),
    /// a send that makes no progress for that long fails at the write
    /// stage.
    fn last_progress(&self) -> Option<std::time::Instant> {
        None
    }

    /// An empty body of this type, for the route breaker's verification
    /// probe; `None` (the default) when the type cannot make one, and the
    /// next request itself is sent as the probe.
    fn empty() -> Option<Self> {
        None
    }

    /// The whole body, when it is held in memory and is at most `max`
    /// bytes; `None` (the default) for a stream. Read only on a failure,
    /// to name the model an AI request asked for in its packet.
    fn in_memory(&self, max: usize) -> Option<Bytes> {
        let _ = max;
        None
    }
}

impl<D: Buf + Clone> TryCloneBody for Full<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn in_memory(&self, max: usize) -> Option<Bytes> {
        if self.size_hint().exact()? > max as u64 {
            return None;
        }
        // A copy of a `Full` yields its one frame at once.
        let mut copy = std::pin::pin!(self.clone());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match copy.as_mut().poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                let mut data = frame.into_data().ok()?;
                Some(data.copy_to_bytes(data.remaining()))
            }
            std::task::Poll::Ready(None) => Some(Bytes::new()),
            _ => None,
        }
    }

    fn empty() -> Option<Self> {
        Some(Full::default())
    }
}

impl<D: Buf> TryCloneBody for Empty<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(Empty::new())
    }

    fn empty() -> Option<Self> {
        Some(Empty::new())
    }
}

impl TryCloneBody for String {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn in_memory(&self, max: usize) -> Option<Bytes> {
        (self.len() <= max).then(|| Bytes::copy_from_slice(self.as_bytes()))
    }

    fn empty() -> Option<Self> {
        Some(String::new())
    }
}

impl<L, R> TryCloneBody for Either<L, R>
where
    L: TryCloneBody,
    R: TryCloneBody<Data = L::Data>,
    L::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn try_clone_body(&self) -> Option<Self> {
        match self {
            Either::Left(l) => l.try_clone_body().map(Either::Left),
            Either::Right(r) => r.try_clone_body().map(Either::Right),
        }
    }

    fn empty() -> Option<Self> {
        L::empty().map(Either::Left)
    }

    fn in_memory(&self, max: usize) -> Option<Bytes> {
        match self {
            Either::Left(l) => l.in_memory(max),
            Either::Right(r) => r.in_memory(max),
        }
    }
}

/// Whether `body` is known to be empty (its size hint says 0 bytes, or it
/// has ended).
fn known_empty<B: Body>(body: &B) -> bool {
    body.is_end_stream() || body.size_hint().exact() == Some(0)
}

impl<D, E> TryCloneBody for http_body_util::combinators::BoxBody<D, E>
where
    D: Buf + 'static,
    E: 'static,
{
    /// A boxed body is copied only when it is known to be empty (a `GET`'s):
    /// a fresh empty body. Anything else cannot be read twice; wrap it in
    /// [`ReplayBody`] to make it replayable.
    fn try_clone_body(&self) -> Option<Self> {
        known_empty(self).then(|| Self::new(Empty::new().map_err(|never| match never {})))
    }

    fn empty() -> Option<Self> {
        Some(Self::new(Empty::new().map_err(|never| match never {})))
    }
}

impl<D, E> TryCloneBody for http_body_util::combinators::UnsyncBoxBody<D, E>
where
    D: Buf + 'static,
    E: 'static,
{
    /// Copied only when known to be empty, like [`BoxBody`](http_body_util::combinators::BoxBody).
    fn try_clone_body(&self) -> Option<Self> {
        known_empty(self).then(|| Self::new(Empty::new().map_err(|never| match never {})))
    }

    fn empty() -> Option<Self> {
        Some(Self::new(Empty::new().map_err(|never| match never {})))
    }
}

/// axum's request body (feature `axum`): copied only when known to be
/// empty, like a boxed body; wrap anything else in [`ReplayBody`].
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl TryCloneBody for axum_core::body::Body {
    fn try_clone_body(&self) -> Option<Self> {
        known_empty(self).then(axum_core::body::Body::empty)
    }

    fn empty() -> Option<Self> {
        Some(axum_core::body::Body::empty())
    }
}
