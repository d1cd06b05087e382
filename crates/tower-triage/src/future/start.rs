//! The start of a call: its settings, the route's admission, the copy of
//! the request kept for retries, a pool slot, and the first phase.

use std::sync::Arc;

use http::{Request, Response};
use http_body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::Service;
use triage_core::redact::Fingerprint;
use triage_core::{BoxError, Profile};

use super::attempt::{WriteWatch, watch};
use super::request::probe_request;
use super::{PRINTS, ResponseFuture, State};
use crate::body::TryCloneBody;
use crate::config::{CallSettings, Config};
use crate::idempotency::IdempotencyKeys;
use crate::options::RequestOptions;
use crate::route::{Admit, route_of};

/// The request split for sending: the head kept for the events, the packet
/// and retries; the body kept to copy for a retry; the request to send;
/// the fingerprints of its secrets when its head is not kept.
struct Split<B> {
    head: Request<()>,
    template: Option<B>,
    send: Request<B>,
    prints: [Fingerprint; PRINTS],
}

/// Keeps a copy of the request for retries, when retries are on and the
/// body can be copied; otherwise sends the original. A write timeout
/// watches the body being sent through the kept original, so it keeps one
/// even without retries.
#[inline(always)]
fn split<B: TryCloneBody>(
    mut request: Request<B>,
    keep: bool,
    keys: Option<(&IdempotencyKeys, &Profile)>,
) -> Split<B> {
    let copy = if keep {
        request.body().try_clone_body()
    } else {
        None
    };
    // The head keeps what the events and the packet name (no allocation:
    // the URI's parts are shared) and, when a copy of the body was made,
    // the whole head to send again. The request itself is not taken apart:
    // only its body is swapped (each move of its parts is a copy of 200
    // bytes, on every call).
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    let mut prints = [Fingerprint::default(); PRINTS];
    let template = match copy {
        Some(copy) => {
            // Keep a copy of the head and send the original: the inner
            // client adds its own headers (`host`, ...) to the map it gets,
            // and the original has room for them, a fresh copy has none.
            // One idempotency key per logical request, before the head is
            // kept, so every attempt sends the same (only with retries on).
            if let Some((keys, profile)) = keys {
                if !request.method().is_idempotent() {
                    if let Some(name) = keys.header(profile) {
                        crate::idempotency::mint_into(request.headers_mut(), name);
                    }
                }
            }
            *head.version_mut() = request.version();
            fill(head.headers_mut(), request.headers().clone());
            *head.extensions_mut() = request.extensions().clone();
            Some(std::mem::replace(request.body_mut(), copy))
        }
        None => {
            if !request.headers().is_empty() {
                prints = Fingerprint::of_headers(request.headers());
            }
            None
        }
    };
    Split {
        head,
        template,
        send: request,
        prints,
    }
}

/// Puts `headers` into the head's empty map. The empty map owns no
/// allocation (`HeaderMap::new` makes none), so it is forgotten rather
/// than dropped: its drop glue costs about 50 instructions, on every call.
#[inline]
// Forgetting leaks nothing here: only a map without capacity is forgotten.
#[allow(clippy::mem_forget)]
fn fill(map: &mut http::HeaderMap, headers: http::HeaderMap) {
    let empty = std::mem::replace(map, headers);
    if empty.capacity() == 0 {
        std::mem::forget(empty);
    }
}

/// A slot of the route's pool, when the layer limits them: held at once,
/// or the route's slots to wait on.
fn pool_slot(
    config: &Config,
    admit: &Admit,
    head: &Request<()>,
) -> (Option<OwnedSemaphorePermit>, Option<Arc<Semaphore>>) {
    match (admit, &config.pool) {
        (Admit::Pass, Some(pool)) => {
            let slots = pool.slots(&route_of(head.uri()));
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => (Some(slot), None),
                Err(_) => (None, Some(slots)),
            }
        }
        _ => (None, None),
    }
}

/// What pacing does with a request whose route's rate window is closed.
enum Paced {
    /// Hold it until the window reopens.
    Wait(Instant),
    /// Its total deadline ends first, or the route's quota is stopped:
    /// refuse it unsent.
    Refuse(Box<triage_core::Error>),
}

/// Whether the route of `head` has a closed rate window (or a quota stop)
/// at `now`, and what that does to a request with the total deadline
/// `total`.
fn paced(
    config: &Config,
    head: &Request<()>,
    profile: &Profile,
    (now, total): (Instant, Option<std::time::Duration>),
) -> Option<Paced> {
    let route = route_of(head.uri());
    let closed = config.paces.closed(&route, now)?;
    let wait = closed.until.saturating_duration_since(now);
    if closed.quota || total.is_some_and(|total| wait >= total) {
        return Some(Paced::Refuse(super::wait::unsent_error(
            head, profile, &closed, wait,
        )));
    }
    crate::notify::paced(&route, wait);
    Some(Paced::Wait(closed.until))
}

