//! [`TriageLayer`]: the per-client settings.

use std::sync::Arc;
use std::time::Duration;

use triage_core::{Profile, RetryBudget, RetryRules};

use crate::config::{Config, Pool};
use crate::idempotency::IdempotencyKeys;
use crate::observer::Observer;
use crate::route::{Breaker, DiagnosisWindow};
use crate::share::{Inbox, Share};
use crate::whole_body::{self, DEFAULT_WHOLE_BODY_CAP};

/// Wraps an HTTP client in [`Triage`](crate::Triage).
///
/// Clones share one retry budget, so every clone of a client spends from the
/// same allowance.
///
/// # Two ways to use it
///
/// - [`TriageLayer::new`], the default: **pass-through and streaming**.
///   Every response comes back as it arrived, a final failure status
///   included (with its [`Report`](crate::Report)); bodies stream, so
///   server-sent events, downloads and proxies work unchanged; no timeout
///   is imposed. A body that breaks mid-way reaches the caller as a body
///   error (reported with its byte count) and is not retried: the response
///   was already handed over. Pick it for gateways, proxies, streaming and
///   any workload with its own timeouts and error handling.
/// - [`TriageLayer::sdk`]: **what the official API SDKs do** (openai-python
///   and its kin). A final failure status is an error; small success bodies
///   are read whole inside the attempt, so a reset or truncation is retried
///   like any other failure (within the idempotency gate) and the caller
///   gets either the whole body or an error; SDK timeouts. Pick it for
///   request/response API calls (JSON in, JSON out) where a half-read body
///   is as useless as none.
///
/// ```
/// use std::time::Duration;
/// use tower_triage::TriageLayer;
/// use tower_triage::core::{Profile, RetryRules};
///
/// let layer = TriageLayer::new()
///     .profile(Profile::openai().clone())
///     .rules(RetryRules::default().max_retries(3).deadline(Some(Duration::from_secs(30))))
///     .attempt_timeout(Some(Duration::from_secs(60)));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
pub struct TriageLayer {
    pub(crate) config: Arc<Config>,
}

impl TriageLayer {
    /// The defaults, workload-friendly: the profile detected from each
    /// request's host, openai-python's retry rules, the default retry
    /// budget, the route breaker on ([`Breaker::new`]), no timeouts (attempt,
    /// connect, write, body idle), failure bodies read for at most 2 s,
    /// final failure statuses handed back as responses, and success bodies
    /// streamed as they arrive (whole-body mode off).
    pub fn new() -> TriageLayer {
        TriageLayer::default()
    }

    /// A layer that behaves like the official API SDKs (openai-python's
    /// defaults), for request/response API calls:
    ///
    /// - final failure statuses are errors ([`errors_for_status`](Self::errors_for_status));
    /// - whole-body mode with a 1 MiB cap ([`whole_body`](Self::whole_body)
    ///   with [`DEFAULT_WHOLE_BODY_CAP`]): a success's body up to 1 MiB (not
    ///   a streaming type) is read inside the attempt, so a reset or a
    ///   truncated body is that attempt's failure and is retried, within
    ///   the idempotency gate; larger and streaming bodies stream;
    /// - openai-python's retries ([`RetryRules::default`]): 2 retries,
    ///   backoff from 0.5 s doubling to 8 s with up to 25 % jitter below,
    ///   `Retry-After` (and `retry-after-ms`) honoured up to 120 s;
    /// - openai-python's timeouts (`httpx.Timeout(600, connect=5)`): 5 s to
    ///   connect ([`connect_timeout`](Self::connect_timeout)), 600 s per
    ///   attempt ([`attempt_timeout`](Self::attempt_timeout); in whole-body
    ///   mode it covers reading the body), and 600 s for a request body
    ///   upload or a streamed response body to make progress
    ///   ([`write_timeout`](Self::write_timeout),
    ///   [`body_idle_timeout`](Self::body_idle_timeout)), and 600 s for a
    ///   stream's first event ([`first_byte_timeout`](Self::first_byte_timeout)).
    ///
    /// Everything else is as in [`new`](Self::new), and every setting can
    /// be changed after. The default layer stays pass-through and
    /// streaming; see [the type's docs](TriageLayer#two-ways-to-use-it) for
    /// when to pick which.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    /// use tower_triage::TriageLayer;
    /// use tower_triage::core::ErrorKind;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = service_fn(|_req: http::Request<Full<Bytes>>| async {
    ///     let body = Full::new(Bytes::from_static(br#"{"error":{"message":"no such model","type":"invalid_request_error"}}"#));
    ///     Ok::<_, std::io::Error>(http::Response::builder().status(404).body(body).unwrap())
    /// });
    /// let mut client = TriageLayer::sdk().layer(client);
    /// let request = http::Request::get("https://api.openai.com/v1/models/nope").body(Full::new(Bytes::new())).unwrap();
    /// let error = client.ready().await.unwrap().call(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::NotFound);
    /// # }
    /// ```
    pub fn sdk() -> TriageLayer {
        TriageLayer::new()
            .errors_for_status(true)
            .whole_body(Some(DEFAULT_WHOLE_BODY_CAP))
            .rules(RetryRules::default())
            .connect_timeout(Some(Duration::from_secs(5)))
            .attempt_timeout(Some(Duration::from_secs(600)))
            .write_timeout(Some(Duration::from_secs(600)))
            .body_idle_timeout(Some(Duration::from_secs(600)))
            .first_byte_timeout(Some(Duration::from_secs(600)))
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Uses `profile` for every request instead of detecting it from the host.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.config().profile = Some(Arc::new(profile));
        self
    }

