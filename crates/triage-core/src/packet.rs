//! The escalation packet: [`Packet`] and [`PacketBuilder`].

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, Uri};

use crate::classify::Diagnosis;
use crate::detail::Detail;
use crate::evidence::{Evidence, RateInfo};
use crate::owner::Owner;
use crate::profile::Profile;
use crate::redact;
use crate::retry::{Decision, Stop};
use crate::stage::Stage;
use crate::text::{capped, chain_texts, scrub_both};
use crate::time;

/// At most this many attempts are kept (the first ones and the last).
pub const MAX_ATTEMPTS: usize = 32;
/// The longest [`Packet::finding`].
const MAX_FINDING: usize = 1024;
/// The longest model name kept.
const MAX_MODEL: usize = 128;

/// The longest idempotency key a packet keeps (Stripe allows 255).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A duration as the finding writes it: `0.4 ms`, `31 ms`, `2.1 s`.
struct Ms(Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1000.0;
        if ms < 10.0 {
            write!(f, "{ms:.1} ms")
        } else if ms < 10_000.0 {
            write!(f, "{ms:.0} ms")
        } else {
            write!(f, "{:.1} s", ms / 1000.0)
        }
    }
}

/// Addresses as the finding lists them: the first three, then how many
/// more.
struct Listed<'a>(&'a [String]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0[..self.0.len().min(3)].join(", "))?;
        if self.0.len() > 3 {
            write!(f, " (+{} more)", self.0.len() - 3)?;
        }
        Ok(())
    }
}

/// One attempt as the packet records it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AttemptRecord {
    n: u32,
    status: Option<u16>,
    has_body: bool,
    request_id: Option<String>,
    stage: Option<Stage>,
    owner: Option<Owner>,
    class: String,
    error_code: Option<String>,
    decision: &'static str,
    delay_ms: Option<u64>,
    elapsed_ms: u64,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "std::ops::Not::not"))]
    in_stream: bool,
}

impl AttemptRecord {
    /// Whether the attempt failed with an error event inside a streamed
    /// answer (its status is the one the event's type stands for; the head
    /// said 200).
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// The attempt's number, 1 for the first.
    pub fn n(&self) -> u32 {
        self.n
    }
    /// The status, if an answer came back.
    pub fn status(&self) -> Option<u16> {
        self.status
    }
    /// Whether any body byte was seen (or a failure body was read).
    pub fn has_body(&self) -> bool {
        self.has_body
    }
    /// The origin's request ID, if it sent one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// The stage of a transport failure.
    pub fn stage(&self) -> Option<Stage> {
        self.stage
    }
    /// The failure's owner; `None` on success.
    pub fn owner(&self) -> Option<Owner> {
        self.owner
    }
    /// The class, as its dotted name.
    pub fn class(&self) -> &str {
        &self.class
    }
    /// The provider's error code from the body, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref()
    }
    /// The decision's reason (`retry`, `not_retryable`, ...).
    pub fn decision(&self) -> &'static str {
        self.decision
    }
    /// The delay before the next attempt, for a retry.
    pub fn delay_ms(&self) -> Option<u64> {
        self.delay_ms
    }
    /// How long the attempt took.
    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed_ms
    }
}

