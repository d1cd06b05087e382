//! [`RetryRules`]: how many retries, which waits are honoured, the total
//! deadline and the idempotency gate; and [`RetryRules::decide`].

use std::time::{Duration, Instant};

use http::Method;

use super::backoff::Backoff;
use super::budget::RetryBudget;
use super::decision::{Decision, ReplayBasis, Retry, Stop};
use crate::classify::Diagnosis;
use crate::evidence::{DelaySource, Evidence};
use crate::headers;
use crate::owner::{Class, Replay};
use crate::profile::Profile;

/// The most retries [`RetryRules::max_retries`] accepts; larger values are
/// clamped to it.
pub const MAX_RETRIES: u32 = 100;

/// The longest wait [`RetryRules::max_retry_after`] accepts (one day);
/// larger values are clamped to it.
pub const MAX_RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 60 * 60);

/// When a request that may already have been processed may be sent again.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ReplayRule {
    /// From the evidence (the default): a request that was provably not
    /// processed is resent for every method; one that may have been is
    /// resent only if its method is idempotent, it carries an
    /// `Idempotency-Key`, or the profile says the API's POSTs are
    /// replay-safe.
    #[default]
    Evidence,
    /// Every request may be resent (you know your calls are idempotent).
    Always,
    /// Only requests that were provably not processed are resent.
    OnlyUnprocessed,
}

/// What [`RetryRules::decide`] needs to know about the attempt that just
/// ended.
#[derive(Debug, Clone, Copy)]
pub struct AttemptContext<'a> {
    number: u32,
    method: &'a Method,
    idempotency_key: bool,
    replayable: bool,
    elapsed: Duration,
    random: f64,
}

impl<'a> AttemptContext<'a> {
    /// Attempt `number` (1 for the first) of a request with `method`.
    /// By default the request is replayable, has no `Idempotency-Key`, no
    /// time has passed, and the jitter sample is 0.5.
    pub const fn new(number: u32, method: &'a Method) -> AttemptContext<'a> {
        AttemptContext {
            number,
            method,
            idempotency_key: false,
            replayable: true,
            elapsed: Duration::ZERO,
            random: 0.5,
        }
    }

    /// Whether the request carries an `Idempotency-Key` header.
    pub const fn idempotency_key(mut self, present: bool) -> Self {
        self.idempotency_key = present;
        self
    }

    /// Whether the request (its body) can be sent again.
    pub const fn replayable(mut self, replayable: bool) -> Self {
        self.replayable = replayable;
        self
    }

    /// Time since the first attempt started.
    pub const fn elapsed(mut self, elapsed: Duration) -> Self {
        self.elapsed = elapsed;
        self
    }

    /// A uniform sample in `[0, 1)` for the backoff jitter.
    pub const fn random(mut self, random: f64) -> Self {
        self.random = random;
        self
    }
}

/// How a failed attempt is retried. The defaults are openai-python's: 2
/// retries, backoff from 0.5 s to 8 s with up to 25 % jitter below, server
/// waits honoured up to 120 s (longer waits stop the request and say why),
/// no total deadline, and the evidence-based idempotency gate.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use http::{HeaderMap, HeaderValue, Method, StatusCode};
/// use triage_core::{classify, AttemptContext, DelaySource, Decision, Evidence, Profile, RetryBudget, RetryRules};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", HeaderValue::from_static("3"));
/// let profile = Profile::generic();
/// let evidence = Evidence::from_response(StatusCode::TOO_MANY_REQUESTS, &headers, profile, SystemTime::now());
/// let diagnosis = classify(&evidence, profile);
///
/// let rules = RetryRules::default();
/// let budget = RetryBudget::default();
/// let post = Method::POST;
/// let decision = rules.decide(&diagnosis, &evidence, profile, &AttemptContext::new(1, &post), &budget, Instant::now());
/// match decision {
///     Decision::Retry(retry) => {
///         assert_eq!(retry.delay(), Duration::from_secs(3));
///         assert_eq!(retry.source(), DelaySource::RetryAfter);
///     }
///     other => panic!("expected a retry, got {other}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRules {
    max_retries: u32,
    backoff: Backoff,
    max_retry_after: Duration,
    deadline: Option<Duration>,
    replay: ReplayRule,
}

impl Default for RetryRules {
    fn default() -> Self {
        RetryRules {
            max_retries: 2,
            backoff: Backoff::openai(),
            max_retry_after: Duration::from_secs(120),
            deadline: None,
            replay: ReplayRule::Evidence,
        }
    }
}

impl RetryRules {
    /// Rules that never retry.
    pub fn none() -> RetryRules {
        RetryRules::default().max_retries(0)
    }

