//! [`ResponseFuture`]: one call, attempt by attempt.

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tower::Service;
use triage_core::redact::Fingerprint;
use triage_core::{
    AttemptContext, BodyProgress, BoxError, Decision, Diagnosis, Error, Evidence, Fault,
    PacketBuilder, Profile, RetryRules, Stage, Stop, TimeoutPhase, TransportFailure, classify,
};

use crate::body::TryCloneBody;
use crate::breaker::{Admit, Breaker, connection_failure, route_of};
use crate::capture::{self, Capture, ConnectionLog};
use crate::events;
use crate::layer::{Config, PEEK_LIMIT};
use crate::observer::{AttemptInfo, Outcome, RouteEvent};
use crate::options::RequestOptions;
use crate::report::{ProfileRef, Report};
use crate::response_body::ResponseBody;
use crate::transport::{SharedConnectError, TimeoutError, classify_error, watch_connect};
use crate::whole_body::{self, BodyMode, Read, Whole};

/// The request's method, from the kept head.
macro_rules! method {
    ($this:ident) => {
        $this.head.method()
    };
}

/// The request's URI, likewise.
macro_rules! uri {
    ($this:ident) => {
        $this.head.uri()
    };
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        /// Waiting for the service to be ready for another attempt.
        Ready,
        /// An attempt is in flight.
        Calling { #[pin] future: F },
        /// A failure status came back; reading its body to learn why.
        Peeking {
            status: StatusCode,
            parts: Option<Box<http::response::Parts>>,
            body: Option<Pin<Box<R>>>,
            buf: BytesMut,
            ended: bool,
        },
        /// Whole-body mode: a success came back; reading all of its body
        /// inside the attempt.
        Buffering { whole: Option<Box<Whole<R>>> },
        /// Waiting before the next attempt.
        Waiting,
        /// Refused by an open route: the error goes out at the first poll.
        Refused { error: Option<Box<Error>> },
        /// The verification probe of an open route is out; the request
        /// waits for its answer.
        Probing { #[pin] future: F },
        /// Waiting for a slot of the route's pool (`TriageLayer::pool`).
        Acquiring { acquire: Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>> },
        /// Finished.
        Done,
    }
}

pin_project! {
    /// The future of a [`Triage`](crate::Triage) call.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, R>,
        // Timers and the packet are boxed: they exist only when a timeout is
        // set or an attempt failed, and keep the future small otherwise.
        timer: Option<Pin<Box<Sleep>>>,
        deadline: Option<Pin<Box<Sleep>>>,
        deadline_at: Option<Instant>,
        rules: Option<Box<RetryRules>>,
        attempt_timeout: Option<Duration>,
        body_idle_timeout: Option<Duration>,
        // The write timeout and its timer (boxed: only when one is set).
        write: Option<Box<WriteWatch>>,
        // The connect timeout's timer, armed while a tagged connector says
        // the attempt is connecting.
        connect_timer: Option<Pin<Box<Sleep>>>,
        connect_timeout: Option<Duration>,
        // Whole-body mode's cap (`None`: off).
        whole_body: Option<NonZeroU64>,
        service: S,
        // The request's head: whole when a retry can re-send it (a copy of
        // the body was made), otherwise method and URI only.
        head: Request<()>,
        body: Option<B>,
        next: Option<B>,
        profile: ProfileRef,
        config: Arc<Config>,
        attempt: u32,
        started: Instant,
        attempt_started: Instant,
        // The route breaker applies to this request.
        breaker_on: bool,
        // The diagnosis window applies to this request.
        window_on: bool,
        // This request is the probe of its open route (its body type
        // cannot make an empty body for a probe of its own).
        trial: bool,
        // The request waiting for the probe's answer, or for a pool slot.
        held: Option<Box<Request<B>>>,
        // The pool slot held from the first attempt to the body's end.
        permit: Option<OwnedSemaphorePermit>,
        // The connection stage the attempt was still at when last polled
        // (known with the `connect` module's tagged connectors only).
        connecting: Option<Stage>,
        // What the attempt's connection showed, while its route's
        // diagnosis window is open.
        capture: Option<Box<Capture>>,
        // Where every attempt's capture goes, when the request asked for
        // a connection log.
        log: Option<ConnectionLog>,
        // Fingerprints of the sensitive header values, when the head was
        // not kept (no retries): a failure's packet and events are scrubbed
        // of them without a copy.
        prints: [Fingerprint; PRINTS],
        packet: Option<Box<PacketBuilder>>,
    }

    impl<S, B, R> PinnedDrop for ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if *this.trial || this.held.is_some() {
                // The probe's answer will not come: another request may probe.
                if let StateProj::Probing { .. } | StateProj::Calling { .. } = this.state.as_mut().project() {
                    this.config.routes.probe_abandoned(&route_of(this.head.uri()));
                }
            }
            let stage = match this.state.project() {
                StateProj::Done | StateProj::Refused { .. } => return,
                StateProj::Probing { .. } | StateProj::Acquiring { .. } => Some(Stage::Connect),
                StateProj::Calling { .. } => Some(this.connecting.unwrap_or(Stage::AwaitHeaders)),
                StateProj::Ready => Some(Stage::AwaitHeaders),
                StateProj::Peeking { .. } | StateProj::Buffering { .. } => Some(Stage::Body),
                // Between attempts: no stage was in progress.
                StateProj::Waiting => None,
            };
            // Dropped before it finished: the caller cancelled.
            events::cancelled(method!(this), uri!(this), *this.attempt, stage, this.started.elapsed());
            if let Some(observer) = &this.config.observer {
                observer.on_outcome(&Outcome::Cancelled { attempts: *this.attempt, stage });
            }
        }
    }
}

impl<S, B, R> std::fmt::Debug for ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("method", self.head.method())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(0x7269_6167_6500_u64) | 1
    });
}

