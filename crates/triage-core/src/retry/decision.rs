//! The outcome of [`RetryRules::decide`](super::RetryRules::decide): retry
//! after a delay, or stop, always with a machine-readable reason.

use std::fmt;
use std::time::Duration;

use crate::evidence::DelaySource;
use crate::owner::{Owner, Replay};

/// What to do after an attempt: there are exactly two answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the request again after a delay.
    Retry(Retry),
    /// Do not send it again.
    Stop(Stop),
}

impl Decision {
    /// Whether this is a retry.
    pub const fn is_retry(&self) -> bool {
        matches!(self, Decision::Retry(_))
    }

    /// The delay before the next attempt, for a retry.
    pub const fn delay(&self) -> Option<Duration> {
        match self {
            Decision::Retry(r) => Some(r.delay),
            Decision::Stop(_) => None,
        }
    }

    /// A stable, machine-readable reason: `retry` or a [`Stop::as_str`] name.
    pub const fn reason(&self) -> &'static str {
        match self {
            Decision::Retry(_) => "retry",
            Decision::Stop(stop) => stop.as_str(),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Retry(r) => write!(
                f,
                "retry in {} ms ({}; {})",
                r.delay.as_millis(),
                r.source.as_str(),
                r.basis.as_str()
            ),
            Decision::Stop(stop) => write!(f, "stop ({})", stop.as_str()),
        }
    }
}

/// A decision to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    delay: Duration,
    source: DelaySource,
    basis: ReplayBasis,
}

impl Retry {
    pub(crate) const fn new(delay: Duration, source: DelaySource, basis: ReplayBasis) -> Retry {
        Retry {
            delay,
            source,
            basis,
        }
    }

    /// How long to wait before the next attempt.
    pub const fn delay(&self) -> Duration {
        self.delay
    }

    /// Where the delay came from (a header, the body, or backoff).
    pub const fn source(&self) -> DelaySource {
        self.source
    }

    /// Why resending this request is safe.
    pub const fn basis(&self) -> ReplayBasis {
        self.basis
    }
}

/// Why resending a request is safe: the case of the idempotency gate that
/// applied.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ReplayBasis {
    /// The evidence shows the request was not processed.
    NotProcessed,
    /// It may have been processed, but the method is idempotent (RFC 9110).
    IdempotentMethod,
    /// It may have been processed, but it carries an `Idempotency-Key`.
    IdempotencyKey,
    /// It may have been processed, but the profile says the API's POSTs are
    /// safe to replay.
    Profile,
    /// The rules say to replay every request ([`ReplayRule::Always`](super::ReplayRule::Always)).
    Always,
}

impl ReplayBasis {
    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReplayBasis::NotProcessed => "not_processed",
            ReplayBasis::IdempotentMethod => "idempotent_method",
            ReplayBasis::IdempotencyKey => "idempotency_key",
            ReplayBasis::Profile => "profile_replay_safe",
            ReplayBasis::Always => "replay_always",
        }
    }
}

/// Why the request is not sent again.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The attempt succeeded.
    Success,
    /// The failure's owner is one that a retry cannot help (auth, permission,
    /// quota, the request, a permanent connection fault, ...).
    NotRetryable(Owner),
    /// The server said not to retry (`x-should-retry: false`).
    ServerSaidNo,
    /// Retries are off for this request.
    RetriesDisabled,
    /// The retry limit was reached.
    AttemptsExhausted,
    /// The request body cannot be sent again (a stream over the replay cap).
    BodyNotReplayable,
    /// The request may have been processed and is not safe to replay.
    NotReplaySafe(Replay),
    /// The server asked for a wait longer than the cap.
    WaitTooLong(Duration),
    /// The wait would pass the total deadline.
    DeadlineExceeded,
    /// The shared retry budget is spent: the upstream is failing broadly.
    BudgetExhausted,
    /// The route is open: an earlier failure on it that no retry can fix
    /// (or a run of connection failures) stands, and the request was not
    /// sent.
    RouteOpen,
    /// The route's rate window is closed (an answer said it was used up,
    /// or asked to wait), and it reopens only after the request's total
    /// deadline, in this long: the request was not sent.
    RateWindowClosed(Duration),
    /// The route's quota was reported used up (by an earlier answer, or by
    /// another replica through a shared store) and its quota stop lasts
    /// this long more: the request was not sent. Only with quota stops on.
    QuotaStopped(Duration),
    /// The failure came inside a streamed body after its first bytes had
    /// reached the caller (the commit point): nothing is retried after it.
    Committed,
}

/// The next step of a request held back by its route's rate window past
/// its deadline.
const RATE_WINDOW_STEP: &str = "the route's rate window is used up and reopens after this request's deadline: the request was not sent; send it after the reset, give it a longer deadline, or spread the load";

/// The next step of a request refused by a quota stop.
const QUOTA_STOP_STEP: &str = "the account's quota on this route was reported used up (by an earlier answer here or on another replica): the request was not sent; add credit or raise the quota, then send it again once the stop ends";

/// The next step of a retryable failure whose request body could not be
/// sent again: the diagnosis's own would say to wait and retry.
const BODY_NOT_REPLAYABLE_STEP: &str = "the failure was retryable, but the request was not sent again: its body cannot be read twice (a stream past the replay cap, or a boxed body that is not empty); wrap it in tower_triage::body::ReplayBody, or send a body that can be copied";

impl Stop {
    /// The next step this stop calls for instead of the diagnosis's, if
    /// any: a retryable failure that could not be retried because of the
    /// request's body.
    pub const fn next_step(&self) -> Option<&'static str> {
        match self {
            Stop::BodyNotReplayable => Some(BODY_NOT_REPLAYABLE_STEP),
            Stop::RateWindowClosed(_) => Some(RATE_WINDOW_STEP),
            Stop::QuotaStopped(_) => Some(QUOTA_STOP_STEP),
            _ => None,
        }
    }

    /// A stable, lowercase name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Stop::Success => "success",
            Stop::NotRetryable(_) => "not_retryable",
            Stop::ServerSaidNo => "server_said_no",
            Stop::RetriesDisabled => "retries_disabled",
            Stop::AttemptsExhausted => "attempts_exhausted",
            Stop::BodyNotReplayable => "body_not_replayable",
            Stop::NotReplaySafe(_) => "not_replay_safe",
            Stop::WaitTooLong(_) => "wait_too_long",
            Stop::DeadlineExceeded => "deadline_exceeded",
            Stop::BudgetExhausted => "budget_exhausted",
            Stop::RouteOpen => "route_open",
            Stop::RateWindowClosed(_) => "rate_window_closed",
            Stop::QuotaStopped(_) => "quota_stopped",
            Stop::Committed => "committed",
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::NotRetryable(owner) => write!(f, "not retryable ({owner})"),
            Stop::NotReplaySafe(replay) => write!(f, "not replay-safe (request {replay})"),
            Stop::WaitTooLong(wait) => {
                write!(f, "asked wait of {} s is over the cap", wait.as_secs())
            }
            Stop::QuotaStopped(left) => write!(
                f,
                "quota reported used up: stopped for {} s more",
                left.as_secs()
            ),
            Stop::RateWindowClosed(wait) => write!(
                f,
                "rate window closed for {} ms more, past the deadline",
                wait.as_millis()
            ),
            other => f.write_str(&other.as_str().replace('_', " ")),
        }
    }
}
