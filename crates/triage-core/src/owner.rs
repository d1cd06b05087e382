//! Who owns a failure ([`Owner`]), what exactly it was ([`Class`]), and the
//! SDK-style [`ErrorKind`].
//!
//! The owner answers "who has to act": the connection path, our credentials,
//! the account's quota, the request we built, the API's servers, or a gateway
//! in between. The class refines it into something a program can match on.
//!
//! # Example
//!
//! ```
//! use triage_core::{Class, ErrorKind, Owner};
//!
//! assert_eq!(Owner::Quota.as_str(), "quota");
//! assert_eq!(ErrorKind::from_status(http::StatusCode::TOO_MANY_REQUESTS), ErrorKind::RateLimit);
//! assert_eq!(Class::RateLimited.to_string(), "rate_limited");
//! ```

use std::fmt;

use http::StatusCode;

use crate::gateway::GatewayFault;
use crate::stage::{Fault, Stage, TransportFailure};

/// Who has to act on a failure.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Owner {
    /// DNS, TCP, TLS, the proxy, a dropped connection or a timeout: no HTTP
    /// answer came back. Test the route from the same runtime.
    ConnectionPath,
    /// The credentials (401): key, project, organization, endpoint family.
    Auth,
    /// The credentials are valid but not allowed to do this (403).
    Permission,
    /// The account's quota, credit or spend limit is exhausted: only the
    /// account owner can fix it, and retrying never helps.
    Quota,
    /// A rate limit: wait as told, then try again.
    RateLimit,
    /// The request itself (400, 404, 409, 413, 422, ...): fix the request.
    Request,
    /// The API's own servers (5xx with the origin's request ID).
    Server,
    /// A gateway, CDN or proxy between us and the API made the error.
    Route,
    /// The caller: it cancelled the request or misused the client.
    Caller,
}

impl Owner {
    /// A stable, lowercase name: `connection_path`, `auth`, `permission`,
    /// `quota`, `rate_limit`, `request`, `server`, `route`, `caller`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Owner::ConnectionPath => "connection_path",
            Owner::Auth => "auth",
            Owner::Permission => "permission",
            Owner::Quota => "quota",
            Owner::RateLimit => "rate_limit",
            Owner::Request => "request",
            Owner::Server => "server",
            Owner::Route => "route",
            Owner::Caller => "caller",
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of quota ran out.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum QuotaKind {
    /// No credit or billing is not set up (`insufficient_quota`,
    /// `credit_balance_exhausted`, `billing_error`, `BILLING_DISABLED`).
    Billing,
    /// A spend limit the account set for itself was reached.
    SpendLimit,
    /// A per-day (or longer) quota: the wait asked for is a day or more.
    Period,
}

impl QuotaKind {
    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Billing => "billing",
            QuotaKind::SpendLimit => "spend_limit",
            QuotaKind::Period => "period",
        }
    }
}

/// What exactly went wrong; refines the [`Owner`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The call succeeded (a status below 400).
    Success,
    /// No usable HTTP answer: the transport failed at a stage.
    Transport(TransportFailure),
    /// 401: the credentials were not accepted.
    Unauthenticated,
    /// 403: the credentials may not do this.
    Forbidden,
    /// The quota, credit or spend limit is exhausted.
    QuotaExhausted(QuotaKind),
    /// A rate limit (the API's, or a gateway's own when the diagnosis names one).
    RateLimited,
    /// 400 (or another 4xx without a more specific class).
    BadRequest,
    /// 404: the path, model or resource does not exist.
    NotFound,
    /// 408: the server gave up waiting for the request.
    RequestTimeout,
    /// 409, or lock contention: retryable after a short wait.
    Conflict,
    /// 413, or a request too large for the model's limit.
    RequestTooLarge,
    /// 422: well-formed but rejected.
    UnprocessableEntity,
    /// Another 4xx.
    ClientError(StatusCode),
    /// A 5xx from the API's servers.
    ServerError(StatusCode),
    /// The API says it is overloaded (529, 503 "overloaded", "Slow Down").
    Overloaded,
    /// A gateway in front of the API made this error.
    Gateway(GatewayFault),
    /// The caller cancelled the request.
    Cancelled,
}

