//! From what an error chain says to a [`TransportFailure`]: the one place
//! that judges a client's error.
//!
//! hyper, hyper-util, h2, rustls and tower do not expose the failing stage
//! as data, and their message texts are unstable. The tower crate (which
//! links them) walks an error's chain, *downcasts* each link and notes what
//! it finds here as typed [`Signals`]; [`Signals::failure`] then judges. In
//! order of trust:
//!
//! 1. a timeout that triage raised itself, naming its phase;
//! 2. a foreign timer around the client (tower's or tokio's `Elapsed`): a
//!    timeout of the stage it fired in, like triage's own attempt timeout;
//! 3. the stage tags of triage's connectors, and the connection stage that
//!    was in progress when the attempt failed;
//! 4. typed errors: a proxy tunnel's, rustls's, h2's (stream refused or
//!    reset, `GOAWAY`, `ENHANCE_YOUR_CALM`), hyper's predicates, hyper-util's
//!    `is_connect`, and `io::ErrorKind`;
//! 5. as the last resort, message texts ([`Signals::read_text`], here and
//!    nowhere else).
//!
//! What none of them recognises is [`Fault::Unknown`]: never a permanent
//! verdict (see [`TransportFailure::is_permanent`]).
//!
//! # Example
//!
//! ```
//! use std::io;
//! use triage_core::detect::{HyperSignal, Signals};
//! use triage_core::{Fault, Stage};
//!
//! // hyper gave the request back unsent: the connection closed first.
//! let mut signals = Signals::new();
//! signals.note_hyper(HyperSignal::Canceled);
//! let failure = signals.failure(true);
//! assert_eq!(failure.fault(), Fault::Unsent);
//! assert!(!failure.request_may_have_left());
//!
//! // Nothing recognised: unknown, and never permanent.
//! let mut signals = Signals::new();
//! signals.read_text("something nobody has seen before");
//! let failure = signals.failure(true);
//! assert_eq!(failure.fault(), Fault::Unknown);
//! assert!(!failure.is_permanent());
//! ```

use std::io;

use crate::stage::{CertificateProblem, Fault, Stage, TimeoutPhase, TransportFailure};

/// What hyper's `Error` predicates say (`is_canceled`, `is_closed`, ...).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HyperSignal {
    /// `is_canceled`: the request was dropped before it was dispatched (the
    /// connection closed first); when hyper-util reports it, the request
    /// was given back unsent.
    Canceled,
    /// `is_closed`: the connection's dispatch channel is gone.
    ChannelClosed,
    /// `is_incomplete_message`: the connection closed before the message
    /// was complete.
    IncompleteMessage,
    /// `is_parse`: the peer's message is not valid HTTP.
    Parse,
    /// `is_timeout`: hyper's own timer (the HTTP/2 keep-alive).
    Timeout,
    /// `is_user`: the caller's misuse, or the request body's own error.
    User,
    /// `is_body_write_aborted`: the request body ended before its declared
    /// length.
    BodyWriteAborted,
    /// `is_shutdown`: shutting the connection down failed.
    Shutdown,
}

/// What a proxy tunnel's error says (hyper-util's `Tunnel`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxySignal {
    /// The proxy answered `407`.
    AuthRequired,
    /// The proxy answered `CONNECT` with another non-2xx status.
    Rejected,
    /// The connection to the proxy itself failed (the cause follows).
    ConnectFailed,
    /// The proxy closed before it answered `CONNECT`.
    Closed,
    /// Anything else at the proxy hop (an IO error, headers too long).
    Other,
}

/// What rustls's error says.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsSignal {
    /// The server certificate was refused.
    Certificate(CertificateProblem),
    /// The peer does not speak TLS (an invalid message, an incompatible
    /// peer).
    NotTls,
    /// The handshake failed otherwise (an alert, a closed connection).
    Handshake,
}

/// HTTP/2 reason codes (RFC 9113 §7) that the judgement reads.
pub mod reason {
    /// `NO_ERROR`: a graceful shutdown.
    pub const NO_ERROR: u32 = 0x0;
    /// `PROTOCOL_ERROR`.
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// `REFUSED_STREAM`: the stream was not processed.
    pub const REFUSED_STREAM: u32 = 0x7;
    /// `CANCEL`.
    pub const CANCEL: u32 = 0x8;
    /// `ENHANCE_YOUR_CALM`: the peer asks for less load.
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
    /// `HTTP_1_1_REQUIRED`.
    pub const HTTP_1_1_REQUIRED: u32 = 0xd;
}

