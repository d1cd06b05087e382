//! Sharing what a layer learns with other replicas ([`Share`]): the rate
//! windows its answers closed, and its quota stops. The `triage-fleet` crate implements it over
//! Redis or Valkey; the happy path never waits on it (lookups read the
//! layer's own state, which a [`Share`] keeps current through an
//! [`Inbox`]).

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use tokio::time::Instant;
use triage_core::{Class, Diagnosis, Evidence, QuotaKind};

use crate::route::{Bucket, Learn, Paces};

/// Which rate window of a route closed, or its quota stop.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateBucket {
    /// The request-count window (and the single window of most profiles).
    Requests,
    /// The token window (LLM providers).
    Tokens,
    /// The route as a whole: a rate limit asked to wait.
    Route,
    /// A quota stop: the account's quota of this kind is used up
    /// ([`TriageLayer::quota_stops`](crate::TriageLayer::quota_stops)).
    Quota(QuotaKind),
}

impl RateBucket {
    /// A stable, lowercase name: `requests`, `tokens`, `route`,
    /// `quota.billing`, `quota.spend_limit`, `quota.period`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RateBucket::Requests => "requests",
            RateBucket::Tokens => "tokens",
            RateBucket::Route => "route",
            RateBucket::Quota(QuotaKind::Billing) => "quota.billing",
            RateBucket::Quota(QuotaKind::SpendLimit) => "quota.spend_limit",
            RateBucket::Quota(QuotaKind::Period) => "quota.period",
            // A kind added later: not shared until it has a name here.
            RateBucket::Quota(_) => "quota",
        }
    }

    /// The bucket named `name` ([`RateBucket::as_str`]).
    pub fn parse(name: &str) -> Option<RateBucket> {
        match name {
            "requests" => Some(RateBucket::Requests),
            "tokens" => Some(RateBucket::Tokens),
            "route" => Some(RateBucket::Route),
            "quota.billing" => Some(RateBucket::Quota(QuotaKind::Billing)),
            "quota.spend_limit" => Some(RateBucket::Quota(QuotaKind::SpendLimit)),
            "quota.period" => Some(RateBucket::Quota(QuotaKind::Period)),
            _ => None,
        }
    }

    /// The shared name of `bucket`, closed by an answer judged
    /// `diagnosis` (`None` for a quota stop whose class is no quota's).
    const fn of(bucket: Bucket, diagnosis: &Diagnosis) -> Option<RateBucket> {
        Some(match bucket {
            Bucket::Requests => RateBucket::Requests,
            Bucket::Tokens => RateBucket::Tokens,
            Bucket::Route => RateBucket::Route,
            Bucket::Quota => match diagnosis.class() {
                Class::QuotaExhausted(kind) => RateBucket::Quota(kind),
                _ => return None,
            },
        })
    }

    const fn local(self) -> Bucket {
        match self {
            RateBucket::Requests => Bucket::Requests,
            RateBucket::Tokens => Bucket::Tokens,
            RateBucket::Route => Bucket::Route,
            RateBucket::Quota(_) => Bucket::Quota,
        }
    }
}

/// A rate window one replica learned closed, or a quota stop: what
/// replicas share. Nothing
/// in it is secret: the route is scheme, host and port; the profile a
/// name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedWindow {
    /// The route: `https://api.openai.com:443`.
    pub route: String,
    /// The name of the profile the answer was read with.
    pub profile: String,
    /// Which window.
    pub bucket: RateBucket,
    /// When it reopens (or the stop ends), by the wall clock (the same instant on every
    /// replica, up to their clocks' skew).
    pub until: SystemTime,
}

/// Shares the rate windows and quota stops a layer learns with other
/// replicas, and brings theirs in
/// ([`TriageLayer::share`](crate::TriageLayer::share)).
///
/// [`publish`](Share::publish) is called on the path of a call (after an
/// answer that closed a window or stopped a quota): it must return at once, queueing the work
/// for a task of its own and dropping it when the queue is full. Windows
/// learned elsewhere go into the [`Inbox`] handed to
/// [`attach`](Share::attach); the layer's lookups read only its own state,
/// so a coordinator that is slow or down never delays a call.
///
/// # Example
///
/// A share over something other than Redis has the same two halves: send
/// what is published to the other replicas, and hand what they send to
/// every attached [`Inbox`]. Here, layers in one process:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tower_triage::{Inbox, Share, SharedWindow, TriageLayer};
///
/// #[derive(Debug, Clone, Default)]
/// struct InProcess(Arc<Mutex<Vec<Inbox>>>);
///
/// impl Share for InProcess {
///     fn publish(&self, window: &SharedWindow) {
///         // A real share queues this for a task of its own and returns.
///         let inboxes = self.0.lock().unwrap().clone();
///         for inbox in inboxes.iter().filter(|inbox| inbox.is_live()) {
///             inbox.receive(window);
///         }
///     }
///
///     fn attach(&self, inbox: Inbox) {
///         self.0.lock().unwrap().push(inbox);
///     }
/// }
///
/// let share = InProcess::default();
/// let a = TriageLayer::new().share(share.clone());
/// let b = TriageLayer::new().share(share.clone());
/// assert_eq!(share.0.lock().unwrap().len(), 2);
/// # let _ = (a, b);
/// ```
pub trait Share: Send + Sync + std::fmt::Debug + 'static {
    /// A window this replica learned closed.
    fn publish(&self, window: &SharedWindow);

    /// Where the windows other replicas learned go; called when the
    /// layer is given this share.
    fn attach(&self, inbox: Inbox);
}

