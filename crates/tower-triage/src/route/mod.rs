//! The routes of a layer (scheme, host and port): the state kept for each
//! one with a failure on record, shared by the [`Breaker`] (refuse, probe,
//! reopen) and the [`DiagnosisWindow`] (capture the next failures).

mod breaker;
mod pace;
mod window;

pub use breaker::Breaker;
pub(crate) use pace::{Bucket, Closed, Learn, Paces, closings};
pub use window::DiagnosisWindow;

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http::Uri;
use tokio::time::Instant;
use triage_core::{
    Diagnosis, Error, Evidence, Fault, Owner, Packet, Stop, TimeoutPhase, TransportFailure,
};

/// At most this many routes with a failure on record per layer (and
/// routes with pool slots, past which idle ones are forgotten).
pub(crate) const MAX_ROUTES: usize = 1024;

/// A route: scheme, host and port, lowercase.
pub(crate) fn route_of(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let host = uri.host().unwrap_or("");
    let mut key = String::with_capacity(scheme.len() + host.len() + 9);
    key.push_str(scheme);
    key.push_str("://");
    key.push_str(host);
    key.make_ascii_lowercase();
    // Written into the key: no string of its own for the port.
    let _ = write!(key, ":{port}");
    key
}

/// What the breaker says to a new request.
pub(crate) enum Admit {
    /// Go ahead.
    Pass,
    /// Send the probe first; this request waits for its answer.
    Probe,
    /// The route is open: fail with this.
    Refuse(Box<Error>),
}

/// A route that opened: what a refused request is told.
#[derive(Debug)]
struct Open {
    opened: SystemTime,
    opened_at: Instant,
    diagnosis: Diagnosis,
    evidence: Evidence,
    packet: Packet,
    refused: u64,
    next_probe: Instant,
    backoff: Duration,
    probing: bool,
}

#[derive(Debug, Default)]
struct Route {
    consecutive: u32,
    open: Option<Open>,
    window: Window,
    /// The latest known failure at a connection stage, and when it was
    /// judged.
    last: Option<(Instant, TransportFailure)>,
}

/// A route's diagnosis window.
#[derive(Debug, Default)]
enum Window {
    /// None opened since the route last worked.
    #[default]
    Unused,
    /// Capturing until `until` or `failures` failures, `seen` so far.
    Open {
        until: Instant,
        failures: u32,
        seen: u32,
    },
    /// Closed by itself; no other until the route works again.
    Spent,
}

/// What [`Routes::failed`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Recorded {
    /// The route opened.
    pub(crate) opened: bool,
    /// A diagnosis window opened.
    pub(crate) window: bool,
}

/// A route that recovered: how long it was open, how many requests it
/// refused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recovered {
    pub(crate) outage: Duration,
    pub(crate) refused: u64,
}

/// The states of every route with a failure on record, shared by the
/// clones of a layer. A request on a route with no failure costs one atomic
/// load: the map is looked at only while some route has one.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    tracked: AtomicUsize,
    states: Mutex<HashMap<String, Route>>,
}

/// Whether `diagnosis` is a failure of the connection path worth counting
/// (a caller's cancellation or the caller's own total deadline is not).
pub(crate) fn connection_failure(diagnosis: &Diagnosis) -> Option<Fault> {
    let fault = diagnosis.class().transport()?.fault();
    match (diagnosis.owner(), fault) {
        // The caller's own doing: a cancellation, its deadline, its pool.
        (_, Fault::Cancelled | Fault::Timeout(TimeoutPhase::Total | TimeoutPhase::Pool)) => None,
        (Some(Owner::ConnectionPath), fault) => Some(fault),
        _ => None,
    }
}