/// The escalation packet: everything a person needs to hand a failure over,
/// and nothing secret.
///
/// A [`Packet`] holds the time (UTC, with its zone), the method and endpoint
/// (query secrets and user info removed), the profile, the gateway if one
/// made the error, each attempt's evidence flags (status? body? request ID?),
/// the request IDs, the last rate-limit state, the error chain (scrubbed of
/// keys and tokens), the diagnosis and the next step. It prints as text for
/// people ([`Display`](std::fmt::Display)) and, with the `serde` feature, as
/// JSON.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
/// use triage_core::{classify, Decision, Evidence, PacketBuilder, Profile, Stop};
///
/// let uri: Uri = "https://api.example.com/v1/items?api_key=s3cr3t&page=2".parse().unwrap();
/// let profile = Profile::generic();
/// let mut headers = HeaderMap::new();
/// headers.insert("x-request-id", HeaderValue::from_static("abc-123"));
/// let evidence = Evidence::from_response(StatusCode::UNAUTHORIZED, &headers, profile, SystemTime::now());
/// let diagnosis = classify(&evidence, profile);
///
/// let packet = PacketBuilder::new(&Method::GET, &uri, profile, SystemTime::now())
///     .attempt(&evidence, &diagnosis, &Decision::Stop(Stop::NotRetryable(diagnosis.owner().unwrap())))
///     .finish(Duration::from_millis(42));
/// let text = packet.to_string();
/// assert!(text.contains("abc-123"));
/// assert!(text.contains("owner:       auth"));
/// assert!(!text.contains("s3cr3t"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Packet {
    timestamp: String,
    method: String,
    endpoint: String,
    profile: String,
    gateway: Option<&'static str>,
    owner: Option<Owner>,
    class: String,
    #[cfg_attr(feature = "serde", serde(skip))]
    family: &'static str,
    stage: Option<Stage>,
    outcome: &'static str,
    next_step: &'static str,
    request_ids: Vec<String>,
    attempts: Vec<AttemptRecord>,
    attempts_total: u32,
    rate: Option<RateInfo>,
    error_chain: Vec<String>,
    elapsed_ms: u64,
    version: String,
    runtime: String,
    route: Option<RouteNote>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    model: Option<String>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    correlation_id: Option<String>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    idempotency_key: Option<String>,
    finding: String,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    details: Vec<Detail>,
}

/// A request refused because its route is open: since when, and how many
/// requests were refused so far (this one included).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RouteNote {
    first_seen: String,
    refused: u64,
}

impl RouteNote {
    /// When the route opened, RFC 3339 in UTC.
    pub fn first_seen(&self) -> &str {
        &self.first_seen
    }
    /// Requests refused since it opened, this one included.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

impl Packet {
    /// A packet with nothing in it, for an error whose packet could not be
    /// written (its writer panicked).
    pub(crate) fn unwritten() -> Packet {
        PacketBuilder::new(
            &Method::GET,
            &Uri::default(),
            Profile::generic(),
            SystemTime::UNIX_EPOCH,
        )
        .finish(Duration::ZERO)
    }

    /// Scrubs `secrets` from every text that came from the far side or an
    /// error: request IDs, error codes, the error chain, the details.
    fn scrub_exact(&mut self, secrets: &[String], prints: &[redact::Fingerprint]) {
        let scrub = |text: &mut String| scrub_both(text, secrets, prints);
        self.request_ids.iter_mut().for_each(scrub);
        self.error_chain.iter_mut().for_each(scrub);
        for attempt in &mut self.attempts {
            attempt.request_id.iter_mut().for_each(scrub);
            attempt.error_code.iter_mut().for_each(scrub);
        }
        for detail in &mut self.details {
            detail.scrub_exact(secrets, prints);
        }
        if let Some(model) = &mut self.model {
            scrub_both(model, secrets, prints);
        }
    }

    /// The packet of a request refused at `now` by an open route, from the
    /// packet of the failure that opened it (`self`): its diagnosis and
    /// error chain, no attempt of its own, and when the route opened and how
    /// many requests it refused so far.
    pub fn refused_by_route(&self, opened: SystemTime, refused: u64, now: SystemTime) -> Packet {
        let mut packet = self.clone();
        packet.timestamp = time::format_rfc3339_millis(now);
        packet.attempts.clear();
        packet.attempts_total = 0;
        packet.elapsed_ms = 0;
        packet.stopped_by_route(opened, refused);
        packet
    }

    /// This request's own packet, stopped by a route that opened (at
    /// `opened`, `refused` requests refused so far) while it waited to
    /// retry: its attempts stay, its outcome is `route_open`.
    pub fn stopped_by_route(&mut self, opened: SystemTime, refused: u64) {
        self.route = Some(RouteNote {
            first_seen: time::format_rfc3339_millis(opened),
            refused,
        });
        self.outcome = Stop::RouteOpen.as_str();
        self.finding = self.find();
    }

    /// The detail captured by the route's diagnosis window, for the
    /// attempts (or verification probes) it watched.
    pub fn details(&self) -> &[Detail] {
        &self.details
    }

    /// Adds a captured detail (at most [`MAX_ATTEMPTS`]: the first ones and
    /// the last).
    pub fn push_detail(&mut self, detail: Detail) {
        if self.details.len() >= MAX_ATTEMPTS {
            self.details.pop();
        }
        self.details.push(detail);
        self.finding = self.find();
    }

