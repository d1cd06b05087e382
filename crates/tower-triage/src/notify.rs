//! The tracing events: one per attempt, one per failed outcome. Field names
//! follow OpenTelemetry's HTTP conventions where one exists; no header value,
//! body or query secret is ever written (the URL goes through
//! [`redact`](triage_core::redact)).

use http::{Method, Uri};
use std::borrow::Cow;
use tracing::{Level, event, level_enabled};

use triage_core::redact::Fingerprint;
use triage_core::{Decision, Error, Packet};

/// `text` without `secrets` (by exact value) and `prints` (by
/// fingerprint); borrowed when neither occurs.
fn scrubbed<'a>(text: &'a str, secrets: &[String], prints: &[Fingerprint]) -> Cow<'a, str> {
    match triage_core::redact::scrub_exact(text, secrets) {
        Cow::Borrowed(text) => triage_core::redact::scrub_prints(text, prints),
        Cow::Owned(text) => {
            Cow::Owned(triage_core::redact::scrub_prints(&text, prints).into_owned())
        }
    }
}

use std::sync::Arc;

use crate::observer::{AttemptInfo, Call, Observer, Outcome};
use crate::whole_body::BodyMode;

/// The event target, for filters: `tower_triage=debug`.
pub const TARGET: &str = "tower_triage";

/// DEBUG for a routine attempt, WARN for a retry, ERROR for a final failure.
/// `body_mode`: how the response body was handled, when a head came back.
/// What the request carried (`headers`, or `prints` when its head was not
/// kept) is scrubbed from a failure's remote texts.
pub(crate) fn attempt(
    observer: Option<&Arc<dyn Observer>>,
    info: &AttemptInfo<'_>,
    (headers, prints): (&http::HeaderMap, &[Fingerprint]),
    correlation_id: Option<&str>,
) {
    if let Some(observer) = observer {
        observer.on_attempt(info);
    }
    let AttemptInfo {
        method,
        uri,
        attempt: n,
        evidence,
        diagnosis,
        decision,
        body_mode,
    } = *info;
    let level = match decision {
        Decision::Retry(_) => Level::WARN,
        _ if diagnosis.is_success() => Level::DEBUG,
        _ => Level::ERROR,
    };
    macro_rules! emit {
        ($level:expr) => {
            if level_enabled!($level) {
                let rate = evidence.rate();
                // A failure's remote texts, without what the request
                // carried (an upstream may echo a key back).
                let (secrets, prints) = if diagnosis.is_success() {
                    (Vec::new(), &[][..])
                } else {
                    (triage_core::redact::request_values(uri, headers), prints)
                };
                let request_id = evidence
                    .request_id_str()
                    .map(|id| scrubbed(id, &secrets, prints));
                let error_code = evidence
                    .failure_body()
                    .and_then(|b| b.code().or(b.kind()))
                    .map(|code| scrubbed(code, &secrets, prints));
                event!(
                    target: TARGET,
                    $level,
                    http.request.method = method.as_str(),
                    server.address = host(uri),
                    url.path = uri.path(),
                    http.request.resend_count = (n > 1).then(|| n - 1),
                    http.response.status_code = evidence.status().map(|s| s.as_u16()),
                    triage.owner = diagnosis.owner().map(|o| o.as_str()),
                    triage.class = %diagnosis.class(),
                    triage.stage = diagnosis.stage().map(|s| s.as_str()),
                    triage.body_seen = evidence.body().seen() || evidence.failure_body().is_some(),
                    triage.body_bytes = evidence.body().seen().then(|| evidence.body().bytes()),
                    triage.body_mode = body_mode.map(BodyMode::as_str),
                    triage.request_id = request_id.as_deref(),
                    triage.correlation_id = correlation_id,
                    triage.error_code = error_code.as_deref(),
                    triage.rate.remaining_requests = rate.requests.remaining,
                    triage.rate.remaining_tokens = rate.tokens.remaining,
                    triage.rate.reset_ms = rate.exhausted_reset().map(|d| d.as_millis() as u64),
                    triage.decision = decision.reason(),
                    triage.delay_ms = decision.delay().map(|d| d.as_millis() as u64),
                    triage.elapsed_ms = evidence.elapsed().as_millis() as u64,
                    "attempt {}",
                    if decision.is_retry() { "failed, retrying" } else if diagnosis.is_success() { "succeeded" } else { "failed" }
                );
            }
        };
    }
    match level {
        Level::WARN => emit!(Level::WARN),
        Level::DEBUG => emit!(Level::DEBUG),
        _ => emit!(Level::ERROR),
    }
}

