//! The error a triaged call fails with: the SDK-style kind, the owner, the
//! stage, the status and request ID, how many attempts were made, why it
//! stopped, the escalation packet, and the original cause as its source.

use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use http::StatusCode;

use crate::classify::Diagnosis;
use crate::owner::{Class, ErrorKind, Owner};

use crate::packet::{Packet, PacketBuilder};
use crate::retry::Stop;
use crate::stage::Stage;

/// A boxed error, as tower passes them around.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A call that failed after triage: the SDK-style kind, the owner, the
/// stage, the status and request ID, how many attempts were made, why it
/// stopped, the escalation packet, and the original cause as its source.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::{HeaderMap, Method, StatusCode, Uri};
/// use triage_core::{classify, Decision, Error, ErrorKind, Evidence, Owner, PacketBuilder, Profile, Stop};
///
/// let profile = Profile::generic();
/// let evidence = Evidence::from_response(StatusCode::FORBIDDEN, &HeaderMap::new(), profile, SystemTime::now());
/// let diagnosis = classify(&evidence, profile);
/// let stop = Stop::NotRetryable(Owner::Permission);
/// let uri = Uri::from_static("https://api.example.com/v1/things");
/// let packet = PacketBuilder::new(&Method::GET, &uri, profile, SystemTime::now())
///     .attempt(&evidence, &diagnosis, &Decision::Stop(stop))
///     .finish(Duration::from_millis(5));
///
/// let error = Error::new(diagnosis, stop, &evidence, packet, None);
/// assert_eq!(error.kind(), ErrorKind::PermissionDenied);
/// assert_eq!(error.owner(), Some(Owner::Permission));
/// assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));
/// assert_eq!(error.to_string(), "permission: forbidden (status 403) after 1 attempt, not retryable (permission)");
/// ```
#[derive(thiserror::Error)]
#[error("{inner}")]
pub struct Error {
    inner: Box<Inner>,
    #[source]
    source: Option<BoxError>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    diagnosis: Diagnosis,
    stop: Stop,
    status: Option<StatusCode>,
    request_id: Option<String>,
    retry_after: Option<std::time::Duration>,
    attempts: u32,
    packet: LazyPacket,
}

/// The packet, written on first read: a caller that never reads it does
/// not pay for its texts (see [`Error::deferred`]).
struct LazyPacket {
    done: OnceLock<Packet>,
    pending: Mutex<Option<(PacketBuilder, Duration)>>,
}

/// The verdict and the packet's error chain (scrubbed of what the request
/// carried), never the source error as it is: an `unwrap` prints this.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Error")
            .field("kind", &inner.kind)
            .field("diagnosis", &inner.diagnosis)
            .field("stop", &inner.stop)
            .field("status", &inner.status)
            .field("request_id", &inner.request_id)
            .field("attempts", &inner.attempts)
            .field("error_chain", &self.packet().error_chain())
            .finish_non_exhaustive()
    }
}

/// The packet once written; until then, the builder's safe summary.
impl fmt::Debug for LazyPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.done.get() {
            Some(packet) => packet.fmt(f),
            None => f.write_str("Packet(not yet written)"),
        }
    }
}

impl Error {
    /// An error for a call that stopped with `stop` after its last attempt
    /// produced `evidence` and `diagnosis`; `source` is the original error of
    /// a transport failure.
    pub fn new(
        diagnosis: Diagnosis,
        stop: Stop,
        evidence: &crate::Evidence,
        packet: Packet,
        source: Option<BoxError>,
    ) -> Error {
        let attempts = packet.attempts_total();
        let packet = LazyPacket {
            done: OnceLock::from(packet),
            pending: Mutex::new(None),
        };
        Error::with(diagnosis, stop, evidence, (attempts, packet), source)
    }