    /// The model the request named (AI profiles, from a small in-memory
    /// JSON body's top-level `model`), if known.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The ID of the inbound request this call served (a gateway's
    /// downstream request), when the caller gave one.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The idempotency key the request carried (the caller's, or the one a
    /// layer minted for it), the same on every attempt: the API's record of
    /// the request is found by it.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// Names the model the request asked for (capped, printable).
    pub fn set_model(&mut self, model: &str) {
        self.model = Some(redact::printable(model, MAX_MODEL).into_owned());
    }

    /// One sentence for the person escalating: what was proved from this
    /// runtime and where the evidence first changed, e.g. `DNS resolved
    /// api.example.com to 198.51.100.7 in 0.4 ms; TCP connected to
    /// 198.51.100.7:443 in 3.1 ms; TLS failed after 2.0 ms: the server's
    /// certificate subject "CN=proxy.corp" issued by "CN=Corp Root" …; no
    /// status, no body, no request ID; the evidence changed at tls
    /// (transport.tls.certificate.unknown_issuer)`. The connection stages
    /// come from the last captured [`Detail`] that made a connection (a
    /// diagnosis window's, or every attempt's when the request asked for a
    /// [connection log]); without one the sentence starts at the answer.
    ///
    /// [connection log]: https://docs.rs/tower-triage/latest/tower_triage/struct.ConnectionLog.html
    pub fn finding(&self) -> &str {
        &self.finding
    }

    /// Builds [`Packet::finding`] from the packet's contents.
    fn find(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(160);
        let host = self
            .endpoint
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        let connection = self.details.iter().rev().find(|d| !d.stages().is_empty());
        if let Some(detail) = connection {
            connection_phrases(&mut out, detail, &host);
        } else if !self.details.is_empty() {
            out.push_str("no new connection (one was reused)");
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        let last = self.attempts.last();
        match last.and_then(AttemptRecord::status) {
            Some(status) => {
                let _ = write!(out, "HTTP {status}");
            }
            None => out.push_str("no status"),
        }
        out.push_str(match last.is_some_and(AttemptRecord::has_body) {
            true => ", a body",
            false => ", no body",
        });
        match last.and_then(AttemptRecord::request_id) {
            Some(id) => {
                let _ = write!(out, ", request ID {id}");
            }
            None => out.push_str(", no request ID"),
        }
        match (self.owner, self.stage) {
            (None, _) if self.outcome == "success" => out.push_str("; every stage went through"),
            (_, Some(stage)) => {
                let _ = write!(out, "; the evidence changed at {stage} ({})", self.class);
            }
            (_, None) => {
                let _ = write!(out, "; the evidence changed at the answer ({})", self.class);
            }
        }
        redact::printable(&out, MAX_FINDING).into_owned()
    }

    /// Set when the request was refused by an open route.
    pub fn route_open(&self) -> Option<&RouteNote> {
        self.route.as_ref()
    }

    /// When the request started, RFC 3339 in UTC (`2026-11-22T18:42:32.123Z`).
    pub fn timestamp(&self) -> &str {
        &self.timestamp
    }
    /// The request method.
    pub fn method(&self) -> &str {
        &self.method
    }
    /// The endpoint, without user info, fragment or secret query values.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
    /// The profile's name.
    pub fn profile(&self) -> &str {
        &self.profile
    }
    /// The gateway that made the error, if one did.
    pub fn gateway(&self) -> Option<&'static str> {
        self.gateway
    }
    /// The final owner; `None` when the call succeeded.
    pub fn owner(&self) -> Option<Owner> {
        self.owner
    }
    /// The final class, as its dotted name.
    pub fn class(&self) -> &str {
        &self.class
    }
    /// The final class's family ([`Class::family`](crate::Class::family)),
    /// of few values: fit for a metric's attribute.
    pub fn class_family(&self) -> &'static str {
        self.family
    }
    /// The stage of the final transport failure.
    pub fn stage(&self) -> Option<Stage> {
        self.stage
    }
    /// The final decision's reason.
    pub fn outcome(&self) -> &'static str {
        self.outcome
    }
    /// What to do next.
    pub fn next_step(&self) -> &'static str {
        self.next_step
    }
    /// Every distinct request ID the attempts got, in order.
    pub fn request_ids(&self) -> &[String] {
        &self.request_ids
    }
    /// The attempts (at most [`MAX_ATTEMPTS`]: the first ones and the last).
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.attempts
    }
    /// How many attempts were made in all.
    pub fn attempts_total(&self) -> u32 {
        self.attempts_total
    }
    /// The last rate-limit state reported, if any.
    pub fn rate(&self) -> Option<&RateInfo> {
        self.rate.as_ref()
    }
    /// The error chain, outermost first, scrubbed of secrets.
    pub fn error_chain(&self) -> &[String] {
        &self.error_chain
    }
    /// Total time from the first attempt to the outcome.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms)
    }

    /// The packet as one JSON object.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and enums cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The connection stages of `detail`, one phrase each (`DNS resolved …
