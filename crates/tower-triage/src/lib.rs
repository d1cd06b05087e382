//! A tower middleware for outbound HTTP calls: per-attempt evidence,
//! owner-based retries, secret-free events and escalation packets.
//!
//! This crate is being built in steps (see the workspace `CHANGELOG.md`).
//! Available now:
//!
//! - [`body`]: request bodies that can be sent again for a retry —
//!   [`TryCloneBody`](body::TryCloneBody) for in-memory bodies and a capped
//!   [`ReplayBody`](body::ReplayBody) for streams.
//!
//! The decisions themselves (who owns a failure, whether and when to retry)
//! live in [`triage_core`], which this crate re-exports as [`core`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod body;

pub use triage_core as core;
