//! The IO-free core of triage: who owns a failed outbound HTTP call, and what
//! to do about it.
//!
//! Outbound calls fail in many ways, and the first question is always *who
//! owns this failure*: the network path, our credentials, our quota, our
//! request, the API's servers, or a gateway in between. This crate answers it
//! from the evidence of each attempt, decides whether and when to retry, and
//! writes an escalation packet a person can hand over. It does no IO: the
//! `tower-triage` crate puts it behind a tower `Layer`.
//!
//! The flow of one attempt:
//!
//! 1. [`Evidence`]: what came back (status, request ID, rate headers, retry
//!    hints, gateway fingerprint, a failure body's code and message), or the
//!    [`TransportFailure`] when nothing did.
//! 2. [`classify`] turns it into a [`Diagnosis`]: the [`Owner`], the
//!    [`Class`], the [`Stage`], whether the request may have been processed
//!    ([`Replay`]), whether a retry can help, and the next step.
//! 3. [`RetryRules::decide`] weighs the diagnosis against the retry limit,
//!    the idempotency gate, the server's wait (capped), the total deadline
//!    and the shared [`RetryBudget`], and returns a [`Decision`] with a
//!    machine-readable reason.
//! 4. [`PacketBuilder`] records every attempt; the finished [`Packet`] and
//!    the [`Error`] carry it.
//!
//! # Example
//!
//! ```
//! use std::time::{Instant, SystemTime};
//! use http::{HeaderMap, HeaderValue, Method, StatusCode};
//! use triage_core::{classify, AttemptContext, Decision, Evidence, Owner, Profile, RetryBudget, RetryRules, Stop};
//!
//! // An OpenAI 429 that is really an exhausted quota: never retried.
//! let profile = Profile::detect("api.openai.com");
//! let mut headers = HeaderMap::new();
//! headers.insert("x-request-id", HeaderValue::from_static("req_7f3a"));
//! headers.insert("content-type", HeaderValue::from_static("application/json"));
//! let body = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
//!
//! let mut evidence = Evidence::from_response(StatusCode::TOO_MANY_REQUESTS, &headers, profile, SystemTime::now());
//! evidence.read_failure_body(&headers, body);
//! let diagnosis = classify(&evidence, profile);
//! assert_eq!(diagnosis.owner(), Some(Owner::Quota));
//!
//! let post = Method::POST;
//! let decision = RetryRules::default().decide(
//!     &diagnosis, &evidence, profile, &AttemptContext::new(1, &post), &RetryBudget::default(), Instant::now(),
//! );
//! assert_eq!(decision, Decision::Stop(Stop::NotRetryable(Owner::Quota)));
//! ```
//!
//! # Features
//!
//! - `serde`: `Serialize` on the data types and [`Packet::to_json`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod body;
mod classify;
mod detail;
pub mod detect;
mod error;
mod evidence;
pub mod gateway;
pub mod headers;
mod owner;
mod packet;
pub mod problem;
mod profile;
pub mod redact;
pub mod retry;
mod stage;
mod text;
pub(crate) mod time;
pub mod x509;

pub use classify::{Diagnosis, QUOTA_WAIT, classify};
pub use detail::{Detail, MAX_DETAIL_ITEMS, StageMark};
pub use error::{BoxError, Error};
pub use evidence::{BodyProgress, DelaySource, Evidence, RateInfo, RateWindow, RetryHints};
pub use headers::ResetFormat;
pub use owner::{Class, ErrorKind, Owner, QuotaKind, Replay};
pub use packet::{AttemptRecord, MAX_ATTEMPTS, Packet, PacketBuilder, RouteNote};
pub use profile::{HeadScan, Profile, ProfileBuilder, RateHeaders};
pub use retry::{
    AttemptContext, Backoff, Decision, ReplayBasis, ReplayRule, Retry, RetryBudget, RetryRules,
    Stop,
};
pub use stage::{CertificateProblem, Fault, Stage, TimeoutPhase, TransportFailure};
pub use text::MAX_CHAIN;
