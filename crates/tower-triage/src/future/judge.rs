//! Each attempt judged: its evidence classified, the retry rules' decision,
//! the event and observer call, the packet of a failure, the route
//! breaker's record, and what the caller gets.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Response};
use http_body::Body;
use tokio::time::Instant;
use tower::Service;
use triage_core::{
    AttemptContext, BodyProgress, BoxError, Decision, Diagnosis, Error, Evidence, Fault,
    PacketBuilder, Stage, Stop, TimeoutPhase, TransportFailure, classify,
};

use super::request::wall_clock_for;
use super::{Next, Projection, method, random, uri};
use crate::body::TryCloneBody;
use crate::capture::Capture;
use crate::error::TimeoutError;
use crate::notify;
use crate::observer::{AttemptInfo, Call, Observer, Outcome, RouteEvent};
use crate::report::Report;
use crate::response_body::ResponseBody;
use crate::route::{Routes, closings, connection_failure, route_of};
use crate::whole_body::BodyMode;

/// Decides after an attempt: classification, the retry rules, the event,
/// and the packet of a failure. With `may_retry` false (the total deadline
/// passed), a retry is never decided.
pub(super) fn decide<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    evidence: &Evidence,
    now: Instant,
    body_mode: Option<BodyMode>,
    may_retry: bool,
) -> (Diagnosis, Decision)
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let diagnosis = classify(evidence, this.profile);
    if this.config.pacing || this.config.quota_stop.is_some() {
        learn_pace(this, &diagnosis, evidence, now);
    }
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
        rules_decide(this, evidence, &diagnosis, copy.is_some(), now)
    };
    let decision = match decision {
        Decision::Retry(_) if !may_retry => Decision::Stop(Stop::DeadlineExceeded),
        decision => decision,
    };
    if decision.is_retry() {
        *this.next = copy;
    }
    // One value for the event and the observer.
    let info = AttemptInfo {
        method: method!(this),
        uri: uri!(this),
        attempt: *this.attempt,
        evidence,
        diagnosis: &diagnosis,
        decision: &decision,
        body_mode,
    };
    let observer = this.config.observer.as_ref();
    let secrets = (this.head.headers(), &this.prints[..]);
    notify::attempt(observer, &info, secrets, this.correlation());
    notify::record_attempt(this.span, &info);
    if !diagnosis.is_success() || this.packet.is_some() {
        if this.packet.is_none() {
            *this.packet = Some(Box::new(packet_builder(this)));
        }
        if let Some(packet) = this.packet.as_deref_mut() {
            packet.push_attempt(evidence, &diagnosis, &decision);
        }
    }
    (diagnosis, decision)
}

/// Pacing: the rate windows an answer on the call's route closed (see
/// [`closings`]) are kept for the route's next requests.
fn learn_pace<S, B, R>(
    this: &Projection<'_, S, B, R>,
    diagnosis: &Diagnosis,
    evidence: &Evidence,
    now: Instant,
) where
    S: Service<Request<B>>,
{
    let learn = this
        .config
        .learn(this.rules.as_deref().unwrap_or(&this.config.rules));
    let closed = closings(diagnosis, evidence, learn, now);
    if !closed.is_empty() {
        let route = route_of(uri!(this));
        let news = this
            .config
            .paces
            .close(&route, &closed, (diagnosis, evidence), now);
        // Only what the layer did not know already goes to the others.
        if let Some(share) = this.config.share.as_ref().filter(|_| !news.is_empty()) {
            let learned = (this.profile.name(), diagnosis);
            for window in crate::share::shared(&route, learned, &news, now) {
                share.publish(&window);
            }
        }
    }
}