/// What h2's error says: its reason code and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct H2Signal {
    reason: Option<u32>,
    go_away: bool,
    reset: bool,
    remote: bool,
}

impl H2Signal {
    /// An h2 error with `reason` (`h2::Error::reason`, as its code).
    pub const fn new(reason: Option<u32>) -> H2Signal {
        H2Signal {
            reason,
            go_away: false,
            reset: false,
            remote: false,
        }
    }

    /// It came from a `GOAWAY` (`is_go_away`).
    pub const fn go_away(mut self, yes: bool) -> Self {
        self.go_away = yes;
        self
    }

    /// It came from a `RST_STREAM` (`is_reset`).
    pub const fn reset(mut self, yes: bool) -> Self {
        self.reset = yes;
        self
    }

    /// The peer sent it (`is_remote`), rather than the local library.
    pub const fn remote(mut self, yes: bool) -> Self {
        self.remote = yes;
        self
    }

    fn fault(self) -> Fault {
        match (self.reason, self.remote, self.go_away) {
            (Some(reason::REFUSED_STREAM), _, _) => Fault::StreamRefused,
            (Some(reason::ENHANCE_YOUR_CALM), _, _) => Fault::SlowDown,
            // A graceful GOAWAY fails only the streams above its last
            // stream ID, which the server never processed; the streams it
            // kept finish normally.
            (Some(reason::NO_ERROR), true, true) => Fault::StreamRefused,
            // A GOAWAY with an error code: the connection was torn down,
            // and the stream may have been processed.
            (_, true, true) => Fault::Reset,
            (Some(reason::PROTOCOL_ERROR | reason::HTTP_1_1_REQUIRED), _, _) => Fault::Protocol,
            (_, true, false) => Fault::StreamReset,
            // The local library gave up on what the peer sent.
            (Some(_), false, _) if !self.reset => Fault::Protocol,
            _ => Fault::StreamReset,
        }
    }
}

/// Phrases read from message texts, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Said(u32);

impl Said {
    const DNS: u32 = 1;
    const NAME_NOT_FOUND: u32 = 1 << 1;
    const CONNECTING: u32 = 1 << 2;
    const PROXY_AUTH: u32 = 1 << 3;
    const TUNNEL: u32 = 1 << 4;
    const NOT_TLS: u32 = 1 << 5;
    const TLS_EOF: u32 = 1 << 6;
    const INCOMPLETE: u32 = 1 << 7;
    const PARSE: u32 = 1 << 8;
    const CANCELED: u32 = 1 << 9;
    const REFUSED_STREAM: u32 = 1 << 10;
    const CALM: u32 = 1 << 11;
    const STREAM_RESET: u32 = 1 << 12;
    const TIMED_OUT: u32 = 1 << 13;
    const GOAWAY: u32 = 1 << 14;
    const GRACEFUL: u32 = 1 << 15;

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// What one error chain says, noted link by link, outermost first. See the
/// [module docs](self) for the order in which [`failure`](Self::failure)
/// trusts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    tag: Option<Stage>,
    own_timeout: Option<TimeoutPhase>,
    elapsed: bool,
    pending: Option<Stage>,
    connect_error: bool,
    proxy: Option<ProxySignal>,
    tls: Option<TlsSignal>,
    h2: Option<H2Signal>,
    hyper: Option<HyperSignal>,
    io: Option<io::ErrorKind>,
    certificate: Option<CertificateProblem>,
    said: Said,
}

impl Signals {
    /// Nothing noted yet.
    pub fn new() -> Signals {
        Signals::default()
    }

    /// A stage tag of triage's connectors; the innermost (the last noted)
    /// names the stage.
    pub fn note_tag(&mut self, stage: Stage) {
        self.tag = Some(stage);
    }

    /// A timeout that triage raised itself (the first noted counts).
    pub fn note_own_timeout(&mut self, phase: TimeoutPhase) {
        self.own_timeout.get_or_insert(phase);
    }