/// in …`, `TCP connected to … in …`, `TLS failed after …: …`).
fn connection_phrases(out: &mut String, detail: &Detail, host: &str) {
    use fmt::Write as _;
    let mut before = Duration::ZERO;
    // Through a proxy, the first of two proxy stages is the TCP
    // connection to it, the second the tunnel.
    let mut proxy_marks = detail
        .stages()
        .iter()
        .filter(|m| m.stage() == Stage::Proxy)
        .count();
    for mark in detail.stages() {
        let took = Ms(mark.at().saturating_sub(before));
        before = mark.at();
        if !out.is_empty() {
            out.push_str("; ");
        }
        let name = detail.name().unwrap_or(host);
        let _ = match (mark.stage(), mark.ok()) {
            (Stage::Dns, true) if detail.answers().is_empty() => {
                write!(out, "DNS resolved {name} in {took}")
            }
            (Stage::Dns, true) => write!(
                out,
                "DNS resolved {name} to {} in {took}",
                Listed(detail.answers())
            ),
            (Stage::Dns, false) => write!(out, "DNS failed for {name} after {took}"),
            (Stage::Connect, true) => match detail.connected() {
                Some(addr) => write!(out, "TCP connected to {addr} in {took}"),
                None => write!(out, "TCP connected in {took}"),
            },
            (Stage::Connect, false) if detail.answers().is_empty() => {
                write!(out, "TCP connect failed after {took}")
            }
            (Stage::Connect, false) => write!(
                out,
                "TCP connect to {} failed after {took}",
                Listed(detail.answers())
            ),
            (Stage::Proxy, true) if proxy_marks >= 2 => {
                proxy_marks = 0;
                match detail.connected() {
                    Some(addr) => {
                        write!(out, "TCP connected to the proxy at {addr} in {took}")
                    }
                    None => write!(out, "TCP connected to the proxy in {took}"),
                }
            }
            (Stage::Proxy, true) => write!(out, "the proxy opened a tunnel in {took}"),
            (Stage::Proxy, false) => match detail.proxy_status() {
                Some(line) => {
                    write!(out, "the proxy refused the tunnel after {took}: \"{line}\"")
                }
                None => write!(out, "the proxy hop failed after {took}"),
            },
            (Stage::Tls, true) => write!(out, "TLS handshake done in {took}"),
            (Stage::Tls, false) => match detail.peer() {
                Some(peer) => write!(
                    out,
                    "TLS failed after {took}: the server's certificate {peer}"
                ),
                None => write!(out, "TLS failed after {took}"),
            },
            (stage, true) => write!(out, "{stage} done in {took}"),
            (stage, false) => write!(out, "{stage} failed after {took}"),
        };
    }
}

/// Builds a [`Packet`] as attempts happen.
///
/// Recording is cheap: the builder keeps what it is given as it is (the
/// method, the URI, the start time, each attempt's verdict) and writes
/// the packet's texts (timestamp, redacted endpoint, attempt records,
/// scrubbing, the finding) only in [`PacketBuilder::finish`], so a packet
/// that is never read costs little more than its recording.
#[derive(Clone)]
pub struct PacketBuilder {
    packet: Packet,
    started: SystemTime,
    method: Method,
    uri: Uri,
    profile: Cow<'static, str>,
    version: Cow<'static, str>,
    runtime: Cow<'static, str>,
    attempts: Vec<RawAttempt>,
    last: Option<(Diagnosis, Decision)>,
    secrets: Vec<String>,
    headers: Option<HeaderMap>,
    prints: Vec<redact::Fingerprint>,
}

/// Never the request's headers, its secrets or its raw URI: an error that
/// holds a builder may be printed with `{:?}` (an `unwrap`).
impl fmt::Debug for PacketBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketBuilder")
            .field("method", &self.method.as_str())
            .field("endpoint", &redact::uri(&self.uri))
            .field("attempts", &self.packet.attempts_total)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

