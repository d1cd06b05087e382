//! Where an attempt was when the transport failed, and what went wrong there.
//!
//! A failure with no HTTP status is owned by the connection path, and the first
//! question about it is *which stage* broke: name resolution, the TCP connect,
//! the TLS handshake, the proxy hop, writing the request, waiting for the
//! response head, or reading the body. [`TransportFailure`] pairs that
//! [`Stage`] with a [`Fault`].
//!
//! The types here are plain data: the tower crate fills them in from the error
//! chain and its own stage tags; `triage-core` only reasons about them.
//!
//! # Example
//!
//! ```
//! use triage_core::{CertificateProblem, Fault, Stage, TransportFailure};
//!
//! let failure = TransportFailure::new(
//!     Stage::Tls,
//!     Fault::Certificate(CertificateProblem::UnknownIssuer),
//! );
//! assert!(!failure.is_transient());
//! assert!(!failure.request_may_have_left());
//! assert_eq!(failure.to_string(), "tls: certificate: unknown issuer");
//! ```

use std::fmt;

/// The stage of an attempt, in the order a request goes through them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Stage {
    /// Resolving the host name.
    Dns,
    /// Opening the TCP connection (to the origin, or to the proxy when one is set).
    Connect,
    /// Talking to the proxy: the `CONNECT` tunnel or the proxy's answer.
    Proxy,
    /// The TLS handshake with the origin.
    Tls,
    /// Sending the request head and body.
    Write,
    /// The request was sent; waiting for the response head.
    AwaitHeaders,
    /// The response head arrived; reading the body.
    Body,
}

impl Stage {
    /// A stable, lowercase name: `dns`, `connect`, `proxy`, `tls`, `write`,
    /// `await_headers`, `body`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Proxy => "proxy",
            Stage::Tls => "tls",
            Stage::Write => "write",
            Stage::AwaitHeaders => "await_headers",
            Stage::Body => "body",
        }
    }

    /// Whether the request can have reached the server at this stage.
    ///
    /// Before the connection is up (DNS, connect, proxy, TLS) no byte of the
    /// request was sent, so resending it is safe for any method.
    pub const fn request_may_have_left(self) -> bool {
        matches!(self, Stage::Write | Stage::AwaitHeaders | Stage::Body)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which timeout fired.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TimeoutPhase {
    /// Waiting for a connection slot from the pool.
    Pool,
    /// Opening the connection (DNS, TCP, proxy and TLS together).
    Connect,
    /// Sending the request body stalled.
    Write,
    /// No response head arrived in time.
    Headers,
    /// The response body went quiet for too long.
    BodyIdle,
    /// A streamed response's first event did not arrive in time (time to
    /// first byte, after the head).
    FirstByte,
    /// A response body read whole inside the attempt (whole-body mode) did
    /// not arrive within the attempt's timeout.
    Body,
    /// The total deadline over every attempt and wait passed.
    Total,
}

impl TimeoutPhase {
    /// A stable, lowercase name: `pool`, `connect`, `write`, `headers`,
    /// `body_idle`, `body`, `total`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Pool => "pool",
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::Write => "write",
            TimeoutPhase::Headers => "headers",
            TimeoutPhase::BodyIdle => "body_idle",
            TimeoutPhase::FirstByte => "first_byte",
            TimeoutPhase::Body => "body",
            TimeoutPhase::Total => "total",
        }
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a server certificate was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CertificateProblem {
    /// The chain does not end at a trusted root (wrong CA bundle, a
    /// TLS-intercepting proxy, a self-signed certificate).
    UnknownIssuer,
    /// The certificate does not name the host that was asked for.
    WrongName,
    /// The certificate has expired (or this machine's clock is ahead).
    Expired,
    /// The certificate is not valid yet (or this machine's clock is behind).
    NotYetValid,
    /// The certificate was revoked.
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Any other certificate problem.
    Other,
}

impl CertificateProblem {
    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CertificateProblem::UnknownIssuer => "unknown_issuer",
            CertificateProblem::WrongName => "wrong_name",
            CertificateProblem::Expired => "expired",
            CertificateProblem::NotYetValid => "not_yet_valid",
            CertificateProblem::Revoked => "revoked",
            CertificateProblem::BadSignature => "bad_signature",
            CertificateProblem::Other => "other",
        }
    }
}