    /// A foreign timer fired around the client: tower's
    /// `timeout::error::Elapsed` or tokio's `time::error::Elapsed`.
    pub fn note_elapsed(&mut self) {
        self.elapsed = true;
    }

    /// The connection stage that a tagged connector reported in progress
    /// when the attempt failed (`None`: no connection was being made).
    pub fn note_pending(&mut self, stage: Option<Stage>) {
        self.pending = stage;
    }

    /// hyper-util's `Error::is_connect`: it failed while connecting.
    pub fn note_connect_error(&mut self) {
        self.connect_error = true;
    }

    /// A proxy tunnel's error (the first noted counts).
    pub fn note_proxy(&mut self, signal: ProxySignal) {
        self.proxy.get_or_insert(signal);
    }

    /// rustls's error (the first noted counts).
    pub fn note_tls(&mut self, signal: TlsSignal) {
        self.tls.get_or_insert(signal);
    }

    /// h2's error (the first noted counts).
    pub fn note_h2(&mut self, signal: H2Signal) {
        self.h2.get_or_insert(signal);
    }

    /// A hyper predicate (the first noted counts).
    pub fn note_hyper(&mut self, signal: HyperSignal) {
        self.hyper.get_or_insert(signal);
    }

    /// An `io::Error`'s kind; the first that says something
    /// (`ErrorKind::Other`, `InvalidData` and uncategorised kinds say
    /// nothing) counts.
    pub fn note_io(&mut self, kind: io::ErrorKind) {
        if self.io.is_none() && (io_fault(kind).is_some() || kind == io::ErrorKind::NotFound) {
            self.io = Some(kind);
        }
    }

    /// Reads one link's message text for the phrases that the typed signals
    /// cannot give (hyper-util's private connector errors: `dns error`,
    /// `tcp connect error`), and for errors of clients this crate cannot
    /// downcast. Matched case-insensitively, without allocating.
    pub fn read_text(&mut self, text: &str) {
        // Lowered once (on the stack when short), then searched with the
        // standard library's substring search: a window-by-window
        // case-insensitive compare of some thirty phrases cost tens of
        // thousands of instructions per link.
        let mut stack = [0u8; 512];
        let heap: String;
        let lower: &str = match stack.get_mut(..text.len()) {
            Some(buf) => {
                buf.copy_from_slice(text.as_bytes());
                buf.make_ascii_lowercase();
                // ASCII lowering keeps UTF-8 whole.
                std::str::from_utf8(buf).unwrap_or_default()
            }
            None => {
                heap = text.to_ascii_lowercase();
                &heap
            }
        };
        self.read_lowercase_text(lower);
    }

    /// [`Signals::read_text`] for a text already ASCII-lowercased (as by
    /// [`str::make_ascii_lowercase`]): no copy is made.
    pub fn read_lowercase_text(&mut self, lower: &str) {
        // Most phrases are absent: a set of the text's byte pairs rules
        // them out before any search.
        let pairs = Pairs::of(lower.as_bytes());
        let has = |needle: &str| pairs.may_hold(needle.as_bytes()) && lower.contains(needle);
        let mut bits = 0;
        let mut set = |yes: bool, bit: u32| {
            if yes {
                bits |= bit;
            }
        };
        set(
            has("dns error") || has("failed to lookup address"),
            Said::DNS,
        );
        set(
            has("name or service not known")
                || has("nodename nor servname")
                || has("nxdomain")
                || has("no such host")
                || has("no address associated"),
            Said::NAME_NOT_FOUND,
        );
        set(
            has("tcp connect error") || has("client error (connect)"),
            Said::CONNECTING,
        );
        set(has("proxy authorization required"), Said::PROXY_AUTH);
        set(has("tunnel error"), Said::TUNNEL);
        set(
            has("invalidcontenttype") || has("corrupt message"),
            Said::NOT_TLS,
        );
        set(has("tls handshake eof"), Said::TLS_EOF);
        set(
            has("connection closed before message completed") || has("incomplete message"),
            Said::INCOMPLETE,
        );
        set(
            has("error parsing") || has("invalid http") || has("invalid status"),
            Said::PARSE,
        );
        set(
            has("operation was canceled") || has("client error (canceled)"),
            Said::CANCELED,
        );
        // h2's texts, for a client whose h2 errors this crate cannot
        // downcast (without the `http2` feature): `stream error received:
        // <reason>`, `connection error received: <reason>`.
        set(has("refused stream"), Said::REFUSED_STREAM);
        set(
            has("enhance your calm") || has("excessive load generating"),
            Said::CALM,
        );
        set(has("stream error received"), Said::STREAM_RESET);
        set(has("connection error received"), Said::GOAWAY);
        set(has("not a result of an error"), Said::GRACEFUL);
        set(
            has("timed out") || has("deadline has elapsed") || has("request timeout"),
            Said::TIMED_OUT,
        );
        self.said.0 |= bits;
        if self.certificate.is_none() {
            self.certificate = certificate_problem(lower);
        }
    }

