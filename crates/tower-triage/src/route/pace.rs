//! Pacing: the rate windows each route's answers said were used up, and
//! until when, so that the next requests on the route wait for the reset
//! instead of being refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use triage_core::{Class, Diagnosis, Evidence, Owner, RateInfo};

use super::MAX_ROUTES;

/// Which window of a route is closed. Requests and tokens are kept apart
/// where the profile tells them apart: an answer about one says nothing of
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// The request-count window (and the single window of most profiles).
    Requests,
    /// The token window (LLM providers).
    Tokens,
    /// The route as a whole: a rate-limit answer asked to wait.
    Route,
    /// A quota stop: an answer said the account's quota is used up (with
    /// quota stops on). Requests are refused, not held.
    Quota,
}

/// A route's closed windows.
#[derive(Debug)]
struct Pace {
    /// Until when each bucket is closed (`None`: open).
    until: [Option<Instant>; 4],
    /// What the latest answer that closed a rate window said, for a
    /// request that cannot wait.
    diagnosis: Diagnosis,
    evidence: Evidence,
    /// What the answer that stopped the quota said.
    quota: Option<Box<(Diagnosis, Evidence)>>,
}

impl Pace {
    /// When every closed rate window reopens (`None` when all are open at
    /// `now`).
    fn reopens(&self, now: Instant) -> Option<Instant> {
        self.until[..Bucket::Quota as usize]
            .iter()
            .flatten()
            .copied()
            .filter(|t| *t > now)
            .max()
    }

    /// When the quota stop ends, if it lasts past `now`.
    fn quota_ends(&self, now: Instant) -> Option<Instant> {
        self.until[Bucket::Quota as usize].filter(|t| *t > now)
    }

    /// Whether nothing is closed at `now`.
    fn is_open(&self, now: Instant) -> bool {
        self.reopens(now).is_none() && self.quota_ends(now).is_none()
    }
}

/// A closed window that a request on its route has to wait for, or a
/// quota stop that refuses it.
#[derive(Debug)]
pub(crate) struct Closed {
    /// When the route's windows reopen (or its quota stop ends).
    pub(crate) until: Instant,
    /// What the answer that closed the latest one said.
    pub(crate) diagnosis: Diagnosis,
    pub(crate) evidence: Evidence,
    /// A quota stop: the request is refused at once.
    pub(crate) quota: bool,
}

/// The closed rate windows of every route, shared by the clones of a
/// layer. A request on a route with none costs one atomic load while no
/// route has one.
#[derive(Debug, Default)]
pub(crate) struct Paces {
    tracked: AtomicUsize,
    states: Mutex<HashMap<String, Pace>>,
}

impl Paces {
    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pace>> {
        // Plain data, valid after any panic.
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether any route has a closed window on record.
    pub(crate) fn any(&self) -> bool {
        self.tracked.load(Ordering::Acquire) > 0
    }

    /// The closed window a request on `route` starting `now` waits for, if
    /// any. A route whose windows all reopened is forgotten.
    pub(crate) fn closed(&self, route: &str, now: Instant) -> Option<Closed> {
        let mut states = self.states();
        let pace = states.get(route)?;
        if let (Some(until), Some(stopped)) = (pace.quota_ends(now), &pace.quota) {
            return Some(Closed {
                until,
                diagnosis: stopped.0,
                evidence: stopped.1.clone(),
                quota: true,
            });
        }
        match pace.reopens(now) {
            Some(until) => Some(Closed {
                until,
                diagnosis: pace.diagnosis,
                evidence: pace.evidence.clone(),
                quota: false,
            }),
            None => {
                states.remove(route);
                self.tracked.fetch_sub(1, Ordering::AcqRel);
                None
            }
        }
    }

    /// An answer on `route` at `now` closed `bucket` until `until`, with
    /// `diagnosis` and `evidence`. Keeps the later of two closings of one
    /// bucket. Bounded: past [`MAX_ROUTES`] routes, the reopened ones are
    /// forgotten, then a new route goes unpaced.
    ///
    /// Returns the closings that are news: a bucket that was open, or that
    /// now closes more than [`NEWS`] later than it did (what is worth
    /// telling other replicas; the answers of one window say the same
    /// reset again and again).
    pub(crate) fn close(
        &self,
        route: &str,
        closings: &[(Bucket, Instant)],
        (diagnosis, evidence): (&Diagnosis, &Evidence),
        now: Instant,
    ) -> Vec<(Bucket, Instant)> {
        if closings.is_empty() {
            return Vec::new();
        }
        let mut states = self.states();
        if states.len() >= MAX_ROUTES && !states.contains_key(route) {
            let before = states.len();
            states.retain(|_, pace| !pace.is_open(now));
            self.tracked
                .fetch_sub(before - states.len(), Ordering::AcqRel);
            if states.len() >= MAX_ROUTES {
                // Not kept here: still news for the others.
                return closings.to_vec();
            }
        }
        // A request refused for the window is told of a rate limit, even
        // when the answer that closed it was a success (`remaining: 0`).
        let quota = diagnosis.owner() == Some(Owner::Quota);
        let stopped = quota.then(|| Box::new((*diagnosis, evidence.clone())));
        let diagnosis = if diagnosis.owner() == Some(Owner::RateLimit) {
            *diagnosis
        } else {
            Diagnosis::rate_window()
        };
        let pace = states.entry(route.to_owned()).or_insert_with(|| {
            self.tracked.fetch_add(1, Ordering::AcqRel);
            Pace {
                until: [None; 4],
                diagnosis,
                evidence: evidence.clone(),
                quota: None,
            }
        });
        let mut windows = false;
        let mut news = Vec::new();
        for (bucket, until) in closings {
            let slot = &mut pace.until[*bucket as usize];
            if slot.is_none_or(|t| t <= now || *until > t + NEWS) {
                news.push((*bucket, *until));
            }
            *slot = Some(slot.map_or(*until, |t| t.max(*until)));
            windows |= *bucket != Bucket::Quota;
        }
        if stopped.is_some() {
            pace.quota = stopped;
        }
        if windows {
            pace.diagnosis = diagnosis;
            pace.evidence = evidence.clone();
        }
        news
    }
}

/// How much later than known a bucket must close for the closing to be
/// news ([`Paces::close`]).
const NEWS: Duration = Duration::from_millis(25);

/// What a layer learns from answers: rate windows (pacing), quota stops
/// (how long one lasts at most), or both.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Learn {
    pub(crate) pacing: bool,
    /// The cap on honoured waits: a window that reopens later is not kept.
    pub(crate) cap: Duration,
    pub(crate) quota_stop: Option<Duration>,
}