impl Class {
    /// The class's family: its name up to the first detail that varies
    /// (`transport.connect`, `server_error`, `quota_exhausted`, `gateway`).
    /// Few values, so fit for a metric's attribute or OpenTelemetry's
    /// `error.type`.
    ///
    /// ```
    /// use http::StatusCode;
    /// use triage_core::Class;
    ///
    /// assert_eq!(Class::ServerError(StatusCode::BAD_GATEWAY).family(), "server_error");
    /// assert_eq!(Class::RateLimited.family(), "rate_limited");
    /// ```
    pub const fn family(&self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Transport(t) => match t.stage() {
                Stage::Dns => "transport.dns",
                Stage::Connect => "transport.connect",
                Stage::Proxy => "transport.proxy",
                Stage::Tls => "transport.tls",
                Stage::Write => "transport.write",
                Stage::AwaitHeaders => "transport.await_headers",
                Stage::Body => "transport.body",
            },
            Class::Unauthenticated => "unauthenticated",
            Class::Forbidden => "forbidden",
            Class::QuotaExhausted(_) => "quota_exhausted",
            Class::RateLimited => "rate_limited",
            Class::BadRequest => "bad_request",
            Class::NotFound => "not_found",
            Class::RequestTimeout => "request_timeout",
            Class::Conflict => "conflict",
            Class::RequestTooLarge => "request_too_large",
            Class::UnprocessableEntity => "unprocessable_entity",
            Class::ClientError(_) => "client_error",
            Class::ServerError(_) => "server_error",
            Class::Overloaded => "overloaded",
            Class::Gateway(_) => "gateway",
            Class::Cancelled => "cancelled",
        }
    }

    /// The transport failure, for [`Class::Transport`].
    pub const fn transport(&self) -> Option<TransportFailure> {
        match self {
            Class::Transport(t) => Some(*t),
            _ => None,
        }
    }
}

/// A dotted, lowercase name: `success`, `transport.tls.certificate.unknown_issuer`,
/// `transport.await_headers.timeout.headers`, `quota_exhausted.billing`,
/// `rate_limited`, `server_error.503`, `gateway.upstream_unreachable`, ...
impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Class::Success => f.write_str("success"),
            Class::Transport(t) => {
                write!(f, "transport.{}.{}", t.stage().as_str(), t.fault().as_str())?;
                match t.fault() {
                    Fault::Timeout(phase) => write!(f, ".{}", phase.as_str()),
                    Fault::Certificate(problem) => write!(f, ".{}", problem.as_str()),
                    _ => Ok(()),
                }
            }
            Class::Unauthenticated => f.write_str("unauthenticated"),
            Class::Forbidden => f.write_str("forbidden"),
            Class::QuotaExhausted(kind) => write!(f, "quota_exhausted.{}", kind.as_str()),
            Class::RateLimited => f.write_str("rate_limited"),
            Class::BadRequest => f.write_str("bad_request"),
            Class::NotFound => f.write_str("not_found"),
            Class::RequestTimeout => f.write_str("request_timeout"),
            Class::Conflict => f.write_str("conflict"),
            Class::RequestTooLarge => f.write_str("request_too_large"),
            Class::UnprocessableEntity => f.write_str("unprocessable_entity"),
            Class::ClientError(status) => write!(f, "client_error.{}", status.as_u16()),
            Class::ServerError(status) => write!(f, "server_error.{}", status.as_u16()),
            Class::Overloaded => f.write_str("overloaded"),
            Class::Gateway(fault) => write!(f, "gateway.{}", fault.as_str()),
            Class::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The error taxonomy of the official OpenAI SDKs, by status, for callers who
/// think in those terms. Owners and classes say more; this says what an SDK
/// user expects.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ErrorKind {
    /// 400.
    BadRequest,
    /// 401.
    Authentication,
    /// 403.
    PermissionDenied,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 422.
    UnprocessableEntity,
    /// 429.
    RateLimit,
    /// 500 and above.
    InternalServer,
    /// Another status of 400 and above (the SDKs' plain `APIStatusError`).
    Status,
    /// No answer: the connection failed.
    Connection,
    /// No answer in time.
    Timeout,
    /// The caller cancelled the request.
    Cancelled,
}

