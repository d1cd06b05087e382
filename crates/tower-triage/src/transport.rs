//! From an inner client's error to a [`TransportFailure`]: which stage broke
//! and what went wrong.
//!
//! hyper and hyper-util do not expose the failing stage as data, so this
//! walks the error chain — descending into `io::Error::get_ref()`, which
//! `io::Error::source()` skips — downcasts each link to the types it knows
//! (this crate's own timeouts and stage tags, tower's and tokio's `Elapsed`,
//! `io::Error`, hyper's and hyper-util's errors, h2's and rustls's), reads
//! its text only for what no type says, and leaves the judgement to
//! [`triage_core::detect`], which the probe shares.

use std::error::Error as StdError;
use std::io;

use triage_core::detect::Signals;
use triage_core::{Stage, TransportFailure};

use crate::error::{StageError, TimeoutError};

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
/// stage rather than the write stage), `pending` which connection stage a
/// tagged connector reported in progress when it failed.
///
/// Each link is downcast first (see [`note_typed`]); its text is read only
/// for what no type says, and the judgement is `triage_core::detect`'s.
pub(crate) fn classify_error(
    error: &(dyn StdError + 'static),
    sent: bool,
    pending: Option<Stage>,
) -> TransportFailure {
    let mut signals = Signals::new();
    signals.note_pending(pending);
    // Sized once for the longest text read: no regrowth link by link.
    let mut text = Capped(String::with_capacity(Capped::LIMIT));
    for link in chain(error) {
        note_typed(&mut signals, link);
        text.0.clear();
        let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{link}"));
        text.0.make_ascii_lowercase();
        signals.read_lowercase_text(&text.0);
    }
    signals.failure(sent)
}

/// A link's text, at most [`Capped::LIMIT`] bytes of it (a hostile or huge
/// message is not read whole).
#[derive(Default)]
struct Capped(String);

impl Capped {
    const LIMIT: usize = 512;
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = Capped::LIMIT.saturating_sub(self.0.len());
        if room == 0 {
            return Err(std::fmt::Error);
        }
        let mut end = s.len().min(room);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&s[..end]);
        Ok(())
    }
}