/// A uniform sample in `[0, 1)` for the backoff jitter (xorshift64*).
fn random() -> f64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The error for an inner service that failed to become ready.
pub(crate) fn readiness_error(error: BoxError) -> Error {
    let failure = TransportFailure::new(Stage::Connect, Fault::Unknown);
    let evidence = Evidence::from_transport(failure);
    let profile = Profile::generic();
    let diagnosis = classify(&evidence, profile);
    let stop = Stop::NotRetryable(triage_core::Owner::ConnectionPath);
    let packet = PacketBuilder::new(&Method::GET, &Uri::default(), profile, SystemTime::now())
        .attempt(&evidence, &diagnosis, &Decision::Stop(stop))
        .error(&*error)
        .finish(Duration::ZERO);
    Error::new(diagnosis, stop, &evidence, packet, Some(error))
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    pub(crate) fn new(mut service: S, request: Request<B>, config: Arc<Config>) -> Self {
        let options = request.extensions().get::<RequestOptions>();
        let profile = match options
            .and_then(|o| o.profile.as_ref())
            .or(config.profile.as_ref())
        {
            Some(p) => ProfileRef::Shared(Arc::clone(p)),
            None => ProfileRef::Static(Profile::detect(host_of(request.uri()))),
        };
        let rules = options.and_then(|o| {
            (o.max_retries.is_some() || o.deadline.is_some()).then(|| {
                let mut rules = config.rules.clone();
                if let Some(n) = o.max_retries {
                    rules = rules.max_retries(n);
                }
                if let Some(deadline) = o.deadline {
                    rules = rules.deadline(deadline);
                }
                Box::new(rules)
            })
        });
        let write_timeout = options
            .and_then(|o| o.write_timeout)
            .unwrap_or(config.write_timeout);
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(config.connect_timeout);
        let attempt_timeout = options
            .and_then(|o| o.attempt_timeout)
            .unwrap_or(config.attempt_timeout);
        let body_idle_timeout = options
            .and_then(|o| o.body_idle_timeout)
            .unwrap_or(config.body_idle_timeout);
        let whole_body = options
            .and_then(|o| o.whole_body)
            .unwrap_or(config.whole_body);
        let retries = rules.as_deref().unwrap_or(&config.rules).retries();
        let total = rules.as_deref().unwrap_or(&config.rules).total_deadline();
        let now = Instant::now();
        let breaker_on = config.breaker.enabled && options.and_then(|o| o.breaker).unwrap_or(true);
        let window_on = config.window.enabled && options.and_then(|o| o.window).unwrap_or(true);
        let log = options.and_then(|o| o.log.clone());
        // One atomic load while no route has a failure on record.
        let any_route = config.routes.any();
        let admit = if breaker_on && any_route {
            config.routes.admit(&route_of(request.uri()), now)
        } else {
            Admit::Pass
        };
        if !matches!(admit, Admit::Refuse(_)) {
            config.budget.deposit(now.into_std());
        }
        let (parts, body) = request.into_parts();
        // Keep a copy of the request for retries, when retries are on and the
        // body can be copied; otherwise send the original.
        // A write timeout watches the body being sent through the kept
        // original, so it keeps one even without retries.
        let copy = (retries > 0 || write_timeout.is_some())
            .then(|| body.try_clone_body())
            .flatten();
        // The head keeps what the events and the packet name (no
        // allocation: the URI's parts are shared) and, when a copy of the
        // body was made, the whole head to send again.
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        let mut prints = [Fingerprint::default(); PRINTS];
        let (template, send) = match copy {
            Some(copy) => {
                // Keep a copy of the head and send the original: the inner
                // client adds its own headers (`host`, ...) to the map it
                // gets, and the original has room for them, a fresh copy
                // has none.
                *head.version_mut() = parts.version;
                *head.headers_mut() = parts.headers.clone();
                *head.extensions_mut() = parts.extensions.clone();
                (Some(body), Request::from_parts(parts, copy))
            }
            None => {
                if !parts.headers.is_empty() {
                    prints = Fingerprint::of_headers(&parts.headers);
                }
                (None, Request::from_parts(parts, body))
            }
        };
        // A slot of the route's pool, when the layer limits them.
        let mut permit = None;
        let slots = match (&admit, &config.pool) {
            (Admit::Pass, Some(pool)) => {
                let slots = pool.slots(&route_of(head.uri()));
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        permit = Some(slot);
                        None
                    }
                    Err(_) => Some(slots),
                }
            }
            _ => None,
        };
        let (state, held, trial, attempt) = match admit {
            Admit::Pass => match slots {
                None => (
                    State::Calling {
                        future: service.call(send),
                    },
                    None,
                    false,
                    1,
                ),
                Some(slots) => (
                    State::Acquiring {
                        acquire: Box::pin(slots.acquire_owned()),
                    },
                    Some(Box::new(send)),
                    false,
                    0,
                ),
            },
            Admit::Refuse(error) => (State::Refused { error: Some(error) }, None, false, 0),
            Admit::Probe => match B::empty() {
                Some(empty) => {
                    let probe = probe_request(&head, &config.breaker, empty);
                    let future = service.call(probe);
                    (State::Probing { future }, Some(Box::new(send)), false, 0)
                }
                // No empty body of this type: the request is the probe.
                None => (
                    State::Calling {
                        future: service.call(send),
                    },
                    None,
                    true,
                    1,
                ),
            },
        };
        // The first attempt (or the probe) is watched when its route has an
        // open diagnosis window.
        let capture = match &state {
            // (No route with a failure on record: nothing to look up.)
            State::Calling { .. } | State::Probing { .. } if any_route || log.is_some() => watch(
                (window_on, log.is_some()),
                &config,
                head.uri(),
                now,
                if held.is_some() { 0 } else { attempt },
            ),
            _ => None,
        };
        ResponseFuture {
            state,
            timer: None,
            deadline: None,
            deadline_at: total.and_then(|d| now.checked_add(d)),
            rules,
            attempt_timeout,
            body_idle_timeout,
            write: write_timeout.map(|limit| Box::new(WriteWatch { limit, timer: None })),
            connect_timer: None,
            connect_timeout,
            whole_body,
            service,
            head,
            body: template,
            next: None,
            profile,
            config,
            attempt,
            started: now,
            attempt_started: now,
            breaker_on,
            window_on,
            trial,
            held,
            permit,
            connecting: None,
            capture,
            log,
            prints,
            packet: None,
        }
    }
}

/// How many fingerprints of sensitive header values a future keeps when
/// it keeps no head (two headers, each with its last word).
const PRINTS: usize = 4;

