//! Benchmarks of triage against baselines measured in the same run; see
//! `benches/`.
#![forbid(unsafe_code)]
