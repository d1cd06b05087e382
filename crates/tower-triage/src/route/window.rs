//! [`DiagnosisWindow`]: the diagnosis window's settings.

use std::time::Duration;

/// The diagnosis window: once a route's connection path fails, capture
/// the detail of its next failures, for a while, then stop by itself.
///
/// Debug detail is worth most right after the first failure, and costs
/// (in event volume) most if it never stops. So after the first failure of
/// the connection path on a route, a window opens for that route: each of
/// the next failed attempts on it (retries, other requests, the route
/// breaker's verification probes) is watched from its first byte, and its
/// detail is kept — when each connection stage ended and how (DNS, connect,
/// proxy, TLS, timed from the attempt's start), the addresses DNS answered,
/// the certificate the server presented (subject, issuer, validity; with the
/// connectors of the `connect` module, feature `rustls`), and the full error
/// chain. The window closes after `failures` captured failures (default 10)
/// or `duration` (default 5 minutes), whichever comes first; at most one is
/// open per route, and a route gets a new one only after it recovers (a
/// status comes back) and fails again.
///
/// The detail goes to DEBUG events (target `tower_triage`, message
/// `diagnosis detail`) and to the attempt's escalation packet
/// ([`Packet::details`](triage_core::Packet::details)); an open route's
/// refusals carry the latest. It is as secret-free as the rest of the packet:
/// addresses and certificate names are public facts of the route, error
/// texts are scrubbed. Stage detail needs the tagged connectors of the
/// `connect` module; with any other client the window still records each
/// failure's full error chain.
///
/// Attempts on routes without a window pay nothing for it; while some
/// route has a failure on record, an attempt looks its route up once.
///
/// ```
/// use std::time::Duration;
/// use tower_triage::{DiagnosisWindow, TriageLayer};
///
/// let layer = TriageLayer::new().diagnosis_window(
///     DiagnosisWindow::new().failures(20).duration(Duration::from_secs(600)),
/// );
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DiagnosisWindow {
    pub(crate) enabled: bool,
    pub(crate) failures: u32,
    pub(crate) duration: Duration,
}

impl Default for DiagnosisWindow {
    fn default() -> Self {
        DiagnosisWindow {
            enabled: true,
            failures: 10,
            duration: Duration::from_secs(300),
        }
    }
}

impl DiagnosisWindow {
    /// The defaults: on; 10 failures or 5 minutes per window.
    pub fn new() -> DiagnosisWindow {
        DiagnosisWindow::default()
    }

    /// No window: no detail is captured.
    pub fn disabled() -> DiagnosisWindow {
        DiagnosisWindow {
            enabled: false,
            ..DiagnosisWindow::default()
        }
    }

    /// Closes a window after `n` captured failures (at least 1).
    pub fn failures(mut self, n: u32) -> Self {
        self.failures = n.max(1);
        self
    }

    /// Closes a window `duration` after it opened.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }
}