/// A capture for attempt `attempt` (0: a probe) on `uri`'s route, when the
/// request keeps a connection log (`logged`), or when the route has an open
/// diagnosis window (one atomic load while no route has a failure on
/// record) for a request the window applies to (`on`).
fn watch(
    (on, logged): (bool, bool),
    config: &Config,
    uri: &Uri,
    now: Instant,
    attempt: u32,
) -> Option<Box<Capture>> {
    (logged || (on && config.routes.any() && config.routes.watching(&route_of(uri), now)))
        .then(|| Capture::new(attempt))
}

/// Disarms `timer` (a branch inline: assigning `None` calls the drop glue
/// out of line even when nothing is armed, on every call).
#[inline]
fn clear(timer: &mut Option<Pin<Box<Sleep>>>) {
    if timer.is_some() {
        *timer = None;
    }
}

/// Whether `timer` is set and has fired (registering the wake-up if not).
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    timer
        .as_mut()
        .is_some_and(|t| t.as_mut().poll(cx).is_ready())
}

/// The write timeout of a call: a request body that makes no progress
/// for `limit` while it is being sent fails the attempt.
#[derive(Debug)]
struct WriteWatch {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl WriteWatch {
    /// Whether the body being sent (watched through the kept original,
    /// `body`) has made no progress for the limit; otherwise arms the timer
    /// for the moment it would have.
    fn stalled<B: TryCloneBody>(&mut self, body: &B, cx: &mut Context<'_>) -> bool {
        let now = Instant::now();
        // The client sends the body from its own task: nothing wakes this
        // future when a frame goes, so the timer brings it back to look.
        let due = match (body.fully_sent(), body.last_progress()) {
            (Some(false), Some(progress)) => {
                let due = Instant::from_std(progress) + self.limit;
                if now >= due {
                    return true;
                }
                due
            }
            // Not started yet (connecting, or the head is going): look
            // again later.
            (Some(false), None) => now + self.limit,
            // Sent, or a body that cannot tell: nothing to watch.
            _ => {
                self.timer = None;
                return false;
            }
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        // Registers the wake-up; it cannot be due yet.
        let _ = timer.as_mut().poll(cx);
        false
    }
}

/// The verification probe of `head`'s route: the breaker's method and
/// path on the same scheme and authority, with an empty body.
fn probe_request<B>(head: &Request<()>, breaker: &Breaker, body: B) -> Request<B> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = head.uri().scheme().cloned();
    parts.authority = head.uri().authority().cloned();
    parts.path_and_query = Some(breaker.probe_path.clone());
    let uri = Uri::from_parts(parts).unwrap_or_else(|_| head.uri().clone());
    let mut request = Request::new(body);
    *request.method_mut() = breaker.probe_method.clone();
    *request.uri_mut() = uri;
    request
}

/// The URI's host, without user info or port (`Uri::host` parses more
/// carefully and costs several times as much; profile detection needs no
/// more than this).
fn host_of(uri: &Uri) -> &str {
    let Some(authority) = uri.authority() else {
        return "";
    };
    let a = authority.as_str();
    // One pass from the end: the last ':' outside an IP literal ends the
    // host, an '@' starts it. All three are ASCII, so every cut falls on a
    // character boundary.
    let mut end = a.len();
    let mut port_seen = false;
    for (i, &b) in a.as_bytes().iter().enumerate().rev() {
        match b {
            b'@' => return &a[i + 1..end],
            b':' if !port_seen => {
                end = i;
                port_seen = true;
            }
            b']' => port_seen = true,
            _ => {}
        }
    }
    &a[..end]
}

const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// The wall clock, read only when the profile writes absolute reset times
/// (a success's evidence uses it for nothing else).
fn wall_clock_for(profile: &Profile) -> SystemTime {
    match profile.reset_format() {
        triage_core::ResetFormat::GoDuration | triage_core::ResetFormat::DeltaSeconds => {
            SystemTime::UNIX_EPOCH
        }
        _ => SystemTime::now(),
    }
}

fn with_body<B>(head: &Request<()>, body: B) -> Request<B> {
    let (parts, ()) = head.clone().into_parts();
    Request::from_parts(parts, body)
}

/// What an attempt ended with, once judged.
// A value of a moment, moved once: boxing the response would cost an
// allocation on every call.
#[allow(clippy::large_enum_variant)]
enum Next<R> {
    Retry(Duration),
    Respond(Response<ResponseBody<R>>),
    Fail(Error),
}

impl<S, B, R> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
    R: Body,
    R::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<R>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(at) = *this.deadline_at {
            if this.deadline.is_none() {
                *this.deadline = Some(Box::pin(tokio::time::sleep_until(at)));
            }
            let passed = this
                .deadline
                .as_mut()
                .map(|t| t.as_mut())
                .is_some_and(|d| d.poll(cx).is_ready());
            if passed && !matches!(this.state.as_mut().project(), StateProj::Done) {
                let limit = this.started.elapsed();
                // A body being read whole: judged with the head that came
                // back and the bytes read, like any other failure of it.
                let whole = match this.state.as_mut().project() {
                    StateProj::Buffering { whole } => whole.take(),
                    _ => None,
                };
                let stage = match this.state.as_mut().project() {
                    StateProj::Peeking { .. } | StateProj::Buffering { .. } => Stage::Body,
                    StateProj::Calling { .. } => this.connecting.unwrap_or(Stage::AwaitHeaders),
                    _ => Stage::AwaitHeaders,
                };
                this.state.set(State::Done);
                clear(this.timer);
                let judged = match whole {
                    Some(whole) => read_whole(&mut this, *whole, Some(Read::Deadline(limit))),
                    None => judge_timeout(&mut this, stage, TimeoutPhase::Total, limit),
                };
                return Poll::Ready(match judged {
                    Next::Fail(error) => Err(error),
                    Next::Respond(response) => Ok(response),
                    // The total deadline is never retried.
                    Next::Retry(_) => Err(readiness_error("deadline passed".into())),
                });
            }
        }
        loop {
            let outcome = match this.state.as_mut().project() {
                StateProj::Ready => {
                    if let Err(e) = ready!(this.service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(readiness_error(e.into())));
                    }
                    let request = match (this.held.take(), this.next.take()) {
                        // The request that waited for its route's probe.
                        (Some(held), _) => *held,
                        (None, Some(body)) => with_body(this.head, body),
                        (None, None) => {
                            // Unreachable: a retry is only decided with a copy in hand.
                            this.state.set(State::Done);
                            return Poll::Ready(Err(readiness_error(
                                "request could not be copied".into(),
                            )));
                        }
                    };
                    let future = this.service.call(request);
                    *this.attempt += 1;
                    *this.attempt_started = Instant::now();
                    *this.capture = watch(
                        (*this.window_on, this.log.is_some()),
                        this.config,
                        uri!(this),
                        *this.attempt_started,
                        *this.attempt,
                    );
                    *this.connecting = None;
                    if let Some(watch) = this.write.as_deref_mut() {
                        watch.timer = None;
                    }
                    clear(this.timer);
                    clear(this.connect_timer);
                    this.state.set(State::Calling { future });
                    continue;
                }
                StateProj::Calling { future } => {
                    if this.timer.is_none() {
                        if let Some(limit) = *this.attempt_timeout {
                            *this.timer = Some(Box::pin(sleep(limit)));
                        }
                    }
                    let timed_out = match this.timer.as_mut().map(|t| t.as_mut()) {
                        Some(timer) => timer.poll(cx).is_ready(),
                        None => false,
                    };
                    let write_stalled = match (this.write.as_deref_mut(), this.body.as_ref()) {
                        (Some(watch), Some(body)) => watch.stalled(body, cx),
                        _ => false,
                    };
                    // Armed only while connecting (see below).
                    let connect_stalled =
                        this.connecting.is_some() && expired(this.connect_timer, cx);
                    if write_stalled && !timed_out {
                        let limit = this.write.as_ref().map(|w| w.limit).unwrap_or_default();
                        this.state.set(State::Done);
                        clear(this.timer);
                        if let Some(watch) = this.write.as_deref_mut() {
                            watch.timer = None;
                        }
                        judge_timeout(&mut this, Stage::Write, TimeoutPhase::Write, limit)
                    } else if timed_out || connect_stalled {
                        let limit = match (connect_stalled, *this.connect_timeout) {
                            (true, Some(limit)) => limit,
                            _ => this.attempt_timeout.unwrap_or_default(),
                        };
                        // Still connecting (a tagged connector said so): the
                        // request never left, and the connection path is
                        // what was slow.
                        let (stage, phase) = match *this.connecting {
                            Some(stage) => (stage, TimeoutPhase::Connect),
                            None => (Stage::AwaitHeaders, TimeoutPhase::Headers),
                        };
                        this.state.set(State::Done);
                        clear(this.timer);
                        clear(this.connect_timer);
                        judge_timeout(&mut this, stage, phase, limit)
                    } else {
                        let (polled, connecting) =
                            capture::scope(this.capture, || watch_connect(|| future.poll(cx)));
                        *this.connecting = connecting;
                        match polled {
                            Poll::Pending => {
                                match (connecting, *this.connect_timeout) {
                                    (Some(_), Some(limit)) => {
                                        let due = *this.attempt_started + limit;
                                        let timer = this
                                            .connect_timer
                                            .get_or_insert_with(|| Box::pin(sleep_until(due)));
                                        if timer.as_mut().poll(cx).is_ready() {
                                            // Judged at the top of the loop.
                                            continue;
                                        }
                                    }
                                    _ => *this.connect_timer = None,
                                }
                                return Poll::Pending;
                            }
                            Poll::Ready(Err(e)) => {
                                this.state.set(State::Done);
                                clear(this.timer);
                                clear(this.connect_timer);
                                let e: BoxError = e.into();
                                // Without a body that knows, a failure after the
                                // connection is judged as awaiting the head.
                                let sent = this
                                    .body
                                    .as_ref()
                                    .and_then(TryCloneBody::fully_sent)
                                    .unwrap_or(true);
                                let failure = classify_error(&*e, sent, connecting);
                                let (failure, e) = shared_connect(&this, failure, e);
                                judge_transport(&mut this, failure, e)
                            }
                            Poll::Ready(Ok(response)) => {
                                clear(this.connect_timer);
                                // The far side answered: the connection
                                // log keeps what was captured; a window
                                // has nothing to count.
                                if let Some(capture) = this.capture.take() {
                                    if let Some(log) = this.log.as_ref() {
                                        log.push(capture.into_detail());
                                    }
                                }
                                let status = response.status();
                                if status.as_u16() < 400 {
                                    let plan = this.whole_body.and_then(|cap| {
                                        let (head, body) = (response.headers(), response.body());
                                        whole_body::plan(status, head, body, cap)
                                            .map(|reserve| (cap, reserve))
                                    });
                                    let (parts, body) = response.into_parts();
                                    if let Some((cap, reserve)) = plan {
                                        // The attempt timer runs on: it
                                        // bounds the body's read too.
                                        let idle = *this.body_idle_timeout;
                                        let whole = Whole::new(parts, body, cap, reserve, idle);
                                        this.state.set(State::Buffering {
                                            whole: Some(Box::new(whole)),
                                        });
                                        continue;
                                    }
                                    clear(this.timer);
                                    this.state.set(State::Done);
                                    let observer = this.config.observer.clone();
                                    let body = ResponseBody::passthrough(body, observer);
                                    Next::Respond(success(&mut this, parts, body, BodyMode::Stream))
                                } else {
                                    clear(this.timer);
                                    let (parts, body) = response.into_parts();
                                    *this.timer = Some(Box::pin(sleep(this.config.peek_timeout)));
                                    this.state.set(State::Peeking {
                                        status,
                                        parts: Some(Box::new(parts)),
                                        body: Some(Box::pin(body)),
                                        buf: BytesMut::new(),
                                        ended: false,
                                    });
                                    continue;
                                }
                            }
                        }
                    }
                }
                StateProj::Peeking {
                    status,
                    parts,
                    body,
                    buf,
                    ended,
                } => {
                    let mut failed = false;
                    let mut timed_out = false;
                    while !*ended && buf.len() < PEEK_LIMIT {
                        let Some(stream) = body.as_mut() else { break };
                        match stream.as_mut().poll_frame(cx) {
                            Poll::Ready(Some(Ok(frame))) => {
                                if let Ok(mut data) = frame.into_data() {
                                    while data.has_remaining() {
                                        let chunk = data.chunk();
                                        buf.extend_from_slice(chunk);
                                        let n = chunk.len();
                                        data.advance(n);
                                    }
                                }
                            }
                            Poll::Ready(Some(Err(_))) => {
                                failed = true;
                                *ended = true;
                            }
                            Poll::Ready(None) => *ended = true,
                            Poll::Pending => {
                                if !expired(this.timer, cx) {
                                    return Poll::Pending;
                                }
                                timed_out = true;
                                break;
                            }
                        }
                    }
                    let status = *status;
                    let parts = parts.take();
                    let rest = if *ended { None } else { body.take() };
                    let seen = buf.split().freeze();
                    clear(this.timer);
                    this.state.set(State::Done);
                    let Some(parts) = parts else {
                        return Poll::Ready(Err(readiness_error("response lost".into())));
                    };
                    judge_failure_status(&mut this, status, *parts, seen, rest, failed, timed_out)
                }
                StateProj::Buffering { whole } => {
                    let read = match whole.as_deref_mut().map(|w| w.poll_read(cx)) {
                        Some(Poll::Ready(read)) => Some(read),
                        Some(Poll::Pending) => {
                            if !expired(this.timer, cx) {
                                return Poll::Pending;
                            }
                            // The attempt timeout, while reading the body.
                            None
                        }
                        None => None,
                    };
                    let whole = whole.take();
                    clear(this.timer);
                    this.state.set(State::Done);
                    let Some(whole) = whole else {
                        return Poll::Ready(Err(readiness_error("response lost".into())));
                    };
                    read_whole(&mut this, *whole, read)
                }
                StateProj::Waiting => {
                    if let Some(timer) = this.timer.as_mut().map(|t| t.as_mut()) {
                        ready!(timer.poll(cx));
                    }
                    clear(this.timer);
                    // The route may have opened while this request waited
                    // (another request's failure was proven permanent): the
                    // retry is refused like a new request.
                    if *this.breaker_on && this.config.routes.any() {
                        let route = route_of(uri!(this));
                        if let Some(refusal) = this.config.routes.refuse_retry(&route) {
                            let error = refused_retry(&mut this, refusal);
                            this.state.set(State::Refused { error: Some(error) });
                            continue;
                        }
                    }
                    this.state.set(State::Ready);
                    continue;
                }
                StateProj::Acquiring { acquire } => {
                    let limit = this.config.pool.as_ref().and_then(|p| p.timeout);
                    if this.timer.is_none() {
                        if let Some(limit) = limit {
                            *this.timer = Some(Box::pin(sleep(limit)));
                        }
                    }
                    if let Poll::Ready(slot) = acquire.as_mut().poll(cx) {
                        clear(this.timer);
                        // The semaphore is never closed.
                        *this.permit = slot.ok();
                        this.state.set(State::Ready);
                        continue;
                    }
                    if !expired(this.timer, cx) {
                        return Poll::Pending;
                    }
                    clear(this.timer);
                    this.state.set(State::Done);
                    *this.held = None;
                    *this.attempt = 1;
                    let limit = limit.unwrap_or_default();
                    judge_timeout(&mut this, Stage::Connect, TimeoutPhase::Pool, limit)
                }
                StateProj::Refused { error } => {
                    let error = error.take();
                    this.state.set(State::Done);
                    let Some(error) = error else {
                        panic!("ResponseFuture polled after completion");
                    };
                    events::route_refused(&route_of(this.head.uri()), error.packet());
                    if let Some(observer) = &this.config.observer {
                        observer.on_outcome(&Outcome::Failed {
                            packet: error.packet(),
                        });
                    }
                    return Poll::Ready(Err(*error));
                }
                StateProj::Probing { future } => {
                    let answer = ready!(capture::scope(this.capture, || future.poll(cx)));
                    let route = route_of(this.head.uri());
                    let now = Instant::now();
                    let capture = this.capture.take();
                    match answer {
                        // Any answer from the far side proves the path: the
                        // route closes, the waiting request goes ahead.
                        Ok(_) => {
                            this.config
                                .routes
                                .reached(&route, now, this.config.observer.as_ref());
                            this.state.set(State::Ready);
                        }
                        Err(e) => {
                            let e: BoxError = e.into();
                            let evidence =
                                Evidence::from_transport(classify_error(&*e, true, None));
                            let diagnosis = classify(&evidence, this.profile);
                            let routes = &this.config.routes;
                            let observer = this.config.observer.as_ref();
                            if let Some(detail) =
                                captured(routes, observer, &route, capture, &diagnosis, &e)
                            {
                                routes.note_probe(&route, detail);
                            }
                            routes.probe_failed(&route, now, random(), &this.config.breaker);
                            let event = RouteEvent::ProbeFailed {
                                route: &route,
                                diagnosis: &diagnosis,
                            };
                            events::route(this.config.observer.as_ref(), &event);
                            // The waiting request is refused like the others.
                            match routes.admit(&route, now) {
                                Admit::Refuse(error) => {
                                    this.state.set(State::Refused { error: Some(error) });
                                }
                                _ => this.state.set(State::Ready),
                            }
                        }
                    }
                    continue;
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            match outcome {
                Next::Retry(delay) => {
                    *this.timer = Some(Box::pin(sleep(delay)));
                    this.state.set(State::Waiting);
                }
                Next::Respond(response) => return Poll::Ready(Ok(response)),
                Next::Fail(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

type Projection<'a, S, B, R> = ResponseFutureProj<'a, S, B, R>;

/// Decides after an attempt: classification, the retry rules, the event,
/// and the packet of a failure.
fn decide<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    evidence: &Evidence,
    now: Instant,
    body_mode: Option<BodyMode>,
) -> (Diagnosis, Decision)
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let diagnosis = classify(evidence, this.profile);
    // A retry needs a fresh copy of the body; make it now, so that a body
    // that cannot be copied stops the request with that reason.
    let copy = if diagnosis.is_retryable() {
        this.body.as_ref().and_then(TryCloneBody::try_clone_body)
    } else {
        None
    };
    let decision = if diagnosis.is_success() {
        // What the rules answer first for any success, without their inputs.
        Decision::Stop(Stop::Success)
    } else {
        // Only a whole head is re-sent; a partial one has no headers.
        let idempotency_key = this.head.headers().contains_key(IDEMPOTENCY_KEY);
        let ctx = AttemptContext::new(*this.attempt, method!(this))
            .idempotency_key(idempotency_key)
            .replayable(copy.is_some())
            .elapsed(now.saturating_duration_since(*this.started))
            .random(random());
        let rules = this.rules.as_deref().unwrap_or(&this.config.rules);
        rules.decide(
            &diagnosis,
            evidence,
            this.profile,
            &ctx,
            &this.config.budget,
            now.into_std(),
        )
    };
    if decision.is_retry() {
        *this.next = copy;
    }
    events::attempt(
        method!(this),
        uri!(this),
        (this.head.headers(), this.prints),
        *this.attempt,
        evidence,
        &diagnosis,
        &decision,
        body_mode,
    );
    if let Some(observer) = &this.config.observer {
        observer.on_attempt(&AttemptInfo {
            method: method!(this),
            uri: uri!(this),
            attempt: *this.attempt,
            evidence,
            diagnosis: &diagnosis,
            decision: &decision,
            body_mode,
        });
    }
    if !diagnosis.is_success() || this.packet.is_some() {
        let packet = this.packet.get_or_insert_with(|| {
            Box::new({
                let started = SystemTime::now()
                    .checked_sub(this.started.elapsed())
                    .unwrap_or_else(SystemTime::now);
                // What the request carried, scrubbed from the packet by
                // exact value (its headers are here when a copy was kept
                // for retries, as by default; the URI always).
                let secrets = triage_core::redact::request_values(uri!(this), this.head.headers());
                let builder = PacketBuilder::new(method!(this), uri!(this), this.profile, started)
                    .version(concat!("tower-triage ", env!("CARGO_PKG_VERSION")))
                    .runtime("tokio")
                    .secrets(secrets)
                    .prints(this.prints);
                // An AI request names its model in a small JSON body: read
                // from the copy kept for retries, never anything else.
                let model = this
                    .profile
                    .model_in_body()
                    .then_some(this.body.as_ref())
                    .flatten()
                    .and_then(|body| body.in_memory(triage_core::body::MAX_MODEL_BODY))
                    .and_then(|bytes| triage_core::body::request_model(&bytes));
                match model {
                    Some(model) => builder.model(&model),
                    None => builder,
                }
            })
        });
        packet.push_attempt(evidence, &diagnosis, &decision);
    }
    (diagnosis, decision)
}

/// What the route breaker learns from an attempt: a status means the far
/// side was reached (a failure record ends, an open route closes); a
/// connection failure counts, and may open the route; the probe's failure
/// backs its next one off. `error` is the transport error, for the packet
/// a refused request gets.
fn breaker_record<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    evidence: &Evidence,
    diagnosis: &Diagnosis,
    error: Option<&BoxError>,
    now: Instant,
) where
    S: Service<Request<B>>,
{
    if !*this.breaker_on && !*this.window_on {
        return;
    }
    let window = this.window_on.then_some(&this.config.window);
    let routes = &this.config.routes;
    if evidence.status().is_some() {
        *this.trial = false;
        if routes.any() {
            routes.reached(&route_of(uri!(this)), now, this.config.observer.as_ref());
        }
        return;
    }
    let route = route_of(uri!(this));
    if std::mem::take(this.trial) {
        routes.probe_failed(&route, now, random(), &this.config.breaker);
        let event = RouteEvent::ProbeFailed {
            route: &route,
            diagnosis,
        };
        events::route(this.config.observer.as_ref(), &event);
        return;
    }
    let packet = || {
        let mut builder = this.packet.as_deref().cloned().unwrap_or_else(|| {
            PacketBuilder::new(method!(this), uri!(this), this.profile, SystemTime::now())
        });
        if let Some(error) = error {
            builder.set_error(&**error);
        }
        builder.finish(this.started.elapsed())
    };
    let breaker = &this.config.breaker;
    let recorded = routes.failed(
        &route,
        diagnosis,
        evidence,
        packet,
        now,
        this.breaker_on.then_some(breaker),
        window,
    );
    if recorded.opened {
        let event = RouteEvent::Opened {
            route: &route,
            diagnosis,
            probe_in: breaker.probe_initial,
        };
        events::route(this.config.observer.as_ref(), &event);
    }
    if recorded.window {
        let window = &this.config.window;
        events::window_opened(&route, window, diagnosis, error.map(|e| &**e as _));
    }
}

/// The detail of a watched attempt (or probe) on `route` that failed on
/// the connection path with `error`, counted against the route's window
/// and told as a DEBUG event; `None` when there is nothing to tell.
fn captured(
    routes: &crate::breaker::Routes,
    observer: Option<&Arc<dyn crate::Observer>>,
    route: &str,
    capture: Option<Box<Capture>>,
    diagnosis: &Diagnosis,
    error: &BoxError,
) -> Option<triage_core::Detail> {
    let capture = capture?;
    connection_failure(diagnosis)?;
    let (n, of) = routes.captured(route)?;
    let mut detail = capture.into_detail();
    detail.set_window(n, of);
    detail.set_error(&**error);
    events::route(
        observer,
        &RouteEvent::Detail {
            route,
            detail: &detail,
        },
    );
    Some(detail)
}

fn report<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    evidence: &Evidence,
    diagnosis: Diagnosis,
    body_mode: BodyMode,
) -> Report
where
    S: Service<Request<B>>,
{
    if let Some(observer) = &this.config.observer {
        observer.on_outcome(&Outcome::Response {
            attempts: *this.attempt,
            diagnosis: &diagnosis,
            body_mode,
        });
    }
    Report {
        attempts: *this.attempt,
        request_id: evidence.request_id().cloned(),
        rate: *evidence.rate(),
        diagnosis,
        packet: this
            .packet
            .take()
            .map(|p| Arc::new(p.finish(this.started.elapsed()))),
        body_mode,
    }
}

/// A success handed back: `body` as the caller gets it, read whole inside
/// the attempt or streaming (`body_mode`).
fn success<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    mut parts: http::response::Parts,
    body: ResponseBody<R>,
    body_mode: BodyMode,
) -> Response<ResponseBody<R>>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let body = body
        .with_idle_timeout(*this.body_idle_timeout)
        .with_permit(this.permit.take());
    // At the first attempt, with nothing failed before, the response says
    // all there is to say: the report is read from its head when asked
    // (`ReportExt`), and nothing goes into its extensions.
    let first = *this.attempt == 1 && this.packet.is_none();
    if first && this.config.observer.is_none() && !events::success_enabled() {
        // The happy path: no evidence read, no clock read, no allocation
        // (and, while no route has a failure on record, one atomic load).
        if *this.breaker_on && (*this.trial || this.config.routes.any()) {
            *this.trial = false;
            this.config.routes.reached(
                &route_of(uri!(this)),
                Instant::now(),
                this.config.observer.as_ref(),
            );
        }
        crate::report::mark(&mut parts.extensions, this.profile, body_mode);
        return Response::from_parts(parts, body.with_profile(this.profile.clone()));
    }
    let now = Instant::now();
    let mut evidence = success_evidence(this, &parts, now);
    if body_mode == BodyMode::Whole {
        evidence.set_body(BodyProgress::Complete(body.buffered_len()));
    }
    let (diagnosis, _) = decide(this, &evidence, now, Some(body_mode));
    breaker_record(this, &evidence, &diagnosis, None, now);
    let report = report(this, &evidence, diagnosis, body_mode);
    let body = if first {
        crate::report::mark(&mut parts.extensions, this.profile, body_mode);
        body.with_profile(this.profile.clone())
    } else {
        parts.extensions.insert(report);
        body
    };
    Response::from_parts(parts, body)
}