/// A success at the first attempt, with nothing to tell an observer: its
/// DEBUG event (status, request ID, time, body mode) and its span's
/// status and decision, read from the head without the evidence a failure
/// needs (the rate window is not read: `Report::rate` reads it on demand).
pub(crate) fn first_success(
    span: &tracing::Span,
    (method, uri, sent): (&Method, &Uri, (&http::HeaderMap, &[Fingerprint])),
    (status, headers): (http::StatusCode, &http::HeaderMap),
    profile: &triage_core::Profile,
    (elapsed, body_mode, body_bytes): (std::time::Duration, BodyMode, Option<u64>),
    correlation_id: Option<&str>,
) {
    if let Some(fields) = span_fields(span) {
        span.record(&fields.status, status.as_u16());
        span.record(
            &fields.decision,
            Decision::Stop(triage_core::Stop::Success).reason(),
        );
    }
    if level_enabled!(Level::DEBUG) {
        // `to_str` passes visible ASCII and tabs only: a tab is the one
        // character left to keep off the line.
        let request_id = profile
            .request_id_headers()
            .iter()
            .find_map(|name| headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(|id| match id.len() <= 128 && !id.contains('\t') {
                true => std::borrow::Cow::Borrowed(id),
                false => triage_core::redact::printable(id, 128),
            })
            .map(|id| SuccessId { id, uri, sent });
        // The method, host and path are the call's span's: the event sits
        // inside it (with no span, at the top level, they are written).
        let (method, address, path) = match span.is_disabled() {
            true => (Some(method.as_str()), host(uri), Some(uri.path())),
            false => (None, None, None),
        };
        event!(
            target: TARGET,
            Level::DEBUG,
            http.request.method = method,
            server.address = address,
            url.path = path,
            http.response.status_code = status.as_u16(),
            triage.class = "success",
            triage.body_mode = body_mode.as_str(),
            triage.body_bytes = body_bytes,
            triage.request_id = request_id.as_ref().map(tracing::field::display),
            triage.correlation_id = correlation_id,
            triage.decision = "success",
            triage.elapsed_ms = elapsed.as_millis() as u64,
            "attempt succeeded"
        );
    }
}

/// A success's request ID as an event field: scrubbed
/// ([`success_request_id`]) when a subscriber writes it, not before (an
/// event filtered out costs nothing of it).
struct SuccessId<'a> {
    id: Cow<'a, str>,
    uri: &'a Uri,
    sent: (&'a http::HeaderMap, &'a [Fingerprint]),
}

impl std::fmt::Display for SuccessId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&success_request_id(
            Cow::Borrowed(&self.id),
            self.uri,
            self.sent,
        ))
    }
}

/// A success's request ID without what the request carried (`headers`, or
/// `prints` when its head was not kept: by exact value) and without what
/// looks like a secret (by pattern). Allocates only when something is
/// found.
fn success_request_id<'a>(
    id: Cow<'a, str>,
    uri: &Uri,
    (headers, prints): (&http::HeaderMap, &[Fingerprint]),
) -> Cow<'a, str> {
    let id = if triage_core::redact::echoes_request(&id, uri, headers) {
        let secrets = triage_core::redact::request_values(uri, headers);
        Cow::Owned(scrubbed(&id, &secrets, prints).into_owned())
    } else {
        match triage_core::redact::scrub_prints(&id, prints) {
            Cow::Borrowed(_) => id,
            Cow::Owned(scrubbed) => Cow::Owned(scrubbed),
        }
    };
    match triage_core::redact::text(&id) {
        Cow::Borrowed(_) => id,
        Cow::Owned(scrubbed) => Cow::Owned(scrubbed),
    }
}