    /// As [`Error::new`], with the packet still to write: `builder` is
    /// finished (after `elapsed`) when [`Error::packet`] is first called,
    /// with the error chain of `source` unless it recorded one already.
    /// The time to a verdict then does not include the packet's texts.
    pub fn deferred(
        diagnosis: Diagnosis,
        stop: Stop,
        evidence: &crate::Evidence,
        (builder, elapsed): (PacketBuilder, Duration),
        source: Option<BoxError>,
    ) -> Error {
        let attempts = builder.attempts_total();
        let packet = LazyPacket {
            done: OnceLock::new(),
            pending: Mutex::new(Some((builder, elapsed))),
        };
        Error::with(diagnosis, stop, evidence, (attempts, packet), source)
    }

    fn with(
        diagnosis: Diagnosis,
        stop: Stop,
        evidence: &crate::Evidence,
        (attempts, packet): (u32, LazyPacket),
        source: Option<BoxError>,
    ) -> Error {
        let status = evidence.status();
        let kind = match (diagnosis.class(), status) {
            // Refused unsent, whatever the answer that closed the window.
            // (A quota stop too: the SDKs' quota errors are 429s.)
            _ if matches!(stop, Stop::RateWindowClosed(_) | Stop::QuotaStopped(_)) => {
                ErrorKind::RateLimit
            }
            (Class::Transport(t), _) => ErrorKind::from_transport(t),
            (Class::Cancelled, _) => ErrorKind::Cancelled,
            (_, Some(status)) => ErrorKind::from_status(status),
            (_, None) => ErrorKind::Connection,
        };
        Error {
            inner: Box::new(Inner {
                kind,
                diagnosis,
                stop,
                status,
                request_id: evidence.request_id_str().map(str::to_owned),
                retry_after: evidence
                    .hints()
                    .server_delay()
                    .map(|(wait, _)| wait)
                    .or_else(|| evidence.rate().exhausted_reset()),
                attempts,
                packet,
            }),
            source,
        }
    }

    /// The SDK-style kind.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Who has to act.
    pub fn owner(&self) -> Option<Owner> {
        self.inner.diagnosis.owner()
    }

    /// What exactly happened.
    pub fn class(&self) -> Class {
        self.inner.diagnosis.class()
    }

    /// The stage of a transport failure.
    pub fn stage(&self) -> Option<Stage> {
        self.inner.diagnosis.stage()
    }

    /// The whole diagnosis of the last attempt.
    pub fn diagnosis(&self) -> &Diagnosis {
        &self.inner.diagnosis
    }

    /// Why no further attempt was made.
    pub fn stop(&self) -> Stop {
        self.inner.stop
    }

    /// The last status, if an answer came back.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The origin's request ID of the last attempt, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// The escalation packet.
    pub fn packet(&self) -> &Packet {
        let lazy = &self.inner.packet;
        lazy.done.get_or_init(|| {
            let pending = lazy
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match pending {
                Some((mut builder, elapsed)) => {
                    if let (false, Some(source)) = (builder.has_error(), &self.source) {
                        builder.set_error(&**source);
                    }
                    builder.finish(elapsed)
                }
                // Taken by a call that panicked while writing it.
                None => Packet::unwritten(),
            }
        })
    }

    /// When the upstream said to come back: its `Retry-After` (or
    /// `retry-after-ms`, …) on the last answer, else the reset of an
    /// exhausted rate window; `None` when it said nothing.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.inner.retry_after
    }

    /// What a person should do next.
    pub fn next_step(&self) -> &'static str {
        self.inner
            .stop
            .next_step()
            .unwrap_or_else(|| self.inner.diagnosis.next_step())
    }
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.diagnosis.owner() {
            Some(owner) => write!(f, "{owner}: {}", self.diagnosis.class())?,
            None => write!(f, "{}", self.diagnosis.class())?,
        }
        match (self.status, &self.request_id) {
            (Some(status), Some(id)) => {
                write!(f, " (status {}, request id {id})", status.as_u16())?
            }
            (Some(status), None) => write!(f, " (status {})", status.as_u16())?,
            (None, Some(id)) => write!(f, " (request id {id})")?,
            (None, None) => {}
        }
        let attempts = self.attempts;
        let plural = if attempts == 1 { "" } else { "s" };
        write!(f, " after {attempts} attempt{plural}, {}", self.stop)
    }
}