/// Where a [`Share`] puts the windows other replicas learned: the layer's
/// own state (a lock held for a map insert). It does not keep the layer
/// alive: once the layer and its services are dropped,
/// [`is_live`](Inbox::is_live) turns false and a share's task can end.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Inbox {
    paces: Weak<Paces>,
    learn: Learn,
}

impl Inbox {
    pub(crate) fn new(paces: &Arc<Paces>, learn: Learn) -> Inbox {
        Inbox {
            paces: Arc::downgrade(paces),
            learn,
        }
    }

    /// Whether the layer this inbox feeds still exists.
    pub fn is_live(&self) -> bool {
        self.paces.strong_count() > 0
    }

    /// A window another replica learned closed: this layer's requests on
    /// its route wait for it too (or, for a quota stop, are refused). One
    /// that reopened already, one that reopens later than the layer's cap
    /// on honoured waits, and one of a kind this layer does not learn
    /// (pacing off, quota stops off) are ignored; a quota stop is cut to
    /// this layer's length. Returns whether it was taken.
    pub fn receive(&self, window: &SharedWindow) -> bool {
        let Ok(left) = window.until.duration_since(SystemTime::now()) else {
            return false;
        };
        let (left, diagnosis) = match window.bucket {
            RateBucket::Quota(kind) => match self.learn.quota_stop {
                Some(stop) => (left.min(stop), Diagnosis::quota_stop(kind)),
                None => return false,
            },
            _ if !self.learn.pacing || left > self.learn.cap => return false,
            _ => (left, Diagnosis::rate_window()),
        };
        if left.is_zero() {
            return false;
        }
        let Some(paces) = self.paces.upgrade() else {
            return false;
        };
        let now = Instant::now();
        paces.close(
            &window.route,
            &[(window.bucket.local(), now + left)],
            (&diagnosis, &Evidence::default()),
            now,
        );
        true
    }

    /// Whether the layer holds a closed window for `route` now.
    pub fn is_closed(&self, route: &str) -> bool {
        self.paces
            .upgrade()
            .is_some_and(|paces| paces.any() && paces.closed(route, Instant::now()).is_some())
    }
}

/// The windows a layer just closed, as shared: `closings` at `now`, by the
/// wall clock, learned with `profile` from an answer judged `diagnosis`.
pub(crate) fn shared(
    route: &str,
    (profile, diagnosis): (&str, &Diagnosis),
    closings: &[(Bucket, Instant)],
    now: Instant,
) -> Vec<SharedWindow> {
    let wall = SystemTime::now();
    closings
        .iter()
        .filter_map(|(bucket, until)| {
            Some(SharedWindow {
                route: route.to_owned(),
                profile: profile.to_owned(),
                bucket: RateBucket::of(*bucket, diagnosis)?,
                until: wall + until.saturating_duration_since(now),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_have_stable_names() {
        for bucket in [
            RateBucket::Requests,
            RateBucket::Tokens,
            RateBucket::Route,
            RateBucket::Quota(QuotaKind::Billing),
            RateBucket::Quota(QuotaKind::SpendLimit),
            RateBucket::Quota(QuotaKind::Period),
        ] {
            assert_eq!(RateBucket::parse(bucket.as_str()), Some(bucket));
        }
        assert_eq!(RateBucket::parse("other"), None);
    }

    #[tokio::test]
    async fn an_inbox_takes_windows_that_reopen_within_the_cap() {
        let paces = Arc::new(Paces::default());
        let learn = Learn {
            pacing: true,
            cap: Duration::from_secs(120),
            quota_stop: None,
        };
        let inbox = Inbox::new(&paces, learn);
        let window = |secs: i64| SharedWindow {
            route: "https://api.test:443".into(),
            profile: "generic".into(),
            bucket: RateBucket::Route,
            until: if secs >= 0 {
                SystemTime::now() + Duration::from_secs(secs as u64)
            } else {
                SystemTime::now() - Duration::from_secs((-secs) as u64)
            },
        };
        assert!(!inbox.receive(&window(-5)), "reopened already");
        assert!(!inbox.receive(&window(600)), "past the cap");
        assert!(!inbox.is_closed("https://api.test:443"));
        assert!(inbox.receive(&window(30)));
        assert!(inbox.is_closed("https://api.test:443"));
        assert!(!inbox.is_closed("https://other.test:443"));
        drop(paces);
        assert!(!inbox.is_live());
        assert!(!inbox.receive(&window(30)), "the layer is gone");
    }
}