/// Whether the event of a successful attempt (DEBUG) would be recorded.
pub(crate) fn success_enabled() -> bool {
    tracing::enabled!(target: TARGET, Level::DEBUG)
}

/// A call that fails with an error: the event, and the observer's
/// [`Outcome::Failed`].
pub(crate) fn failed(
    observer: Option<&Arc<dyn Observer>>,
    call: Call<'_>,
    error: &Error,
    body_mode: Option<BodyMode>,
) {
    if level_enabled!(Level::ERROR) {
        // The event reads the packet, which writes it now.
        outcome(call.method, call.uri, error.packet(), body_mode);
    }
    if let Some(observer) = observer {
        observer.on_outcome(&Outcome::Failed { call, error });
    }
}

/// The final failure, with the escalation packet's summary.
pub(crate) fn outcome(method: &Method, uri: &Uri, packet: &Packet, body_mode: Option<BodyMode>) {
    if level_enabled!(Level::ERROR) {
        event!(
            target: TARGET,
            Level::ERROR,
            http.request.method = method.as_str(),
            server.address = host(uri),
            triage.owner = packet.owner().map(|o| o.as_str()),
            triage.class = packet.class(),
            triage.stage = packet.stage().map(|s| s.as_str()),
            triage.attempts = packet.attempts_total(),
            triage.outcome = packet.outcome(),
            triage.body_mode = body_mode.map(BodyMode::as_str),
            triage.request_ids = json_array(packet.request_ids()),
            triage.correlation_id = packet.correlation_id(),
            triage.next_step = packet.next_step(),
            "request failed"
        );
    }
}

/// The caller dropped the call before it finished: the event, and the
/// observer's [`Outcome::Cancelled`].
pub(crate) fn cancelled(
    observer: Option<&Arc<dyn Observer>>,
    call: Call<'_>,
    attempt: u32,
    stage: Option<triage_core::Stage>,
) {
    let Call {
        method,
        uri,
        elapsed,
        ..
    } = call;
    if let Some(observer) = observer {
        observer.on_outcome(&Outcome::Cancelled {
            call,
            attempts: attempt,
            stage,
        });
    }
    if level_enabled!(Level::DEBUG) {
        event!(
            target: TARGET,
            Level::DEBUG,
            http.request.method = method.as_str(),
            server.address = host(uri),
            triage.owner = triage_core::Owner::Caller.as_str(),
            triage.class = "cancelled",
            triage.stage = stage.map(|s| s.as_str()),
            triage.waiting = stage.is_none(),
            triage.attempts = attempt,
            triage.elapsed_ms = elapsed.as_millis() as u64,
            "request cancelled by the caller"
        );
    }
}

/// A response body handed back broke mid-way (streamed: not retried).
pub(crate) fn body_failed(bytes: u64, fault: triage_core::Fault, body_mode: BodyMode) {
    if level_enabled!(Level::ERROR) {
        event!(
            target: TARGET,
            Level::ERROR,
            triage.owner = triage_core::Owner::ConnectionPath.as_str(),
            triage.stage = triage_core::Stage::Body.as_str(),
            triage.fault = fault.as_str(),
            triage.timeout = match fault {
                triage_core::Fault::Timeout(phase) => Some(phase.as_str()),
                _ => None,
            },
            triage.bytes = bytes,
            triage.body_mode = body_mode.as_str(),
            "response body failed"
        );
    }
}

/// An error event inside a committed stream (WARN).
pub(crate) fn body_stream_error(error: &crate::StreamError) {
    if level_enabled!(Level::WARN) {
        let packet = error.packet();
        event!(
            target: TARGET,
            Level::WARN,
            triage.owner = error.diagnosis().owner().map(|o| o.as_str()),
            triage.class = packet.class(),
            triage.stage = triage_core::Stage::Body.as_str(),
            triage.bytes = error.bytes(),
            triage.error_code = packet.attempts().first().and_then(|a| a.error_code()),
            triage.decision = packet.outcome(),
            "error event in the response stream after its first bytes: not retried"
        );
    }
}