/// The windows an answer closed, judged `now`: with pacing, each rate
/// window it reports used up (`remaining` 0) with a reset within the cap,
/// and, for a rate-limit answer, the whole route for the wait it asked
/// (within the cap); with quota stops, for an answer that says the quota
/// is used up, the route's quota until the wait it asked or the stop's
/// length, whichever is shorter.
pub(crate) fn closings(
    diagnosis: &Diagnosis,
    evidence: &Evidence,
    learn: Learn,
    now: Instant,
) -> Vec<(Bucket, Instant)> {
    let mut closed = Vec::new();
    if let (Some(stop), Some(Owner::Quota)) = (learn.quota_stop, diagnosis.owner()) {
        let asked = evidence.hints().server_delay().map(|(wait, _)| wait);
        let wait = asked.map_or(stop, |asked| asked.min(stop));
        if !wait.is_zero() {
            closed.push((Bucket::Quota, now + wait));
        }
    }
    if !learn.pacing {
        return closed;
    }
    let cap = learn.cap;
    let within = |wait: Duration| (!wait.is_zero() && wait <= cap).then(|| now + wait);
    let RateInfo {
        requests, tokens, ..
    } = *evidence.rate();
    for (bucket, window) in [(Bucket::Requests, requests), (Bucket::Tokens, tokens)] {
        if let Some(until) = window
            .reset
            .filter(|_| window.is_exhausted())
            .and_then(within)
        {
            closed.push((bucket, until));
        }
    }
    let rate_limited =
        diagnosis.owner() == Some(Owner::RateLimit) || diagnosis.class() == Class::RateLimited;
    if rate_limited {
        if let Some(until) = evidence
            .hints()
            .server_delay()
            .and_then(|(wait, _)| within(wait))
        {
            closed.push((Bucket::Route, until));
        }
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use std::time::SystemTime;
    use triage_core::{Profile, classify};

    fn answer(status: u16, headers: &[(&'static str, &'static str)]) -> (Diagnosis, Evidence) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        let evidence = Evidence::from_response(
            StatusCode::from_u16(status).unwrap(),
            &map,
            Profile::openai(),
            SystemTime::UNIX_EPOCH,
        );
        (classify(&evidence, Profile::openai()), evidence)
    }

    const CAP: Duration = Duration::from_secs(120);
    const PACE: Learn = Learn {
        pacing: true,
        cap: CAP,
        quota_stop: None,
    };

    #[test]
    fn a_used_up_quota_stops_the_route_only_with_quota_stops_on() {
        let now = Instant::now();
        let quota = || {
            let mut map = HeaderMap::new();
            map.insert("content-type", HeaderValue::from_static("application/json"));
            let mut evidence = Evidence::from_response(
                StatusCode::TOO_MANY_REQUESTS,
                &map,
                Profile::openai(),
                SystemTime::UNIX_EPOCH,
            );
            evidence.read_failure_body(
                &map,
                br#"{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota"}}"#,
            );
            (classify(&evidence, Profile::openai()), evidence)
        };
        let (d, e) = quota();
        assert_eq!(d.owner(), Some(Owner::Quota), "{d:?}");
        assert!(closings(&d, &e, PACE, now).is_empty(), "off by default");
        let stops = Learn {
            quota_stop: Some(Duration::from_secs(60)),
            ..PACE
        };
        assert_eq!(
            closings(&d, &e, stops, now),
            vec![(Bucket::Quota, now + Duration::from_secs(60))]
        );
        // A stopped route refuses (quota: true) until the stop ends, then
        // is forgotten.
        let paces = Paces::default();
        paces.close("r", &closings(&d, &e, stops, now), (&d, &e), now);
        let closed = paces.closed("r", now).expect("stopped");
        assert!(closed.quota);
        assert_eq!(closed.diagnosis.owner(), Some(Owner::Quota));
        assert!(paces.closed("r", now + Duration::from_secs(61)).is_none());
        assert!(!paces.any());
    }

    #[test]
    fn an_exhausted_window_closes_its_own_bucket_until_its_reset() {
        let now = Instant::now();
        let (d, e) = answer(
            200,
            &[
                ("x-ratelimit-remaining-requests", "7"),
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "2s"),
            ],
        );
        assert_eq!(
            closings(&d, &e, PACE, now),
            vec![(Bucket::Tokens, now + Duration::from_secs(2))]
        );
        // A reset past the cap, or none, closes nothing.
        let (d, e) = answer(
            200,
            &[
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "10m0s"),
            ],
        );
        assert!(closings(&d, &e, PACE, now).is_empty());
        let (d, e) = answer(200, &[("x-ratelimit-remaining-tokens", "0")]);
        assert!(closings(&d, &e, PACE, now).is_empty());
    }

    #[test]
    fn a_rate_limit_that_asks_to_wait_closes_the_route() {
        let now = Instant::now();
        let (d, e) = answer(429, &[("retry-after-ms", "1500")]);
        assert_eq!(
            closings(&d, &e, PACE, now),
            vec![(Bucket::Route, now + Duration::from_millis(1500))]
        );
        // A 503 that asks to wait is no rate window.
        let (d, e) = answer(503, &[("retry-after", "3")]);
        assert!(closings(&d, &e, PACE, now).is_empty());
    }

    #[test]
    fn windows_reopen_by_time_and_routes_are_forgotten() {
        let paces = Paces::default();
        let now = Instant::now();
        let (d, e) = answer(429, &[("retry-after", "2")]);
        assert!(!paces.any());
        assert!(paces.closed("r", now).is_none());
        paces.close(
            "r",
            &[
                (Bucket::Tokens, now + Duration::from_secs(2)),
                (Bucket::Requests, now + Duration::from_secs(1)),
            ],
            (&d, &e),
            now,
        );
        // An earlier closing of the same bucket does not shorten it.
        paces.close(
            "r",
            &[(Bucket::Tokens, now + Duration::from_millis(500))],
            (&d, &e),
            now,
        );
        assert!(paces.any());
        let closed = paces.closed("r", now).unwrap();
        assert_eq!(closed.until, now + Duration::from_secs(2));
        assert_eq!(closed.diagnosis.owner(), Some(Owner::RateLimit));
        assert!(paces.closed("other", now).is_none());
        assert!(paces.closed("r", now + Duration::from_secs(2)).is_none());
        assert!(!paces.any(), "a reopened route is forgotten");
    }

    #[test]
    fn memory_is_bounded_and_reopened_routes_make_room() {
        let paces = Paces::default();
        let now = Instant::now();
        let (d, e) = answer(429, &[("retry-after", "2")]);
        let soon = now + Duration::from_millis(10);
        for n in 0..MAX_ROUTES + 50 {
            paces.close(&format!("r{n}"), &[(Bucket::Route, soon)], (&d, &e), now);
        }
        assert_eq!(paces.states().len(), MAX_ROUTES);
        assert_eq!(paces.tracked.load(Ordering::Acquire), MAX_ROUTES);
        // Once they reopened, a new route finds room.
        let later = now + Duration::from_secs(1);
        paces.close(
            "new",
            &[(Bucket::Route, later + Duration::from_secs(1))],
            (&d, &e),
            later,
        );
        assert!(paces.closed("new", later).is_some());
        assert_eq!(paces.tracked.load(Ordering::Acquire), 1);
    }
}
