//! [`TriageLayer`]: the per-client settings.

use std::sync::Arc;
use std::time::Duration;

use tower::Layer;
use triage_core::{Profile, RetryBudget, RetryRules};

use crate::breaker::{Breaker, DiagnosisWindow, Routes};
use crate::observer::Observer;
use crate::service::Triage;

/// At most this many bytes of a failure body are read to classify it.
pub const PEEK_LIMIT: usize = triage_core::body::MAX_FAILURE_BODY;

/// Cloning shares the budget: every copy of a layer spends from one allowance.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) profile: Option<Arc<Profile>>,
    pub(crate) rules: RetryRules,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) body_idle_timeout: Option<Duration>,
    pub(crate) peek_timeout: Duration,
    pub(crate) errors_for_status: bool,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) breaker: Breaker,
    pub(crate) window: DiagnosisWindow,
    pub(crate) routes: Arc<Routes>,
    pub(crate) pool: Option<Pool>,
}

/// The per-host concurrency limit: at most `per_host` calls in flight to
/// one route (from the first attempt until the response body ends), a call
/// that waits longer than `timeout` for a slot failing with a `pool`
/// timeout. Clones of the layer share the slots.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub(crate) per_host: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) slots:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>>,
}

impl Pool {
    /// The slots of `route`.
    pub(crate) fn slots(&self, route: &str) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slots.len() >= crate::breaker::MAX_ROUTES && !slots.contains_key(route) {
            // Bounded memory: forget the routes with no call in flight
            // (every slot free, nobody else holding the semaphore).
            let per_host = self.per_host;
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < per_host);
        }
        Arc::clone(
            slots
                .entry(route.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_host))),
        )
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "profile",
                &self.profile.as_ref().map(|p| p.name().to_owned()),
            )
            .field("rules", &self.rules)
            .field("budget", &self.budget)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .field("peek_timeout", &self.peek_timeout)
            .field("errors_for_status", &self.errors_for_status)
            .field("observer", &self.observer.is_some())
            .field("breaker", &self.breaker)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: None,
            rules: RetryRules::default(),
            budget: Arc::new(RetryBudget::default()),
            attempt_timeout: None,
            write_timeout: None,
            body_idle_timeout: None,
            peek_timeout: Duration::from_secs(2),
            errors_for_status: false,
            observer: None,
            breaker: Breaker::default(),
            window: DiagnosisWindow::default(),
            routes: Arc::default(),
            pool: None,
        }
    }
}

/// Wraps an HTTP client in [`Triage`].
///
/// Clones share one retry budget, so every clone of a client spends from the
/// same allowance.
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
    config: Arc<Config>,
}

impl TriageLayer {
    /// The defaults: the profile detected from each request's host,
    /// openai-python's retry rules, the default retry budget, the route
    /// breaker on ([`Breaker::new`]), no per-attempt timeout, failure bodies
    /// read for at most 2 s, and final failure statuses handed back as
    /// responses.
    pub fn new() -> TriageLayer {
        TriageLayer::default()
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

    /// Bounds the wait for each attempt's response head.
    pub fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config().attempt_timeout = timeout;
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

    /// Sends the data of every event to `observer` as values.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.config().observer = Some(Arc::new(observer));
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

    /// Turns a final failure status into an error (as the official SDKs do)
    /// instead of handing the response back.
    pub fn errors_for_status(mut self, yes: bool) -> Self {
        self.config().errors_for_status = yes;
        self
    }
}

impl<S> Layer<S> for TriageLayer {
    type Service = Triage<S>;

    fn layer(&self, inner: S) -> Triage<S> {
        Triage::from_config(inner, Arc::clone(&self.config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_slots_of_idle_routes_are_forgotten_past_the_bound() {
        let pool = Pool {
            per_host: 2,
            timeout: None,
            slots: Arc::default(),
        };
        // One route keeps a call in flight; it must survive the pruning.
        let busy = pool.slots("http://busy.test:80");
        let permit = Arc::clone(&busy).try_acquire_owned().unwrap();
        drop(busy);
        for n in 0..3000 {
            drop(pool.slots(&format!("http://host{n}.test:80")));
        }
        let slots = pool.slots.lock().unwrap();
        assert!(slots.len() <= 1025, "{} routes kept", slots.len());
        assert_eq!(
            slots["http://busy.test:80"].available_permits(),
            1,
            "the busy route's slots were forgotten"
        );
        drop(permit);
    }
}
