//! [`ReplayBody`]: a streaming request body that keeps what it sent, up to a
//! cap, so that another attempt can send it again.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::TryCloneBody;

/// The default replay cap: 64 KiB, as Linkerd uses.
pub const DEFAULT_REPLAY_CAP: usize = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a [`ReplayBody`] could not give a frame.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The original body failed.
    #[error("request body failed")]
    Source(#[source] BoxError),
    /// The original body failed in an earlier attempt, so this copy cannot
    /// be completed.
    #[error("request body failed in an earlier attempt")]
    SourceFailed,
    /// Another copy of this body is still reading the original stream.
    #[error("request body is still being read by an earlier attempt")]
    Busy,
}

/// A request body that can be sent again: it keeps every frame the first
/// attempt reads, up to a cap; a copy made with
/// [`try_clone_body`](TryCloneBody::try_clone_body) replays them and then
/// goes on reading the original stream. Once more than the cap was read, no
/// copy can be made (the request is not retried), and the buffer is freed.
///
/// Attempts are sequential: a copy reads the original stream only while no
/// other copy is doing so (otherwise it fails with [`ReplayError::Busy`]
/// rather than interleaving bytes).
///
/// See the [module docs](super) for an example.
pub struct ReplayBody<B> {
    shared: Arc<Mutex<Shared<B>>>,
    id: u64,
    cursor: usize,
    trailers_done: bool,
    // Bytes this copy gave: with an exact size, the last one ends the send
    // even if the client never asks for the end.
    sent: u64,
}

struct Shared<B> {
    body: Option<Pin<Box<B>>>,
    hint: SizeHint,
    chunks: Vec<Bytes>,
    buffered: usize,
    cap: usize,
    over_cap: bool,
    ended: bool,
    failed: bool,
    trailers: Option<HeaderMap>,
    owner: Option<u64>,
    next_id: u64,
    // Whether the most recent copy reached its end.
    last_copy_done: bool,
    // When the most recent copy last gave a frame.
    progress: Option<std::time::Instant>,
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = lock(&self.shared);
        f.debug_struct("ReplayBody")
            .field("buffered", &shared.buffered)
            .field("cap", &shared.cap)
            .field("over_cap", &shared.over_cap)
            .field("ended", &shared.ended)
            .finish()
    }
}

/// A copy gave `n` bytes: progress, and the end of the send when the
/// body's exact size is reached.
fn gave<B>(shared: &mut Shared<B>, sent: &mut u64, n: usize) {
    *sent += n as u64;
    shared.progress = Some(std::time::Instant::now());
    if shared.hint.exact() == Some(*sent) {
        shared.last_copy_done = true;
    }
}

fn lock<B>(shared: &Mutex<Shared<B>>) -> MutexGuard<'_, Shared<B>> {
    // The state stays consistent at every await point of a poll.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body` with the default cap ([`DEFAULT_REPLAY_CAP`]).
    pub fn new(body: B) -> ReplayBody<B> {
        ReplayBody::with_cap(body, DEFAULT_REPLAY_CAP)
    }

    /// Wraps `body`, keeping at most `cap` bytes for replay.
    pub fn with_cap(body: B, cap: usize) -> ReplayBody<B> {
        let hint = body.size_hint();
        let ended = body.is_end_stream();
        ReplayBody {
            shared: Arc::new(Mutex::new(Shared {
                body: Some(Box::pin(body)),
                hint,
                chunks: Vec::new(),
                buffered: 0,
                cap,
                over_cap: false,
                ended,
                failed: false,
                trailers: None,
                owner: None,
                next_id: 1,
                last_copy_done: false,
                progress: None,
            })),
            id: 0,
            cursor: 0,
            trailers_done: false,
            sent: 0,
        }
    }

    /// Whether a copy can still be made.
    pub fn is_replayable(&self) -> bool {
        let shared = lock(&self.shared);
        !shared.over_cap && !shared.failed
    }

    /// Bytes kept for replay so far.
    pub fn buffered(&self) -> usize {
        lock(&self.shared).buffered
    }
}