/// What the types of one link say: triage's own timeouts and stage tags,
/// tower's and tokio's `Elapsed`, `io::ErrorKind`, and (with their
/// features) hyper's predicates, hyper-util's `is_connect` and tunnel
/// errors, h2's reasons and rustls's errors.
fn note_typed(signals: &mut Signals, link: &(dyn StdError + 'static)) {
    if let Some(timeout) = link.downcast_ref::<TimeoutError>() {
        signals.note_own_timeout(timeout.phase);
    } else if let Some(tagged) = link.downcast_ref::<StageError>() {
        signals.note_tag(tagged.stage());
    } else if link.is::<tower::timeout::error::Elapsed>()
        || link.is::<tokio::time::error::Elapsed>()
    {
        signals.note_elapsed();
    } else if let Some(io) = link.downcast_ref::<io::Error>() {
        signals.note_io(io.kind());
    } else {
        #[cfg(feature = "hyper-util")]
        typed::hyper(signals, link);
        #[cfg(feature = "http2")]
        typed::h2(signals, link);
        #[cfg(feature = "rustls")]
        typed::rustls(signals, link);
    }
}

/// The downcasts to the client crates' error types.
mod typed {
    #[cfg(feature = "hyper-util")]
    use std::error::Error as StdError;

    #[cfg(feature = "hyper-util")]
    use triage_core::detect::{HyperSignal, ProxySignal, Signals};

    /// hyper-util's tunnel error: its type is private, but it can be named
    /// through the `Service` impl that returns it.
    #[cfg(feature = "hyper-util")]
    type TunnelError = <hyper_util::client::legacy::connect::proxy::Tunnel<
        hyper_util::client::legacy::connect::HttpConnector,
    > as tower::Service<http::Uri>>::Error;

    #[cfg(feature = "hyper-util")]
    pub(super) fn hyper(signals: &mut Signals, link: &(dyn StdError + 'static)) {
        if let Some(e) = link.downcast_ref::<hyper::Error>() {
            let signal = if e.is_canceled() {
                HyperSignal::Canceled
            } else if e.is_closed() {
                HyperSignal::ChannelClosed
            } else if e.is_incomplete_message() {
                HyperSignal::IncompleteMessage
            } else if e.is_parse() {
                HyperSignal::Parse
            } else if e.is_timeout() {
                HyperSignal::Timeout
            } else if e.is_body_write_aborted() {
                HyperSignal::BodyWriteAborted
            } else if e.is_user() {
                HyperSignal::User
            } else if e.is_shutdown() {
                HyperSignal::Shutdown
            } else {
                // Io, Body, BodyWrite, Http2: the next link says more.
                return;
            };
            signals.note_hyper(signal);
        } else if let Some(e) = link.downcast_ref::<hyper_util::client::legacy::Error>() {
            if e.is_connect() {
                signals.note_connect_error();
            }
        } else if let Some(e) = link.downcast_ref::<TunnelError>() {
            signals.note_proxy(match e {
                TunnelError::ProxyAuthRequired => ProxySignal::AuthRequired,
                TunnelError::TunnelUnsuccessful => ProxySignal::Rejected,
                TunnelError::ConnectFailed(_) => ProxySignal::ConnectFailed,
                TunnelError::TunnelUnexpectedEof => ProxySignal::Closed,
                _ => ProxySignal::Other,
            });
        }
    }

    #[cfg(feature = "http2")]
    pub(super) fn h2(signals: &mut Signals, link: &(dyn StdError + 'static)) {
        use triage_core::detect::H2Signal;
        if let Some(e) = link.downcast_ref::<h2::Error>() {
            if let Some(io) = e.get_io() {
                signals.note_io(io.kind());
            }
            signals.note_h2(
                H2Signal::new(e.reason().map(u32::from))
                    .go_away(e.is_go_away())
                    .reset(e.is_reset())
                    .remote(e.is_remote()),
            );
        }
    }

    #[cfg(feature = "rustls")]
    pub(super) fn rustls(signals: &mut Signals, link: &(dyn StdError + 'static)) {
        use rustls::{CertificateError, Error};
        use triage_core::CertificateProblem;
        use triage_core::detect::TlsSignal;
        let Some(e) = link.downcast_ref::<Error>() else {
            return;
        };
        signals.note_tls(match e {
            Error::InvalidCertificate(problem) => TlsSignal::Certificate(match problem {
                CertificateError::UnknownIssuer => CertificateProblem::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => CertificateProblem::WrongName,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    CertificateProblem::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    CertificateProblem::NotYetValid
                }
                CertificateError::Revoked => CertificateProblem::Revoked,
                CertificateError::BadSignature => CertificateProblem::BadSignature,
                _ => CertificateProblem::Other,
            }),
            Error::InvalidMessage(_) => TlsSignal::NotTls,
            _ => TlsSignal::Handshake,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triage_core::{BoxError, CertificateProblem, Fault, TimeoutPhase};

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
            classify_error(&refused, false, None),
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
            classify_error(&timeout, false, None),
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
            classify_error(&dns, false, None),
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
            classify_error(&reset, true, None),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Reset)
        );
        assert_eq!(
            classify_error(&reset, false, None),
            TransportFailure::new(Stage::Write, Fault::Reset)
        );

        let closed = wrap(
            "client error (SendRequest)",
            Wrap("connection closed before message completed", None),
        );
        assert_eq!(
            classify_error(&closed, true, None),
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
            classify_error(&outer, false, None),
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
            classify_error(&expired, false, None),
            TransportFailure::new(Stage::Tls, Fault::Certificate(CertificateProblem::Expired))
        );
    }

    #[test]
    fn a_tower_timeout_inside_is_a_timeout_of_its_stage() {
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        let waiting = classify_error(&*elapsed, true, None);
        assert_eq!(
            waiting,
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers))
        );
        assert!(waiting.is_transient() && !waiting.is_permanent());
        // Fired while a tagged connector was still connecting.
        assert_eq!(
            classify_error(&*elapsed, true, Some(Stage::Connect)),
            TransportFailure::new(Stage::Connect, Fault::Timeout(TimeoutPhase::Connect))
        );
    }

    #[tokio::test]
    async fn a_tokio_timeout_inside_is_a_timeout_too() {
        let elapsed = tokio::time::timeout(std::time::Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        let wrapped = wrap("client error (SendRequest)", elapsed);
        assert_eq!(
            classify_error(&wrapped, true, None),
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers))
        );
    }

    #[test]
    fn an_error_nobody_recognises_is_unknown_and_retried() {
        let strange = wrap(
            "client error (SendRequest)",
            Wrap("the flux capacitor", None),
        );
        let failure = classify_error(&strange, true, None);
        assert_eq!(
            failure,
            TransportFailure::new(Stage::AwaitHeaders, Fault::Unknown)
        );
        assert!(failure.is_transient() && !failure.is_permanent());
    }

    #[test]
    fn a_huge_message_is_read_only_in_part() {
        let huge: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
        let failure = classify_error(&Wrap(huge, None), true, None);
        assert_eq!(failure.fault(), Fault::Unknown);
    }

    #[test]
    fn own_timeouts_name_their_phase() {
        let t = TimeoutError {
            phase: TimeoutPhase::Headers,
            millis: 10,
        };
        assert_eq!(
            classify_error(&t, true, None),
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
            classify_error(&e, false, None),
            TransportFailure::new(Stage::Proxy, Fault::ProxyAuthRequired)
        );
        let e = wrap(
            "client error (Connect)",
            Wrap("tunnel error: unsuccessful", None),
        );
        assert_eq!(
            classify_error(&e, false, None),
            TransportFailure::new(Stage::Proxy, Fault::ProxyRejected)
        );
    }
}
