//! [`Detail`]: what a diagnosis window captured about one failed attempt.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::redact;
use crate::stage::Stage;
use crate::text::{capped, chain_texts, scrub_both};
use crate::x509::CertSummary;

/// At most this many DNS answers and stage marks are kept per attempt.
pub const MAX_DETAIL_ITEMS: usize = 16;

/// The longest host name kept (DNS names are at most 253 bytes).
const MAX_NAME: usize = 255;

/// The detailed evidence of one failed attempt on the connection path,
/// captured while its route's diagnosis window was open: when each
/// connection stage ended and how, what DNS answered, the certificate the
/// server showed, what a proxy said, and the full error chain.
///
/// Everything in it is secret-free: addresses and certificate names are
/// public facts of the route, the proxy's line and the error chain are
/// scrubbed like the rest of the [`Packet`](crate::Packet).
///
/// ```
/// use std::time::Duration;
/// use triage_core::{Detail, Stage};
///
/// let mut detail = Detail::new(2);
/// detail.push_stage(Stage::Dns, Duration::from_micros(310), true);
/// detail.push_answer("127.0.0.1".parse().unwrap());
/// detail.push_stage(Stage::Connect, Duration::from_micros(520), true);
/// detail.push_stage(Stage::Tls, Duration::from_millis(4), false);
/// detail.set_window(1, 10);
/// let text = detail.to_string();
/// assert!(text.contains("dns ok +310us"));
/// assert!(text.contains("tls failed +4000us"));
/// assert!(text.contains("dns answered 127.0.0.1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Detail {
    attempt: u32,
    window_n: u32,
    window_of: u32,
    stages: Vec<StageMark>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    name: Option<String>,
    answers: Vec<String>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    connected: Option<String>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    peer: Option<CertSummary>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    proxy_status: Option<String>,
    chain: Vec<String>,
}

/// A connection stage's end, timed from the attempt's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StageMark {
    stage: Stage,
    at_us: u64,
    ok: bool,
}

impl StageMark {
    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }
    /// When it ended, from the attempt's start (stages nest: the connect
    /// stage's time includes DNS, TLS's includes the connect).
    pub fn at(&self) -> Duration {
        Duration::from_micros(self.at_us)
    }
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        self.ok
    }
}

impl Detail {
    /// Scrubs `secrets` (values the request carried) from its texts.
    pub(crate) fn scrub_exact(&mut self, secrets: &[String], prints: &[redact::Fingerprint]) {
        for link in &mut self.chain {
            scrub_both(link, secrets, prints);
        }
        if let Some(line) = &mut self.proxy_status {
            scrub_both(line, secrets, prints);
        }
    }

    /// The detail of attempt `attempt` (1-based).
    pub fn new(attempt: u32) -> Detail {
        Detail {
            attempt,
            window_n: 0,
            window_of: 0,
            stages: Vec::new(),
            name: None,
            answers: Vec::new(),
            connected: None,
            peer: None,
            proxy_status: None,
            chain: Vec::new(),
        }
    }

    /// Which failure of its window this is: the `n`th of at most `of`.
    pub fn set_window(&mut self, n: u32, of: u32) {
        self.window_n = n;
        self.window_of = of;
    }

    /// A connection stage ended `at` after the attempt started, with
    /// success or not (at most [`MAX_DETAIL_ITEMS`]).
    pub fn push_stage(&mut self, stage: Stage, at: Duration, ok: bool) {
        if self.stages.len() < MAX_DETAIL_ITEMS {
            let at_us = u64::try_from(at.as_micros()).unwrap_or(u64::MAX);
            self.stages.push(StageMark { stage, at_us, ok });
        }
    }

    /// An address DNS answered (at most [`MAX_DETAIL_ITEMS`]; repeats are
    /// kept once).
    pub fn push_answer(&mut self, addr: IpAddr) {
        let text = addr.to_string();
        if self.answers.len() < MAX_DETAIL_ITEMS && !self.answers.contains(&text) {
            self.answers.push(text);
        }
    }

    /// The name DNS was asked for (the origin's host, or the proxy's),
    /// capped and printable.
    pub fn set_name(&mut self, name: &str) {
        self.name = Some(redact::printable(name, MAX_NAME).into_owned());
    }

    /// The address the TCP connection was made to.
    pub fn set_connected(&mut self, addr: SocketAddr) {
        self.connected = Some(addr.to_string());
    }

    /// The certificate the server presented.
    pub fn set_peer(&mut self, peer: CertSummary) {
        self.peer = Some(peer);
    }

    /// The status line a proxy answered a `CONNECT` with, scrubbed and
    /// capped.
    pub fn set_proxy_status(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        self.proxy_status = Some(capped(&redact::text(line)));
    }