/// The caller dropped a response body before its end.
pub(crate) fn body_dropped(bytes: u64, body_mode: BodyMode) {
    if level_enabled!(Level::DEBUG) {
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.owner = triage_core::Owner::Caller.as_str(),
            triage.stage = triage_core::Stage::Body.as_str(),
            triage.bytes = bytes,
            triage.body_mode = body_mode.as_str(),
            "response body dropped by the caller before its end"
        );
    }
}

/// A response body handed back ended normally.
pub(crate) fn body_complete(bytes: u64, body_mode: BodyMode) {
    if level_enabled!(Level::DEBUG) {
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.stage = triage_core::Stage::Body.as_str(),
            triage.bytes = bytes,
            triage.body_mode = body_mode.as_str(),
            "response body complete"
        );
    }
}

/// A route event: its tracing event, then the observer's call.
pub(crate) fn route(observer: Option<&Arc<dyn Observer>>, event: &crate::RouteEvent<'_>) {
    use crate::RouteEvent;
    match *event {
        RouteEvent::Opened {
            route,
            diagnosis,
            probe_in,
        } => route_opened(route, diagnosis, probe_in),
        RouteEvent::ProbeFailed { route, diagnosis } => route_probe_failed(route, diagnosis),
        RouteEvent::Recovered {
            route,
            outage,
            refused,
        } => route_recovered(route, outage, refused),
        RouteEvent::Detail { route, detail: d } => detail(route, d),
    }
    if let Some(observer) = observer {
        observer.on_route(event);
    }
}

/// A route opened (WARN): what opened it, and when the first probe goes.
fn route_opened(route: &str, diagnosis: &triage_core::Diagnosis, probe_in: std::time::Duration) {
    if level_enabled!(Level::WARN) {
        event!(
            target: TARGET,
            Level::WARN,
            triage.route = route,
            triage.owner = diagnosis.owner().map(|o| o.as_str()),
            triage.class = %diagnosis.class(),
            triage.stage = diagnosis.stage().map(|s| s.as_str()),
            triage.next_step = diagnosis.next_step(),
            triage.probe_in_ms = probe_in.as_millis() as u64,
            "route open: further requests fail at once until a probe gets through"
        );
    }
}

/// A request refused unsent (DEBUG): by an open route, a rate window that
/// reopens after its deadline, or a quota stop.
pub(crate) fn route_refused(
    observer: Option<&Arc<dyn Observer>>,
    call: Call<'_>,
    route: &str,
    error: &Error,
) {
    if let Some(observer) = observer {
        observer.on_outcome(&Outcome::Failed { call, error });
    }
    if level_enabled!(Level::DEBUG) {
        let packet = error.packet();
        let why = match error.stop() {
            triage_core::Stop::QuotaStopped(_) => {
                "request refused unsent: the route's quota is stopped"
            }
            triage_core::Stop::RateWindowClosed(_) => {
                "request refused unsent: the route's rate window reopens after its deadline"
            }
            _ => "request refused: the route is open",
        };
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.route = route,
            triage.owner = packet.owner().map(|o| o.as_str()),
            triage.class = packet.class(),
            triage.refused = packet.route_open().map(|r| r.refused()),
            triage.decision = packet.outcome(),
            "{why}"
        );
    }
}

/// A request held until its route's rate window reopens (DEBUG).
pub(crate) fn paced(route: &str, wait: std::time::Duration) {
    if level_enabled!(Level::DEBUG) {
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.route = route,
            triage.wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "request held: the route's rate window is closed until its reset"
        );
    }
}

/// The probe of an open route failed (DEBUG).
fn route_probe_failed(route: &str, diagnosis: &triage_core::Diagnosis) {
    if level_enabled!(Level::DEBUG) {
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.route = route,
            triage.class = %diagnosis.class(),
            "route probe failed: the route stays open"
        );
    }
}