    /// The connection stage the failure happened in, if it happened while
    /// connecting.
    fn connecting(&self) -> Option<Stage> {
        // A certificate is only ever checked in the handshake; any other
        // TLS error can come from a live connection too (an alert, a record
        // that does not decrypt), after the request may have left, so it
        // names the TLS stage only when the client says it was connecting.
        let handshake = self
            .tls
            .filter(|t| matches!(t, TlsSignal::Certificate(_)) || self.connect_error);
        self.tag
            .or(self.pending)
            .or(self.proxy.map(|_| Stage::Proxy))
            .or(handshake.map(|_| Stage::Tls))
            .or((self.said.has(Said::DNS)).then_some(Stage::Dns))
            .or(
                (self.said.has(Said::TUNNEL) || self.said.has(Said::PROXY_AUTH))
                    .then_some(Stage::Proxy),
            )
            .or(self.certificate.map(|_| Stage::Tls))
            .or((self.connect_error
                || self.said.has(Said::CONNECTING)
                || self.refused_or_unreachable())
            .then_some(Stage::Connect))
    }

    /// A refusal, or an address that cannot be bound, happens only while
    /// connecting, whatever client reports it. (A missing route can also
    /// end a live connection: that needs the client to say it was
    /// connecting.)
    fn refused_or_unreachable(&self) -> bool {
        matches!(
            self.io,
            Some(io::ErrorKind::ConnectionRefused | io::ErrorKind::AddrNotAvailable)
        )
    }

    /// The judgement: the stage and fault of the failure. `sent` says
    /// whether the request body was fully handed to the client (after which
    /// a failure past the connection is in the await-headers stage rather
    /// than the write stage).
    pub fn failure(&self, sent: bool) -> TransportFailure {
        let after = if sent {
            Stage::AwaitHeaders
        } else {
            Stage::Write
        };
        if let Some(phase) = self.own_timeout {
            let stage = match phase {
                TimeoutPhase::Connect | TimeoutPhase::Pool => Stage::Connect,
                TimeoutPhase::Write => Stage::Write,
                TimeoutPhase::BodyIdle | TimeoutPhase::Body | TimeoutPhase::FirstByte => {
                    Stage::Body
                }
                _ => Stage::AwaitHeaders,
            };
            return TransportFailure::new(stage, Fault::Timeout(phase));
        }
        let connecting = self.connecting();
        if self.elapsed {
            // Judged like triage's own attempt timeout: the stage the timer
            // fired in.
            return match connecting {
                Some(stage) => TransportFailure::new(stage, Fault::Timeout(TimeoutPhase::Connect)),
                None => TransportFailure::new(
                    Stage::AwaitHeaders,
                    Fault::Timeout(TimeoutPhase::Headers),
                ),
            };
        }
        match connecting {
            Some(stage) => TransportFailure::new(stage, self.connecting_fault(stage)),
            // Given back unsent: it never got past the write stage.
            None => match self.exchange_fault(after) {
                Fault::Unsent => TransportFailure::new(Stage::Write, Fault::Unsent),
                fault => TransportFailure::new(after, fault),
            },
        }
    }