/// The end of a whole-body read: the response with its whole body (or,
/// past the cap, the prefix and the rest of the stream), or a failure of
/// this attempt at the body stage. `read` is `None` when the attempt
/// timeout fired.
fn read_whole<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    whole: Whole<R>,
    read: Option<Read>,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let bytes = whole.bytes();
    let observer = this.config.observer.clone();
    let (fault, error): (Fault, BoxError) = match read {
        Some(Read::Complete { data, trailers }) => {
            let (parts, _) = whole.into_parts();
            // The body has ended: its pool slot is free now.
            *this.permit = None;
            let body = ResponseBody::buffered(data, None, trailers, None, observer);
            return Next::Respond(success(this, parts, body, BodyMode::Whole));
        }
        Some(Read::Spilled { prefix, crossing }) => {
            let (parts, rest) = whole.into_parts();
            let body = ResponseBody::buffered(prefix, Some(crossing), None, Some(rest), observer);
            return Next::Respond(success(this, parts, body, BodyMode::Stream));
        }
        Some(Read::Failed(error)) => (classify_error(&*error, true, None).fault(), error),
        Some(Read::Idle(limit)) => timed_out(TimeoutPhase::BodyIdle, limit),
        Some(Read::Deadline(limit)) => timed_out(TimeoutPhase::Total, limit),
        None => timed_out(TimeoutPhase::Body, this.attempt_timeout.unwrap_or_default()),
    };
    // The head came back, then the body broke: the evidence keeps both,
    // and the partial bytes go with `whole`, never to the caller.
    let now = Instant::now();
    let mut evidence = success_evidence(this, &whole.parts, now);
    evidence.set_transport(TransportFailure::new(Stage::Body, fault));
    evidence.set_body(BodyProgress::Failed(bytes));
    drop(whole);
    judge_evidence(this, evidence, error, Some(BodyMode::Whole), now)
}