/// An open route answered its probe (INFO): closed, with the outage.
fn route_recovered(route: &str, outage: std::time::Duration, refused: u64) {
    if level_enabled!(Level::INFO) {
        event!(
            target: TARGET,
            Level::INFO,
            triage.route = route,
            triage.outage_ms = outage.as_millis() as u64,
            triage.refused = refused,
            "route recovered: requests flow again"
        );
    }
}

/// A diagnosis window opened on a route (DEBUG), with the failure that
/// opened it.
pub(crate) fn window_opened(
    route: &str,
    window: &crate::DiagnosisWindow,
    diagnosis: &triage_core::Diagnosis,
    error: Option<&(dyn std::error::Error + 'static)>,
) {
    if level_enabled!(Level::DEBUG) {
        let chain = error.map(|e| triage_core::Detail::chain_of(e).join(": "));
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.route = route,
            triage.class = %diagnosis.class(),
            triage.stage = diagnosis.stage().map(|s| s.as_str()),
            triage.error = chain.as_deref(),
            triage.failures = window.failures,
            triage.duration_ms = window.duration.as_millis() as u64,
            "diagnosis window open: the next failures on this route are captured in detail"
        );
    }
}

/// The detail a diagnosis window captured of one failure (DEBUG).
fn detail(route: &str, detail: &triage_core::Detail) {
    if level_enabled!(Level::DEBUG) {
        let (n, of) = detail.window();
        let peer = detail.peer().map(|p| p.to_string());
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.route = route,
            triage.attempt = detail.attempt(),
            triage.window_n = n,
            triage.window_of = of,
            triage.detail = %detail,
            triage.peer = peer.as_deref(),
            triage.answers = detail.answers().join(" ").as_str(),
            triage.proxy_status = detail.proxy_status(),
            "diagnosis detail"
        );
    }
}

/// A diagnosis window closed by itself (DEBUG): after `captured` failures,
/// because of `why` (`failures` or `time`).
pub(crate) fn window_closed(route: &str, captured: u32, why: &'static str) {
    if level_enabled!(Level::DEBUG) {
        event!(
            target: TARGET,
            Level::DEBUG,
            triage.route = route,
            triage.captured = captured,
            triage.closed_by = why,
            "diagnosis window closed"
        );
    }
}

/// The URI's host for `server.address` (`None`: no host), read by the
/// cheap scan profile detection uses: `Uri::host` parses the authority
/// anew each time, about 400 instructions.
fn host(uri: &Uri) -> Option<&str> {
    Some(crate::host::host_of(uri)).filter(|h| !h.is_empty())
}

/// Strings written as a JSON array (`["a","b"]`), for a field that holds a
/// list; `None` (the field left out) when there are none.
fn json_array(items: &[String]) -> Option<tracing::field::DisplayValue<JsonArray<'_>>> {
    (!items.is_empty()).then(|| tracing::field::display(JsonArray(items)))
}

/// See [`json_array`].
struct JsonArray<'a>(&'a [String]);

impl std::fmt::Display for JsonArray<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        f.write_char('[')?;
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            f.write_char('"')?;
            for c in item.chars() {
                match c {
                    '"' => f.write_str("\\\"")?,
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
                    c => f.write_char(c)?,
                }
            }
            f.write_char('"')?;
        }
        f.write_char(']')
    }
}

/// The URI as the span's `url.full`: redacted, and only when a subscriber
/// records the field (no string is made otherwise).
struct RedactedUri<'a>(&'a Uri);

impl std::fmt::Display for RedactedUri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&triage_core::redact::uri(self.0))
    }
}