/// What went wrong at a [`Stage`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The name does not exist (NXDOMAIN): a wrong host in the base URL.
    NameNotFound,
    /// The resolver failed or could not be reached (SERVFAIL, no resolver).
    ResolverFailed,
    /// The peer refused the connection: nothing listens there.
    Refused,
    /// No route to the network or host.
    Unreachable,
    /// A timeout fired.
    Timeout(TimeoutPhase),
    /// The peer reset the connection.
    Reset,
    /// The peer closed the connection before the message was complete.
    Closed,
    /// The server certificate was refused.
    Certificate(CertificateProblem),
    /// The peer does not speak TLS (or no common protocol): a plain port, a
    /// wrong scheme.
    TlsProtocol,
    /// The TLS handshake was cut off mid-way.
    TlsHandshake,
    /// The proxy asked for credentials (407).
    ProxyAuthRequired,
    /// The proxy refused to open the tunnel (another non-2xx answer to `CONNECT`).
    ProxyRejected,
    /// The peer sent something that is not valid HTTP (or HTTP/2).
    Protocol,
    /// The caller dropped the request before it finished.
    Cancelled,
    /// The connection ended before the request was written, and the client
    /// gave the request back unsent (hyper's `is_canceled`): provably not
    /// processed.
    Unsent,
    /// HTTP/2: the server refused the stream before processing it
    /// (`REFUSED_STREAM`, or a graceful `GOAWAY` that left this stream out):
    /// provably not processed, safe to send again whatever the method
    /// (RFC 9113 §8.7).
    StreamRefused,
    /// HTTP/2: the server reset the stream (`RST_STREAM`) with another code
    /// after the request went out: it may have been processed.
    StreamReset,
    /// HTTP/2 `ENHANCE_YOUR_CALM`: the server asks for less load.
    SlowDown,
    /// An error this crate does not recognise. Never a permanent verdict:
    /// it gets the bounded retry of the transient stages when nothing was
    /// sent, the idempotency gate otherwise, and it only counts toward the
    /// route breaker's run of failures.
    Unknown,
}

impl Fault {
    /// A stable, lowercase name (`timeout` for every [`Fault::Timeout`]; see
    /// [`TimeoutPhase::as_str`] for the phase).
    pub const fn as_str(self) -> &'static str {
        match self {
            Fault::NameNotFound => "name_not_found",
            Fault::ResolverFailed => "resolver_failed",
            Fault::Refused => "refused",
            Fault::Unreachable => "unreachable",
            Fault::Timeout(_) => "timeout",
            Fault::Reset => "reset",
            Fault::Closed => "closed",
            Fault::Certificate(_) => "certificate",
            Fault::TlsProtocol => "tls_protocol",
            Fault::TlsHandshake => "tls_handshake",
            Fault::ProxyAuthRequired => "proxy_auth_required",
            Fault::ProxyRejected => "proxy_rejected",
            Fault::Protocol => "protocol",
            Fault::Cancelled => "cancelled",
            Fault::Unsent => "unsent",
            Fault::StreamRefused => "stream_refused",
            Fault::StreamReset => "stream_reset",
            Fault::SlowDown => "slow_down",
            Fault::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Timeout(phase) => write!(f, "timeout ({phase})"),
            Fault::Certificate(problem) => {
                write!(f, "certificate: {}", problem.as_str().replace('_', " "))
            }
            other => f.write_str(&other.as_str().replace('_', " ")),
        }
    }
}

/// A transport failure: the stage it happened at and what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportFailure {
    stage: Stage,
    fault: Fault,
}

impl TransportFailure {
    /// A failure of `fault` at `stage`.
    pub const fn new(stage: Stage, fault: Fault) -> TransportFailure {
        TransportFailure { stage, fault }
    }

