//! [`Report`]: what the layer learned about a call, and [`ReportExt`] to
//! read it from a response.

use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderValue, Response};
use triage_core::{Diagnosis, Evidence, Packet, Profile, RateInfo};

use crate::response_body::ResponseBody;
use crate::whole_body::BodyMode;

/// What the layer learned about a call: attempts, the last answer's request
/// ID and rate-limit state, its diagnosis, how its body was handled, and the
/// escalation packet when an attempt failed.
///
/// Read it with [`ReportExt::report`]. A call that needed more than one
/// attempt, or that ended in a failure status, also carries its `Report` in
/// the response's extensions (where it survives a change of body type); a
/// call that succeeded at once carries none, so the happy path allocates
/// nothing, and `report()` reads the answer's head when asked.
///
/// ```
/// # fn f<B>(response: http::Response<tower_triage::ResponseBody<B>>) {
/// use tower_triage::ReportExt;
/// if let Some(report) = response.report() {
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
    pub(crate) body_mode: BodyMode,
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

    /// Whether the response's body was read whole inside the last attempt
    /// ([`BodyMode::Whole`], whole-body mode) or streams as it arrives.
    pub fn body_mode(&self) -> BodyMode {
        self.body_mode
    }
}

/// Reads the [`Report`] of a response that [`Triage`](crate::Triage)
/// returned.
pub trait ReportExt: sealed::Sealed {
    /// The call's report: from the extensions when the layer put one there,
    /// otherwise (a success at the first attempt) read now from the
    /// response's head. `None` only when the extension was taken out.
    fn report(&self) -> Option<Report>;
}

impl<B> ReportExt for Response<ResponseBody<B>> {
    fn report(&self) -> Option<Report> {
        if let Some(report) = self.extensions().get::<Report>() {
            return Some(report.clone());
        }
        let profile = self.body().profile()?;
        let evidence =
            Evidence::from_response(self.status(), self.headers(), profile, SystemTime::now());
        Some(Report {
            attempts: 1,
            request_id: evidence.request_id().cloned(),
            rate: *evidence.rate(),
            diagnosis: triage_core::classify(&evidence, profile),
            packet: None,
            body_mode: self.body().body_mode(),
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl<B> Sealed for http::Response<crate::ResponseBody<B>> {}
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