/// The first phase of a call: the attempt, the wait for a pool slot or the
/// route's probe (the request held meanwhile), or the refusal.
struct First<F, R, B> {
    state: State<F, R>,
    held: Option<Box<Request<B>>>,
    trial: bool,
    attempt: u32,
}

#[inline(always)]
fn first<S, B, R>(
    service: &mut S,
    (admit, slots, paced): (Admit, Option<Arc<Semaphore>>, Option<Paced>),
    send: Request<B>,
    (head, config): (&Request<()>, &Config),
) -> First<S::Future, R, B>
where
    S: Service<Request<B>, Response = Response<R>>,
    B: TryCloneBody,
{
    let calling = |future| State::Calling {
        future,
        timer: None,
        connect_timer: None,
        connecting: None,
    };
    match admit {
        Admit::Pass => match (slots, paced) {
            (None, None) => First {
                state: calling(service.call(send)),
                held: None,
                trial: false,
                attempt: 1,
            },
            // The route's rate window is closed: wait for its reset, the
            // request held (or, past the deadline, refuse it unsent).
            (None, Some(Paced::Wait(until))) => First {
                state: State::Waiting {
                    timer: Box::pin(tokio::time::sleep_until(until)),
                },
                held: Some(Box::new(send)),
                trial: false,
                attempt: 0,
            },
            (None, Some(Paced::Refuse(error))) => First {
                state: State::Refused { error },
                held: None,
                trial: false,
                attempt: 0,
            },
            (Some(slots), _) => First {
                state: State::Acquiring {
                    acquire: Box::pin(slots.acquire_owned()),
                    timer: None,
                },
                held: Some(Box::new(send)),
                trial: false,
                attempt: 0,
            },
        },
        Admit::Refuse(error) => First {
            state: State::Refused { error },
            held: None,
            trial: false,
            attempt: 0,
        },
        Admit::Probe => match B::empty() {
            Some(empty) => First {
                state: State::Probing {
                    future: service.call(probe_request(head, &config.breaker, empty)),
                },
                held: Some(Box::new(send)),
                trial: false,
                attempt: 0,
            },
            // No empty body of this type: the request is the probe.
            None => First {
                state: calling(service.call(send)),
                held: None,
                trial: true,
                attempt: 1,
            },
        },
    }
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
        let settings =
            CallSettings::resolve(&config, options, (request.uri(), request.extensions()));
        let rules = settings.rules.as_deref().unwrap_or(&config.rules);
        let (retries, total) = (rules.retries(), rules.total_deadline());
        let now = Instant::now();
        // One atomic load while no route has a failure on record.
        let any_route = config.routes.any();
        let admit = if settings.breaker_on && any_route {
            config.routes.admit(&route_of(request.uri()), now)
        } else {
            Admit::Pass
        };
        if !matches!(admit, Admit::Refuse(_)) {
            config.budget.deposit(now.into_std());
        }
        let span = crate::notify::call_span(request.method(), request.uri());
        let keep = retries > 0 || settings.write_timeout.is_some();
        let split = split(
            request,
            keep,
            (retries > 0).then_some((&config.idempotency, &*settings.profile)),
        );
        let (permit, slots) = pool_slot(&config, &admit, &split.head);
        let paced = match admit {
            Admit::Pass if config.paces.any() => {
                paced(&config, &split.head, &settings.profile, (now, total))
            }
            _ => None,
        };
        let first = first(
            &mut service,
            (admit, slots, paced),
            split.send,
            (&split.head, &config),
        );
        // The first attempt (or the probe) is watched when its route has an
        // open diagnosis window, or the request keeps a connection log.
        let logged = settings.extras.as_ref().is_some_and(|e| e.log.is_some());
        if let Some(id) = settings
            .extras
            .as_ref()
            .and_then(|e| e.correlation.as_deref())
        {
            span.record("triage.correlation_id", id);
        }
        let capture = match &first.state {
            // (No route with a failure on record: nothing to look up.)
            State::Calling { .. } | State::Probing { .. } if any_route || logged => watch(
                (settings.window_on, logged),
                &config,
                split.head.uri(),
                now,
                if first.held.is_some() {
                    0
                } else {
                    first.attempt
                },
            ),
            _ => None,
        };
        ResponseFuture {
            state: first.state,
            deadline: None,
            deadline_at: total.and_then(|d| now.checked_add(d)),
            rules: settings.rules,
            attempt_timeout: settings.attempt_timeout,
            body_idle_timeout: settings.body_idle_timeout,
            write: settings
                .write_timeout
                .map(|limit| Box::new(WriteWatch::new(limit))),
            connect_timeout: settings.connect_timeout,
            whole_body: settings.whole_body,
            service,
            head: split.head,
            body: split.template,
            next: None,
            profile: settings.profile,
            config,
            attempt: first.attempt,
            started: now,
            attempt_started: now,
            breaker_on: settings.breaker_on,
            window_on: settings.window_on,
            trial: first.trial,
            held: first.held,
            permit,
            capture,
            extras: settings.extras,
            prints: split.prints,
            packet: None,
            span,
        }
    }
}