    /// Sets the retry rules.
    pub fn rules(mut self, rules: RetryRules) -> Self {
        self.config().rules = rules;
        self
    }

    /// Sets the retry budget shared by every clone of the service.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.config().budget = Arc::new(budget);
        self
    }

    /// Bounds the wait for each attempt's response head; in whole-body
    /// mode, for the head and the body read inside the attempt (a typed
    /// `body` timeout at the body stage if the body is what ran late).
    pub fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config().attempt_timeout = timeout;
        self
    }

    /// Bounds the time each attempt may spend making its connection (DNS,
    /// TCP, proxy and TLS together; a typed `connect` timeout at the stage
    /// that was pending: the request never left, so it is retried for any
    /// method). Off by default.
    ///
    /// The layer sees a connection being made only through the tagged
    /// connectors of the [`connect`](crate::connect) module (feature
    /// `hyper-util`); with another client, set the timeout on its
    /// connector (hyper-util's `HttpConnector::set_connect_timeout`).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config().connect_timeout = timeout;
        self
    }

    /// Fails an attempt whose request body makes no progress for this long
    /// while it is being sent (a typed `write` timeout at the write stage:
    /// an upload the peer or a proxy stopped reading). Needs a body that
    /// knows its progress ([`ReplayBody`](crate::body::ReplayBody)); off by
    /// default.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config().write_timeout = timeout;
        self
    }

    /// Fails a response body that goes quiet for this long (a typed
    /// `body_idle` timeout at the body stage); off by default.
    pub fn body_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config().body_idle_timeout = timeout;
        self
    }

    /// Bounds the time spent reading a failure body to classify it
    /// (default 2 s).
    pub fn peek_timeout(mut self, timeout: Duration) -> Self {
        self.config().peek_timeout = timeout;
        self
    }

    /// Sends the data of every event to `observer` as values. Called again,
    /// it adds another: each observer sees every event, in the order they
    /// were added (metrics and an audit log side by side).
    ///
    /// ```
    /// use tower_triage::{Observer, TriageLayer};
    ///
    /// struct Metrics;
    /// impl Observer for Metrics {}
    /// struct Audit;
    /// impl Observer for Audit {}
    ///
    /// let layer = TriageLayer::new().observer(Metrics).observer(Audit);
    /// # let _ = layer;
    /// ```
    pub fn observer(mut self, observer: impl Observer) -> Self {
        let added: Arc<dyn Observer> = Arc::new(observer);
        let config = self.config();
        config.observer = Some(match config.observer.take() {
            None => added,
            Some(before) => Arc::new(crate::observer::FanOut([before, added])),
        });
        self
    }

    /// Sets the route breaker (on by default; see [`Breaker`]). Clones of
    /// the layer share the state of its routes.
    pub fn breaker(mut self, breaker: Breaker) -> Self {
        self.config().breaker = breaker;
        self
    }

    /// Sets the diagnosis window (on by default: 10 failures or 5 minutes
    /// of detail after a route's first connection failure; see
    /// [`DiagnosisWindow`]).
    pub fn diagnosis_window(mut self, window: DiagnosisWindow) -> Self {
        self.config().window = window;
        self
    }

    /// Limits the calls in flight to one route (scheme, host and port) to
    /// `per_host`, from the first attempt until the response body ends; a
    /// call that waits longer than `timeout` for a slot fails with a typed
    /// `pool` timeout (openai-python's `Timeout(pool=...)`). Off by default.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_triage::TriageLayer;
    ///
    /// let layer = TriageLayer::new().pool(16, Some(Duration::from_secs(5)));
    /// # let _ = layer;
    /// ```
    pub fn pool(mut self, per_host: usize, timeout: Option<Duration>) -> Self {
        self.config().pool = Some(Pool {
            per_host: per_host.max(1),
            timeout,
            slots: Arc::default(),
        });
        self
    }

    /// Which requests get an idempotency key minted by the layer (see
    /// [`IdempotencyKeys`]; by default, those to an API whose profile names
    /// a key header: Stripe's). A POST or PATCH that carries a key, minted
    /// or the caller's, is retried after an ambiguous failure (a 500, a 502
    /// or 504, a connection lost after sending), with the same key on
    /// every attempt; without one it is not.
    ///
    /// ```
    /// use http::HeaderName;
    /// use tower_triage::{IdempotencyKeys, TriageLayer};
    ///
    /// let layer = TriageLayer::new()
    ///     .idempotency_keys(IdempotencyKeys::Header(HeaderName::from_static("idempotency-key")));
    /// # let _ = layer;
    /// ```
    pub fn idempotency_keys(mut self, keys: IdempotencyKeys) -> Self {
        self.config().idempotency = keys;
        self
    }

    /// Pacing (on by default): once an answer says a rate window of its
    /// route is used up (a `remaining` of 0 with a reset, in the profile's
    /// `x-ratelimit-*` / `anthropic-ratelimit-*` headers or the IETF
    /// `RateLimit` field), or a rate limit asks to wait (`Retry-After`,
    /// `retry-after-ms`), the next requests on that route wait for the
    /// reset instead of being sent to be refused. Requests and tokens are
    /// separate windows where the profile tells them apart. Waits longer
    /// than the rules' cap on honoured waits (120 s by default) are not
    /// paced. A request whose total deadline ends before the reset fails
    /// at once, unsent, with `Stop::RateWindowClosed` and its packet.
    /// Clones of the layer share what they learn; memory is bounded like
    /// the route breaker's.
    ///
    /// ```
    /// use tower_triage::TriageLayer;
    ///
    /// // Every request is sent when it comes, whatever the windows say.
    /// let layer = TriageLayer::new().pacing(false);
    /// # let _ = layer;
    /// ```
    pub fn pacing(mut self, on: bool) -> Self {
        self.config().pacing = on;
        self
    }

    /// The commit point of streamed answers (on by default). For a success
    /// whose `Content-Type` is a stream of events (server-sent events,
    /// JSON lines), the layer holds the start of the stream until its
    /// first event is whole (at most 16 KiB; a longer first event commits
    /// the response as it is), inside the attempt. Until then a failure is
    /// the attempt's, retried under the usual rules and idempotency gate:
    /// an error event first (Anthropic's `event: error` with
    /// `overloaded_error`, OpenAI's error object), no first event within
    /// the [first-byte timeout](Self::first_byte_timeout), a reset. Then
    /// the response goes to the caller, first event first; a healthy
    /// stream's first byte waits only for its first event to arrive. After
    /// that nothing is retried: a later error event is reported (a WARN
    /// event, [`BodyOutcome::StreamError`](crate::BodyOutcome::StreamError),
    /// [`ResponseBody::stream_error`](crate::ResponseBody::stream_error)
    /// with its packet) and delivered like any other. `false` hands streams
    /// over at their head, as other responses.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_triage::TriageLayer;
    ///
    /// let layer = TriageLayer::new()
    ///     .first_byte_timeout(Some(Duration::from_secs(30)))
    ///     .body_idle_timeout(Some(Duration::from_secs(60)));
    /// # let _ = layer;
    /// ```
    pub fn stream_first_event(mut self, hold: bool) -> Self {
        self.config().stream_first_event = hold;
        self
    }

    /// Time to first byte of a streamed answer (`None`, the default: no
    /// limit): after its head, the first event must start within it, or
    /// the attempt fails with a `first_byte` timeout at stage `body`, before
    /// the commit point (so it is retried under the usual rules). Between
    /// events, [`body_idle_timeout`](Self::body_idle_timeout) applies.
    pub fn first_byte_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config().first_byte_timeout = timeout;
        self
    }

    /// Quota stops: once an answer says the account's quota is used up
    /// (owner `quota`: OpenAI's `insufficient_quota`, Anthropic's
    /// `credit_balance_exhausted`, a spend limit, a daily quota), the
    /// route's next requests fail at once, unsent, with
    /// `Stop::QuotaStopped` and a packet, for `stop` or the wait the answer
    /// asked, whichever is shorter. Off by default (`None`): a quota is an
    /// account's, and a route may carry several accounts' requests; turn it
    /// on where one route is one account, and share the stops across
    /// replicas with [`share`](Self::share).
    pub fn quota_stops(mut self, stop: Option<Duration>) -> Self {
        self.config().quota_stop = stop.filter(|stop| !stop.is_zero());
        self
    }

    /// Shares the rate windows this layer learns (see [`pacing`](Self::pacing))
    /// and its quota stops (see [`quota_stops`](Self::quota_stops)) with
    /// other replicas, and brings theirs in: a [`Share`], such as the
    /// `triage-fleet` crate's over Redis or Valkey. Lookups read the
    /// layer's own state only; publishing is queued by the share, so a
    /// coordinator that is slow or down never delays a call.
    ///
    /// Set it last, after [`rules`](Self::rules), [`pacing`](Self::pacing)
    /// and [`quota_stops`](Self::quota_stops): what comes from elsewhere is
    /// taken as they say (a window that reopens later than the rules' cap
    /// on honoured waits is ignored, a quota stop is cut to this layer's
    /// length, and neither is taken where this layer does not learn it).
    pub fn share(mut self, share: impl Share) -> Self {
        let config = self.config();
        let inbox = Inbox::new(&config.paces, config.learn(&config.rules));
        share.attach(inbox);
        self.config().share = Some(Arc::new(share));
        self
    }

    /// Turns a final failure status into an error (as the official SDKs do)
    /// instead of handing the response back.
    pub fn errors_for_status(mut self, yes: bool) -> Self {
        self.config().errors_for_status = yes;
        self
    }

    /// Whole-body mode, with a cap in bytes (`None`, the default, or
    /// `Some(0)`: off). [`DEFAULT_WHOLE_BODY_CAP`] (1 MiB) is the value to
    /// pass when in doubt.
    ///
    /// When on, a response with a status from 200 to 399 whose declared
    /// size (size hint, else `Content-Length`) fits the cap and whose
    /// `Content-Type` is not a streaming one (server-sent events, JSON
    /// lines, gRPC, ...) is read to its end inside the attempt, bounded by
    /// the attempt timeout and the body idle timeout. A reset, a truncation
    /// or a stall while reading is then that attempt's failure at the
    /// `body` stage, retried under the same rules and idempotency gate as
    /// any other (a body failure means the request was processed: a POST
    /// is resent only with an `Idempotency-Key` or a replay-safe profile),
    /// and the partial bytes are dropped, never handed on. On success the
    /// body comes as one frame (then its trailers), `Content-Length` still
    /// valid.
    ///
    /// A body of unknown size that grows past the cap is not buffered
    /// further: what was read comes first, then the rest of the stream.
    /// Larger and streaming bodies stream as with the mode off. At most
    /// `cap` bytes are buffered per call. [`RequestOptions::whole_body`](crate::RequestOptions::whole_body)
    /// overrides it per request; [`Report::body_mode`](crate::Report::body_mode)
    /// and the events' `body_mode` field say which mode applied.
    ///
    /// ```
    /// use tower_triage::{DEFAULT_WHOLE_BODY_CAP, TriageLayer};
    ///
    /// let layer = TriageLayer::new().whole_body(Some(DEFAULT_WHOLE_BODY_CAP));
    /// # let _ = layer;
    /// ```
    pub fn whole_body(mut self, cap: Option<u64>) -> Self {
        self.config().whole_body = whole_body::cap(cap);
        self
    }
}