    /// What went wrong at connection stage `stage`.
    fn connecting_fault(&self, stage: Stage) -> Fault {
        let io = self.io.and_then(io_fault);
        let timeout = |fault: Fault| match fault {
            Fault::Timeout(_) => Fault::Timeout(TimeoutPhase::Connect),
            other => other,
        };
        match stage {
            Stage::Dns => {
                if self.said.has(Said::NAME_NOT_FOUND) || self.io == Some(io::ErrorKind::NotFound) {
                    Fault::NameNotFound
                } else if self.io == Some(io::ErrorKind::TimedOut) {
                    Fault::Timeout(TimeoutPhase::Connect)
                } else {
                    // A resolver that failed, or did not answer: transient.
                    Fault::ResolverFailed
                }
            }
            Stage::Proxy => match self.proxy {
                Some(ProxySignal::AuthRequired) => Fault::ProxyAuthRequired,
                Some(ProxySignal::Rejected) => Fault::ProxyRejected,
                Some(ProxySignal::Closed) => Fault::Closed,
                _ if self.said.has(Said::PROXY_AUTH) => Fault::ProxyAuthRequired,
                _ => match io {
                    Some(fault) => timeout(fault),
                    // Only the text of a foreign tunnel error: a refusal.
                    None if self.proxy.is_none() && self.said.has(Said::TUNNEL) => {
                        Fault::ProxyRejected
                    }
                    None => Fault::Unknown,
                },
            },
            Stage::Tls => match (self.tls, self.certificate) {
                (Some(TlsSignal::Certificate(problem)), _) | (None, Some(problem)) => {
                    Fault::Certificate(problem)
                }
                (Some(TlsSignal::NotTls), _) => Fault::TlsProtocol,
                _ if self.said.has(Said::NOT_TLS) => Fault::TlsProtocol,
                (Some(TlsSignal::Handshake), _) => Fault::TlsHandshake,
                _ => match io {
                    // A handshake cut off mid-way.
                    Some(Fault::Closed | Fault::Reset) => Fault::TlsHandshake,
                    Some(fault) => timeout(fault),
                    None if self.said.has(Said::TLS_EOF) => Fault::TlsHandshake,
                    None => Fault::Unknown,
                },
            },
            _ => match io {
                // hyper-util's connector found no address to try.
                _ if self.io == Some(io::ErrorKind::NotConnected) => Fault::Unreachable,
                Some(fault) => timeout(fault),
                None if self.said.has(Said::TIMED_OUT) => Fault::Timeout(TimeoutPhase::Connect),
                None => Fault::Unknown,
            },
        }
    }

    /// What went wrong after the connection was up, at `stage` (write or
    /// await-headers).
    fn exchange_fault(&self, stage: Stage) -> Fault {
        if let Some(h2) = self.h2 {
            // h2 hides IO errors (hyper turns the ones it keeps into
            // io::Errors); a reason code is what it gives.
            if h2.reason.is_some() || h2.go_away || h2.reset {
                return h2.fault();
            }
        }
        match self.hyper {
            Some(HyperSignal::Canceled) => return Fault::Unsent,
            Some(HyperSignal::IncompleteMessage) => return Fault::Closed,
            Some(HyperSignal::Parse) => return Fault::Protocol,
            Some(HyperSignal::Timeout) => return Fault::Timeout(TimeoutPhase::Headers),
            _ => {}
        }
        if let Some(kind) = self.io {
            return match (kind, io_fault(kind)) {
                (io::ErrorKind::BrokenPipe, _) if stage == Stage::Write => Fault::Reset,
                (_, Some(Fault::Timeout(_))) => Fault::Timeout(TimeoutPhase::Headers),
                (_, Some(fault)) => fault,
                (_, None) => Fault::Unknown,
            };
        }
        if let Some(HyperSignal::ChannelClosed | HyperSignal::Shutdown) = self.hyper {
            // The dispatch task is gone: the connection closed under it.
            return Fault::Closed;
        }
        let said = self.said;
        if said.has(Said::REFUSED_STREAM) || (said.has(Said::GOAWAY) && said.has(Said::GRACEFUL)) {
            Fault::StreamRefused
        } else if said.has(Said::CALM) {
            Fault::SlowDown
        } else if said.has(Said::STREAM_RESET) {
            Fault::StreamReset
        } else if said.has(Said::GOAWAY) {
            Fault::Reset
        } else if said.has(Said::CANCELED) {
            Fault::Unsent
        } else if said.has(Said::INCOMPLETE) {
            Fault::Closed
        } else if said.has(Said::PARSE) {
            Fault::Protocol
        } else {
            Fault::Unknown
        }
    }
}

