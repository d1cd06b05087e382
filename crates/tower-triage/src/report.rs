//! [`Report`]: what the layer learned about a call, and [`ReportExt`] to
//! read it from a response.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderValue, Response};
use triage_core::{Diagnosis, Evidence, Packet, Profile, RateInfo};

use crate::config::ProfileRef;
use crate::response_body::ResponseBody;
use crate::whole_body::BodyMode;

/// What the layer learned about a call: attempts, the last answer's request
/// ID and rate-limit state, its diagnosis, how its body was handled, and the
/// escalation packet when an attempt failed.
///
/// Read it with [`ReportExt::report`], or with [`Report::of`] once another
/// layer changed the body type (tower-http's `TraceLayer` outside, a
/// `response.map(Body::new)`). A call that needed more than one attempt, or
/// that ended in a failure status, carries its `Report` in the response's
/// extensions. A call that succeeded at once is read from the answer's head
/// when asked, so the happy path allocates nothing: its body knows how to
/// read it, and so does a zero-sized mark in the extensions, set when the
/// client's response already has extensions (hyper-util's and reqwest's
/// carry the connection's `HttpInfo`), where it costs no allocation. With a
/// profile of your own the mark holds it, at the cost of one small
/// allocation. A response with no extensions at all gets no mark: behind a
/// body change, `Report::of` is `None` for it.
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
    /// The report of a response that [`Triage`](crate::Triage) returned,
    /// whatever its body type is now: from the response's extensions (see
    /// above for when a first-try success has what it needs there).
    ///
    /// ```
    /// # fn f<B>(response: http::Response<B>) {
    /// // e.g. behind tower-http's TraceLayer, or after `response.map(Body::new)`
    /// if let Some(report) = tower_triage::Report::of(&response) {
    ///     println!("{} attempt(s)", report.attempts());
    /// }
    /// # }
    /// ```
    pub fn of<B>(response: &Response<B>) -> Option<Report> {
        let extensions = response.extensions();
        if let Some(report) = extensions.get::<Report>() {
            return Some(report.clone());
        }
        let (profile, mode) = match extensions.get::<Seed>() {
            Some(seed) => (seed.profile.clone(), seed.mode),
            None => {
                let (index, whole) = read_mark(extensions)?;
                let profile = ProfileRef::Static(Profile::builtin().get(usize::from(index))?);
                let mode = if whole {
                    BodyMode::Whole
                } else {
                    BodyMode::Stream
                };
                (profile, mode)
            }
        };
        Some(Report::from_head(response, &profile, mode))
    }

    /// A first-try success's report, read from its head.
    fn from_head<B>(response: &Response<B>, profile: &Profile, mode: BodyMode) -> Report {
        let evidence = Evidence::from_response(
            response.status(),
            response.headers(),
            profile,
            SystemTime::now(),
        );
        Report {
            attempts: 1,
            request_id: evidence.request_id().cloned(),
            rate: *evidence.rate(),
            diagnosis: triage_core::classify(&evidence, profile),
            packet: None,
            body_mode: mode,
        }
    }

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
        match self.body().profile() {
            Some(profile) => Some(Report::from_head(self, profile, self.body().body_mode())),
            None => Report::of(self),
        }
    }
}

/// A first-try success that read its head under built-in profile `P`
/// (its index in [`Profile::builtin`]), with its body read whole when `WHOLE`. Zero-sized: put
/// into extensions that already exist, it allocates nothing.
#[derive(Debug, Clone, Copy)]
struct Mark<const P: u8, const WHOLE: bool>;

/// A first-try success under a profile of the caller's own.
#[derive(Debug, Clone)]
struct Seed {
    profile: ProfileRef,
    mode: BodyMode,
}

macro_rules! marks {
    ($($p:literal)*) => {
        fn insert_mark(extensions: &mut http::Extensions, index: u8, whole: bool) {
            match (index, whole) {
                $(($p, false) => { extensions.insert(Mark::<$p, false>); })*
                $(($p, true) => { extensions.insert(Mark::<$p, true>); })*
                _ => {}
            }
        }

        fn read_mark(extensions: &http::Extensions) -> Option<(u8, bool)> {
            $(
                if extensions.get::<Mark<$p, false>>().is_some() {
                    return Some(($p, false));
                }
                if extensions.get::<Mark<$p, true>>().is_some() {
                    return Some(($p, true));
                }
            )*
            None
        }
    };
}

marks!(0 1 2 3 4 5 6 7 8 9 10 11);

/// Marks a first-try success so that [`Report::of`] can read it behind a
/// change of body type: only where the extensions already exist (no
/// allocation for a built-in profile).
pub(crate) fn mark(extensions: &mut http::Extensions, profile: &ProfileRef, mode: BodyMode) {
    if extensions.is_empty() {
        return;
    }
    let index = match profile {
        ProfileRef::Static(p) => Profile::builtin()
            .iter()
            .position(|builtin| std::ptr::eq(*builtin, *p))
            .and_then(|index| u8::try_from(index).ok()),
        ProfileRef::Shared(_) => None,
    };
    match index {
        Some(index) => insert_mark(extensions, index, mode == BodyMode::Whole),
        None => {
            extensions.insert(Seed {
                profile: profile.clone(),
                mode,
            });
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl<B> Sealed for http::Response<crate::ResponseBody<B>> {}
    #[cfg(feature = "reqwest")]
    impl Sealed for reqwest::Response {}
}