/// The evidence of a success status's head that arrived for the attempt
/// (the wall clock read only when the profile writes absolute resets).
fn success_evidence<S, B, R>(
    this: &Projection<'_, S, B, R>,
    parts: &http::response::Parts,
    now: Instant,
) -> Evidence
where
    S: Service<Request<B>>,
{
    Evidence::from_response(
        parts.status,
        &parts.headers,
        this.profile,
        wall_clock_for(this.profile),
    )
    .with_elapsed(now.saturating_duration_since(*this.attempt_started))
}

/// A timeout of `phase` after `limit`: its fault, and its typed error.
fn timed_out(phase: TimeoutPhase, limit: Duration) -> (Fault, BoxError) {
    (
        Fault::Timeout(phase),
        Box::new(TimeoutError::new(phase, limit)),
    )
}

/// The event and observer call of a call that fails with an error.
fn failed<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    packet: &triage_core::Packet,
    body_mode: Option<BodyMode>,
) where
    S: Service<Request<B>>,
{
    events::outcome(method!(this), uri!(this), packet, body_mode);
    if let Some(observer) = &this.config.observer {
        observer.on_outcome(&Outcome::Failed { packet });
    }
}

fn judge_transport<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    failure: TransportFailure,
    error: BoxError,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let now = Instant::now();
    let evidence = Evidence::from_transport(failure)
        .with_elapsed(now.saturating_duration_since(*this.attempt_started));
    judge_evidence(this, evidence, error, None, now)
}

