//! [`Report`]: what the layer learned about a call, in the response's
//! extensions.

use std::sync::Arc;

use http::HeaderValue;
use triage_core::{Diagnosis, Packet, RateInfo};

/// What the layer learned about a call; every response it returns carries
/// one in its extensions.
///
/// ```
/// # fn f(response: http::Response<()>) {
/// use tower_triage::Report;
/// if let Some(report) = response.extensions().get::<Report>() {
///     println!("{} attempt(s), request id {:?}", report.attempts(), report.request_id());
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Report {
    pub(crate) attempts: u32,
    pub(crate) request_id: Option<HeaderValue>,
    pub(crate) rate: RateInfo,
    pub(crate) diagnosis: Diagnosis,
    pub(crate) packet: Option<Arc<Packet>>,
}

impl Report {
    /// Attempts made, 1 when no retry was needed.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Retries made.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    /// The origin's request ID of the last attempt.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// The rate-limit state the last answer reported.
    pub fn rate(&self) -> &RateInfo {
        &self.rate
    }

    /// The diagnosis of the last attempt (a success, or the failure handed
    /// back as a response).
    pub fn diagnosis(&self) -> &Diagnosis {
        &self.diagnosis
    }

    /// The escalation packet, when any attempt failed.
    pub fn packet(&self) -> Option<&Packet> {
        self.packet.as_deref()
    }
}