    /// The attempt's full error chain, scrubbed.
    pub fn set_error(&mut self, error: &(dyn StdError + 'static)) {
        self.chain = chain_texts(error);
    }

    /// An error chain as [`Detail::error_chain`] and the packet write it:
    /// outermost first, scrubbed, capped.
    pub fn chain_of(error: &(dyn StdError + 'static)) -> Vec<String> {
        chain_texts(error)
    }

    /// The attempt (1-based; 0 for a route's verification probe).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// Which failure of its window this is, and the window's limit.
    pub fn window(&self) -> (u32, u32) {
        (self.window_n, self.window_of)
    }
    /// The connection stages that ended, in order.
    pub fn stages(&self) -> &[StageMark] {
        &self.stages
    }
    /// The name DNS was asked for, if a lookup was made.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The address the TCP connection was made to, if one was.
    pub fn connected(&self) -> Option<&str> {
        self.connected.as_deref()
    }
    /// The addresses DNS answered.
    pub fn answers(&self) -> &[String] {
        &self.answers
    }
    /// The certificate the server presented, if the handshake got that far.
    pub fn peer(&self) -> Option<&CertSummary> {
        self.peer.as_ref()
    }
    /// A proxy's status line, if one answered.
    pub fn proxy_status(&self) -> Option<&str> {
        self.proxy_status.as_deref()
    }
    /// The error chain, outermost first.
    pub fn error_chain(&self) -> &[String] {
        &self.chain
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempt == 0 {
            write!(f, "probe")?;
        } else {
            write!(f, "attempt #{}", self.attempt)?;
        }
        if self.window_of > 0 {
            write!(f, " (window {}/{})", self.window_n, self.window_of)?;
        }
        if !self.stages.is_empty() {
            f.write_str(": ")?;
            for (i, mark) in self.stages.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                let how = if mark.ok { "ok" } else { "failed" };
                write!(f, "{} {how} +{}us", mark.stage, mark.at_us)?;
            }
        }
        if !self.answers.is_empty() {
            match &self.name {
                Some(name) => write!(f, "; dns answered {name}: {}", self.answers.join(" "))?,
                None => write!(f, "; dns answered {}", self.answers.join(" "))?,
            }
        }
        if let Some(addr) = &self.connected {
            write!(f, "; connected to {addr}")?;
        }
        if let Some(peer) = &self.peer {
            write!(f, "; peer certificate {peer}")?;
        }
        if let Some(line) = &self.proxy_status {
            write!(f, "; proxy said \"{line}\"")?;
        }
        if !self.chain.is_empty() {
            write!(f, "; error: {}", self.chain.join(": "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PacketBuilder, Profile};
    use std::time::SystemTime;

    fn packet() -> crate::Packet {
        PacketBuilder::new(
            &http::Method::GET,
            &http::Uri::from_static("https://svc.test/"),
            Profile::generic(),
            SystemTime::UNIX_EPOCH,
        )
        .finish(Duration::ZERO)
    }

    #[test]
    fn bounded_and_secret_free() {
        let mut detail = Detail::new(1);
        for n in 0..40u8 {
            detail.push_stage(Stage::Connect, Duration::from_micros(u64::from(n)), false);
            detail.push_answer(IpAddr::from([10, 0, 0, n]));
            detail.push_answer(IpAddr::from([10, 0, 0, n]));
        }
        assert_eq!(detail.stages().len(), MAX_DETAIL_ITEMS);
        assert_eq!(detail.answers().len(), MAX_DETAIL_ITEMS);
        assert_eq!(detail.answers()[1], "10.0.0.1");
        detail.set_proxy_status("HTTP/1.1 403 denied https://u:pw@x.test/?api_key=sk-SECRET\r\n");
        let line = detail.proxy_status().unwrap();
        assert!(line.starts_with("HTTP/1.1 403 denied"), "{line}");
        assert!(
            !line.contains("sk-SECRET") && !line.contains("pw@"),
            "{line}"
        );
        let error = std::io::Error::other("Bearer sk-live-SECRET refused");
        detail.set_error(&error);
        assert!(!detail.to_string().contains("SECRET"), "{detail}");

        let mut packet = packet();
        for n in 0..40 {
            packet.push_detail(Detail::new(n));
        }
        assert_eq!(packet.details().len(), crate::MAX_ATTEMPTS);
        assert_eq!(packet.details().last().map(Detail::attempt), Some(39));
        assert_eq!(packet.details()[0].attempt(), 0);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_has_details_only_when_captured() {
        let mut packet = packet();
        assert!(!packet.to_json().contains("details"));
        let mut detail = Detail::new(2);
        detail.push_stage(Stage::Dns, Duration::from_micros(7), false);
        detail.set_window(1, 10);
        packet.push_detail(detail);
        let json: serde_json::Value = serde_json::from_str(&packet.to_json()).unwrap();
        let details = &json["details"][0];
        assert_eq!(details["attempt"], 2);
        assert_eq!(details["window_n"], 1);
        assert_eq!(details["stages"][0]["stage"], "dns");
        assert_eq!(details["stages"][0]["at_us"], 7);
        assert!(details.get("peer").is_none());
    }
}