/// The retry rules' answer for a failed attempt.
fn rules_decide<S, B, R>(
    this: &Projection<'_, S, B, R>,
    evidence: &Evidence,
    diagnosis: &Diagnosis,
    replayable: bool,
    now: Instant,
) -> Decision
where
    S: Service<Request<B>>,
{
    // Only a whole head is re-sent; a partial one has no headers.
    let name = this.config.idempotency.header(this.profile);
    let idempotency_key = crate::idempotency::key_of(this.head.headers(), name).is_some();
    let ctx = AttemptContext::new(*this.attempt, method!(this))
        .idempotency_key(idempotency_key)
        .replayable(replayable)
        .elapsed(now.saturating_duration_since(*this.started))
        .random(random());
    let rules = this.rules.as_deref().unwrap_or(&this.config.rules);
    rules.decide(
        diagnosis,
        evidence,
        this.profile,
        &ctx,
        &this.config.budget,
        now.into_std(),
    )
}

/// The packet of a call's first failure, started: what the request
/// carried is scrubbed by exact value (its headers, given by
/// [`with_head`] when the packet is finished, are here when a copy was
/// kept for retries, as by default; the URI always) and by fingerprint
/// (when no copy was kept), and, for an AI request, the model its small
/// JSON body names.
fn packet_builder<S, B, R>(this: &Projection<'_, S, B, R>) -> PacketBuilder
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let started = SystemTime::now()
        .checked_sub(this.started.elapsed())
        .unwrap_or_else(SystemTime::now);
    // The values the request carried are looked for in its headers when
    // the packet is finished (`with_head`), not now.
    let mut builder = PacketBuilder::new(method!(this), uri!(this), this.profile, started)
        .version(concat!("tower-triage ", env!("CARGO_PKG_VERSION")))
        .runtime("tokio")
        .prints(this.prints);
    if let Some(id) = this.correlation() {
        builder = builder.correlation_id(id);
    }
    // Read from the copy kept for retries, never anything else.
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
}

/// What the route breaker learns from an attempt: a status means the far
/// side was reached (a failure record ends, an open route closes); a
/// connection failure counts, and may open the route; the probe's failure
/// backs its next one off. `error` is the transport error, for the packet
/// a refused request gets.
pub(super) fn breaker_record<S, B, R>(
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
        notify::route(this.config.observer.as_ref(), &event);
        return;
    }
    let packet = || {
        let mut builder = this.packet.as_deref().cloned().unwrap_or_else(|| {
            PacketBuilder::new(method!(this), uri!(this), this.profile, SystemTime::now())
        });
        // The call may go on (a run of failures): a copy of its headers.
        builder.set_request_headers(this.head.headers().clone());
        if let Some(error) = error {
            builder.set_error(&**error);
        }
        builder.finish(this.started.elapsed())
    };
    let breaker = &this.config.breaker;
    let window = this.window_on.then_some(&this.config.window);
    let recorded = routes.failed(
        &route,
        (diagnosis, evidence),
        packet,
        now,
        (this.breaker_on.then_some(breaker), window),
    );
    if recorded.opened {
        let event = RouteEvent::Opened {
            route: &route,
            diagnosis,
            probe_in: breaker.probe_initial,
        };
        notify::route(this.config.observer.as_ref(), &event);
    }
    if recorded.window {
        let window = &this.config.window;
        notify::window_opened(&route, window, diagnosis, error.map(|e| &**e as _));
    }
}

/// The detail of a watched attempt (or probe) on `route` that failed on
/// the connection path with `error`, counted against the route's window
/// and told as a DEBUG event; `None` when there is nothing to tell.
pub(super) fn captured(
    routes: &Routes,
    observer: Option<&Arc<dyn Observer>>,
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
    notify::route(
        observer,
        &RouteEvent::Detail {
            route,
            detail: &detail,
        },
    );
    Some(detail)
}

