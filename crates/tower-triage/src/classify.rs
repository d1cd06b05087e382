//! [`TriageClassifier`] (feature `tower-http`): tower-http's response
//! classification with triage's owners and classes, so that
//! `TraceLayer::new(TriageClassifier::new())` around any client, the
//! triage layer or a bare one, labels each failure with who owns it.
//!
//! ```
//! use tower_http::trace::TraceLayer;
//! use tower_triage::classify::{TriageClassifier, TriageFailure};
//!
//! let trace = TraceLayer::new(TriageClassifier::new()).on_failure(
//!     |failure: TriageFailure, _latency: std::time::Duration, _span: &tracing::Span| {
//!         // e.g. "rate_limit rate_limited", "connection_path transport.dns.name_not_found"
//!         eprintln!("outbound call failed: {failure}");
//!     },
//! );
//! # let _ = trace;
//! ```
//!
//! Outside the layer, the trace sees one call and its final verdict;
//! inside, every attempt:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::ServiceBuilder;
//! use tower_http::trace::TraceLayer;
//! use tower_triage::TriageLayer;
//! use tower_triage::classify::TriageClassifier;
//!
//! # let client = tower::service_fn(|_: http::Request<Full<Bytes>>| async {
//! #     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::new())))
//! # });
//! let client = ServiceBuilder::new()
//!     .layer(TraceLayer::new(TriageClassifier::new())) // outside: the final verdict
//!     .layer(TriageLayer::new()) // retries inside the span
//!     .service(client);
//! # let _ = client;
//! ```
//!
//! A response is judged from the [`Report`] the triage layer left on it
//! (inside the `TraceLayer`), else from its head, with the profile of the
//! request's host: around a bare client a classifier sees no body, so a
//! gateway's error page (told apart by its body, which the layer peeks at)
//! is judged by its status alone. An error is judged from the [`triage_core::Error`] the
//! layer returned, else by the same typed walk of its chain as the layer's
//! (a `BoxError`, hyper-util's error), else as `unknown`: never a
//! permanent verdict from a text nobody recognises.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos,
};
use triage_core::{
    BoxError, Diagnosis, Evidence, Owner, Profile, Stage, TransportFailure, classify,
};

use crate::config::ProfileRef;
use crate::host::host_of;
use crate::report::Report;
use crate::transport::classify_error;

/// Makes a [`ClassifyTriage`] per request: tower-http's [`MakeClassifier`]
/// with triage's judgement.
#[derive(Debug, Clone, Default)]
pub struct TriageClassifier {
    profile: Option<Arc<Profile>>,
}

impl TriageClassifier {
    /// Detects each request's profile from its host.
    pub fn new() -> TriageClassifier {
        TriageClassifier::default()
    }

    /// Judges every response with `profile`.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(Arc::new(profile));
        self
    }
}

impl MakeClassifier for TriageClassifier {
    type FailureClass = TriageFailure;
    type ClassifyEos = NeverClassifyEos<TriageFailure>;
    type Classifier = ClassifyTriage;

    fn make_classifier<B>(&self, req: &Request<B>) -> ClassifyTriage {
        let profile = match &self.profile {
            Some(p) => ProfileRef::Shared(Arc::clone(p)),
            None => ProfileRef::Static(Profile::detect(host_of(req.uri()))),
        };
        ClassifyTriage { profile }
    }
}

/// Classifies one response or error; see [`TriageClassifier`].
#[derive(Debug, Clone)]
pub struct ClassifyTriage {
    profile: ProfileRef,
}

impl ClassifyResponse for ClassifyTriage {
    type FailureClass = TriageFailure;
    type ClassifyEos = NeverClassifyEos<TriageFailure>;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<TriageFailure, NeverClassifyEos<TriageFailure>> {
        let diagnosis = match Report::of(res) {
            Some(report) => *report.diagnosis(),
            None => {
                let evidence = Evidence::from_response(
                    res.status(),
                    res.headers(),
                    &self.profile,
                    SystemTime::now(),
                );
                classify(&evidence, &self.profile)
            }
        };
        ClassifiedResponse::Ready(if diagnosis.is_success() {
            Ok(())
        } else {
            Err(TriageFailure::from(diagnosis))
        })
    }

    fn classify_error<E>(self, error: &E) -> TriageFailure
    where
        E: fmt::Display + 'static,
    {
        let any: &dyn Any = error;
        if let Some(error) = any.downcast_ref::<triage_core::Error>() {
            return TriageFailure::from(*error.diagnosis());
        }
        let failure = if let Some(error) = any.downcast_ref::<BoxError>() {
            classify_error(&**error, true, None)
        } else if let Some(error) = client_error(any) {
            classify_error(error, true, None)
        } else {
            // Nothing typed to read: unknown, never a permanent verdict.
            TransportFailure::new(Stage::AwaitHeaders, triage_core::Fault::Unknown)
        };
        TriageFailure::from(classify(&Evidence::from_transport(failure), &self.profile))
    }
}

/// hyper-util's client error, when `any` is one.
#[cfg(feature = "hyper-util")]
fn client_error(any: &dyn Any) -> Option<&(dyn std::error::Error + 'static)> {
    any.downcast_ref::<hyper_util::client::legacy::Error>()
        .map(|e| e as &(dyn std::error::Error + 'static))
}

#[cfg(not(feature = "hyper-util"))]
fn client_error(_: &dyn Any) -> Option<&(dyn std::error::Error + 'static)> {
    None
}

/// A failure as triage judges it: its owner and class (`Display`:
/// `"{owner} {class}"`, e.g. `rate_limit rate_limited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriageFailure {
    diagnosis: Diagnosis,
}

impl TriageFailure {
    /// Who has to act.
    pub fn owner(&self) -> Option<Owner> {
        self.diagnosis.owner()
    }

    /// The whole diagnosis.
    pub fn diagnosis(&self) -> &Diagnosis {
        &self.diagnosis
    }
}

impl From<Diagnosis> for TriageFailure {
    fn from(diagnosis: Diagnosis) -> Self {
        TriageFailure { diagnosis }
    }
}

impl fmt::Display for TriageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = self.owner().map_or("none", Owner::as_str);
        write!(f, "{owner} {}", self.diagnosis.class())
    }
}