    /// The stage the attempt was at.
    pub const fn stage(&self) -> Stage {
        self.stage
    }

    /// What went wrong.
    pub const fn fault(&self) -> Fault {
        self.fault
    }

    /// Whether the request can have reached the server: not before the
    /// connection is up (see [`Stage::request_may_have_left`]), nor when the
    /// evidence proves it was not processed ([`Fault::Unsent`],
    /// [`Fault::StreamRefused`]).
    pub const fn request_may_have_left(&self) -> bool {
        !matches!(self.fault, Fault::Unsent | Fault::StreamRefused)
            && self.stage.request_may_have_left()
    }

    /// Whether this failure is *proven permanent*: the one closed list of
    /// diagnoses on which the route breaker opens a route at once.
    ///
    /// - a name that does not exist ([`Fault::NameNotFound`]);
    /// - a refused certificate ([`Fault::Certificate`]);
    /// - TLS spoken to a peer that does not speak it ([`Fault::TlsProtocol`]);
    /// - a proxy that wants credentials, refuses the tunnel, or is not there
    ///   (refused or unreachable at the [`Stage::Proxy`] hop).
    ///
    /// Everything else — an [`Fault::Unknown`] error included — is not: it
    /// only counts toward the breaker's run of consecutive failures. This is
    /// the fail-safe rule: an error the layer does not recognise never
    /// refuses healthy traffic by itself.
    pub const fn is_permanent(&self) -> bool {
        matches!(
            (self.stage, self.fault),
            (
                _,
                Fault::NameNotFound
                    | Fault::Certificate(_)
                    | Fault::TlsProtocol
                    | Fault::ProxyAuthRequired
                    | Fault::ProxyRejected,
            ) | (Stage::Proxy, Fault::Refused | Fault::Unreachable)
        )
    }