/// One attempt as recorded, written into an [`AttemptRecord`] when the
/// packet is finished.
#[derive(Debug, Clone)]
struct RawAttempt {
    n: u32,
    status: Option<u16>,
    has_body: bool,
    request_id: Option<String>,
    diagnosis: Diagnosis,
    error_code: Option<String>,
    decision: Decision,
    elapsed: Duration,
    in_stream: bool,
}

impl PacketBuilder {
    /// Starts a packet for a request sent at `started`.
    pub fn new(
        method: &Method,
        uri: &Uri,
        profile: &Profile,
        started: SystemTime,
    ) -> PacketBuilder {
        PacketBuilder {
            packet: Packet {
                timestamp: String::new(),
                method: String::new(),
                endpoint: String::new(),
                profile: String::new(),
                gateway: None,
                owner: None,
                class: String::from("success"),
                family: "success",
                stage: None,
                outcome: "success",
                next_step: "nothing to do",
                request_ids: Vec::new(),
                attempts: Vec::new(),
                attempts_total: 0,
                rate: None,
                error_chain: Vec::new(),
                elapsed_ms: 0,
                version: String::new(),
                runtime: String::new(),
                route: None,
                model: None,
                correlation_id: None,
                idempotency_key: None,
                finding: String::new(),
                details: Vec::new(),
            },
            started,
            method: method.clone(),
            uri: uri.clone(),
            profile: profile.name_cow(),
            version: Cow::Borrowed(concat!("triage-core ", env!("CARGO_PKG_VERSION"))),
            runtime: Cow::Borrowed(""),
            attempts: Vec::new(),
            last: None,
            secrets: Vec::new(),
            headers: None,
            prints: Vec::new(),
        }
    }

    /// Names the crate and version that sent the request (e.g.
    /// `tower-triage 0.1.0`).
    pub fn version(mut self, version: impl Into<Cow<'static, str>>) -> Self {
        self.version = version.into();
        self
    }

    /// Names the runtime (e.g. `tokio`, a container image, a region).
    pub fn runtime(mut self, runtime: impl Into<Cow<'static, str>>) -> Self {
        self.runtime = runtime.into();
        self
    }

    /// Records one attempt.
    pub fn attempt(
        mut self,
        evidence: &Evidence,
        diagnosis: &Diagnosis,
        decision: &Decision,
    ) -> Self {
        self.push_attempt(evidence, diagnosis, decision);
        self
    }

    /// Records one attempt, by reference (for builders kept in a future).
    pub fn push_attempt(
        &mut self,
        evidence: &Evidence,
        diagnosis: &Diagnosis,
        decision: &Decision,
    ) {
        let packet = &mut self.packet;
        packet.attempts_total = packet.attempts_total.saturating_add(1);
        if evidence.rate().is_known() {
            packet.rate = Some(*evidence.rate());
        }
        let record = RawAttempt {
            n: packet.attempts_total,
            status: evidence.status().map(|s| s.as_u16()),
            has_body: evidence.body().seen() || evidence.failure_body().is_some(),
            // Redacted and capped now: a raw header or body text kept for
            // every attempt would not be bounded.
            request_id: evidence
                .request_id_str()
                .map(|id| capped(&redact::text(id))),
            diagnosis: *diagnosis,
            error_code: evidence
                .failure_body()
                .and_then(|b| b.code().or(b.kind()))
                .map(capped),
            decision: *decision,
            elapsed: evidence.elapsed(),
            in_stream: evidence.in_stream(),
        };
        if self.attempts.len() >= MAX_ATTEMPTS {
            // Keep the first attempts and the latest one.
            self.attempts.pop();
        }
        self.attempts.push(record);
        self.last = Some((*diagnosis, *decision));
    }

    /// Ends the packet of a request that was not sent: `diagnosis` (what
    /// an earlier answer on its route said, with that answer's rate
    /// windows in `evidence`) and `stop`, with no attempt of its own.
    pub fn unsent(mut self, evidence: &Evidence, diagnosis: &Diagnosis, stop: Stop) -> Self {
        if evidence.rate().is_known() {
            self.packet.rate = Some(*evidence.rate());
        }
        self.last = Some((*diagnosis, Decision::Stop(stop)));
        self
    }

    /// The attempts recorded so far.
    pub fn attempts_total(&self) -> u32 {
        self.packet.attempts_total
    }