/// The error of a request whose route opened while it waited to retry:
/// the diagnosis that opened the route, and this request's own packet (its
/// attempts so far), stopped by the route.
fn refused_retry<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    (diagnosis, evidence, opened, refused): (Diagnosis, Evidence, SystemTime, u64),
) -> Box<Error>
where
    S: Service<Request<B>>,
{
    let builder = this.packet.take().unwrap_or_else(|| {
        Box::new(PacketBuilder::new(
            method!(this),
            uri!(this),
            this.profile,
            SystemTime::now(),
        ))
    });
    let mut packet = builder.finish(this.started.elapsed());
    packet.stopped_by_route(opened, refused);
    Box::new(Error::new(
        diagnosis,
        Stop::RouteOpen,
        &evidence,
        packet,
        None,
    ))
}

/// An attempt whose connect failed in a way nothing recognises
/// (`connect: unknown`) may have waited for another request's connection:
/// hyper-util's pool shares one HTTP/2 connect among the requests to a
/// route, and tells the waiters only that their checkout was cancelled.
/// When this layer judged a failure of the connection on the same route
/// since this attempt started, that failure is this attempt's too, and the
/// error says so.
fn shared_connect<S, B, R>(
    this: &Projection<'_, S, B, R>,
    failure: TransportFailure,
    error: BoxError,
) -> (TransportFailure, BoxError)
where
    S: Service<Request<B>>,
{
    if failure != TransportFailure::new(Stage::Connect, Fault::Unknown) || !this.config.routes.any()
    {
        return (failure, error);
    }
    let route = route_of(uri!(this));
    match this
        .config
        .routes
        .shared_connect_failure(&route, *this.attempt_started)
    {
        Some(shared) => (shared, Box::new(SharedConnectError::new(shared, error))),
        None => (failure, error),
    }
}

