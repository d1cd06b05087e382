//! The layer's settings ([`Config`], shared by its clones), the per-host
//! [`Pool`], and the settings of one call: the layer's, with the request's
//! [`RequestOptions`] over them ([`CallSettings::resolve`]).

use std::cell::RefCell;
use std::num::NonZeroU64;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use triage_core::{Profile, RetryBudget, RetryRules};

use crate::capture::ConnectionLog;
use crate::host::host_of;
use crate::idempotency::IdempotencyKeys;
use crate::observer::Observer;
use crate::options::RequestOptions;
use crate::route::{Breaker, DiagnosisWindow, Learn, Paces, Routes};
use crate::share::Share;

/// At most this many bytes of a failure body are read to classify it.
pub const PEEK_LIMIT: usize = triage_core::body::MAX_FAILURE_BODY;

/// Cloning shares the budget: every copy of a layer spends from one allowance.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) profile: Option<Arc<Profile>>,
    pub(crate) rules: RetryRules,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) body_idle_timeout: Option<Duration>,
    pub(crate) peek_timeout: Duration,
    pub(crate) errors_for_status: bool,
    pub(crate) whole_body: Option<NonZeroU64>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) breaker: Breaker,
    pub(crate) window: DiagnosisWindow,
    pub(crate) routes: Arc<Routes>,
    pub(crate) pool: Option<Pool>,
    pub(crate) idempotency: IdempotencyKeys,
    /// Pacing on: requests on a route whose rate window is closed wait
    /// for its reset.
    pub(crate) pacing: bool,
    pub(crate) paces: Arc<Paces>,
    /// A streamed success's first event is held until whole (the commit
    /// point).
    pub(crate) stream_first_event: bool,
    pub(crate) first_byte_timeout: Option<Duration>,
    /// Shares the windows learned with other replicas.
    pub(crate) share: Option<Arc<dyn Share>>,
    /// How long a quota stop lasts at most (`None`: no quota stops).
    pub(crate) quota_stop: Option<Duration>,
}

/// How many fingerprints of sensitive header values a call keeps when it
/// keeps no head (two headers, each with its last word).
pub(crate) const PRINTS: usize = 4;

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
        if slots.len() >= crate::route::MAX_ROUTES && !slots.contains_key(route) {
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
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .field("peek_timeout", &self.peek_timeout)
            .field("errors_for_status", &self.errors_for_status)
            .field("whole_body", &self.whole_body)
            .field("observer", &self.observer.is_some())
            .field("breaker", &self.breaker)
            .field("window", &self.window)
            .field("idempotency", &self.idempotency)
            .field("pacing", &self.pacing)
            .field("stream_first_event", &self.stream_first_event)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("share", &self.share)
            .field("quota_stop", &self.quota_stop)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// What the layer learns from answers under `rules` (the call's, or the
    /// layer's): rate windows within their cap on honoured waits, quota
    /// stops.
    pub(crate) fn learn(&self, rules: &RetryRules) -> Learn {
        Learn {
            pacing: self.pacing,
            cap: rules.retry_after_cap(),
            quota_stop: self.quota_stop,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: None,
            rules: RetryRules::default(),
            budget: Arc::new(RetryBudget::default()),
            attempt_timeout: None,
            connect_timeout: None,
            write_timeout: None,
            body_idle_timeout: None,
            peek_timeout: Duration::from_secs(2),
            errors_for_status: false,
            whole_body: None,
            observer: None,
            breaker: Breaker::default(),
            window: DiagnosisWindow::default(),
            routes: Arc::default(),
            pool: None,
            idempotency: IdempotencyKeys::default(),
            pacing: true,
            paces: Arc::default(),
            stream_first_event: true,
            first_byte_timeout: None,
            share: None,
            quota_stop: None,
        }
    }
}

/// The profile of a call: a built-in one (detected from the host) or the
/// layer's own.
#[derive(Debug, Clone)]
pub(crate) enum ProfileRef {
    Static(&'static Profile),
    Shared(Arc<Profile>),
}

impl Deref for ProfileRef {
    type Target = Profile;
    fn deref(&self) -> &Profile {
        match self {
            ProfileRef::Static(p) => p,
            ProfileRef::Shared(p) => p,
        }
    }
}

/// The settings of one call: the layer's, with the request's
/// [`RequestOptions`] over them. Read once, when the call starts.
pub(crate) struct CallSettings {
    pub(crate) profile: ProfileRef,
    /// Rules of the request's own (`None`: the layer's).
    pub(crate) rules: Option<Box<RetryRules>>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) body_idle_timeout: Option<Duration>,
    pub(crate) whole_body: Option<NonZeroU64>,
    pub(crate) breaker_on: bool,
    pub(crate) window_on: bool,
    /// What few calls carry: a connection log, a correlation ID (boxed:
    /// the others pay a null pointer).
    pub(crate) extras: Option<Box<Extras>>,
}

/// A call's rarely set extras.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) log: Option<ConnectionLog>,
    pub(crate) correlation: Option<Arc<str>>,
}

/// The extras of a call: the options' log and correlation ID, else the
/// correlation ID of a forwarded request's tower-http `RequestId`.
fn extras(options: Option<&RequestOptions>, extensions: &http::Extensions) -> Option<Box<Extras>> {
    let log = options.and_then(|o| o.log.clone());
    let correlation = options
        .and_then(|o| o.correlation.clone())
        .or_else(|| request_id(extensions));
    (log.is_some() || correlation.is_some()).then(|| Box::new(Extras { log, correlation }))
}