    /// Whether an error chain was recorded.
    pub fn has_error(&self) -> bool {
        !self.packet.error_chain.is_empty()
    }

    /// Records the error chain of the final failure, outermost first, each
    /// link scrubbed of secrets and capped in length.
    pub fn error(mut self, error: &(dyn StdError + 'static)) -> Self {
        self.set_error(error);
        self
    }

    /// Records the error chain, by reference.
    pub fn set_error(&mut self, error: &(dyn StdError + 'static)) {
        self.packet.error_chain = chain_texts(error);
    }

    /// Adds the detail of one attempt captured by a diagnosis window (at
    /// most [`MAX_ATTEMPTS`] are kept: the first ones and the last).
    pub fn push_detail(&mut self, detail: Detail) {
        if self.packet.details.len() >= MAX_ATTEMPTS {
            self.packet.details.pop();
        }
        self.packet.details.push(detail);
    }

    /// Ties the packet to the inbound request it served (see
    /// [`Packet::correlation_id`]; capped, printable).
    pub fn correlation_id(mut self, id: &str) -> Self {
        self.packet.correlation_id = Some(redact::printable(id, 128).into_owned());
        self
    }

    /// The idempotency key the request carried (see
    /// [`Packet::idempotency_key`]; capped, printable).
    pub fn set_idempotency_key(&mut self, key: &str) {
        self.packet.idempotency_key =
            Some(redact::printable(key, MAX_IDEMPOTENCY_KEY).into_owned());
    }

    /// Names the model the request asked for (see [`Packet::model`]).
    pub fn model(mut self, model: &str) -> Self {
        self.packet.set_model(model);
        self
    }

    /// Values the request carried (see [`redact::request_values`]): they
    /// are scrubbed by exact value from every text of the packet when it is
    /// finished, since an upstream may echo them back in an error code, a
    /// request ID or a message.
    pub fn secrets(mut self, values: Vec<String>) -> Self {
        self.secrets = values;
        self
    }

    /// The request's headers: the values they and the URI carry (see
    /// [`redact::request_values`]) are scrubbed like
    /// [`PacketBuilder::secrets`], looked for only when the packet is
    /// finished.
    pub fn set_request_headers(&mut self, headers: HeaderMap) {
        self.headers = Some(headers);
    }

    /// Fingerprints of values the request carried (see
    /// [`redact::Fingerprint`]), scrubbed like [`PacketBuilder::secrets`]:
    /// for a caller that kept no copy of them.
    pub fn prints(mut self, prints: &[redact::Fingerprint]) -> Self {
        self.prints = prints.iter().copied().filter(|p| !p.is_empty()).collect();
        self
    }

    /// Finishes the packet; `elapsed` is the time from the first attempt to
    /// the outcome.
    pub fn finish(mut self, elapsed: Duration) -> Packet {
        let packet = &mut self.packet;
        packet.timestamp = time::format_rfc3339_millis(self.started);
        packet.method = capped(self.method.as_str());
        packet.endpoint = redact::uri(&self.uri);
        packet.profile = capped(&self.profile);
        packet.version = capped(&self.version);
        packet.runtime = capped(&redact::text(&self.runtime));
        for raw in self.attempts.drain(..) {
            let request_id = raw.request_id;
            if let Some(id) = &request_id {
                if !packet.request_ids.contains(id) && packet.request_ids.len() < MAX_ATTEMPTS {
                    packet.request_ids.push(id.clone());
                }
            }
            packet.attempts.push(AttemptRecord {
                n: raw.n,
                status: raw.status,
                has_body: raw.has_body,
                request_id,
                stage: raw.diagnosis.stage(),
                owner: raw.diagnosis.owner(),
                class: raw.diagnosis.class().to_string(),
                error_code: raw.error_code,
                decision: raw.decision.reason(),
                delay_ms: raw.decision.delay().map(ms),
                elapsed_ms: ms(raw.elapsed),
                in_stream: raw.in_stream,
            });
        }
        // The URI's values always; the headers' when they were given.
        let mut secrets = std::mem::take(&mut self.secrets);
        let no_headers = HeaderMap::new();
        let headers = self.headers.as_ref().unwrap_or(&no_headers);
        secrets.extend(redact::request_values(&self.uri, headers));
        if !secrets.is_empty() || !self.prints.is_empty() {
            packet.scrub_exact(&secrets, &self.prints);
        }
        packet.elapsed_ms = ms(elapsed);
        if let Some((diagnosis, decision)) = self.last {
            packet.owner = diagnosis.owner();
            packet.class = diagnosis.class().to_string();
            packet.family = diagnosis.class().family();
            packet.stage = diagnosis.stage();
            packet.gateway = diagnosis.gateway().map(|g| g.name());
            packet.outcome = decision.reason();
            packet.next_step = match decision {
                Decision::Stop(stop) => stop.next_step(),
                Decision::Retry(_) => None,
            }
            .unwrap_or_else(|| diagnosis.next_step());
        }
        packet.finding = packet.find();
        self.packet
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "triage escalation packet")?;
        writeln!(f, "  when:        {}", self.timestamp)?;
        writeln!(f, "  request:     {} {}", self.method, self.endpoint)?;
        if let Some(id) = &self.correlation_id {
            writeln!(f, "  serving:     {id}")?;
        }
        writeln!(f, "  profile:     {}", self.profile)?;
        if let Some(model) = &self.model {
            writeln!(f, "  model:       {model}")?;
        }
        if let Some(key) = &self.idempotency_key {
            writeln!(f, "  idempotency key: {key}")?;
        }
        match self.owner {
            Some(owner) => writeln!(f, "  owner:       {owner} ({})", self.class)?,
            None => writeln!(f, "  owner:       none (success)")?,
        }
        if let Some(stage) = self.stage {
            writeln!(f, "  stage:       {stage}")?;
        }
        if let Some(gateway) = self.gateway {
            writeln!(f, "  gateway:     {gateway}")?;
        }
        writeln!(f, "  outcome:     {}", self.outcome)?;
        writeln!(f, "  finding:     {}", self.finding)?;
        if let Some(route) = &self.route {
            writeln!(
                f,
                "  route open:  since {}, {} request(s) refused without a connection",
                route.first_seen, route.refused
            )?;
        }
        if self.request_ids.is_empty() {
            writeln!(f, "  request ids: none received")?;
        } else {
            writeln!(f, "  request ids: {}", self.request_ids.join(", "))?;
        }
        writeln!(
            f,
            "  attempts:    {} in {} ms",
            self.attempts_total, self.elapsed_ms
        )?;
        for a in &self.attempts {
            let status = a
                .status
                .map_or_else(|| String::from("no status"), |s| s.to_string());
            write!(
                f,
                "    #{:<2} {status:<9} body: {:<3} request id: {:<3}",
                a.n,
                if a.has_body { "yes" } else { "no" },
                if a.request_id.is_some() { "yes" } else { "no" },
            )?;
            write!(f, " {}", a.class)?;
            if let Some(code) = &a.error_code {
                write!(f, " [{code}]")?;
            }
            write!(f, " -> {}", a.decision)?;
            if let Some(delay) = a.delay_ms {
                write!(f, " in {delay} ms")?;
            }
            writeln!(f)?;
        }
        if let Some(rate) = &self.rate {
            writeln!(f, "  rate:        {}", RateLine(rate))?;
        }
        if !self.details.is_empty() {
            writeln!(f, "  connection detail:")?;
            for detail in &self.details {
                writeln!(f, "    - {detail}")?;
            }
        }
        if !self.error_chain.is_empty() {
            writeln!(f, "  error chain:")?;
            for link in &self.error_chain {
                writeln!(f, "    - {link}")?;
            }
        }
        writeln!(f, "  next step:   {}", self.next_step)?;
        write!(f, "  sent by:     {}", self.version)?;
        if !self.runtime.is_empty() {
            write!(f, " on {}", self.runtime)?;
        }
        Ok(())
    }
}

struct RateLine<'a>(&'a RateInfo);

impl fmt::Display for RateLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, w) in [("requests", self.0.requests), ("tokens", self.0.tokens)] {
            if !w.is_known() {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{name} ")?;
            match (w.remaining, w.limit) {
                (Some(r), Some(l)) => write!(f, "{r}/{l} left")?,
                (Some(r), None) => write!(f, "{r} left")?,
                (None, Some(l)) => write!(f, "limit {l}")?,
                (None, None) => {}
            }
            if let Some(reset) = w.reset {
                write!(f, ", resets in {} ms", reset.as_millis())?;
            }
        }
        Ok(())
    }
}