/// The report of a call that ends with a response, told to the observer.
pub(super) fn report<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    evidence: &Evidence,
    diagnosis: Diagnosis,
    body_mode: BodyMode,
) -> Report
where
    S: Service<Request<B>>,
{
    if let Some(observer) = &this.config.observer {
        let call = Call::new(method!(this), uri!(this), this.started.elapsed());
        observer.on_outcome(&Outcome::Response {
            call,
            status: evidence.status().unwrap_or_default(),
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
            .map(|p| Arc::new(with_head(this, *p).finish(this.started.elapsed()))),
        body_mode,
    }
}

/// A success handed back: `body` as the caller gets it, read whole inside
/// the attempt or streaming (`body_mode`).
pub(super) fn success<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    mut response: Response<ResponseBody<R>>,
    (body_mode, exhausted): (BodyMode, Option<bool>),
) -> Response<ResponseBody<R>>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
    R: Body,
{
    // (In place: each move of a response is a copy of 240 bytes.)
    let body = response.body_mut();
    body.set_idle_timeout(*this.body_idle_timeout);
    body.set_permit(this.permit.take());
    body.set_span(this.span);
    // At the first attempt, with nothing failed before, the response says
    // all there is to say: the report is read from its head when asked
    // (`ReportExt`), and nothing goes into its extensions.
    let first = *this.attempt == 1 && this.packet.is_none();
    if first && this.config.observer.is_none() {
        // The happy path: no evidence read, no clock read, no allocation
        // (and, while no route has a failure on record, one atomic load).
        if tracing::level_enabled!(tracing::Level::DEBUG)
            && (!this.span.is_disabled() || notify::success_enabled())
        {
            let whole = (body_mode == BodyMode::Whole).then(|| response.body().buffered_len());
            notify::first_success(
                this.span,
                (
                    method!(this),
                    uri!(this),
                    (this.head.headers(), &this.prints[..]),
                ),
                (response.status(), response.headers()),
                this.profile,
                (this.attempt_started.elapsed(), body_mode, whole),
                this.correlation(),
            );
        }
        if *this.breaker_on && (*this.trial || this.config.routes.any()) {
            *this.trial = false;
            this.config.routes.reached(
                &route_of(uri!(this)),
                Instant::now(),
                this.config.observer.as_ref(),
            );
        }
        // Pacing: the answer's rate windows are read only when one of
        // them may be used up (a length test per header, most of the time).
        let exhausted = this.config.pacing
            && exhausted.unwrap_or_else(|| this.profile.reports_exhausted(response.headers()));
        if exhausted {
            let now = Instant::now();
            let evidence = success_evidence(this, response.status(), response.headers(), now);
            learn_pace(this, &classify(&evidence, this.profile), &evidence, now);
        }
        crate::report::mark(response.extensions_mut(), this.profile, body_mode);
        response.body_mut().set_profile(this.profile.clone());
        return response;
    }
    let now = Instant::now();
    let mut evidence = success_evidence(this, response.status(), response.headers(), now);
    if body_mode == BodyMode::Whole {
        evidence.set_body(BodyProgress::Complete(response.body().buffered_len()));
    }
    let (diagnosis, _) = decide(this, &evidence, now, Some(body_mode), true);
    breaker_record(this, &evidence, &diagnosis, None, now);
    let report = report(this, &evidence, diagnosis, body_mode);
    if first {
        crate::report::mark(response.extensions_mut(), this.profile, body_mode);
        response.body_mut().set_profile(this.profile.clone());
    } else {
        response.extensions_mut().insert(report);
    }
    response
}

/// The evidence of a success status's head that arrived for the attempt
/// (the wall clock read only when the profile writes absolute resets).
pub(super) fn success_evidence<S, B, R>(
    this: &Projection<'_, S, B, R>,
    status: http::StatusCode,
    headers: &http::HeaderMap,
    now: Instant,
) -> Evidence
where
    S: Service<Request<B>>,
{
    Evidence::from_response(status, headers, this.profile, wall_clock_for(this.profile))
        .with_elapsed(now.saturating_duration_since(*this.attempt_started))
}

/// A timeout of `phase` after `limit`: its fault, and its typed error.
pub(super) fn timed_out(phase: TimeoutPhase, limit: Duration) -> (Fault, BoxError) {
    (
        Fault::Timeout(phase),
        Box::new(TimeoutError::new(phase, limit)),
    )
}

/// The event and observer call of a call that fails with an error.
pub(super) fn failed<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    error: &Error,
    body_mode: Option<BodyMode>,
) where
    S: Service<Request<B>>,
{
    let call = Call::new(method!(this), uri!(this), this.started.elapsed());
    notify::failed(this.config.observer.as_ref(), call, error, body_mode);
}