    /// Sets how many times a request may be retried (0 turns retries off),
    /// at most [`MAX_RETRIES`].
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries.min(MAX_RETRIES);
        self
    }

    /// Sets the backoff used when the server gives no wait.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the longest server-asked wait that is honoured (default 120 s,
    /// at most [`MAX_RETRY_AFTER_CAP`]); a longer one stops the request with
    /// [`Stop::WaitTooLong`].
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap.min(MAX_RETRY_AFTER_CAP);
        self
    }

    /// Sets a total deadline over every attempt and wait; a retry whose wait
    /// would pass it is not made.
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the idempotency gate.
    pub fn replay(mut self, rule: ReplayRule) -> Self {
        self.replay = rule;
        self
    }

    /// The retry limit.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The backoff.
    pub fn backoff_policy(&self) -> &Backoff {
        &self.backoff
    }

    /// The longest honoured server wait.
    pub fn retry_after_cap(&self) -> Duration {
        self.max_retry_after
    }

    /// The total deadline, if any.
    pub fn total_deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The idempotency gate.
    pub fn replay_rule(&self) -> ReplayRule {
        self.replay
    }

    /// Decides what to do after an attempt.
    ///
    /// In order: success stops; a failure that cannot be helped stops
    /// (naming its owner, or the server's `x-should-retry: false`); then the
    /// retry limit, a body that cannot be resent, the idempotency gate, the
    /// wait (the server's, capped, else backoff), the total deadline, and
    /// last the shared budget, so that a withdrawal is made only for a retry
    /// that will happen.
    pub fn decide(
        &self,
        diagnosis: &Diagnosis,
        evidence: &Evidence,
        profile: &Profile,
        attempt: &AttemptContext<'_>,
        budget: &RetryBudget,
        now: Instant,
    ) -> Decision {
        if diagnosis.is_success() {
            return Decision::Stop(Stop::Success);
        }
        if !diagnosis.is_retryable() {
            return Decision::Stop(match (diagnosis.server_verdict(), diagnosis.owner()) {
                (Some(false), _) => Stop::ServerSaidNo,
                (_, Some(owner)) => Stop::NotRetryable(owner),
                (_, None) => Stop::Success,
            });
        }
        if self.max_retries == 0 {
            return Decision::Stop(Stop::RetriesDisabled);
        }
        if attempt.number > self.max_retries {
            return Decision::Stop(Stop::AttemptsExhausted);
        }
        if !attempt.replayable {
            return Decision::Stop(Stop::BodyNotReplayable);
        }
        let basis = match self.replay_basis(diagnosis.replay(), attempt, profile) {
            Ok(basis) => basis,
            Err(stop) => return Decision::Stop(stop),
        };
        let (delay, source) = match server_wait(diagnosis, evidence) {
            Some((wait, _)) if wait > self.max_retry_after => {
                return Decision::Stop(Stop::WaitTooLong(wait));
            }
            Some(found) => found,
            None => (
                self.backoff
                    .delay(attempt.number.saturating_sub(1), attempt.random),
                DelaySource::Backoff,
            ),
        };
        if let Some(deadline) = self.deadline {
            if attempt.elapsed.saturating_add(delay) >= deadline {
                return Decision::Stop(Stop::DeadlineExceeded);
            }
        }
        if !budget.try_withdraw(now) {
            return Decision::Stop(Stop::BudgetExhausted);
        }
        Decision::Retry(Retry::new(delay, source, basis))
    }

    fn replay_basis(
        &self,
        replay: Replay,
        attempt: &AttemptContext<'_>,
        profile: &Profile,
    ) -> Result<ReplayBasis, Stop> {
        if replay == Replay::NotProcessed {
            return Ok(ReplayBasis::NotProcessed);
        }
        match self.replay {
            ReplayRule::Always => Ok(ReplayBasis::Always),
            ReplayRule::OnlyUnprocessed => Err(Stop::NotReplaySafe(replay)),
            ReplayRule::Evidence => {
                if is_idempotent(attempt.method) {
                    Ok(ReplayBasis::IdempotentMethod)
                } else if attempt.idempotency_key {
                    Ok(ReplayBasis::IdempotencyKey)
                } else if profile.replay_safe_posts() {
                    Ok(ReplayBasis::Profile)
                } else {
                    Err(Stop::NotReplaySafe(replay))
                }
            }
        }
    }
}

/// Idempotent methods per RFC 9110 §9.2.2.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The wait the answer asked for, by precedence: `retry-after-ms`,
/// `Retry-After`, `x-amz-retry-after`, the body's retry delay, the reset of
/// an exhausted rate window (rate limits only), a wait written in the error
/// message. Zero waits are not honoured (backoff applies), as in
/// openai-python.
fn server_wait(diagnosis: &Diagnosis, evidence: &Evidence) -> Option<(Duration, DelaySource)> {
    let body = evidence.failure_body();
    let rate_limited = matches!(diagnosis.class(), Class::RateLimited);
    evidence
        .hints()
        .server_delay()
        .or_else(|| {
            body.and_then(|b| b.retry_delay())
                .map(|d| (d, DelaySource::Body))
        })
        .or_else(|| {
            rate_limited
                .then(|| evidence.rate().exhausted_reset())
                .flatten()
                .map(|d| (d, DelaySource::ResetHeader))
        })
        .or_else(|| {
            body.and_then(|b| b.message())
                .and_then(headers::delay_in_message)
                .map(|d| (d, DelaySource::Body))
        })
        .filter(|(d, _)| !d.is_zero())
}
