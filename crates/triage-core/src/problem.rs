//! [`Problem`]: a failed outbound call as `application/problem+json`
//! (RFC 9457), for a service that answers its own caller with it. With
//! feature `axum`, [`Error`] is an axum `IntoResponse`: a handler can use
//! `?` on a triage call.
//!
//! The status follows the owner ([`Statuses`], configurable): 502 when the
//! upstream's side failed (its route, its server, the connection path, and
//! by default its credentials, permissions or the request it refused), 503
//! with `Retry-After` for a rate limit or an exhausted quota, 504 for a
//! timeout. The body names the class, owner, stage, next step, attempts
//! and request IDs; it never carries the upstream's body, and every text
//! in it comes from the packet, scrubbed and capped.
//!
//! ```
//! use http::StatusCode;
//! use triage_core::problem::{Problem, Statuses};
//! use triage_core::{Owner, PacketBuilder, Profile};
//! # fn error() -> triage_core::Error {
//! #     use triage_core::{classify, Evidence, Decision, Stop};
//! #     let evidence = Evidence::from_response(http::StatusCode::UNAUTHORIZED, &http::HeaderMap::new(), Profile::generic(), std::time::SystemTime::now());
//! #     let diagnosis = classify(&evidence, Profile::generic());
//! #     let stop = Stop::NotRetryable(Owner::Auth);
//! #     let packet = PacketBuilder::new(&http::Method::GET, &"https://api.test/v1".parse().unwrap(), Profile::generic(), std::time::SystemTime::now())
//! #         .attempt(&evidence, &diagnosis, &Decision::Stop(stop))
//! #         .finish(std::time::Duration::ZERO);
//! #     triage_core::Error::new(diagnosis, stop, &evidence, packet, None)
//! # }
//! let error = error(); // the upstream answered 401
//! let problem = Problem::new(&error);
//! assert_eq!(problem.status(), StatusCode::BAD_GATEWAY);
//! assert!(problem.to_json().contains(r#""owner":"auth""#));
//!
//! // A gateway that passes its caller's credentials on: the caller's 401.
//! let statuses = Statuses::default().owner(Owner::Auth, StatusCode::UNAUTHORIZED);
//! assert_eq!(Problem::new(&error).statuses(statuses).status(), StatusCode::UNAUTHORIZED);
//! ```

use http::StatusCode;

use crate::error::Error;
use crate::owner::{Class, Owner};
use crate::stage::Fault;

/// The media type of a problem.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The status a problem is answered with, by owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuses {
    by_owner: Vec<(Owner, StatusCode)>,
    timeout: StatusCode,
    otherwise: StatusCode,
}

impl Default for Statuses {
    /// 504 for a timeout; 503 for a rate limit or an exhausted quota; 502
    /// for every other owner.
    fn default() -> Self {
        Statuses {
            by_owner: vec![
                (Owner::RateLimit, StatusCode::SERVICE_UNAVAILABLE),
                (Owner::Quota, StatusCode::SERVICE_UNAVAILABLE),
            ],
            timeout: StatusCode::GATEWAY_TIMEOUT,
            otherwise: StatusCode::BAD_GATEWAY,
        }
    }
}

impl Statuses {
    /// Answers a failure owned by `owner` with `status` (a timeout keeps
    /// [`Statuses::timeout`]'s).
    pub fn owner(mut self, owner: Owner, status: StatusCode) -> Self {
        self.by_owner.retain(|(o, _)| *o != owner);
        self.by_owner.push((owner, status));
        self
    }

    /// Answers a timeout (of any stage or phase) with `status`.
    pub fn timeout(mut self, status: StatusCode) -> Self {
        self.timeout = status;
        self
    }

    /// Answers every other failure with `status`.
    pub fn otherwise(mut self, status: StatusCode) -> Self {
        self.otherwise = status;
        self
    }

    /// The status for `error`.
    pub fn of(&self, error: &Error) -> StatusCode {
        if is_timeout(error.class()) {
            return self.timeout;
        }
        error
            .owner()
            .and_then(|owner| self.by_owner.iter().find(|(o, _)| *o == owner))
            .map_or(self.otherwise, |(_, status)| *status)
    }
}

fn is_timeout(class: Class) -> bool {
    match class {
        Class::Transport(t) => matches!(t.fault(), Fault::Timeout(_)),
        Class::RequestTimeout => true,
        _ => false,
    }
}

/// A failed call as a problem: its status, its `Retry-After`, its JSON.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    error: &'a Error,
    statuses: Statuses,
}

impl<'a> Problem<'a> {
    /// The problem of `error`, with the default [`Statuses`].
    pub fn new(error: &'a Error) -> Problem<'a> {
        Problem {
            error,
            statuses: Statuses::default(),
        }
    }

    /// Answers with these statuses.
    pub fn statuses(mut self, statuses: Statuses) -> Self {
        self.statuses = statuses;
        self
    }

    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        self.statuses.of(self.error)
    }

    /// Whole seconds for `Retry-After`, for a rate limit or an exhausted
    /// quota whose upstream said when to come back (rounded up).
    pub fn retry_after(&self) -> Option<u64> {
        if !matches!(self.error.owner(), Some(Owner::RateLimit | Owner::Quota)) {
            return None;
        }
        let wait = self.error.retry_after()?;
        Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }

    /// The problem as `application/problem+json`: `type`, `title`,
    /// `status`, `detail` (the next step), and the extensions `owner`,
    /// `class`, `stage`, `attempts`, `request_ids` and `retry_after_s`.
    pub fn to_json(&self) -> String {
        let error = self.error;
        let packet = error.packet();
        let mut out = String::with_capacity(256);
        out.push_str("{\"type\":\"about:blank\",\"title\":\"upstream call failed\"");
        out.push_str(&format!(",\"status\":{}", self.status().as_u16()));
        push_field(&mut out, "detail", error.next_step());
        push_field(
            &mut out,
            "owner",
            error.owner().map_or("none", Owner::as_str),
        );
        push_field(&mut out, "class", &error.class().to_string());
        if let Some(stage) = error.stage() {
            push_field(&mut out, "stage", stage.as_str());
        }
        out.push_str(&format!(",\"attempts\":{}", error.attempts()));
        out.push_str(",\"request_ids\":[");
        for (i, id) in packet.request_ids().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_string(&mut out, id);
        }
        out.push(']');
        if let Some(seconds) = self.retry_after() {
            out.push_str(&format!(",\"retry_after_s\":{seconds}"));
        }
        out.push('}');
        out
    }
}

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    push_string(out, value);
}

/// `value` as a JSON string (escaped; the packet's texts are printable
/// already).
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(feature = "axum")]
mod axum {
    use axum_core::response::{IntoResponse, Response};
    use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

    use super::{PROBLEM_JSON, Problem};
    use crate::error::Error;

    impl IntoResponse for Problem<'_> {
        fn into_response(self) -> Response {
            let mut response = (self.status(), self.to_json()).into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
            if let Some(seconds) = self.retry_after() {
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }

    /// The problem with the default statuses (see [`Problem`]); for others,
    /// answer with `Problem::new(&error).statuses(..)`.
    impl IntoResponse for Error {
        fn into_response(self) -> Response {
            Problem::new(&self).into_response()
        }
    }
}