/// The correlation ID of tower-http's `RequestId` extension, if any.
#[cfg(feature = "tower-http")]
fn request_id(extensions: &http::Extensions) -> Option<Arc<str>> {
    let id = extensions.get::<tower_http::request_id::RequestId>()?;
    let text = String::from_utf8_lossy(id.header_value().as_bytes());
    let text = triage_core::redact::printable(&text, crate::options::MAX_CORRELATION);
    Some(Arc::from(text.as_ref()))
}

#[cfg(not(feature = "tower-http"))]
fn request_id(_: &http::Extensions) -> Option<Arc<str>> {
    None
}

impl CallSettings {
    /// The settings of a call to `uri` under `config`, with `options` (the
    /// request's, if it has any) over them.
    pub(crate) fn resolve(
        config: &Config,
        options: Option<&RequestOptions>,
        (uri, extensions): (&Uri, &http::Extensions),
    ) -> Self {
        let Some(o) = options else {
            return CallSettings {
                profile: match &config.profile {
                    Some(p) => ProfileRef::Shared(Arc::clone(p)),
                    None => ProfileRef::Static(detected(uri)),
                },
                rules: None,
                attempt_timeout: config.attempt_timeout,
                connect_timeout: config.connect_timeout,
                write_timeout: config.write_timeout,
                body_idle_timeout: config.body_idle_timeout,
                whole_body: config.whole_body,
                breaker_on: config.breaker.enabled,
                window_on: config.window.enabled,
                extras: request_id(extensions).map(|correlation| {
                    Box::new(Extras {
                        log: None,
                        correlation: Some(correlation),
                    })
                }),
            };
        };
        let rules = (o.max_retries.is_some() || o.deadline.is_some()).then(|| {
            let mut rules = config.rules.clone();
            if let Some(n) = o.max_retries {
                rules = rules.max_retries(n);
            }
            if let Some(deadline) = o.deadline {
                rules = rules.deadline(deadline);
            }
            Box::new(rules)
        });
        CallSettings {
            profile: match o.profile.as_ref().or(config.profile.as_ref()) {
                Some(p) => ProfileRef::Shared(Arc::clone(p)),
                None => ProfileRef::Static(detected(uri)),
            },
            rules,
            attempt_timeout: o.attempt_timeout.unwrap_or(config.attempt_timeout),
            connect_timeout: o.connect_timeout.unwrap_or(config.connect_timeout),
            write_timeout: o.write_timeout.unwrap_or(config.write_timeout),
            body_idle_timeout: o.body_idle_timeout.unwrap_or(config.body_idle_timeout),
            whole_body: o.whole_body.unwrap_or(config.whole_body),
            breaker_on: config.breaker.enabled && o.breaker.unwrap_or(true),
            window_on: config.window.enabled && o.window.unwrap_or(true),
            extras: extras(Some(o), extensions),
        }
    }
}

/// The longest authority the per-thread cache of [`detected`] keeps.
const CACHED_AUTHORITY: usize = 62;

thread_local! {
    /// The last authority whose profile this thread detected, and the
    /// profile: a service calls the same few hosts, so most calls skip the
    /// host parse and the detection (about 300 instructions) for a compare.
    /// (A `RefCell`: read in place, where a `Cell` copies the key out.)
    static LAST_DETECTED: RefCell<([u8; CACHED_AUTHORITY], usize, Option<&'static Profile>)> =
        const { RefCell::new(([0; CACHED_AUTHORITY], 0, None)) };
}

/// The built-in profile for `uri`'s host ([`Profile::detect`]), through a
/// one-entry cache per thread keyed by the whole authority.
pub(crate) fn detected(uri: &Uri) -> &'static Profile {
    let authority = uri.authority().map_or(&b""[..], |a| a.as_str().as_bytes());
    let len = authority.len();
    if len > CACHED_AUTHORITY {
        return Profile::detect(host_of(uri));
    }
    LAST_DETECTED.with(|last| {
        if let Ok(last) = last.try_borrow() {
            if let (key, key_len, Some(profile)) = &*last {
                if *key_len == len && same_bytes(&key[..len], authority) {
                    return *profile;
                }
            }
        }
        let profile = Profile::detect(host_of(uri));
        if let Ok(mut last) = last.try_borrow_mut() {
            last.0[..len].copy_from_slice(authority);
            last.1 = len;
            last.2 = Some(profile);
        }
        profile
    })
}

/// Whether two byte strings of one length are equal, eight bytes at a time
/// (inline, where a slice compare calls `memcmp`).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    if a.len() < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut at = 0;
    while at + 8 <= a.len() {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word, overlapping the one before.
    word(a, a.len() - 8) == word(b, b.len() - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_compares_every_length() {
        let text = b"api.openai.com.example.test:8443/abcdefghijklmnop";
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_bytes(a, a), "{len}");
            for i in 0..len {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!same_bytes(a, &b), "{len} {i}");
            }
        }
        assert!(!same_bytes(b"abc", b"abcd"));
    }

    #[test]
    fn the_detection_cache_answers_for_the_authority_it_holds() {
        let openai = Uri::from_static("https://api.openai.com/v1/models");
        let stripe = Uri::from_static("https://api.stripe.com/v1/charges");
        let lookalike = Uri::from_static("https://api.openai.com.evil.test/v1/models");
        let long = Uri::from_static(
            "https://a-very-long-host-name-that-does-not-fit-the-cache.api.openai.com/x",
        );
        for _ in 0..2 {
            assert_eq!(detected(&openai).name(), "openai");
            assert_eq!(detected(&stripe).name(), "stripe");
            assert_eq!(detected(&openai).name(), "openai");
            assert_eq!(detected(&lookalike).name(), "generic");
            assert_eq!(detected(&long).name(), "generic");
            assert_eq!(detected(&Uri::from_static("/relative")).name(), "generic");
        }
    }

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
