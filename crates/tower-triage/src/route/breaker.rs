//! [`Breaker`]: the route breaker's settings.

use std::time::Duration;

use http::Method;

/// The route breaker: prove the route, then reopen the workload.
///
/// A route is a scheme, host and port seen by one layer (so one client,
/// one proxy setting). After a failure of the connection path that is
/// proven permanent — the closed list of
/// [`TransportFailure::is_permanent`](triage_core::TransportFailure::is_permanent):
/// a DNS name that does not exist, a certificate this client does not
/// trust, TLS spoken to a plain port, a proxy that wants credentials,
/// refuses the tunnel or is not there — or after a run of connection
/// failures of any other kind (5 by default), the route *opens*:
/// every further request on it fails at once with the diagnosis and packet
/// of the failure that opened it, stamped with when that was and how many
/// requests were refused, without a DNS lookup, a connection or a handshake.
///
/// **The fail-safe rule.** An error the layer does not recognise (class
/// `transport.<stage>.unknown`) is never a permanent verdict: it only counts
/// toward the run, like a reset or a timeout, and a healthy answer on the
/// route forgets the run. Nothing outside the closed list opens a route on
/// one failure.
///
/// While it is open, a verification probe (by default `HEAD /` on the
/// route; see [`Breaker::probe`]) is sent through the same client, one at a
/// time, when a request arrives after the probe's backoff (1 s, doubling to
/// 60 s, with jitter); any answer from the far side — whatever its status —
/// proves the connection path and closes the route, and the request that
/// was waiting goes ahead. A body type that cannot make an empty body sends
/// the request itself as the probe.
///
/// At most 1,024 routes with a failure on record are kept per layer (a
/// service that calls many hosts stays bounded); past that, a new failing
/// route is not tracked.
///
/// Events (target `tower_triage`): WARN when a route opens, INFO when it
/// recovers (with the outage's length and the refused count), DEBUG for
/// each refused request and failed probe; the [`Observer`](crate::Observer)
/// sees [`Outcome::Failed`](crate::Outcome::Failed) for refusals. Turn it
/// off per layer with [`Breaker::disabled`], per request with
/// [`RequestOptions::breaker`](crate::RequestOptions::breaker).
///
/// ```
/// use std::time::Duration;
/// use http::Method;
/// use tower_triage::{Breaker, TriageLayer};
///
/// let layer = TriageLayer::new().breaker(
///     Breaker::new()
///         .consecutive_failures(3)
///         .probe(Method::GET, "/v1/models")
///         .probe_backoff(Duration::from_millis(500), Duration::from_secs(30)),
/// );
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct Breaker {
    pub(crate) enabled: bool,
    pub(crate) consecutive: u32,
    pub(crate) probe_initial: Duration,
    pub(crate) probe_max: Duration,
    pub(crate) probe_method: Method,
    pub(crate) probe_path: http::uri::PathAndQuery,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            enabled: true,
            consecutive: 5,
            probe_initial: Duration::from_secs(1),
            probe_max: Duration::from_secs(60),
            probe_method: Method::HEAD,
            probe_path: http::uri::PathAndQuery::from_static("/"),
        }
    }
}

impl Breaker {
    /// The defaults: on; opens after a failure proven permanent or after 5
    /// connection failures in a row; probes with `HEAD /`, 1 s after opening,
    /// then backing off to 60 s.
    pub fn new() -> Breaker {
        Breaker::default()
    }

    /// A breaker that never opens.
    pub fn disabled() -> Breaker {
        Breaker {
            enabled: false,
            ..Breaker::default()
        }
    }

    /// Opens the route after `n` connection failures in a row (at least 1).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive = n.max(1);
        self
    }

    /// The verification probe: `method` and `path` (with its query, if
    /// any) on the failing route, e.g. `GET /v1/models`. An invalid path
    /// keeps the default `/`.
    pub fn probe(mut self, method: Method, path: &str) -> Self {
        self.probe_method = method;
        if let Ok(path) = path.parse() {
            self.probe_path = path;
        }
        self
    }

    /// The wait before the first probe, doubled after each failed probe up
    /// to `max` (each wait less up to a quarter, at random).
    pub fn probe_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.probe_initial = initial;
        self.probe_max = max.max(initial);
        self
    }
}