impl Routes {
    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        // The map holds plain data, valid after any panic.
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether any route has a failure on record (the happy path's check).
    pub(crate) fn any(&self) -> bool {
        self.tracked.load(Ordering::Acquire) > 0
    }

    /// What a request on `route` may do now.
    pub(crate) fn admit(&self, route: &str, now: Instant) -> Admit {
        let mut states = self.states();
        let Some(open) = states.get_mut(route).and_then(|r| r.open.as_mut()) else {
            return Admit::Pass;
        };
        if !open.probing && now >= open.next_probe {
            open.probing = true;
            return Admit::Probe;
        }
        open.refused += 1;
        let packet = open
            .packet
            .refused_by_route(open.opened, open.refused, SystemTime::now());
        Admit::Refuse(Box::new(Error::new(
            open.diagnosis,
            Stop::RouteOpen,
            &open.evidence,
            packet,
            None,
        )))
    }

    /// An attempt on `route` failed with `diagnosis`: counts it for the
    /// `breaker` and opens a diagnosis `window` if none was yet (each when
    /// it applies to the request); `packet` makes the packet to keep if the
    /// route opens now.
    pub(crate) fn failed(
        &self,
        route: &str,
        (diagnosis, evidence): (&Diagnosis, &Evidence),
        packet: impl FnOnce() -> Packet,
        now: Instant,
        (breaker, window): (Option<&Breaker>, Option<&DiagnosisWindow>),
    ) -> Recorded {
        let mut recorded = Recorded::default();
        if connection_failure(diagnosis).is_none() {
            return recorded;
        }
        let mut states = self.states();
        if states.len() >= MAX_ROUTES && !states.contains_key(route) {
            // Bounded memory (a service calling many hosts, some of them
            // wrong): past the limit, a new route goes untracked.
            return recorded;
        }
        let state = states.entry(route.to_owned()).or_insert_with(|| {
            self.tracked.fetch_add(1, Ordering::AcqRel);
            Route::default()
        });
        // A known failure of the connection itself, for the requests that
        // waited for it (see `shared_connect_failure`).
        if let Some(failure) = diagnosis
            .class()
            .transport()
            .filter(|f| !f.request_may_have_left() && f.fault() != Fault::Unknown)
        {
            state.last = Some((now, failure));
        }
        let window = window.filter(|w| w.enabled);
        if let Some(window) = window.filter(|_| matches!(state.window, Window::Unused)) {
            state.window = Window::Open {
                until: now + window.duration,
                failures: window.failures,
                seen: 0,
            };
            recorded.window = true;
        }
        let Some(breaker) = breaker.filter(|b| b.enabled) else {
            return recorded;
        };
        if state.open.is_some() {
            return recorded;
        }
        state.consecutive = state.consecutive.saturating_add(1);
        // The fail-safe rule: only a failure proven permanent opens the
        // route at once; any other (an unknown one included) only counts.
        let permanent = diagnosis
            .class()
            .transport()
            .is_some_and(|t| t.is_permanent());
        if !permanent && state.consecutive < breaker.consecutive {
            return recorded;
        }
        state.open = Some(Open {
            opened: SystemTime::now(),
            opened_at: now,
            diagnosis: *diagnosis,
            evidence: evidence.clone(),
            packet: packet(),
            refused: 0,
            next_probe: now + breaker.probe_initial,
            backoff: breaker.probe_initial,
            probing: false,
        });
        recorded.opened = true;
        recorded
    }

    /// A request about to retry on `route`: when the route opened
    /// meanwhile, it is refused (and counted) like a new request, without
    /// being handed the probe. Gives what the refusal says: the diagnosis
    /// and evidence that opened the route, when, and the refusals so far.
    pub(crate) fn refuse_retry(
        &self,
        route: &str,
    ) -> Option<(Diagnosis, Evidence, SystemTime, u64)> {
        let mut states = self.states();
        let open = states.get_mut(route)?.open.as_mut()?;
        open.refused += 1;
        Some((
            open.diagnosis,
            open.evidence.clone(),
            open.opened,
            open.refused,
        ))
    }

    /// The failure of a connection on `route` judged at or after `since`
    /// at a connection stage (DNS, connect, proxy, TLS): what an attempt
    /// that waited for another request's connection (hyper-util's pool
    /// shares one HTTP/2 connect) failed of.
    pub(crate) fn shared_connect_failure(
        &self,
        route: &str,
        since: Instant,
    ) -> Option<TransportFailure> {
        let states = self.states();
        let (at, failure) = states.get(route)?.last?;
        (at >= since).then_some(failure)
    }

    /// Whether an attempt on `route` starting `now` is to be watched (its
    /// route has an open diagnosis window). Closes a window whose time is
    /// up.
    pub(crate) fn watching(&self, route: &str, now: Instant) -> bool {
        let mut states = self.states();
        let Some(state) = states.get_mut(route) else {
            return false;
        };
        match state.window {
            Window::Open { until, seen, .. } if now >= until => {
                state.window = Window::Spent;
                crate::notify::window_closed(route, seen, "time");
                false
            }
            Window::Open { .. } => true,
            _ => false,
        }
    }

    /// A watched attempt on `route` failed on the connection path: counts
    /// it against the window and returns which failure of the window it is
    /// (`None` when no window is open any more).
    pub(crate) fn captured(&self, route: &str) -> Option<(u32, u32)> {
        let mut states = self.states();
        let state = states.get_mut(route)?;
        let Window::Open { failures, seen, .. } = &mut state.window else {
            return None;
        };
        *seen += 1;
        let (n, of) = (*seen, *failures);
        if n >= of {
            state.window = Window::Spent;
            crate::notify::window_closed(route, n, "failures");
        }
        Some((n, of))
    }

    /// A probe's `detail`: the packet an open route's refusals carry gets
    /// it.
    pub(crate) fn note_probe(&self, route: &str, detail: triage_core::Detail) {
        let mut states = self.states();
        if let Some(open) = states.get_mut(route).and_then(|r| r.open.as_mut()) {
            open.packet.push_detail(detail);
        }
    }

    /// The far side of `route` answered (a status came back): the route
    /// works. When that closed an open route, says so (the recovery event)
    /// and returns the outage.
    pub(crate) fn reached(
        &self,
        route: &str,
        now: Instant,
        observer: Option<&std::sync::Arc<dyn crate::Observer>>,
    ) -> Option<Recovered> {
        let mut states = self.states();
        let state = states.remove(route)?;
        self.tracked.fetch_sub(1, Ordering::AcqRel);
        drop(states);
        let recovered = state.open.map(|open| Recovered {
            outage: now.saturating_duration_since(open.opened_at),
            refused: open.refused,
        })?;
        let event = crate::RouteEvent::Recovered {
            route,
            outage: recovered.outage,
            refused: recovered.refused,
        };
        crate::notify::route(observer, &event);
        Some(recovered)
    }

    /// The probe on `route` failed: back off before the next one; `random`
    /// in `[0, 1)` takes up to a quarter off the wait.
    pub(crate) fn probe_failed(&self, route: &str, now: Instant, random: f64, breaker: &Breaker) {
        let mut states = self.states();
        if let Some(open) = states.get_mut(route).and_then(|r| r.open.as_mut()) {
            open.backoff = (open.backoff * 2).min(breaker.probe_max);
            let wait = open.backoff.mul_f64(1.0 - 0.25 * random.clamp(0.0, 1.0));
            open.next_probe = now + wait;
            open.probing = false;
        }
    }

    /// The probe on `route` could not be judged (the caller went away):
    /// the next request may probe.
    pub(crate) fn probe_abandoned(&self, route: &str) {
        let mut states = self.states();
        if let Some(open) = states.get_mut(route).and_then(|r| r.open.as_mut()) {
            open.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use triage_core::{Profile, Stage, TransportFailure, classify};

    fn diagnosis(stage: Stage, fault: Fault) -> (Diagnosis, Evidence) {
        let evidence = Evidence::from_transport(TransportFailure::new(stage, fault));
        (classify(&evidence, Profile::generic()), evidence)
    }

    fn packet() -> Packet {
        triage_core::PacketBuilder::new(
            &Method::GET,
            &Uri::from_static("https://svc.test/"),
            Profile::generic(),
            SystemTime::now(),
        )
        .finish(Duration::ZERO)
    }

    #[test]
    fn routes_are_scheme_host_and_port() {
        let key = |s: &str| route_of(&s.parse().unwrap());
        assert_eq!(
            key("https://API.example.com/v1"),
            "https://api.example.com:443"
        );
        assert_eq!(key("http://svc.test:8080/x?y"), "http://svc.test:8080");
        assert_eq!(key("http://svc.test/"), "http://svc.test:80");
        assert_eq!(key("http://svc.test:0/"), "http://svc.test:0");
        assert_eq!(key("http://svc.test:65535/"), "http://svc.test:65535");
        assert_eq!(key("http://[::1]:9/"), "http://[::1]:9");
    }

    #[test]
    fn a_permanent_failure_opens_at_once_a_transient_one_after_a_run() {
        let routes = Routes::default();
        let breaker = Breaker::new().consecutive_failures(3);
        let now = Instant::now();
        assert!(!routes.any());
        let (reset, reset_evidence) = diagnosis(Stage::AwaitHeaders, Fault::Reset);
        for n in 1..3 {
            let opened = routes
                .failed(
                    "r",
                    (&reset, &reset_evidence),
                    packet,
                    now,
                    (Some(&breaker), None),
                )
                .opened;
            assert!(!opened, "opened after {n} resets");
            assert!(matches!(routes.admit("r", now), Admit::Pass));
        }
        assert!(routes.any());
        assert!(
            routes
                .failed(
                    "r",
                    (&reset, &reset_evidence),
                    packet,
                    now,
                    (Some(&breaker), None)
                )
                .opened
        );
        assert!(matches!(routes.admit("r", now), Admit::Refuse(_)));

        let (cert, evidence) = diagnosis(
            Stage::Tls,
            Fault::Certificate(triage_core::CertificateProblem::UnknownIssuer),
        );
        assert!(
            routes
                .failed("t", (&cert, &evidence), packet, now, (Some(&breaker), None))
                .opened
        );
        let Admit::Refuse(error) = routes.admit("t", now) else {
            panic!("not refused");
        };
        assert_eq!(error.stop(), Stop::RouteOpen);
        assert_eq!(error.stage(), Some(Stage::Tls));
        assert_eq!(error.packet().route_open().unwrap().refused(), 1);
        // A status from the far side closes the route and forgets it.
        assert!(routes.reached("t", now, None).is_some());
        assert!(matches!(routes.admit("t", now), Admit::Pass));
    }

    /// Every stage and fault the layer can name, for the fail-safe
    /// property.
    fn every_failure() -> Vec<TransportFailure> {
        use triage_core::CertificateProblem as C;
        let stages = [
            Stage::Dns,
            Stage::Connect,
            Stage::Proxy,
            Stage::Tls,
            Stage::Write,
            Stage::AwaitHeaders,
            Stage::Body,
        ];
        let mut faults = vec![
            Fault::NameNotFound,
            Fault::ResolverFailed,
            Fault::Refused,
            Fault::Unreachable,
            Fault::Reset,
            Fault::Closed,
            Fault::TlsProtocol,
            Fault::TlsHandshake,
            Fault::ProxyAuthRequired,
            Fault::ProxyRejected,
            Fault::Protocol,
            Fault::Cancelled,
            Fault::Unsent,
            Fault::StreamRefused,
            Fault::StreamReset,
            Fault::SlowDown,
            Fault::Unknown,
        ];
        for phase in [
            TimeoutPhase::Pool,
            TimeoutPhase::Connect,
            TimeoutPhase::Write,
            TimeoutPhase::Headers,
            TimeoutPhase::BodyIdle,
            TimeoutPhase::Body,
            TimeoutPhase::Total,
        ] {
            faults.push(Fault::Timeout(phase));
        }
        for problem in [
            C::UnknownIssuer,
            C::WrongName,
            C::Expired,
            C::NotYetValid,
            C::Revoked,
            C::BadSignature,
            C::Other,
        ] {
            faults.push(Fault::Certificate(problem));
        }
        stages
            .iter()
            .flat_map(|&stage| {
                faults
                    .iter()
                    .map(move |&fault| TransportFailure::new(stage, fault))
            })
            .collect()
    }

    /// The closed list, written out apart from the code it checks.
    fn on_the_closed_list(failure: TransportFailure) -> bool {
        matches!(
            (failure.stage(), failure.fault()),
            (_, Fault::NameNotFound)
                | (_, Fault::Certificate(_))
                | (_, Fault::TlsProtocol)
                | (_, Fault::ProxyAuthRequired)
                | (_, Fault::ProxyRejected)
                | (Stage::Proxy, Fault::Refused | Fault::Unreachable)
        )
    }

    proptest::proptest! {
        /// No class outside the closed list opens a route on one failure,
        /// whatever came before it on other routes; every class on it does.
        #[test]
        fn only_the_closed_list_opens_a_route_on_one_failure(
            failure in proptest::sample::select(every_failure()),
            earlier in proptest::collection::vec(proptest::sample::select(every_failure()), 0..4),
        ) {
            let routes = Routes::default();
            let breaker = Breaker::new();
            let now = Instant::now();
            for (n, other) in earlier.iter().enumerate() {
                let evidence = Evidence::from_transport(*other);
                let diagnosis = classify(&evidence, Profile::generic());
                let route = format!("other{n}");
                routes.failed(&route, (&diagnosis, &evidence), packet, now, (Some(&breaker), None));
            }
            let evidence = Evidence::from_transport(failure);
            let diagnosis = classify(&evidence, Profile::generic());
            let opened = routes
                .failed("r", (&diagnosis, &evidence), packet, now, (Some(&breaker), None))
                .opened;
            proptest::prop_assert_eq!(opened, on_the_closed_list(failure), "{}", failure);
            proptest::prop_assert_eq!(
                matches!(routes.admit("r", now), Admit::Refuse(_)),
                opened
            );
        }
    }

    #[test]
    fn an_unknown_error_counts_toward_the_run_and_a_healthy_answer_forgets_it() {
        let routes = Routes::default();
        let breaker = Breaker::new();
        let now = Instant::now();
        let (unknown, evidence) = diagnosis(Stage::AwaitHeaders, Fault::Unknown);
        assert!(
            unknown.is_retryable(),
            "an unknown error is not 'not retryable'"
        );
        for _ in 0..4 {
            let recorded = routes.failed(
                "u",
                (&unknown, &evidence),
                packet,
                now,
                (Some(&breaker), None),
            );
            assert!(!recorded.opened);
        }
        routes.reached("u", now, None);
        for _ in 0..4 {
            let recorded = routes.failed(
                "u",
                (&unknown, &evidence),
                packet,
                now,
                (Some(&breaker), None),
            );
            assert!(!recorded.opened, "the run starts again after an answer");
        }
        assert!(
            routes
                .failed(
                    "u",
                    (&unknown, &evidence),
                    packet,
                    now,
                    (Some(&breaker), None)
                )
                .opened,
            "the fifth in a row opens it"
        );
    }

    #[test]
    fn one_probe_at_a_time_then_backoff() {
        let routes = Routes::default();
        let breaker = Breaker::new().probe_backoff(Duration::from_secs(1), Duration::from_secs(4));
        let now = Instant::now();
        let (dns, evidence) = diagnosis(Stage::Dns, Fault::NameNotFound);
        assert!(
            routes
                .failed("d", (&dns, &evidence), packet, now, (Some(&breaker), None))
                .opened
        );
        assert!(matches!(routes.admit("d", now), Admit::Refuse(_)));
        let later = now + Duration::from_secs(1);
        assert!(matches!(routes.admit("d", later), Admit::Probe));
        // While it is out, others are refused.
        assert!(matches!(routes.admit("d", later), Admit::Refuse(_)));
        routes.probe_failed("d", later, 0.0, &breaker);
        assert!(matches!(
            routes.admit("d", later + Duration::from_millis(1999)),
            Admit::Refuse(_)
        ));
        assert!(matches!(
            routes.admit("d", later + Duration::from_secs(2)),
            Admit::Probe
        ));
        let recovered = routes
            .reached("d", later + Duration::from_secs(3), None)
            .unwrap();
        assert_eq!(recovered.refused, 3);
        assert_eq!(recovered.outage, Duration::from_secs(4));
        assert!(!routes.any());
    }

    #[test]
    fn the_routes_on_record_are_bounded() {
        let routes = Routes::default();
        let breaker = Breaker::new();
        let now = Instant::now();
        let (dns, evidence) = diagnosis(Stage::Dns, Fault::NameNotFound);
        for n in 0..MAX_ROUTES + 10 {
            routes.failed(
                &format!("http://host{n}.invalid:80"),
                (&dns, &evidence),
                packet,
                now,
                (Some(&breaker), None),
            );
        }
        assert_eq!(routes.states().len(), MAX_ROUTES);
        assert_eq!(routes.tracked.load(Ordering::Acquire), MAX_ROUTES);
        // A route past the limit is not refused: it was never opened.
        assert!(matches!(
            routes.admit("http://host1030.invalid:80", now),
            Admit::Pass
        ));
    }

    #[test]
    fn cancellations_and_status_failures_do_not_count() {
        let routes = Routes::default();
        let breaker = Breaker::new().consecutive_failures(1);
        let now = Instant::now();
        let (cancelled, evidence) = diagnosis(Stage::Connect, Fault::Cancelled);
        assert!(
            !routes
                .failed(
                    "c",
                    (&cancelled, &evidence),
                    packet,
                    now,
                    (Some(&breaker), None)
                )
                .opened
        );
        assert!(!routes.any());
    }

    #[test]
    fn a_window_opens_once_per_outage_and_closes_by_itself() {
        let routes = Routes::default();
        let window = DiagnosisWindow::new()
            .failures(2)
            .duration(Duration::from_secs(60));
        let now = Instant::now();
        let (reset, evidence) = diagnosis(Stage::Connect, Fault::Refused);
        // No failure yet: nothing watched.
        assert!(!routes.watching("w", now));
        let first = routes.failed("w", (&reset, &evidence), packet, now, (None, Some(&window)));
        assert!(first.window && !first.opened, "{first:?}");
        assert!(routes.watching("w", now));
        // A second failure does not open another window.
        assert!(
            !routes
                .failed("w", (&reset, &evidence), packet, now, (None, Some(&window)))
                .window
        );
        assert_eq!(routes.captured("w"), Some((1, 2)));
        assert_eq!(routes.captured("w"), Some((2, 2)));
        // Spent after its failures, and not reopened while the outage lasts.
        assert!(!routes.watching("w", now));
        assert_eq!(routes.captured("w"), None);
        assert!(
            !routes
                .failed("w", (&reset, &evidence), packet, now, (None, Some(&window)))
                .window
        );
        // The route works again: the next outage gets a window of its own.
        routes.reached("w", now, None);
        assert!(
            routes
                .failed("w", (&reset, &evidence), packet, now, (None, Some(&window)))
                .window
        );
        // Which closes by time too.
        assert!(routes.watching("w", now + Duration::from_secs(59)));
        assert!(!routes.watching("w", now + Duration::from_secs(60)));
        assert_eq!(routes.captured("w"), None);
        // A cancellation opens none.
        let (cancelled, evidence) = diagnosis(Stage::Connect, Fault::Cancelled);
        assert!(
            !routes
                .failed(
                    "c",
                    (&cancelled, &evidence),
                    packet,
                    now,
                    (None, Some(&window))
                )
                .window
        );
        assert!(!routes.watching("c", now));
    }
}