/// An attempt that ran out of its `limit` in `phase` at `stage`, judged
/// like any other transport failure.
pub(super) fn timeout<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    stage: Stage,
    phase: TimeoutPhase,
    limit: Duration,
    may_retry: bool,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let (fault, error) = timed_out(phase, limit);
    transport(this, TransportFailure::new(stage, fault), error, may_retry)
}

/// An attempt that failed on the way with `error`, judged.
pub(super) fn transport<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    failure: TransportFailure,
    error: BoxError,
    may_retry: bool,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let now = Instant::now();
    let evidence = Evidence::from_transport(failure)
        .with_elapsed(now.saturating_duration_since(*this.attempt_started));
    let judged = Judged {
        evidence,
        error,
        body_mode: None,
        now,
    };
    judge_evidence(this, judged, may_retry)
}

/// A failed attempt, to judge: its evidence and error, how its body was
/// handled, and when.
pub(super) struct Judged {
    pub(super) evidence: Evidence,
    pub(super) error: BoxError,
    pub(super) body_mode: Option<BodyMode>,
    pub(super) now: Instant,
}

/// A failed attempt, judged: retried, or the call's error.
pub(super) fn judge_evidence<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    judged: Judged,
    may_retry: bool,
) -> Next<R>
where
    S: Service<Request<B>>,
    B: TryCloneBody,
{
    let Judged {
        evidence,
        error,
        body_mode,
        now,
    } = judged;
    let (diagnosis, decision) = decide(this, &evidence, now, body_mode, may_retry);
    keep_capture(this, &diagnosis, &error);
    breaker_record(this, &evidence, &diagnosis, Some(&error), now);
    let stop = match decision {
        Decision::Retry(retry) => return Next::Retry(retry.delay()),
        Decision::Stop(stop) => stop,
    };
    let packet = this.packet.take().map_or_else(
        || PacketBuilder::new(method!(this), uri!(this), this.profile, SystemTime::now()),
        |p| *p,
    );
    // Written when first read (the error chain from the error's source):
    // the verdict does not wait for the packet's texts.
    let packet = (with_head(this, packet), this.started.elapsed());
    let error = Error::deferred(diagnosis, stop, &evidence, packet, Some(error));
    failed(this, &error, body_mode);
    Next::Fail(error)
}

/// The packet `builder` with the request's headers, taken from the head
/// (the call is over), for the values they carried to be scrubbed when
/// the packet is written.
pub(super) fn with_head<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    mut builder: PacketBuilder,
) -> PacketBuilder
where
    S: Service<Request<B>>,
{
    let name = this.config.idempotency.header(this.profile);
    if let Some(key) = crate::idempotency::key_of(this.head.headers(), name) {
        builder.set_idempotency_key(&String::from_utf8_lossy(key.as_bytes()));
    }
    builder.set_request_headers(std::mem::take(this.head.headers_mut()));
    builder
}

/// What the failed attempt's capture showed goes into the connection log
/// and the packet (a logged request: every attempt, not counted against a
/// window), or into the route's window and the packet.
fn keep_capture<S, B, R>(
    this: &mut Projection<'_, S, B, R>,
    diagnosis: &Diagnosis,
    error: &BoxError,
) where
    S: Service<Request<B>>,
{
    let Some(capture) = this.capture.take() else {
        return;
    };
    let detail = match this.log() {
        Some(log) => {
            let mut detail = capture.into_detail();
            detail.set_error(&**error);
            log.push(detail.clone());
            Some(detail)
        }
        None => {
            let route = route_of(uri!(this));
            let observer = this.config.observer.as_ref();
            captured(
                &this.config.routes,
                observer,
                &route,
                Some(capture),
                diagnosis,
                error,
            )
        }
    };
    if let (Some(detail), Some(packet)) = (detail, this.packet.as_deref_mut()) {
        packet.push_detail(detail);
    }
}
