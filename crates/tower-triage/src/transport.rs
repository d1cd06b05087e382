//! From an inner client's error to a [`TransportFailure`]: which stage broke
//! and what went wrong.
//!
//! hyper and hyper-util do not expose the failing stage as data, so this
//! walks the error chain — descending into `io::Error::get_ref()`, which
//! `io::Error::source()` skips — and reads, in order of trust: a
//! [`TimeoutPhase`] timeout that this crate raised itself, `io::ErrorKind`s,
//! and as a last resort the stable parts of the error messages of
//! hyper-util's connector (`dns error`, `tcp connect error`) and rustls
//! (`invalid peer certificate: …`).

use std::error::Error as StdError;
use std::io;

use triage_core::{BoxError, CertificateProblem, Fault, Stage, TimeoutPhase, TransportFailure};

/// A timeout raised by this crate, naming its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{phase} timeout after {millis} ms")]
pub struct TimeoutError {
    pub(crate) phase: TimeoutPhase,
    pub(crate) millis: u64,
}

impl TimeoutError {
    /// `phase` ran out of its `limit`.
    pub(crate) fn new(phase: TimeoutPhase, limit: std::time::Duration) -> TimeoutError {
        TimeoutError {
            phase,
            millis: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The phase that timed out.
    pub fn phase(&self) -> TimeoutPhase {
        self.phase
    }
}

/// An error tagged with the stage it happened at (see the `connect`
/// module, feature `hyper-util`). The innermost tag of a chain names the
/// stage.
#[derive(Debug)]
pub struct StageError {
    stage: Stage,
    source: BoxError,
}

impl StageError {
    /// Tags `source` with `stage`.
    pub fn new(stage: Stage, source: impl Into<BoxError>) -> StageError {
        StageError {
            stage,
            source: source.into(),
        }
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stage failed", self.stage)
    }
}

impl StdError for StageError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

thread_local! {
    /// While an attempt's future is polled (see [`watch_connect`]): the
    /// connection stage that a tagged resolver or connector left pending in
    /// this poll, `Some(None)` when none did; `None` outside such a poll.
    static CONNECT_PENDING: std::cell::Cell<Option<Option<Stage>>> =
        const { std::cell::Cell::new(None) };
}

/// Restores the enclosing poll's slot, even on unwind.
struct Restore(Option<Option<Stage>>);

impl Drop for Restore {
    fn drop(&mut self) {
        CONNECT_PENDING.set(self.0);
    }
}

/// Polls an attempt with `poll`, and says which connection stage (DNS,
/// connect, proxy, TLS) was still pending in that poll, as reported by the
/// tagged resolver and connectors of the `connect` module (which run inline
/// in the attempt's poll); `None` when no connection was being made, e.g.
/// the request was sent and its answer is awaited.
pub(crate) fn watch_connect<T>(poll: impl FnOnce() -> T) -> (T, Option<Stage>) {
    let _restore = Restore(CONNECT_PENDING.replace(Some(None)));
    let polled = poll();
    (polled, CONNECT_PENDING.get().flatten())
}

/// A tagged resolver or connector is pending at `stage`: the innermost (the
/// first to say so in a poll) wins.
#[cfg(feature = "hyper-util")]
pub(crate) fn connect_pending(stage: Stage) {
    if CONNECT_PENDING.get() == Some(None) {
        CONNECT_PENDING.set(Some(Some(stage)));
    }
}

/// The links of an error chain, outermost first, including the payloads of
/// `io::Error`s; at most 16.
pub(crate) fn chain<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut links = Vec::new();
    let mut current = Some(error);
    while let Some(err) = current {
        if links.len() >= 16 {
            break;
        }
        links.push(err);
        current = match err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    links
}

/// Classifies an inner client's error; `sent` says whether the request body
/// was fully handed over (after which a failure is in the await-headers
/// stage rather than the write stage).
pub(crate) fn classify_error(error: &(dyn StdError + 'static), sent: bool) -> TransportFailure {
    let links = chain(error);
    if let Some(t) = links.iter().find_map(|e| e.downcast_ref::<TimeoutError>()) {
        let stage = match t.phase {
            TimeoutPhase::Connect | TimeoutPhase::Pool => Stage::Connect,
            TimeoutPhase::Write => Stage::Write,
            TimeoutPhase::BodyIdle | TimeoutPhase::Body => Stage::Body,
            _ => Stage::AwaitHeaders,
        };
        return TransportFailure::new(stage, Fault::Timeout(t.phase));
    }
    let text: Vec<String> = links
        .iter()
        .map(|e| {
            // One allocation per link, lowercased in place.
            let mut text = String::with_capacity(96);
            let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{e}"));
            text.make_ascii_lowercase();
            text
        })
        .collect();
    let said = |needle: &str| text.iter().any(|t| t.contains(needle));
    let kind = links
        .iter()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    if let Some(tagged) = links
        .iter()
        .rev()
        .find_map(|e| e.downcast_ref::<StageError>())
    {
        return tagged_failure(tagged.stage(), kind, &text);
    }

    let connecting = said("tcp connect error") || said("client error (connect)");
    if said("dns error") || said("failed to lookup address") {
        let fault = if said("name or service not known")
            || said("nodename nor servname")
            || said("nxdomain")
            || said("no such host")
        {
            Fault::NameNotFound
        } else {
            Fault::ResolverFailed
        };
        return TransportFailure::new(Stage::Dns, fault);
    }
    if said("proxy authorization required") {
        return TransportFailure::new(Stage::Proxy, Fault::ProxyAuthRequired);
    }
    if said("tunnel error") {
        return TransportFailure::new(Stage::Proxy, Fault::ProxyRejected);
    }
    if let Some(problem) = certificate_problem(&text) {
        return TransportFailure::new(Stage::Tls, Fault::Certificate(problem));
    }
    if said("invalidcontenttype") || said("received corrupt message") {
        return TransportFailure::new(Stage::Tls, Fault::TlsProtocol);
    }
    if said("tls handshake eof") {
        return TransportFailure::new(Stage::Tls, Fault::TlsHandshake);
    }
    let after_connect = if sent {
        Stage::AwaitHeaders
    } else {
        Stage::Write
    };
    match kind {
        Some(io::ErrorKind::ConnectionRefused) => {
            TransportFailure::new(Stage::Connect, Fault::Refused)
        }
        Some(
            io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable,
        ) => TransportFailure::new(Stage::Connect, Fault::Unreachable),
        Some(io::ErrorKind::TimedOut) if connecting => {
            TransportFailure::new(Stage::Connect, Fault::Timeout(TimeoutPhase::Connect))
        }
        Some(io::ErrorKind::TimedOut) => {
            TransportFailure::new(after_connect, Fault::Timeout(TimeoutPhase::Headers))
        }
        Some(io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted) => {
            TransportFailure::new(
                if connecting {
                    Stage::Connect
                } else {
                    after_connect
                },
                Fault::Reset,
            )
        }
        Some(io::ErrorKind::BrokenPipe) => TransportFailure::new(Stage::Write, Fault::Reset),
        Some(io::ErrorKind::UnexpectedEof) => TransportFailure::new(after_connect, Fault::Closed),
        _ if said("connection closed before message completed") || said("incomplete message") => {
            TransportFailure::new(after_connect, Fault::Closed)
        }
        _ if said("error parsing") || said("invalid http") => {
            TransportFailure::new(Stage::AwaitHeaders, Fault::Protocol)
        }
        _ if connecting => TransportFailure::new(Stage::Connect, Fault::Other),
        _ => TransportFailure::new(after_connect, Fault::Other),
    }
}

/// The fault at a stage named by a tag.
fn tagged_failure(stage: Stage, kind: Option<io::ErrorKind>, text: &[String]) -> TransportFailure {
    let said = |needle: &str| text.iter().any(|t| t.contains(needle));
    let io_fault = |timeout: TimeoutPhase| match kind {
        Some(io::ErrorKind::ConnectionRefused) => Some(Fault::Refused),
        Some(
            io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable,
        ) => Some(Fault::Unreachable),
        Some(io::ErrorKind::TimedOut) => Some(Fault::Timeout(timeout)),
        Some(
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe,
        ) => Some(Fault::Reset),
        Some(io::ErrorKind::UnexpectedEof) => Some(Fault::Closed),
        _ => None,
    };
    let fault = match stage {
        Stage::Dns => {
            if matches!(kind, Some(io::ErrorKind::NotFound))
                || said("name or service not known")
                || said("nodename nor servname")
                || said("nxdomain")
                || said("no such host")
                || said("no address associated")
            {
                Fault::NameNotFound
            } else if matches!(kind, Some(io::ErrorKind::TimedOut)) {
                Fault::Timeout(TimeoutPhase::Connect)
            } else {
                Fault::ResolverFailed
            }
        }
        Stage::Proxy => {
            if said("proxy authorization required") {
                Fault::ProxyAuthRequired
            } else if let Some(fault) = io_fault(TimeoutPhase::Connect) {
                fault
            } else {
                Fault::ProxyRejected
            }
        }
        Stage::Tls => {
            if let Some(problem) = certificate_problem(text) {
                Fault::Certificate(problem)
            } else if said("invalidcontenttype") || said("corrupt message") {
                Fault::TlsProtocol
            } else {
                match io_fault(TimeoutPhase::Connect) {
                    None | Some(Fault::Closed | Fault::Reset) => Fault::TlsHandshake,
                    Some(other) => other,
                }
            }
        }
        _ => io_fault(TimeoutPhase::Connect).unwrap_or(Fault::Other),
    };
    TransportFailure::new(stage, fault)
}

/// rustls's "invalid peer certificate: …" texts, in both the plain and the
/// `…Context` forms.
fn certificate_problem(text: &[String]) -> Option<CertificateProblem> {
    let line = text
        .iter()
        .find(|t| t.contains("invalid peer certificate"))?;
    let problem = if line.contains("unknownissuer") || line.contains("unknown issuer") {
        CertificateProblem::UnknownIssuer
    } else if line.contains("notvalidforname") || line.contains("not valid for name") {
        CertificateProblem::WrongName
    } else if line.contains("expired") {
        CertificateProblem::Expired
    } else if line.contains("notvalidyet") || line.contains("not valid yet") {
        CertificateProblem::NotYetValid
    } else if line.contains("revoked") {
        CertificateProblem::Revoked
    } else if line.contains("badsignature") || line.contains("bad signature") {
        CertificateProblem::BadSignature
    } else {
        CertificateProblem::Other
    };
    Some(problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<Box<dyn StdError + Send + Sync>>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn wrap(text: &'static str, inner: impl StdError + Send + Sync + 'static) -> Wrap {
        Wrap(text, Some(Box::new(inner)))
    }

    #[test]
    fn hyper_util_shaped_chains() {
        let refused = wrap(
            "client error (Connect)",
            wrap(
                "tcp connect error",
                io::Error::from(io::ErrorKind::ConnectionRefused),
            ),
        );
        assert_eq!(
            classify_error(&refused, false),
            TransportFailure::new(Stage::Connect, Fault::Refused)
        );

        let timeout = wrap(
            "client error (Connect)",
            wrap(
                "tcp connect error",
                io::Error::from(io::ErrorKind::TimedOut),
            ),
        );
        assert_eq!(
            classify_error(&timeout, false),
            TransportFailure::new(Stage::Connect, Fault::Timeout(TimeoutPhase::Connect))
        );

        let dns = wrap(
            "client error (Connect)",
            wrap(
                "dns error",
                io::Error::other("failed to lookup address information: Name or service not known"),
            ),
        );
        assert_eq!(
            classify_error(&dns, false),
            TransportFailure::new(Stage::Dns, Fault::NameNotFound)
        );

        let reset = wrap(
            "client error (SendRequest)",
            wrap(
                "connection error",
                io::Error::from(io::ErrorKind::ConnectionReset),
            ),
        );
        assert_eq!(
            classify_error(&reset, true),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Reset)
        );
        assert_eq!(
            classify_error(&reset, false),
            TransportFailure::new(Stage::Write, Fault::Reset)
        );

        let closed = wrap(
            "client error (SendRequest)",
            Wrap("connection closed before message completed", None),
        );
        assert_eq!(
            classify_error(&closed, true),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Closed)
        );
    }

    #[test]
    fn tls_errors_hide_inside_io_payloads() {
        // hyper-rustls wraps twice: io::Error(Other, io::Error(InvalidData, rustls::Error)).
        let rustls_like = Wrap("invalid peer certificate: UnknownIssuer", None);
        let inner = io::Error::new(io::ErrorKind::InvalidData, rustls_like);
        let outer = wrap("client error (Connect)", io::Error::other(inner));
        assert_eq!(
            classify_error(&outer, false),
            TransportFailure::new(
                Stage::Tls,
                Fault::Certificate(CertificateProblem::UnknownIssuer)
            )
        );
        let expired = io::Error::other(Wrap(
            "invalid peer certificate: certificate expired: verification time 1 (UNIX), but certificate is not valid after 0",
            None,
        ));
        assert_eq!(
            classify_error(&expired, false),
            TransportFailure::new(Stage::Tls, Fault::Certificate(CertificateProblem::Expired))
        );
    }

    #[test]
    fn own_timeouts_name_their_phase() {
        let t = TimeoutError {
            phase: TimeoutPhase::Headers,
            millis: 10,
        };
        assert_eq!(
            classify_error(&t, true),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers))
        );
        assert_eq!(t.to_string(), "headers timeout after 10 ms");
    }

    #[test]
    fn proxy_errors_are_the_proxy_hop() {
        let e = wrap(
            "client error (Connect)",
            Wrap("tunnel error: proxy authorization required", None),
        );
        assert_eq!(
            classify_error(&e, false),
            TransportFailure::new(Stage::Proxy, Fault::ProxyAuthRequired)
        );
        let e = wrap(
            "client error (Connect)",
            Wrap("tunnel error: unsuccessful", None),
        );
        assert_eq!(
            classify_error(&e, false),
            TransportFailure::new(Stage::Proxy, Fault::ProxyRejected)
        );
    }
}
