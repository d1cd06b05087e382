//! The errors this crate raises inside a call: a timeout naming its phase
//! ([`TimeoutError`]), a connector's error tagged with its stage
//! ([`StageError`]), and a connect shared with another request that failed
//! ([`SharedConnectError`]). Each is read back by the typed detection of
//! the `transport` module; none is ever a diagnosis by itself.

use std::error::Error as StdError;

use triage_core::{BoxError, Stage, TimeoutPhase, TransportFailure};

/// A timeout raised by this crate, naming its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{phase} timeout after {millis} ms")]
pub struct TimeoutError {
    pub(crate) phase: TimeoutPhase,
    pub(crate) millis: u64,
}

impl TimeoutError {
    /// `phase` ran out of its `limit`.
    pub(crate) fn new(phase: TimeoutPhase, limit: std::time::Duration) -> TimeoutError {
        TimeoutError {
            phase,
            millis: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The phase that timed out.
    pub fn phase(&self) -> TimeoutPhase {
        self.phase
    }
}

/// An error tagged with the stage it happened at (see the `connect`
/// module, feature `hyper-util`). The innermost tag of a chain names the
/// stage.
#[derive(Debug)]
pub struct StageError {
    stage: Stage,
    source: BoxError,
}

impl StageError {
    /// Tags `source` with `stage`.
    pub fn new(stage: Stage, source: impl Into<BoxError>) -> StageError {
        StageError {
            stage,
            source: source.into(),
        }
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stage failed", self.stage)
    }
}

impl StdError for StageError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// The connection an attempt waited for, made by another request on the
/// same route (hyper-util's pool shares an HTTP/2 connect), failed with
/// `failure`; the attempt's own error (a cancelled checkout) is the source.
#[derive(Debug)]
pub(crate) struct SharedConnectError {
    failure: TransportFailure,
    source: BoxError,
}

impl SharedConnectError {
    pub(crate) fn new(failure: TransportFailure, source: BoxError) -> SharedConnectError {
        SharedConnectError { failure, source }
    }
}

impl std::fmt::Display for SharedConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the connection this request waited for failed ({})",
            self.failure
        )
    }
}

impl StdError for SharedConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}