    /// Whether trying again can help.
    ///
    /// Transient: a refused, reset or closed connection, a timeout while
    /// connecting or waiting, a resolver that did not answer, a handshake cut
    /// off mid-way, an HTTP/2 stream refused or reset, a request the
    /// connection never sent, and an [`Fault::Unknown`] error (the
    /// idempotency gate still applies when the request may have left).
    /// Never transient: a name that does not exist, a refused certificate, a
    /// peer that does not speak TLS, anything at the proxy hop except a
    /// dropped connection or an unknown error (a blocked proxy stays
    /// blocked), a protocol error, the caller's own cancellation, and the
    /// total deadline.
    pub const fn is_transient(&self) -> bool {
        match (self.stage, self.fault) {
            (_, Fault::Cancelled | Fault::Timeout(TimeoutPhase::Total | TimeoutPhase::Pool)) => {
                false
            }
            (Stage::Proxy, Fault::Reset | Fault::Closed | Fault::Unknown) => true,
            (Stage::Proxy, _) => false,
            (
                _,
                Fault::NameNotFound
                | Fault::Certificate(_)
                | Fault::TlsProtocol
                | Fault::ProxyAuthRequired
                | Fault::ProxyRejected
                | Fault::Protocol,
            ) => false,
            (
                _,
                Fault::ResolverFailed
                | Fault::Refused
                | Fault::Unreachable
                | Fault::Timeout(_)
                | Fault::Reset
                | Fault::Closed
                | Fault::TlsHandshake
                | Fault::Unsent
                | Fault::StreamRefused
                | Fault::StreamReset
                | Fault::SlowDown
                | Fault::Unknown,
            ) => true,
        }
    }
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_connection_faults_are_not_transient() {
        let permanent = [
            TransportFailure::new(Stage::Dns, Fault::NameNotFound),
            TransportFailure::new(Stage::Tls, Fault::Certificate(CertificateProblem::Expired)),
            TransportFailure::new(Stage::Tls, Fault::TlsProtocol),
            TransportFailure::new(Stage::Proxy, Fault::ProxyAuthRequired),
            TransportFailure::new(Stage::Proxy, Fault::ProxyRejected),
            TransportFailure::new(Stage::Proxy, Fault::Refused),
            TransportFailure::new(Stage::Proxy, Fault::Timeout(TimeoutPhase::Connect)),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Cancelled),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Total)),
        ];
        for failure in permanent {
            assert!(!failure.is_transient(), "{failure} must not be retried");
        }
    }

    #[test]
    fn transient_connection_faults_are_transient() {
        let transient = [
            TransportFailure::new(Stage::Dns, Fault::ResolverFailed),
            TransportFailure::new(Stage::Connect, Fault::Refused),
            TransportFailure::new(Stage::Connect, Fault::Timeout(TimeoutPhase::Connect)),
            TransportFailure::new(Stage::Tls, Fault::TlsHandshake),
            TransportFailure::new(Stage::Proxy, Fault::Reset),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Closed),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers)),
            TransportFailure::new(Stage::Body, Fault::Reset),
            TransportFailure::new(Stage::Body, Fault::Timeout(TimeoutPhase::BodyIdle)),
            TransportFailure::new(Stage::Body, Fault::Timeout(TimeoutPhase::Body)),
        ];
        for failure in transient {
            assert!(failure.is_transient(), "{failure} should be retried");
        }
    }

    #[test]
    fn only_the_closed_list_is_permanent() {
        let permanent = [
            TransportFailure::new(Stage::Dns, Fault::NameNotFound),
            TransportFailure::new(Stage::Tls, Fault::Certificate(CertificateProblem::Other)),
            TransportFailure::new(Stage::Tls, Fault::TlsProtocol),
            TransportFailure::new(Stage::Proxy, Fault::ProxyAuthRequired),
            TransportFailure::new(Stage::Proxy, Fault::ProxyRejected),
            TransportFailure::new(Stage::Proxy, Fault::Refused),
            TransportFailure::new(Stage::Proxy, Fault::Unreachable),
        ];
        for failure in permanent {
            assert!(failure.is_permanent(), "{failure} is on the list");
        }
        let not = [
            TransportFailure::new(Stage::Connect, Fault::Unknown),
            TransportFailure::new(Stage::Proxy, Fault::Unknown),
            TransportFailure::new(Stage::Tls, Fault::Unknown),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Protocol),
            TransportFailure::new(Stage::Connect, Fault::Refused),
            TransportFailure::new(Stage::Proxy, Fault::Timeout(TimeoutPhase::Connect)),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers)),
        ];
        for failure in not {
            assert!(!failure.is_permanent(), "{failure} is not proven permanent");
        }
    }

    #[test]
    fn unknown_errors_are_retried_and_unsent_requests_did_not_leave() {
        for stage in [
            Stage::Connect,
            Stage::Proxy,
            Stage::Write,
            Stage::AwaitHeaders,
        ] {
            assert!(TransportFailure::new(stage, Fault::Unknown).is_transient());
        }
        assert!(!TransportFailure::new(Stage::Write, Fault::Unsent).request_may_have_left());
        assert!(
            !TransportFailure::new(Stage::AwaitHeaders, Fault::StreamRefused)
                .request_may_have_left()
        );
        assert!(
            TransportFailure::new(Stage::AwaitHeaders, Fault::StreamReset).request_may_have_left()
        );
        assert_eq!(Fault::Unknown.as_str(), "unknown");
    }

    #[test]
    fn only_late_stages_may_have_sent_the_request() {
        assert!(!Stage::Dns.request_may_have_left());
        assert!(!Stage::Connect.request_may_have_left());
        assert!(!Stage::Proxy.request_may_have_left());
        assert!(!Stage::Tls.request_may_have_left());
        assert!(Stage::Write.request_may_have_left());
        assert!(Stage::AwaitHeaders.request_may_have_left());
        assert!(Stage::Body.request_may_have_left());
    }

    #[test]
    fn display_names_stage_and_fault() {
        let failure =
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers));
        assert_eq!(failure.to_string(), "await_headers: timeout (headers)");
        let proxy = TransportFailure::new(Stage::Proxy, Fault::ProxyAuthRequired);
        assert_eq!(proxy.to_string(), "proxy: proxy auth required");
    }
}