impl ErrorKind {
    /// The kind for a failure status. Statuses below 400 give
    /// [`ErrorKind::Status`].
    pub const fn from_status(status: StatusCode) -> ErrorKind {
        match status.as_u16() {
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            422 => ErrorKind::UnprocessableEntity,
            429 => ErrorKind::RateLimit,
            500.. => ErrorKind::InternalServer,
            _ => ErrorKind::Status,
        }
    }

    /// The kind for a transport failure.
    pub const fn from_transport(failure: TransportFailure) -> ErrorKind {
        match failure.fault() {
            Fault::Timeout(_) => ErrorKind::Timeout,
            Fault::Cancelled => ErrorKind::Cancelled,
            _ => ErrorKind::Connection,
        }
    }

    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::UnprocessableEntity => "unprocessable_entity",
            ErrorKind::RateLimit => "rate_limit",
            ErrorKind::InternalServer => "internal_server",
            ErrorKind::Status => "status",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the server may already have processed the request: the input of
/// the idempotency gate.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Replay {
    /// The request provably was not processed: it never left (DNS, connect,
    /// proxy, TLS), or the answer says so (429, 408, 409, an overloaded 503
    /// or 529, `x-should-retry: true`, a gateway that never reached the
    /// upstream). Safe to resend for every method.
    NotProcessed,
    /// It may have been processed (500, 502, 504, a connection lost after the
    /// request was sent). Safe to resend only for idempotent requests.
    Ambiguous,
    /// It was processed (an answer arrived and its body broke, or a final
    /// client error).
    Processed,
}

impl Replay {
    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Replay::NotProcessed => "not_processed",
            Replay::Ambiguous => "ambiguous",
            Replay::Processed => "processed",
        }
    }
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{CertificateProblem, Stage, TimeoutPhase};

    #[test]
    fn error_kind_mirrors_the_sdk_taxonomy() {
        let table = [
            (400, ErrorKind::BadRequest),
            (401, ErrorKind::Authentication),
            (402, ErrorKind::Status),
            (403, ErrorKind::PermissionDenied),
            (404, ErrorKind::NotFound),
            (409, ErrorKind::Conflict),
            (413, ErrorKind::Status),
            (422, ErrorKind::UnprocessableEntity),
            (429, ErrorKind::RateLimit),
            (500, ErrorKind::InternalServer),
            (529, ErrorKind::InternalServer),
        ];
        for (code, kind) in table {
            let status = StatusCode::from_u16(code).expect("valid status");
            assert_eq!(ErrorKind::from_status(status), kind, "{code}");
        }
        let timeout = TransportFailure::new(Stage::Connect, Fault::Timeout(TimeoutPhase::Connect));
        assert_eq!(ErrorKind::from_transport(timeout), ErrorKind::Timeout);
        let refused = TransportFailure::new(Stage::Connect, Fault::Refused);
        assert_eq!(ErrorKind::from_transport(refused), ErrorKind::Connection);
    }

    #[test]
    fn class_names_are_dotted_and_stable() {
        let tls = Class::Transport(TransportFailure::new(
            Stage::Tls,
            Fault::Certificate(CertificateProblem::UnknownIssuer),
        ));
        assert_eq!(tls.to_string(), "transport.tls.certificate.unknown_issuer");
        let timeout = Class::Transport(TransportFailure::new(
            Stage::AwaitHeaders,
            Fault::Timeout(TimeoutPhase::Headers),
        ));
        assert_eq!(
            timeout.to_string(),
            "transport.await_headers.timeout.headers"
        );
        assert_eq!(
            Class::QuotaExhausted(QuotaKind::Billing).to_string(),
            "quota_exhausted.billing"
        );
        assert_eq!(
            Class::ServerError(StatusCode::BAD_GATEWAY).to_string(),
            "server_error.502"
        );
    }
}
