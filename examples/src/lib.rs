//! Runnable examples of triage (see `examples/`); each runs offline against
//! the testkit's loopback upstream:
//!
//! - `cargo run -p triage-examples --example hyper_client`
//! - `cargo run -p triage-examples --example axum_gateway`
//! - `cargo run -p triage-examples --example observer_metrics`
#![forbid(unsafe_code)]
