//! [`RequestOptions`]: per-request overrides of the layer's settings, carried
//! in the request's extensions (like openai-python's `with_options`).

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use triage_core::Profile;

use crate::ConnectionLog;

/// The longest correlation ID kept.
pub(crate) const MAX_CORRELATION: usize = 128;

/// Overrides for one request; put it in the request's extensions.
///
/// ```
/// use std::time::Duration;
/// use tower_triage::RequestOptions;
///
/// let mut request = http::Request::post("https://api.openai.com/v1/responses").body(()).unwrap();
/// request.extensions_mut().insert(
///     RequestOptions::new().max_retries(5).attempt_timeout(Some(Duration::from_secs(20))),
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    pub(crate) max_retries: Option<u32>,
    pub(crate) attempt_timeout: Option<Option<Duration>>,
    pub(crate) write_timeout: Option<Option<Duration>>,
    pub(crate) connect_timeout: Option<Option<Duration>>,
    pub(crate) body_idle_timeout: Option<Option<Duration>>,
    pub(crate) deadline: Option<Option<Duration>>,
    pub(crate) profile: Option<Arc<Profile>>,
    pub(crate) breaker: Option<bool>,
    pub(crate) window: Option<bool>,
    pub(crate) whole_body: Option<Option<NonZeroU64>>,
    pub(crate) log: Option<ConnectionLog>,
    pub(crate) correlation: Option<Arc<str>>,
}

impl RequestOptions {
    /// No overrides.
    pub fn new() -> RequestOptions {
        RequestOptions::default()
    }

    /// Retries for this request (0 turns them off).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Turns retries off for this request.
    pub fn no_retries(self) -> Self {
        self.max_retries(0)
    }

    /// The wait for each attempt's response head (`None`: no limit).
    pub fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// How long the response body may go quiet (`None`: no limit).
    pub fn body_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.body_idle_timeout = Some(timeout);
        self
    }

    /// The total deadline over every attempt and wait (`None`: no limit).
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Overrides the layer's connect timeout for this request (see
    /// [`TriageLayer::connect_timeout`](crate::TriageLayer::connect_timeout)).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Overrides the layer's write timeout for this request.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Turns the route breaker off (`false`) or on for this request: off,
    /// it is sent even on an open route, and its outcome is not recorded.
    pub fn breaker(mut self, on: bool) -> Self {
        self.breaker = Some(on);
        self
    }

    /// Turns the diagnosis window off (`false`) or on for this request:
    /// off, its failures neither open a window nor are captured in one
    /// (see [`DiagnosisWindow`](crate::DiagnosisWindow)).
    pub fn diagnosis_window(mut self, on: bool) -> Self {
        self.window = Some(on);
        self
    }

    /// Captures every attempt of this request from its start, success or
    /// not, into `log` (see [`ConnectionLog`]); a failed attempt's detail
    /// also goes into the packet. It costs a small allocation per attempt
    /// and the capture's bookkeeping while connecting: for diagnosis, not
    /// for every call.
    pub fn connection_log(mut self, log: ConnectionLog) -> Self {
        self.log = Some(log);
        self
    }

    /// The ID of the inbound request this call serves (a gateway's
    /// downstream request): written into the call's events, span and
    /// escalation packet, so an upstream failure can be tied to it. Capped
    /// at 128 characters, control characters removed. With feature
    /// `tower-http`, tower-http's `RequestId` extension (set by
    /// `SetRequestIdLayer`) on a forwarded request is read the same way.
    ///
    /// ```
    /// use tower_triage::RequestOptions;
    ///
    /// let options = RequestOptions::new().correlation_id("inbound-5f2c8e0f");
    /// # let _ = options;
    /// ```
    pub fn correlation_id(mut self, id: impl AsRef<str>) -> Self {
        let id = triage_core::redact::printable(id.as_ref(), MAX_CORRELATION);
        self.correlation = Some(Arc::from(id.as_ref()));
        self
    }

    /// Overrides the layer's whole-body mode for this request: `Some(cap)`
    /// reads a small success body whole inside the attempt, `None` streams
    /// it (see [`TriageLayer::whole_body`](crate::TriageLayer::whole_body)).
    ///
    /// ```
    /// use tower_triage::RequestOptions;
    ///
    /// // A large export: stream it, even on an SDK-style layer.
    /// let options = RequestOptions::new().whole_body(None);
    /// # let _ = options;
    /// ```
    pub fn whole_body(mut self, cap: Option<u64>) -> Self {
        self.whole_body = Some(crate::whole_body::cap(cap));
        self
    }

    /// The provider profile for this request.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(Arc::new(profile));
        self
    }
}