/// A failed attempt with its `error`: retried, or the call's error.
fn judge_evidence<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    evidence: Evidence,
    error: BoxError,
    body_mode: Option<BodyMode>,
    now: Instant,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let (diagnosis, decision) = decide(this, &evidence, now, body_mode);
    if let Some(log) = this.log.as_ref() {
        // Every attempt of a logged request: in the log and the packet,
        // not counted against a window.
        if let Some(capture) = this.capture.take() {
            let mut detail = capture.into_detail();
            detail.set_error(&*error);
            log.push(detail.clone());
            if let Some(packet) = this.packet.as_deref_mut() {
                packet.push_detail(detail);
            }
        }
    } else if let Some(capture) = this.capture.take() {
        let route = route_of(uri!(this));
        let detail = captured(
            &this.config.routes,
            this.config.observer.as_ref(),
            &route,
            Some(capture),
            &diagnosis,
            &error,
        );
        if let (Some(detail), Some(packet)) = (detail, this.packet.as_deref_mut()) {
            packet.push_detail(detail);
        }
    }
    breaker_record(this, &evidence, &diagnosis, Some(&error), now);
    match decision {
        Decision::Retry(retry) => Next::Retry(retry.delay()),
        Decision::Stop(stop) => {
            let mut packet = this.packet.take().unwrap_or_else(|| {
                Box::new(PacketBuilder::new(
                    method!(this),
                    uri!(this),
                    this.profile,
                    SystemTime::now(),
                ))
            });
            packet.set_error(&*error);
            let packet = packet.finish(this.started.elapsed());
            failed(this, &packet, body_mode);
            Next::Fail(Error::new(diagnosis, stop, &evidence, packet, Some(error)))
        }
        _ => Next::Fail(readiness_error("unknown decision".into())),
    }
}

