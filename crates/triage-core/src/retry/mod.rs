//! Retry rules: when a failed attempt is sent again, after how long, and why
//! not.
//!
//! [`RetryRules::decide`] weighs a [`Diagnosis`](crate::Diagnosis) against the
//! retry limit, the idempotency gate ([`ReplayRule`]), the server's wait
//! (capped), [`Backoff`], the total deadline and the shared [`RetryBudget`],
//! and returns a [`Decision`] that names its reason.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use http::Method;
//! use triage_core::{classify, AttemptContext, Decision, Evidence, Fault, Profile, RetryBudget, RetryRules, Stage, TransportFailure};
//!
//! // A refused connection: the request never left, so even a POST is retried.
//! let evidence = Evidence::from_transport(TransportFailure::new(Stage::Connect, Fault::Refused));
//! let profile = Profile::generic();
//! let diagnosis = classify(&evidence, profile);
//! let rules = RetryRules::default().deadline(Some(Duration::from_secs(30)));
//! let post = Method::POST;
//! let decision = rules.decide(&diagnosis, &evidence, profile, &AttemptContext::new(1, &post).random(0.0), &RetryBudget::default(), Instant::now());
//! assert_eq!(decision.delay(), Some(Duration::from_millis(500)));
//! ```

mod backoff;
mod budget;
mod decision;
mod rules;

pub use backoff::{Backoff, InvalidBackoff, MAX_BACKOFF};
pub use budget::{InvalidBudget, RetryBudget};
pub use decision::{Decision, ReplayBasis, Retry, Stop};
pub use rules::{AttemptContext, MAX_RETRIES, MAX_RETRY_AFTER_CAP, ReplayRule, RetryRules};
