//! The capture of a diagnosis window: while an attempt on a watched route
//! is polled, the tagged resolver, connectors and TLS verifier of the
//! `connect` module write down what they see (stage ends, DNS answers, the
//! peer's certificate, a proxy's status line) into a thread-local slot.
//!
//! The slot is filled only for the poll of an attempt whose route has an
//! open window (see [`DiagnosisWindow`](crate::DiagnosisWindow)); otherwise
//! each writer finds it empty at the cost of one thread-local read, and
//! only while a connection is being made. Every writer looks for itself.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
#[cfg(feature = "hyper-util")]
use triage_core::Stage;
use triage_core::{Detail, MAX_ATTEMPTS};

/// What every attempt of one request showed on its way to the server, when
/// the request asks for it with
/// [`RequestOptions::connection_log`](crate::RequestOptions::connection_log):
/// each attempt is captured from its start, as a
/// [`DiagnosisWindow`](crate::DiagnosisWindow) captures a failing route's,
/// whether it fails or not. A failed attempt's detail also goes into the
/// escalation packet. `triage probe` is built on it; a service can use it
/// for a one-off diagnosis from inside its own runtime.
///
/// Each attempt's [`Detail`] holds when each connection stage ended, the
/// name looked up and the addresses DNS answered, the address connected
/// to, the certificate the server showed, a proxy's status line and, for a
/// failure, the error chain. An attempt on a reused connection has no
/// stages. At most [`MAX_ATTEMPTS`] are kept (the first ones and the last).
///
/// ```
/// use tower_triage::{ConnectionLog, RequestOptions};
///
/// let log = ConnectionLog::new();
/// let mut request = http::Request::get("https://api.example.com/v1/models").body(()).unwrap();
/// request.extensions_mut().insert(RequestOptions::new().connection_log(log.clone()));
/// // ... send it through the layer, then:
/// for detail in log.details() {
///     println!("{detail}");
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectionLog {
    details: Arc<Mutex<Vec<Detail>>>,
}

impl ConnectionLog {
    /// An empty log.
    pub fn new() -> ConnectionLog {
        ConnectionLog::default()
    }

    /// The attempts captured so far, in order.
    pub fn details(&self) -> Vec<Detail> {
        self.lock().clone()
    }

    pub(crate) fn push(&self, detail: Detail) {
        let mut details = self.lock();
        if details.len() >= MAX_ATTEMPTS {
            details.pop();
        }
        details.push(detail);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Detail>> {
        // A panic while pushing leaves a whole list: keep using it.
        self.details.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one attempt's connection showed, raw.
#[derive(Debug)]
pub(crate) struct Capture {
    // When the attempt started: the stage marks' origin.
    #[cfg_attr(not(feature = "hyper-util"), allow(dead_code))]
    started: Instant,
    detail: Detail,
}

impl Capture {
    /// A capture of attempt `attempt` (0: a verification probe), starting
    /// now.
    pub(crate) fn new(attempt: u32) -> Box<Capture> {
        Box::new(Capture {
            started: Instant::now(),
            detail: Detail::new(attempt),
        })
    }

    /// The detail, once the attempt is over.
    pub(crate) fn into_detail(self) -> Detail {
        self.detail
    }
}

thread_local! {
    static SLOT: RefCell<Option<Box<Capture>>> = const { RefCell::new(None) };
}

/// Runs `poll` with `capture` (if any) in the slot, and takes it back.
pub(crate) fn scope<T>(capture: &mut Option<Box<Capture>>, poll: impl FnOnce() -> T) -> T {
    let Some(mine) = capture.take() else {
        return poll();
    };
    struct PutBack<'a> {
        capture: &'a mut Option<Box<Capture>>,
        outer: Option<Box<Capture>>,
    }
    impl Drop for PutBack<'_> {
        fn drop(&mut self) {
            // Even on unwind: the enclosing scope's capture goes back.
            let outer = self.outer.take();
            *self.capture = SLOT.with(|slot| slot.replace(outer));
        }
    }
    let outer = SLOT.with(|slot| slot.replace(Some(mine)));
    let _guard = PutBack { capture, outer };
    poll()
}

/// Whether this poll captures.
#[cfg(feature = "hyper-util")]
pub(crate) fn on() -> bool {
    SLOT.with(|slot| slot.try_borrow().is_ok_and(|c| c.is_some()))
}

/// Writes into this poll's capture, if any.
#[cfg(feature = "hyper-util")]
fn with(f: impl FnOnce(&mut Capture)) {
    SLOT.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            if let Some(capture) = slot.as_mut() {
                f(capture);
            }
        }
    });
}

/// A connection stage ended, with success or not.
#[cfg(feature = "hyper-util")]
pub(crate) fn stage_ended(stage: Stage, ok: bool) {
    with(|c| {
        // The TLS tag also wraps plain `http://` connections, which show no
        // certificate: those made no handshake.
        if stage == Stage::Tls && ok && c.detail.peer().is_none() {
            return;
        }
        // A failure is told by the innermost tagged connector first; the
        // ones wrapping it fail with it and add nothing.
        if !ok && c.detail.stages().iter().any(|m| !m.ok()) {
            return;
        }
        let at = c.started.elapsed();
        c.detail.push_stage(stage, at, ok);
    });
}

/// DNS is asked for `name`.
#[cfg(feature = "hyper-util")]
pub(crate) fn resolving(name: &str) {
    with(|c| c.detail.set_name(name));
}

/// Whether this poll captures and has no connected address yet.
#[cfg(feature = "hyper-util")]
pub(crate) fn wants_address() -> bool {
    SLOT.with(|slot| {
        slot.try_borrow()
            .is_ok_and(|c| c.as_ref().is_some_and(|c| c.detail.connected().is_none()))
    })
}

/// The TCP connection was made to `addr`.
#[cfg(feature = "hyper-util")]
pub(crate) fn connected(addr: std::net::SocketAddr) {
    with(|c| c.detail.set_connected(addr));
}

/// DNS answered `addr`.
#[cfg(feature = "hyper-util")]
pub(crate) fn answer(addr: std::net::SocketAddr) {
    with(|c| c.detail.push_answer(addr.ip()));
}

/// The server presented the certificate `der` (parsed only when
/// capturing).
#[cfg(feature = "rustls")]
pub(crate) fn peer(der: &[u8]) {
    with(|c| {
        if let Some(summary) = triage_core::x509::CertSummary::from_der(der) {
            c.detail.set_peer(summary);
        }
    });
}

/// A proxy answered `CONNECT` with `line`.
#[cfg(feature = "hyper-util")]
pub(crate) fn proxy_status(line: &[u8]) {
    with(|c| c.detail.set_proxy_status(&String::from_utf8_lossy(line)));
}