/// The fault an `io::ErrorKind` names, if it names one.
fn io_fault(kind: io::ErrorKind) -> Option<Fault> {
    Some(match kind {
        io::ErrorKind::ConnectionRefused => Fault::Refused,
        io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::NetworkDown => Fault::Unreachable,
        io::ErrorKind::TimedOut => Fault::Timeout(TimeoutPhase::Headers),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Fault::Reset,
        io::ErrorKind::UnexpectedEof | io::ErrorKind::NotConnected => Fault::Closed,
        _ => return None,
    })
}

/// rustls's "invalid peer certificate: …" texts, in both the plain and the
/// `…Context` forms.
/// The adjacent byte pairs of a text, hashed into 1,024 bits: a phrase
/// with a pair the text lacks is not in it (the converse needs a search).
struct Pairs([u64; 16]);

impl Pairs {
    fn slot(a: u8, b: u8) -> usize {
        (usize::from(a) * 31 + usize::from(b)) & 1023
    }

    fn of(text: &[u8]) -> Pairs {
        let mut bits = [0u64; 16];
        for pair in text.windows(2) {
            let slot = Pairs::slot(pair[0], pair[1]);
            bits[slot / 64] |= 1 << (slot % 64);
        }
        Pairs(bits)
    }

    fn holds(&self, a: u8, b: u8) -> bool {
        let slot = Pairs::slot(a, b);
        self.0[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// Whether `needle` may be in the text: its first, middle and last
    /// pairs all are.
    fn may_hold(&self, needle: &[u8]) -> bool {
        let n = needle.len();
        if n < 2 {
            return true;
        }
        let mid = (n - 1) / 2;
        self.holds(needle[0], needle[1])
            && self.holds(needle[mid], needle[mid + 1])
            && self.holds(needle[n - 2], needle[n - 1])
    }
}

/// `lower`: the text, lowercased.
fn certificate_problem(lower: &str) -> Option<CertificateProblem> {
    let has = |needle: &str| lower.contains(needle);
    if !has("invalid peer certificate") {
        return None;
    }
    Some(if has("unknownissuer") || has("unknown issuer") {
        CertificateProblem::UnknownIssuer
    } else if has("notvalidforname") || has("not valid for name") {
        CertificateProblem::WrongName
    } else if has("expired") {
        CertificateProblem::Expired
    } else if has("notvalidyet") || has("not valid yet") {
        CertificateProblem::NotYetValid
    } else if has("revoked") {
        CertificateProblem::Revoked
    } else if has("badsignature") || has("bad signature") {
        CertificateProblem::BadSignature
    } else {
        CertificateProblem::Other
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(sent: bool, note: impl FnOnce(&mut Signals)) -> TransportFailure {
        let mut signals = Signals::new();
        note(&mut signals);
        signals.failure(sent)
    }

    #[test]
    fn own_timeouts_win() {
        let failure = judged(true, |s| {
            s.note_io(io::ErrorKind::ConnectionReset);
            s.note_own_timeout(TimeoutPhase::BodyIdle);
        });
        assert_eq!(
            failure,
            TransportFailure::new(Stage::Body, Fault::Timeout(TimeoutPhase::BodyIdle))
        );
    }

    #[test]
    fn a_foreign_timer_is_a_timeout_of_the_stage_it_fired_in() {
        let waiting = judged(true, |s| {
            s.note_elapsed();
            s.read_text("request timed out");
        });
        assert_eq!(
            waiting,
            TransportFailure::new(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers))
        );
        assert!(waiting.is_transient() && !waiting.is_permanent());
        let connecting = judged(true, |s| {
            s.note_elapsed();
            s.note_pending(Some(Stage::Tls));
        });
        assert_eq!(
            connecting,
            TransportFailure::new(Stage::Tls, Fault::Timeout(TimeoutPhase::Connect))
        );
    }

    #[test]
    fn proxy_signals_come_before_the_tcp_kinds() {
        let refused_proxy = judged(false, |s| {
            s.note_proxy(ProxySignal::ConnectFailed);
            s.note_io(io::ErrorKind::ConnectionRefused);
        });
        assert_eq!(
            refused_proxy,
            TransportFailure::new(Stage::Proxy, Fault::Refused)
        );
        assert!(refused_proxy.is_permanent());
        let auth = judged(false, |s| s.note_proxy(ProxySignal::AuthRequired));
        assert_eq!(auth.fault(), Fault::ProxyAuthRequired);
        // A tagged proxy hop with nothing recognisable is unknown, not a
        // refusal.
        let unknown = judged(false, |s| s.note_tag(Stage::Proxy));
        assert_eq!(unknown, TransportFailure::new(Stage::Proxy, Fault::Unknown));
        assert!(unknown.is_transient() && !unknown.is_permanent());
    }

    #[test]
    fn h2_reasons() {
        let h2 = |reason, remote, go_away, reset| {
            judged(true, |s| {
                s.note_h2(
                    H2Signal::new(Some(reason))
                        .remote(remote)
                        .go_away(go_away)
                        .reset(reset),
                )
            })
            .fault()
        };
        assert_eq!(
            h2(reason::REFUSED_STREAM, true, false, true),
            Fault::StreamRefused
        );
        assert_eq!(
            h2(reason::NO_ERROR, true, true, false),
            Fault::StreamRefused
        );
        assert_eq!(h2(0x2, true, true, false), Fault::Reset);
        assert_eq!(h2(0x2, true, false, true), Fault::StreamReset);
        assert_eq!(h2(reason::CANCEL, true, false, true), Fault::StreamReset);
        assert_eq!(
            h2(reason::ENHANCE_YOUR_CALM, true, false, true),
            Fault::SlowDown
        );
        assert_eq!(
            h2(reason::PROTOCOL_ERROR, false, false, false),
            Fault::Protocol
        );
        let refused = TransportFailure::new(Stage::AwaitHeaders, Fault::StreamRefused);
        assert!(!refused.request_may_have_left() && refused.is_transient());
    }

    #[test]
    fn hyper_predicates() {
        let canceled = judged(true, |s| {
            s.note_connect_error();
            s.note_hyper(HyperSignal::Canceled);
        });
        // hyper-util wraps a dispatch cancellation as its Canceled kind,
        // not Connect; a connect error with a cancel is a connect failure.
        assert_eq!(canceled.stage(), Stage::Connect);
        let canceled = judged(true, |s| s.note_hyper(HyperSignal::Canceled));
        assert_eq!(canceled, TransportFailure::new(Stage::Write, Fault::Unsent));
        assert!(!canceled.request_may_have_left());
        let incomplete = judged(true, |s| s.note_hyper(HyperSignal::IncompleteMessage));
        assert_eq!(incomplete.fault(), Fault::Closed);
        let parse = judged(true, |s| s.note_hyper(HyperSignal::Parse));
        assert_eq!(parse.fault(), Fault::Protocol);
        assert!(!parse.is_permanent());
    }

    #[test]
    fn a_refusal_is_a_connect_failure_from_any_client() {
        let refused = judged(true, |s| s.note_io(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            refused,
            TransportFailure::new(Stage::Connect, Fault::Refused)
        );
        assert!(!refused.request_may_have_left());
    }

    #[test]
    fn a_tls_error_on_a_live_connection_is_not_the_handshake() {
        // An alert or a bad record after the request left: not provably
        // unsent, so not the TLS stage.
        let live = judged(true, |s| s.note_tls(TlsSignal::Handshake));
        assert_eq!(
            live,
            TransportFailure::new(Stage::AwaitHeaders, Fault::Unknown)
        );
        assert!(live.request_may_have_left());
        // The same while connecting is a handshake failure.
        let connecting = judged(true, |s| {
            s.note_connect_error();
            s.note_tls(TlsSignal::Handshake);
        });
        assert_eq!(
            connecting,
            TransportFailure::new(Stage::Tls, Fault::TlsHandshake)
        );
        // A refused certificate is only ever the handshake's.
        let cert = judged(true, |s| {
            s.note_tls(TlsSignal::Certificate(CertificateProblem::Expired))
        });
        assert_eq!(cert.stage(), Stage::Tls);
        // A missing route on a live connection is not a connect failure.
        let unreachable = judged(true, |s| s.note_io(io::ErrorKind::HostUnreachable));
        assert_eq!(unreachable.stage(), Stage::AwaitHeaders);
    }

    #[test]
    fn io_kinds_after_connect() {
        let reset = judged(true, |s| s.note_io(io::ErrorKind::ConnectionReset));
        assert_eq!(
            reset,
            TransportFailure::new(Stage::AwaitHeaders, Fault::Reset)
        );
        let unsent = judged(false, |s| s.note_io(io::ErrorKind::BrokenPipe));
        assert_eq!(unsent, TransportFailure::new(Stage::Write, Fault::Reset));
        // A NotFound after the connection is no missing name.
        let not_found = judged(true, |s| s.note_io(io::ErrorKind::NotFound));
        assert_eq!(not_found.fault(), Fault::Unknown);
        // Kinds that say nothing are passed over for the next.
        let later = judged(true, |s| {
            s.note_io(io::ErrorKind::Other);
            s.note_io(io::ErrorKind::UnexpectedEof);
        });
        assert_eq!(later.fault(), Fault::Closed);
    }

    #[test]
    fn texts_are_the_last_resort() {
        let dns = judged(false, |s| {
            s.read_text("client error (Connect)");
            s.read_text("dns error");
            s.read_text("failed to lookup address information: Name or service not known");
        });
        assert_eq!(dns, TransportFailure::new(Stage::Dns, Fault::NameNotFound));
        let cert = judged(false, |s| {
            s.read_text("invalid peer certificate: UnknownIssuer");
        });
        assert_eq!(
            cert,
            TransportFailure::new(
                Stage::Tls,
                Fault::Certificate(CertificateProblem::UnknownIssuer)
            )
        );
        // A typed signal outranks a text.
        let typed = judged(true, |s| {
            s.note_hyper(HyperSignal::IncompleteMessage);
            s.read_text("refused stream");
        });
        assert_eq!(typed.fault(), Fault::Closed);
    }

    #[test]
    fn h2_texts_when_its_types_cannot_be_read() {
        let text = |t: &str| judged(true, |s| s.read_text(t)).fault();
        assert_eq!(
            text("stream error received: refused stream before processing any application logic"),
            Fault::StreamRefused
        );
        assert_eq!(
            text("stream error received: detected excessive load generating behavior"),
            Fault::SlowDown
        );
        assert_eq!(
            text("stream error received: unexpected internal error encountered"),
            Fault::StreamReset
        );
        assert_eq!(
            text("connection error received: not a result of an error"),
            Fault::StreamRefused
        );
        assert_eq!(
            text("connection error received: unexpected internal error encountered"),
            Fault::Reset
        );
    }

    #[test]
    fn texts_are_read_in_any_case_and_at_any_length() {
        let dns = |t: &str| judged(false, |s| s.read_text(t));
        let loud = dns("DNS Error: Failed To Lookup Address: NXDOMAIN");
        assert_eq!(
            (loud.stage(), loud.fault()),
            (Stage::Dns, Fault::NameNotFound)
        );
        // Past the stack buffer, the phrase at the very end still counts.
        let long = format!("{} dns error: no such host", "x".repeat(4000));
        let long = dns(&long);
        assert_eq!(
            (long.stage(), long.fault()),
            (Stage::Dns, Fault::NameNotFound)
        );
        // Every pair of a phrase must be there: a text with its words
        // scattered does not say it.
        let scattered = dns("error dns; such no host");
        assert_ne!(scattered.fault(), Fault::NameNotFound);
    }

    #[test]
    fn nothing_recognised_is_unknown_and_never_permanent() {
        for sent in [false, true] {
            let failure = judged(sent, |s| s.read_text("client error (SendRequest)"));
            assert_eq!(failure.fault(), Fault::Unknown);
            assert!(failure.is_transient());
            assert!(!failure.is_permanent());
        }
        let connecting = judged(false, |s| s.note_connect_error());
        assert_eq!(
            connecting,
            TransportFailure::new(Stage::Connect, Fault::Unknown)
        );
    }
}