/// An attempt that ran out of its `limit` in `phase` at `stage`, judged
/// like any other transport failure.
fn judge_timeout<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    stage: Stage,
    phase: TimeoutPhase,
    limit: Duration,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let (fault, error) = timed_out(phase, limit);
    judge_transport(this, TransportFailure::new(stage, fault), error)
}

#[allow(clippy::too_many_arguments)]
fn judge_failure_status<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    status: StatusCode,
    parts: http::response::Parts,
    seen: Bytes,
    rest: Option<Pin<Box<R>>>,
    body_failed: bool,
    timed_out: bool,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    let mut evidence =
        Evidence::from_response(status, &parts.headers, this.profile, SystemTime::now())
            .with_elapsed(Instant::now().saturating_duration_since(*this.attempt_started));
    evidence.read_failure_body(&parts.headers, &seen);
    let bytes = seen.len() as u64;
    evidence.set_body(match (body_failed, rest.is_some() || timed_out) {
        (true, _) => BodyProgress::Failed(bytes),
        (false, true) => BodyProgress::Partial(bytes),
        (false, false) => BodyProgress::Complete(bytes),
    });
    let now = Instant::now();
    // A failure's body is peeked at, then handed on as a stream.
    let mode = BodyMode::Stream;
    let (diagnosis, decision) = decide(this, &evidence, now, Some(mode));
    breaker_record(this, &evidence, &diagnosis, None, now);
    match decision {
        Decision::Retry(retry) => Next::Retry(retry.delay()),
        Decision::Stop(stop) => {
            if this.config.errors_for_status {
                let packet = this
                    .packet
                    .take()
                    .map(|p| p.finish(this.started.elapsed()))
                    .unwrap_or_else(|| {
                        PacketBuilder::new(
                            method!(this),
                            uri!(this),
                            this.profile,
                            SystemTime::now(),
                        )
                        .finish(Duration::ZERO)
                    });
                failed(this, &packet, Some(mode));
                return Next::Fail(Error::new(diagnosis, stop, &evidence, packet, None));
            }
            let report = report(this, &evidence, diagnosis, mode);
            if let Some(packet) = report.packet() {
                events::outcome(method!(this), uri!(this), packet, Some(mode));
            }
            // Every byte is handed back, so Content-Length still holds.
            let mut response = Response::from_parts(
                parts,
                ResponseBody::peeked(seen, rest, this.config.observer.clone())
                    .with_idle_timeout(*this.body_idle_timeout)
                    .with_permit(this.permit.take()),
            );
            response.extensions_mut().insert(report);
            Next::Respond(response)
        }
        _ => Next::Fail(readiness_error("unknown decision".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_agrees_with_uri_host() {
        for uri in [
            "https://api.openai.com/v1/models",
            "https://API.OpenAI.com:443/v1",
            "http://user:pw@api.anthropic.com:8080/x",
            "http://127.0.0.1:9/",
            "http://svc.test/",
            "/relative/only",
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(host_of(&uri), uri.host().unwrap_or(""), "{uri}");
        }
        // IP literals keep their brackets; they match no built-in profile.
        for literal in [
            "http://[::1]:8080/",
            "http://[::1]/",
            "http://u:p@[::1]:80/",
        ] {
            let uri: Uri = literal.parse().unwrap();
            assert_eq!(host_of(&uri), "[::1]", "{literal}");
        }
        let uri: Uri = "http://[::1]:8080/".parse().unwrap();
        assert!(std::ptr::eq(
            Profile::detect(host_of(&uri)),
            Profile::generic()
        ));
    }
}
