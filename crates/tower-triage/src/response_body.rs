//! [`ResponseBody`]: the response body handed to the caller, with every byte
//! the layer peeked at put back in front.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use triage_core::BoxError;

pin_project! {
    /// The body of a response returned by [`Triage`](crate::Triage).
    ///
    /// A successful response's body passes through untouched (its data as
    /// [`Bytes`]). For a failure status the layer has read up to 16 KiB to
    /// classify it; those bytes come first, then the rest of the stream, so
    /// the caller still gets every byte.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Passthrough { #[pin] inner: B },
        Peeked { prefix: Option<Bytes>, rest: Option<Pin<Box<B>>> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn passthrough(inner: B) -> ResponseBody<B> {
        ResponseBody {
            kind: Kind::Passthrough { inner },
        }
    }

    /// `prefix` was read already; `rest` is the remaining stream (`None` when
    /// the body ended within the prefix).
    pub(crate) fn peeked(prefix: Bytes, rest: Option<Pin<Box<B>>>) -> ResponseBody<B> {
        ResponseBody {
            kind: Kind::Peeked {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
        }
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
        let inner = match self.project().kind.project() {
            KindProj::Passthrough { inner } => inner,
            KindProj::Peeked { prefix, rest } => {
                if let Some(bytes) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                match rest {
                    Some(body) => body.as_mut(),
                    None => return Poll::Ready(None),
                }
            }
        };
        match inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(
                frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
            ))),
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { inner } => inner.is_end_stream(),
            Kind::Peeked { prefix, rest } => {
                prefix.is_none() && rest.as_ref().is_none_or(|r| r.is_end_stream())
            }
        }
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