impl<B: Body> TryCloneBody for ReplayBody<B>
where
    B::Error: Into<BoxError>,
{
    fn fully_sent(&self) -> Option<bool> {
        Some(lock(&self.shared).last_copy_done)
    }

    fn last_progress(&self) -> Option<std::time::Instant> {
        lock(&self.shared).progress
    }

    fn try_clone_body(&self) -> Option<Self> {
        let mut shared = lock(&self.shared);
        if shared.over_cap || shared.failed {
            return None;
        }
        let id = shared.next_id;
        shared.next_id += 1;
        shared.last_copy_done = false;
        shared.progress = None;
        Some(ReplayBody {
            shared: Arc::clone(&self.shared),
            id,
            cursor: 0,
            trailers_done: false,
            sent: 0,
        })
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        if shared.owner == Some(self.id) {
            shared.owner = None;
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = ReplayError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReplayError>>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        if let Some(chunk) = shared.chunks.get(this.cursor) {
            this.cursor += 1;
            let chunk = chunk.clone();
            gave(&mut shared, &mut this.sent, chunk.len());
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if shared.ended {
            if !this.trailers_done {
                this.trailers_done = true;
                if let Some(trailers) = shared.trailers.clone() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            }
            shared.last_copy_done = true;
            return Poll::Ready(None);
        }
        if shared.failed {
            return Poll::Ready(Some(Err(ReplayError::SourceFailed)));
        }
        match shared.owner {
            Some(owner) if owner != this.id => return Poll::Ready(Some(Err(ReplayError::Busy))),
            _ => shared.owner = Some(this.id),
        }
        let Some(body) = shared.body.as_mut() else {
            return Poll::Ready(None);
        };
        match body.as_mut().poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.ended = true;
                shared.body = None;
                shared.owner = None;
                shared.last_copy_done = true;
                this.trailers_done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                shared.failed = true;
                shared.body = None;
                shared.chunks = Vec::new();
                Poll::Ready(Some(Err(ReplayError::Source(error.into()))))
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    let bytes = data.copy_to_bytes(data.remaining());
                    gave(&mut shared, &mut this.sent, bytes.len());
                    if !shared.over_cap {
                        if shared.buffered + bytes.len() <= shared.cap {
                            shared.buffered += bytes.len();
                            shared.chunks.push(bytes.clone());
                            this.cursor += 1;
                        } else {
                            // Past the cap: no copy can be made any more.
                            shared.over_cap = true;
                            shared.chunks = Vec::new();
                            shared.buffered = 0;
                            this.cursor = 0;
                        }
                    }
                    Poll::Ready(Some(Ok(Frame::data(bytes))))
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        shared.trailers = Some(trailers.clone());
                        this.trailers_done = true;
                        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                    // A frame of a kind this body does not know: skip it.
                    Err(_) => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.shared);
        self.cursor >= shared.chunks.len()
            && shared.ended
            && (self.trailers_done || shared.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.shared).hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;

    /// A body that yields the given frames, then ends (or fails).
    struct Chunks {
        frames: VecDeque<Result<Frame<Bytes>, std::io::Error>>,
    }

    impl Chunks {
        fn new(parts: &[&'static [u8]]) -> Chunks {
            Chunks {
                frames: parts
                    .iter()
                    .map(|p| Ok(Frame::data(Bytes::from_static(p))))
                    .collect(),
            }
        }
        fn failing_after(parts: &[&'static [u8]]) -> Chunks {
            let mut c = Chunks::new(parts);
            c.frames
                .push_back(Err(std::io::Error::other("upload broke")));
            c
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.frames.pop_front())
        }
    }

    async fn bytes_of<B: Body<Data = Bytes>>(body: B) -> Result<Bytes, B::Error> {
        body.collect().await.map(|c| c.to_bytes())
    }

    #[tokio::test]
    async fn a_copy_sends_the_same_bytes() {
        let template = ReplayBody::new(Chunks::new(&[b"ab", b"cd", b"ef"]));
        let first = template.try_clone_body().unwrap();
        assert_eq!(bytes_of(first).await.unwrap(), "abcdef");
        let second = template.try_clone_body().unwrap();
        assert_eq!(bytes_of(second).await.unwrap(), "abcdef");
        assert_eq!(template.buffered(), 6);
    }

    #[tokio::test]
    async fn a_copy_after_a_partial_attempt_replays_then_continues() {
        let template = ReplayBody::new(Chunks::new(&[b"ab", b"cd", b"ef"]));
        let mut first = template.try_clone_body().unwrap();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        drop(first); // the attempt failed after sending "ab"
        let second = template.try_clone_body().unwrap();
        assert_eq!(bytes_of(second).await.unwrap(), "abcdef");
    }

    #[tokio::test]
    async fn past_the_cap_no_copy_is_made() {
        let template = ReplayBody::with_cap(Chunks::new(&[b"0123", b"4567", b"89"]), 5);
        let first = template.try_clone_body().unwrap();
        assert_eq!(bytes_of(first).await.unwrap(), "0123456789");
        assert!(!template.is_replayable());
        assert!(template.try_clone_body().is_none());
        assert_eq!(template.buffered(), 0, "the buffer is freed past the cap");
    }

    #[tokio::test]
    async fn a_failed_source_is_never_resent_partially() {
        let template = ReplayBody::new(Chunks::failing_after(&[b"ab"]));
        let first = template.try_clone_body().unwrap();
        assert!(matches!(bytes_of(first).await, Err(ReplayError::Source(_))));
        assert!(template.try_clone_body().is_none());
    }

    #[tokio::test]
    async fn two_live_copies_never_interleave() {
        let template = ReplayBody::new(Chunks::new(&[b"ab", b"cd"]));
        let mut first = template.try_clone_body().unwrap();
        let _ = first.frame().await.unwrap().unwrap();
        let mut second = template.try_clone_body().unwrap();
        // Replays what was read, then finds the stream in use.
        assert_eq!(
            second.frame().await.unwrap().unwrap().into_data().unwrap(),
            "ab"
        );
        assert!(matches!(
            second.frame().await.unwrap(),
            Err(ReplayError::Busy)
        ));
    }

    #[tokio::test]
    async fn it_knows_whether_the_last_copy_was_sent_whole() {
        let template = ReplayBody::new(Chunks::new(&[b"ab", b"cd"]));
        assert_eq!(template.fully_sent(), Some(false));
        let mut first = template.try_clone_body().unwrap();
        let _ = first.frame().await;
        assert_eq!(template.fully_sent(), Some(false), "cut off while writing");
        drop(first);
        let second = template.try_clone_body().unwrap();
        assert_eq!(bytes_of(second).await.unwrap(), "abcd");
        assert_eq!(template.fully_sent(), Some(true));
        let _third = template.try_clone_body().unwrap();
        assert_eq!(
            template.fully_sent(),
            Some(false),
            "a new copy starts unsent"
        );
    }

    #[tokio::test]
    async fn trailers_are_replayed() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "abc".parse().unwrap());
        let mut chunks = Chunks::new(&[b"data"]);
        chunks
            .frames
            .push_back(Ok(Frame::trailers(trailers.clone())));
        let template = ReplayBody::new(chunks);
        for _ in 0..2 {
            let copy = template.try_clone_body().unwrap();
            let collected = copy.collect().await.unwrap();
            assert_eq!(collected.trailers(), Some(&trailers));
            assert_eq!(collected.to_bytes(), "data");
        }
    }

    #[tokio::test]
    async fn size_hint_and_end_stream_are_forwarded() {
        let template = ReplayBody::new(String::from("hello"));
        assert_eq!(template.size_hint().exact(), Some(5));
        let copy = template.try_clone_body().unwrap();
        assert!(!copy.is_end_stream());
        assert_eq!(bytes_of(copy).await.unwrap(), "hello");
        let empty = ReplayBody::new(String::new());
        assert!(empty.try_clone_body().unwrap().is_end_stream());
    }
}