/// The span of one call (DEBUG, target `tower_triage`), after
/// OpenTelemetry's HTTP client conventions: named `HTTP`, `otel.name` the
/// method; `http.request.method`, `server.address`, `server.port`,
/// `url.full` (redacted), `url.scheme`; recorded when known:
/// `network.protocol.version`, `http.response.status_code`, `error.type`
/// (triage's class family: low cardinality), `http.request.resend_count`
/// (on resends only), and triage's own `triage.owner`, `triage.class`,
/// `triage.stage`, `triage.decision`. Every attempt's event is inside it.
/// Disabled (one level check) when DEBUG is off for the target.
pub(crate) fn call_span(method: &Method, uri: &Uri) -> tracing::Span {
    // DEBUG off everywhere: no span, not even a disabled one with its
    // metadata (the same as the macro's answer, for less).
    if !level_enabled!(Level::DEBUG) {
        return tracing::Span::none();
    }
    // The values are read only when the span is enabled.
    let scheme = || uri.scheme_str().unwrap_or("http");
    // One scan of the authority, and only when the span may be made.
    let (host, port) = crate::host::host_port(uri);
    tracing::debug_span!(
        target: TARGET,
        "HTTP",
        otel.name = method.as_str(),
        otel.kind = "client",
        http.request.method = method.as_str(),
        server.address = Some(host).filter(|h| !h.is_empty()),
        server.port = port.unwrap_or(if scheme() == "https" { 443 } else { 80 }),
        url.full = %RedactedUri(uri),
        url.scheme = scheme(),
        network.protocol.version = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        http.request.resend_count = tracing::field::Empty,
        triage.owner = tracing::field::Empty,
        triage.class = tracing::field::Empty,
        triage.stage = tracing::field::Empty,
        triage.decision = tracing::field::Empty,
        triage.correlation_id = tracing::field::Empty,
    )
}

/// The fields of the call's span that every answered call records, looked
/// up once (recording by name searches the span's twenty field names each
/// time).
pub(crate) struct SpanFields {
    pub(crate) version: tracing::field::Field,
    status: tracing::field::Field,
    decision: tracing::field::Field,
}

/// The call span's [`SpanFields`]; `None` when the span is disabled.
pub(crate) fn span_fields(span: &tracing::Span) -> Option<&'static SpanFields> {
    static FIELDS: std::sync::OnceLock<Option<SpanFields>> = std::sync::OnceLock::new();
    if span.is_disabled() {
        return None;
    }
    FIELDS
        .get_or_init(|| {
            // Every enabled span here is `call_span`'s: one callsite.
            let fields = span.metadata()?.fields();
            Some(SpanFields {
                version: fields.field("network.protocol.version")?,
                status: fields.field("http.response.status_code")?,
                decision: fields.field("triage.decision")?,
            })
        })
        .as_ref()
}

/// The version as OpenTelemetry writes it (`1.1`, `2`).
pub(crate) fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Records an attempt's verdict on the call's span (when it is enabled):
/// its status, resends and decision; and for the final failure, its
/// owner, class, stage and `error.type`.
pub(crate) fn record_attempt(span: &tracing::Span, info: &AttemptInfo<'_>) {
    if span.is_disabled() {
        return;
    }
    if let Some(status) = info.evidence.status() {
        span.record("http.response.status_code", status.as_u16());
    }
    if info.attempt > 1 {
        span.record("http.request.resend_count", info.attempt - 1);
    }
    span.record("triage.decision", info.decision.reason());
    // The span tells the call's outcome: a failure that is retried is the
    // attempt's event's to tell, not the span's.
    if info.diagnosis.is_success() || info.decision.is_retry() {
        return;
    }
    span.record("error.type", info.diagnosis.class().family());
    let class = info.diagnosis.class().to_string();
    span.record("triage.class", class.as_str());
    if let Some(owner) = info.diagnosis.owner() {
        span.record("triage.owner", owner.as_str());
    }
    if let Some(stage) = info.diagnosis.stage() {
        span.record("triage.stage", stage.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::JsonArray;

    #[test]
    fn request_ids_are_a_json_array_with_quotes_and_controls_escaped() {
        let ids = [String::from("req_1"), String::from("a\"b\\c\u{1}")];
        assert_eq!(JsonArray(&ids).to_string(), r#"["req_1","a\"b\\c\u0001"]"#);
        assert!(
            super::json_array(&[]).is_none(),
            "no ids: the field is left out"
        );
    }
}
