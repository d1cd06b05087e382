//! After the commit point: a streamed body's later events watched for an
//! error event ([`StreamError`]), which is reported, never retried.

use std::time::SystemTime;

use bytes::BytesMut;
use http::{Method, StatusCode, Uri};
use tokio::time::Instant;
use triage_core::body::stream::{MAX_EVENT, StreamKind};
use triage_core::redact::Fingerprint;
use triage_core::{Decision, Diagnosis, Evidence, Packet, PacketBuilder, Stop, classify};

use crate::config::{PRINTS, ProfileRef};

/// An error event that arrived inside a streamed body after its first
/// bytes had reached the caller (see
/// [`ResponseBody::stream_error`](crate::ResponseBody::stream_error)).
#[derive(Debug, Clone)]
pub struct StreamError {
    bytes: u64,
    diagnosis: Diagnosis,
    packet: Packet,
}

impl StreamError {
    /// Bytes of the body delivered before the error event.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What the event says, classified as the status its error type stands
    /// for (`overloaded_error`: the server's overload).
    pub fn diagnosis(&self) -> &Diagnosis {
        &self.diagnosis
    }

    /// The escalation packet: the call, the event's error code, the
    /// diagnosis, and the outcome `committed` (nothing is retried after
    /// the commit point).
    pub fn packet(&self) -> &Packet {
        &self.packet
    }
}

/// The watch over a committed stream.
#[derive(Debug)]
pub(crate) struct StreamWatch {
    kind: StreamKind,
    method: Method,
    uri: Uri,
    started: Instant,
    profile: ProfileRef,
    /// Bytes of the stream before `pending`.
    offset: u64,
    /// The event in progress (at most [`MAX_EVENT`] of it).
    pending: BytesMut,
    found: Option<Box<StreamError>>,
    /// Fingerprints of the values the request's headers carried: scrubbed
    /// from the packet by exact value (the URI's are read from it).
    prints: [Fingerprint; PRINTS],
}

impl StreamWatch {
    /// A watch over a stream of `kind` for the call `(method, uri,
    /// started)` under `profile`, from byte `offset` on (the bytes before
    /// were judged).
    pub(crate) fn new(
        kind: StreamKind,
        (method, uri, started): (&Method, &Uri, Instant),
        (profile, prints): (ProfileRef, [Fingerprint; PRINTS]),
        offset: u64,
    ) -> StreamWatch {
        StreamWatch {
            kind,
            method: method.clone(),
            uri: uri.clone(),
            started,
            profile,
            offset,
            pending: BytesMut::new(),
            found: None,
            prints,
        }
    }

    /// The error event found, if any.
    pub(crate) fn found(&self) -> Option<&StreamError> {
        self.found.as_deref()
    }

    /// Reads `data`, the next bytes delivered: the first error event whose
    /// end is in it, once (later ones are not looked for).
    pub(crate) fn feed(&mut self, data: &[u8]) -> Option<&StreamError> {
        if self.found.is_some() {
            return None;
        }
        self.pending.extend_from_slice(data);
        while let Some(end) = self.kind.event_end(&self.pending) {
            let event = self.pending.split_to(end);
            let start = self.offset;
            self.offset += end as u64;
            if let Some(payload) = self.kind.error_payload(&event) {
                self.found = Some(Box::new(self.error(start, payload)));
                self.pending = BytesMut::new();
                return self.found.as_deref();
            }
        }
        if self.pending.len() > MAX_EVENT {
            // An event too long to hold: not read; keep its last bytes to
            // find where it ends.
            let keep = self.pending.split_off(self.pending.len() - 3);
            self.offset += self.pending.len() as u64;
            self.pending = keep;
        }
        None
    }

    /// The error event `payload` that began after `bytes` delivered bytes.
    fn error(&self, bytes: u64, payload: &[u8]) -> StreamError {
        let mut evidence = Evidence::from_status(StatusCode::OK);
        evidence.set_stream_error(payload);
        let diagnosis = classify(&evidence, &self.profile);
        let packet = PacketBuilder::new(&self.method, &self.uri, &self.profile, SystemTime::now())
            .prints(&self.prints)
            .attempt(&evidence, &diagnosis, &Decision::Stop(Stop::Committed))
            .finish(self.started.elapsed());
        StreamError {
            bytes,
            diagnosis,
            packet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triage_core::{Class, Owner, Profile};

    fn watch(kind: StreamKind, offset: u64) -> StreamWatch {
        StreamWatch::new(
            kind,
            (
                &Method::POST,
                &Uri::from_static("https://api.test/v1/messages"),
                Instant::now(),
            ),
            (
                ProfileRef::Static(Profile::anthropic()),
                [Fingerprint::default(); PRINTS],
            ),
            offset,
        )
    }

    const ERROR: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

    #[test]
    fn an_error_event_split_across_frames_is_found_with_the_bytes_before_it() {
        let mut w = watch(StreamKind::Sse, 0);
        assert!(w.feed(b"data: {\"n\":1}\n\ndata: {\"n\"").is_none());
        assert!(w.feed(b":2}\n\n").is_none());
        let (head, tail) = ERROR.split_at(20);
        assert!(w.feed(head).is_none());
        let found = w.feed(tail).expect("the error event");
        assert_eq!(found.bytes(), 30);
        assert_eq!(found.diagnosis().owner(), Some(Owner::Server));
        assert_eq!(found.diagnosis().class(), Class::Overloaded);
        assert_eq!(found.packet().outcome(), "committed");
        assert!(found.packet().attempts()[0].in_stream());
        // Reported once.
        assert!(w.feed(ERROR).is_none());
        assert!(w.found().is_some());
    }

    #[test]
    fn offsets_count_from_the_judged_start_and_long_events_are_passed() {
        let mut w = watch(StreamKind::Sse, ERROR.len() as u64);
        let long = [b"data: ".as_slice(), &vec![b'x'; MAX_EVENT * 2], b"\n\n"].concat();
        for piece in long.chunks(1000) {
            assert!(w.feed(piece).is_none());
        }
        assert!(w.pending.len() <= MAX_EVENT + 1000);
        let found = w.feed(ERROR).expect("the error after the long event");
        assert_eq!(found.bytes(), (ERROR.len() + long.len()) as u64);
    }

    #[test]
    fn json_lines_are_watched_line_by_line() {
        let mut w = watch(StreamKind::JsonLines, 0);
        assert!(w.feed(b"{\"n\":1}\n{\"n\":2}\n").is_none());
        let found = w
            .feed(b"{\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n")
            .expect("the error line");
        assert_eq!(found.bytes(), 16);
        assert_eq!(found.diagnosis().owner(), Some(Owner::RateLimit));
    }
}
