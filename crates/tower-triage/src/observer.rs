//! [`Observer`]: the data of every event, as values, for metrics without log
//! parsing.

use std::time::Duration;

use http::{Method, StatusCode, Uri};
use triage_core::{Decision, Detail, Diagnosis, Error, Evidence, Fault, Stage};

use crate::whole_body::BodyMode;

/// Receives what the layer's events carry, as values. Methods run inline on
/// the request's task: keep them cheap (count, don't block).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tower_triage::{AttemptInfo, Observer, TriageLayer};
///
/// #[derive(Default)]
/// struct Retries(AtomicU64);
///
/// impl Observer for Retries {
///     fn on_attempt(&self, attempt: &AttemptInfo<'_>) {
///         if attempt.decision.is_retry() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let layer = TriageLayer::new().observer(Retries::default());
/// # let _ = layer;
/// ```
pub trait Observer: Send + Sync + 'static {
    /// After each attempt is judged.
    fn on_attempt(&self, attempt: &AttemptInfo<'_>) {
        let _ = attempt;
    }

    /// When a call ends: success, failure, or cancellation by the caller.
    fn on_outcome(&self, outcome: &Outcome<'_>) {
        let _ = outcome;
    }

    /// When a response body that was handed back ends, breaks, or is
    /// dropped before its end.
    fn on_body(&self, body: &BodyOutcome) {
        let _ = body;
    }

    /// When a route opens, its probe fails, it recovers, or its diagnosis
    /// window captures a failure (see [`Breaker`](crate::Breaker) and
    /// [`DiagnosisWindow`](crate::DiagnosisWindow)).
    fn on_route(&self, event: &RouteEvent<'_>) {
        let _ = event;
    }
}

/// What happened to a route (scheme, host and port).
#[non_exhaustive]
#[derive(Debug)]
pub enum RouteEvent<'a> {
    /// The route opened: requests fail at once until a probe gets through.
    Opened {
        /// The route, `scheme://host:port`.
        route: &'a str,
        /// The failure that opened it.
        diagnosis: &'a Diagnosis,
        /// When the first probe may go.
        probe_in: Duration,
    },
    /// The verification probe failed; the route stays open.
    ProbeFailed {
        /// The route.
        route: &'a str,
        /// How the probe failed.
        diagnosis: &'a Diagnosis,
    },
    /// The far side answered: the route works again.
    Recovered {
        /// The route.
        route: &'a str,
        /// How long it was open.
        outage: Duration,
        /// The requests it refused meanwhile.
        refused: u64,
    },
    /// The route's diagnosis window captured a failure in detail.
    Detail {
        /// The route.
        route: &'a str,
        /// What it captured.
        detail: &'a Detail,
    },
}

/// One judged attempt.
#[non_exhaustive]
#[derive(Debug)]
pub struct AttemptInfo<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI (may hold secrets: redact before writing it anywhere,
    /// see [`triage_core::redact::uri`]).
    pub uri: &'a Uri,
    /// The attempt's number, 1 for the first.
    pub attempt: u32,
    /// What came back.
    pub evidence: &'a Evidence,
    /// The verdict.
    pub diagnosis: &'a Diagnosis,
    /// What the layer does next.
    pub decision: &'a Decision,
    /// How the response body was handled (`None` when no response head
    /// came back): [`BodyMode::Whole`] when it was read inside the attempt.
    pub body_mode: Option<BodyMode>,
}

/// How a call ended.
#[non_exhaustive]
#[derive(Debug)]
pub enum Outcome<'a> {
    /// A response was handed back (a success, or a final failure status).
    Response {
        /// The call.
        call: Call<'a>,
        /// The response's status.
        status: StatusCode,
        /// Attempts made.
        attempts: u32,
        /// The verdict on the last attempt.
        diagnosis: &'a Diagnosis,
        /// Whether the body was read whole inside the attempt or streams.
        body_mode: BodyMode,
    },
    /// The call failed with an error; its packet says why
    /// ([`Error::packet`], written when first read).
    Failed {
        /// The call.
        call: Call<'a>,
        /// The error the call fails with.
        error: &'a Error,
    },
    /// The caller dropped the call before it finished.
    Cancelled {
        /// The call.
        call: Call<'a>,
        /// Attempts started.
        attempts: u32,
        /// Where the call was; `None` while waiting between attempts.
        stage: Option<Stage>,
    },
}

impl<'a> Outcome<'a> {
    /// The call that ended, whatever the outcome.
    pub fn call(&self) -> &Call<'a> {
        match self {
            Outcome::Response { call, .. }
            | Outcome::Failed { call, .. }
            | Outcome::Cancelled { call, .. } => call,
        }
    }
}

/// The call an [`Outcome`] ends: what was asked, and how long the whole of it
/// took, every attempt and wait included.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI (may hold secrets: redact before writing it anywhere,
    /// see [`triage_core::redact::uri`]).
    pub uri: &'a Uri,
    /// From the call's start to its end: to the response head when the body
    /// streams, to the body's end when it was read whole inside the attempt.
    pub elapsed: Duration,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: &'a Method, uri: &'a Uri, elapsed: Duration) -> Call<'a> {
        Call {
            method,
            uri,
            elapsed,
        }
    }
}

/// What happened to a response body after it was handed back.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOutcome {
    /// The stream ended normally after this many bytes.
    Complete {
        /// Bytes delivered.
        bytes: u64,
    },
    /// The stream broke after this many bytes (owner: the connection
    /// path; stage: body). A streamed body is never retried.
    Failed {
        /// Bytes delivered before the break.
        bytes: u64,
        /// What broke it: a reset, a close before the end (truncation), a
        /// body idle timeout, ...
        fault: Fault,
    },
    /// The caller dropped the body before its end, after this many bytes.
    Dropped {
        /// Bytes delivered before the drop.
        bytes: u64,
    },
    /// An error event arrived inside a streamed body (server-sent events,
    /// JSON lines) after its first bytes had reached the caller: reported,
    /// not retried. The event itself is delivered like any other.
    StreamError {
        /// Bytes delivered before the error event.
        bytes: u64,
        /// What the event says, as the status its type stands for
        /// (`overloaded_error`: the server's overload).
        diagnosis: triage_core::Diagnosis,
    },
}

/// Two observers, each told every event in turn (more nest).
pub(crate) struct FanOut(pub(crate) [std::sync::Arc<dyn Observer>; 2]);

impl Observer for FanOut {
    fn on_attempt(&self, attempt: &AttemptInfo<'_>) {
        self.0.iter().for_each(|o| o.on_attempt(attempt));
    }

    fn on_outcome(&self, outcome: &Outcome<'_>) {
        self.0.iter().for_each(|o| o.on_outcome(outcome));
    }

    fn on_body(&self, body: &BodyOutcome) {
        self.0.iter().for_each(|o| o.on_body(body));
    }

    fn on_route(&self, event: &RouteEvent<'_>) {
        self.0.iter().for_each(|o| o.on_route(event));
    }
}
