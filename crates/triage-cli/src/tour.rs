//! `triage tour`: one request per failure class through the layer, against
//! the testkit's loopback upstream, printed as a table with a lesson a row.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_triage::core::{Backoff, Error, Profile, RetryRules};
use tower_triage::{ReportExt, TriageLayer};
use triage_testkit::{CertProblem, Proxy, ProxyBehavior, Resolver, TlsUpstream, Upstream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a row's request goes.
enum Target {
    Path(&'static str),
    Url(String),
    Tls(CertProblem),
    Proxy(ProxyBehavior),
}

struct Row {
    name: &'static str,
    target: Target,
    method: Method,
    profile: &'static Profile,
    lesson: &'static str,
    /// Whole-body mode on the layer.
    whole: bool,
    /// Sent twice through one layer, the second shown: with the route
    /// breaker on (`Some(true)`) or off (`Some(false)`, so the diagnosis
    /// window captures the second).
    again: Option<bool>,
    /// Sent twice through one layer, the second shown and timed: the first
    /// answer uses up the route's rate window (pacing).
    paced: bool,
}

fn row(
    name: &'static str,
    path: &'static str,
    profile: &'static Profile,
    lesson: &'static str,
) -> Row {
    Row {
        name,
        target: Target::Path(path),
        method: Method::GET,
        profile,
        lesson,
        whole: false,
        again: None,
        paced: false,
    }
}

fn tls(name: &'static str, problem: CertProblem, lesson: &'static str) -> Row {
    Row {
        target: Target::Tls(problem),
        ..row(name, "/ok", Profile::generic(), lesson)
    }
}

impl Row {
    fn post(mut self) -> Self {
        self.method = Method::POST;
        self
    }

    fn whole(mut self) -> Self {
        self.whole = true;
        self
    }

    fn again(mut self, breaker: bool) -> Self {
        self.again = Some(breaker);
        self
    }

    fn paced(mut self) -> Self {
        self.paced = true;
        self
    }
}

/// What one row showed.
struct Seen {
    status: Option<u16>,
    body: bool,
    request_id: bool,
    rate: bool,
    owner: String,
    class: String,
    attempts: u32,
    decision: String,
    elapsed: Duration,
}

// structure: a table (one entry per failure class), not logic.
fn rows(closed_port: u16, backlog_port: u16) -> Vec<Row> {
    let g = Profile::generic();
    vec![
        row(
            "success",
            "/ok",
            Profile::openai(),
            "a 200 passes through untouched; the request ID and rate headers are kept in the Report",
        ),
        row(
            "rate limit, then success",
            "/flaky/1/429?retry_after_ms=300",
            g,
            "a 429 is waited out as the server says (retry-after-ms), then the call succeeds",
        )
        .post(),
        row(
            "rate window used up: paced",
            "/window/1/400",
            g,
            "the answer before said the window was used up (remaining 0, reset in 400 ms): this request waited for the reset instead of being refused",
        )
        .paced(),
        row(
            "exhausted quota",
            "/openai/429/quota",
            Profile::openai(),
            "insufficient_quota is a 429 too, but no wait fixes it: never retried",
        )
        .post(),
        row(
            "request too large",
            "/openai/429/too-large",
            Profile::openai(),
            "\"Request too large\" shares the rate-limit code, yet only a smaller request helps",
        )
        .post(),
        row(
            "spend limit",
            "/anthropic/429/spend-limit",
            Profile::anthropic(),
            "Anthropic's enforced spend limit: the account owner must act",
        )
        .post(),
        row(
            "daily quota",
            "/gemini/429/per-day",
            Profile::gemini(),
            "Gemini's per-day quota ID means a day's wait: stop, do not retry",
        )
        .post(),
        row(
            "authentication",
            "/status/401",
            g,
            "401: check the key and the endpoint family; never retried",
        ),
        row(
            "permission",
            "/status/403",
            g,
            "403: the key is valid but not allowed; never retried",
        ),
        row(
            "bad request",
            "/status/400",
            g,
            "400: fix the request; never retried",
        )
        .post(),
        row(
            "not found",
            "/status/404",
            g,
            "404: a wrong base URL, model or path; never retried",
        ),
        row(
            "conflict, then success",
            "/flaky/1/409",
            g,
            "409 lock contention is retried, even for a POST",
        )
        .post(),
        row(
            "server error, then success",
            "/flaky/2/500",
            g,
            "5xx with the origin's answer: retried with backoff for an idempotent GET",
        ),
        row(
            "server error on a POST",
            "/status/500",
            g,
            "the POST may have been processed and the API is not replay-safe: not resent",
        )
        .post(),
        row(
            "POST 500, idempotency key",
            "/flaky/1/500",
            Profile::stripe(),
            "Stripe honours Idempotency-Key: the layer minted one key and sent it on every attempt, so the POST was resent safely",
        )
        .post(),
        row(
            "stream: error event first",
            "/sse/1?error_at=0",
            Profile::anthropic(),
            "the 200 stream's first event was an overloaded_error: before the commit point it is the attempt's failure, retried",
        )
        .post(),
        row(
            "stream: error event mid-way",
            "/sse/9?error_at=3",
            Profile::anthropic(),
            "an error event after the first bytes reached the caller: reported with the bytes delivered, never retried",
        )
        .post(),
        row(
            "overloaded",
            "/anthropic/529",
            Profile::anthropic(),
            "529 overloaded: the server asks to come back; retried, then reported",
        )
        .post(),
        row(
            "gateway page",
            "/gateway/nginx/502",
            g,
            "an nginx error page without the origin's request ID: the route provider owns it",
        ),
        row(
            "gateway never reached upstream",
            "/gateway/envoy/503-connect",
            g,
            "Envoy could not connect upstream: nothing was processed, so even a POST is retried",
        )
        .post(),
        row(
            "CDN origin certificate",
            "/gateway/cloudflare/526",
            g,
            "Cloudflare 526: the route's origin certificate is wrong; retrying will not fix it",
        ),
        Row {
            target: Target::Url("http://api.nowhere.invalid/v1".into()),
            ..row(
                "name not found",
                "/",
                g,
                "DNS says the name does not exist: a wrong base URL; one attempt, no retry",
            )
        },
        Row {
            target: Target::Url(format!("http://svc.test:{closed_port}/v1")),
            ..row(
                "connection refused",
                "/",
                g,
                "nothing listens there; nothing was sent, so even a POST is retried, a bounded number of times",
            )
            .post()
        },
        Row {
            target: Target::Url(format!("http://svc.test:{backlog_port}/v1")),
            ..row(
                "connect timeout",
                "/",
                g,
                "the host never accepted the connection: the connect stage timed out (check egress rules)",
            )
        },
        row(
            "reset before headers",
            "/fault/rst-before-headers",
            g,
            "the connection broke after the request was sent: retried for a GET",
        ),
        row(
            "slow headers",
            "/fault/slow-headers?ms=5000",
            g,
            "no response head within the attempt timeout: a typed headers timeout, retried",
        ),
        tls(
            "TLS unknown CA",
            CertProblem::UnknownIssuer,
            "the certificate chain is not trusted here: check the CA bundle; never retried",
        ),
        tls(
            "TLS expired certificate",
            CertProblem::Expired,
            "an expired certificate (or a wrong clock): never retried",
        ),
        Row {
            target: Target::Proxy(ProxyBehavior::AuthRequired),
            ..row(
                "proxy wants credentials",
                "/ok",
                g,
                "407 from the proxy: the proxy hop owns it, never the API",
            )
        },
        row(
            "body cut mid-way",
            "/fault/rst-mid-body?after=4000",
            g,
            "the head arrived, then the body broke: reported with the bytes received",
        ),
        row(
            "body cut, read whole",
            "/flaky-body/1/rst/30000?after=4000",
            g,
            "whole-body mode (TriageLayer::whole_body, sdk()): the break is the attempt's, retried; the caller gets all 30000 bytes",
        )
        .whole(),
        tls(
            "TLS unknown CA, again",
            CertProblem::UnknownIssuer,
            "the route breaker opened at the first failure: the next request fails at once, nothing sent, until a probe gets through",
        )
        .again(true),
        tls(
            "diagnosis window",
            CertProblem::UnknownIssuer,
            "after a route's first failure, the next ones are captured in detail (breaker off here to show it)",
        )
        .again(false),
    ]
}

fn rules() -> RetryRules {
    // Short backoff so the tour is quick; server-asked waits are real.
    RetryRules::default().backoff(
        Backoff::new(Duration::from_millis(50), Duration::from_millis(200)).unwrap_or_default(),
    )
}

/// The layer of a row: the tour's quick backoff and a 1 s attempt timeout,
/// whole-body mode or the breaker off when the row says so.
fn layer_for(row: &Row) -> TriageLayer {
    let mut layer = TriageLayer::new()
        .profile(row.profile.clone())
        .rules(rules())
        .attempt_timeout(Some(Duration::from_millis(1000)));
    if row.whole {
        layer = layer.whole_body(Some(tower_triage::DEFAULT_WHOLE_BODY_CAP));
    }
    if row.again == Some(false) {
        layer = layer.breaker(tower_triage::Breaker::disabled());
    }
    layer
}

/// A response through the layer, as the tour reads it.
type Answer = Result<http::Response<tower_triage::ResponseBody<hyper::body::Incoming>>, Error>;

/// Sends `request` through `layer` over hyper-util's client with
/// `connector`.
async fn through<C>(
    layer: &TriageLayer,
    connector: C,
    request: Request<Full<Bytes>>,
) -> Result<Answer, BoxError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut svc = tower_triage::connect::client_with::<_, Full<Bytes>>(layer, connector);
    Ok(svc.ready().await?.call(request).await)
}

/// The tagged plain connector, with a short connect timeout.
fn plain() -> tower_triage::connect::TagConnect<
    hyper_util::client::legacy::connect::HttpConnector<
        tower_triage::connect::TagResolver<Resolver>,
    >,
> {
    let mut connector = tower_triage::connect::tagged_connector(Resolver::new());
    connector
        .get_mut()
        .set_connect_timeout(Some(Duration::from_millis(250)));
    connector
}

/// The row's request sent to its target (the servers it needs kept alive
/// until the end, in the guard); when the row sends twice (a route that
/// opens), the second is timed from `started`, reset here.
async fn call(
    row: &Row,
    upstream: &Upstream,
    started: &mut Instant,
) -> Result<(Answer, Box<dyn std::any::Any + Send>), BoxError> {
    let layer = layer_for(row);
    let request = Request::builder().method(row.method.clone());
    let body = Full::new(Bytes::from_static(b"{}"));
    Ok(match &row.target {
        Target::Path(path) if row.paced => {
            // One layer for both: the first answer closes the window.
            let mut svc = tower_triage::connect::client_with::<_, Full<Bytes>>(&layer, plain());
            let first = Request::get(upstream.url(path)).body(body.clone())?;
            let _ = svc.ready().await?.call(first).await;
            *started = Instant::now();
            let request = request.uri(upstream.url(path)).body(body)?;
            (svc.ready().await?.call(request).await, Box::new(()))
        }
        Target::Path(path) => {
            let request = request.uri(upstream.url(path)).body(body)?;
            (through(&layer, plain(), request).await?, Box::new(()))
        }
        Target::Url(url) => {
            let request = request.uri(url.as_str()).body(body)?;
            (through(&layer, plain(), request).await?, Box::new(()))
        }
        Target::Tls(problem) => {
            let tls = TlsUpstream::start(*problem).await?;
            let mut roots = rustls::RootCertStore::empty();
            roots.add(tls.ca_der().to_vec().into())?;
            let connector = tower_triage::connect::https_connector_with(Resolver::new(), roots)?;
            let mut svc = tower_triage::connect::client_with::<_, Full<Bytes>>(&layer, connector);
            let url = tls.url("/ok");
            if row.again.is_some() {
                let first = Request::get(url.as_str()).body(body.clone())?;
                let _ = svc.ready().await?.call(first).await;
                // The second is timed on its own.
                *started = Instant::now();
            }
            let request = request.uri(url).body(body)?;
            (svc.ready().await?.call(request).await, Box::new(tls))
        }
        Target::Proxy(behavior) => {
            let proxy = Proxy::start(*behavior).await?;
            let connector = tower_triage::connect::proxied_connector(
                Resolver::new(),
                proxy.url().parse()?,
                None,
            );
            let request = request.uri(upstream.url("/ok")).body(body)?;
            (through(&layer, connector, request).await?, Box::new(proxy))
        }
    })
}

async fn send(
    row: &Row,
    upstream: &Upstream,
) -> Result<(Result<Seen, Error>, Option<String>), BoxError> {
    let mut started = Instant::now();
    let (result, _guard) = call(row, upstream, &mut started).await?;
    let mut note = None;
    if let Err(error) = &result {
        if let Some(route) = error.packet().route_open() {
            note = Some(format!(
                "refused in {:.1} µs without a connection; the route opened at {} and has refused {} request(s)",
                started.elapsed().as_secs_f64() * 1e6,
                route.first_seen(),
                route.refused()
            ));
        } else if let Some(detail) = error.packet().details().first() {
            note = Some(format!("captured: {detail}"));
        }
    }
    let seen = match result {
        Ok(response) => Ok(seen(row, response, started, &mut note).await?),
        Err(error) => Err(error),
    };
    if let (true, Target::Path(path), Ok(seen)) = (row.paced, &row.target, &seen) {
        note = Some(format!(
            "held {:.0} ms for the window's reset, then sent once; the upstream refused {} request(s)",
            seen.elapsed.as_secs_f64() * 1e3,
            upstream.refused(path).0
        ));
    }
    Ok((seen, note))
}

/// What a row's response showed, its body read to the end (a body that
/// breaks, or a whole one delivered, is noted).
async fn seen(
    row: &Row,
    response: http::Response<tower_triage::ResponseBody<hyper::body::Incoming>>,
    started: Instant,
    note: &mut Option<String>,
) -> Result<Seen, BoxError> {
    let status = response.status().as_u16();
    let report = response.report();
    let mut body = response.into_body();
    let mut bytes = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => bytes += frame.into_data().map(|d| d.len()).unwrap_or(0),
            Err(_) => {
                *note = Some(format!("body broke after {bytes} bytes (stage body)"));
                break;
            }
        }
    }
    let Some(report) = report else {
        return Err("a response without a report".into());
    };
    if let Some(error) = body.stream_error() {
        *note = Some(format!(
            "error event in the stream after {} bytes: {} ({}), outcome {}",
            error.bytes(),
            error.diagnosis().class(),
            error.diagnosis().owner().map_or("-", |o| o.as_str()),
            error.packet().outcome()
        ));
    }
    if let Some(key) = report.packet().and_then(|p| p.idempotency_key()) {
        *note = Some(format!(
            "idempotency key {key}, the same on all {} attempts",
            report.attempts()
        ));
    }
    if row.whole && note.is_none() {
        *note = Some(format!(
            "delivered whole: {bytes} bytes, after {} attempt(s)",
            report.attempts()
        ));
    }
    let d = report.diagnosis();
    Ok(Seen {
        status: Some(status),
        body: bytes > 0,
        request_id: report.request_id().is_some(),
        rate: report.rate().is_known(),
        owner: d.owner().map_or("-", |o| o.as_str()).to_owned(),
        class: d.class().to_string(),
        attempts: report.attempts(),
        decision: report
            .packet()
            .map_or("success", |p| p.outcome())
            .to_owned(),
        elapsed: started.elapsed(),
    })
}

fn evidence(status: Option<u16>, body: bool, request_id: bool, rate: bool) -> String {
    let mut out = match status {
        Some(s) => format!("status {s}"),
        None => "no status".to_owned(),
    };
    out.push_str(if body { ", body" } else { ", no body" });
    out.push_str(if request_id {
        ", req id"
    } else {
        ", no req id"
    });
    if rate {
        out.push_str(", rate");
    }
    out
}

/// The widest line the tour prints.
pub(crate) const WIDTH: usize = 100;

/// How a line goes on when it wraps: deeper than the line it continues.
const CONTINUED: &str = "      ";

/// `text` after `first`, wrapped at word boundaries to [`WIDTH`] columns,
/// the continuation lines indented with [`CONTINUED`].
fn wrapped(first: &str, text: &str) -> String {
    let mut out = String::from(first);
    let mut column = first.chars().count();
    let mut fresh = true;
    for word in text.split(' ') {
        let len = word.chars().count();
        if !fresh && column + 1 + len > WIDTH {
            out.push('\n');
            out.push_str(CONTINUED);
            column = CONTINUED.len();
        } else if !fresh {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
        fresh = false;
    }
    out.push('\n');
    out
}

/// Colours for a terminal (off when stdout is not one, or `NO_COLOR` is
/// set; `CLICOLOR_FORCE` turns them on anyway, unless `NO_COLOR`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paint(pub(crate) bool);

impl Paint {
    /// The colours this process should use.
    pub(crate) fn detect() -> Paint {
        use std::io::IsTerminal;
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        if set("NO_COLOR") {
            return Paint(false);
        }
        Paint(set("CLICOLOR_FORCE") || std::io::stdout().is_terminal())
    }

    /// `text`, padded to `width`, in the colour of `owner`.
    fn owner(self, owner: &str, width: usize) -> String {
        let padded = format!("{owner:<width$}");
        if !self.0 {
            return padded;
        }
        let code = match owner {
            "-" | "none" => "32",
            "connection_path" | "route" => "31",
            "server" => "35",
            "rate_limit" | "quota" => "33",
            _ => "36",
        };
        format!("\x1b[{code}m{padded}\x1b[0m")
    }

    fn dim(self, text: &str) -> String {
        if self.0 {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// One row's lines: the case, owner, attempts, decision and time; the
/// evidence and class; the lesson; the note, if any. Each line at most
/// [`WIDTH`] columns (without the colour codes).
fn row_lines(
    n: usize,
    row: &Row,
    seen: &Result<Seen, Error>,
    note: Option<&str>,
    paint: Paint,
) -> String {
    let (ev, owner, class, tries, decision, elapsed) = match seen {
        Ok(s) => (
            evidence(s.status, s.body, s.request_id, s.rate),
            s.owner.clone(),
            s.class.clone(),
            s.attempts,
            s.decision.clone(),
            s.elapsed,
        ),
        Err(e) => {
            let last = e.packet().attempts().last();
            (
                evidence(
                    e.status().map(|s| s.as_u16()),
                    last.is_some_and(|a| a.has_body()),
                    e.request_id().is_some(),
                    e.packet().rate().is_some(),
                ),
                e.owner().map_or("-", |o| o.as_str()).to_owned(),
                e.class().to_string(),
                e.attempts(),
                e.stop().as_str().to_owned(),
                e.packet().elapsed(),
            )
        }
    };
    let decision = if note.is_some_and(|n| n.starts_with("body broke")) {
        "body failed".to_owned()
    } else {
        decision
    };
    let mut out = format!(
        "{:<3} {:<31} {} {:>5}  {:<20} {:>7.1}ms\n",
        n,
        row.name,
        paint.owner(&owner, 16),
        tries,
        decision,
        elapsed.as_secs_f64() * 1000.0
    );
    out.push_str(&wrapped("    ", &format!("class {class}; {ev}")));
    out.push_str(&paint.dim(&wrapped("    ", row.lesson)));
    if let Some(note) = note {
        out.push_str(&wrapped("    ", note));
    }
    out
}

/// Runs the tour, writing each row to `out` as soon as it is done.
pub(crate) async fn run(out: &mut dyn std::io::Write, paint: Paint) -> Result<(), BoxError> {
    let upstream = Upstream::start().await?;
    let closed = triage_testkit::closed_port()?;
    let backlog = triage_testkit::full_backlog()?;
    let started = Instant::now();
    writeln!(
        out,
        "triage tour: one request per failure class, through the layer, against a loopback upstream\n"
    )?;
    writeln!(
        out,
        "{:<3} {:<31} {:<16} {:>5}  {:<20} {:>9}",
        "#", "case", "owner", "tries", "decision", "time"
    )?;
    out.flush()?;
    for (i, row) in rows(closed.port(), backlog.addr().port())
        .iter()
        .enumerate()
    {
        let (seen, note) = send(row, &upstream).await?;
        write!(
            out,
            "{}",
            row_lines(i + 1, row, &seen, note.as_deref(), paint)
        )?;
        out.flush()?;
    }
    let summary = format!(
        "{} cases in {:.1} s; upstream saw {} requests; nothing left this machine.",
        rows(0, 0).len(),
        started.elapsed().as_secs_f64(),
        upstream.total_hits()
    );
    write!(out, "\n{}", wrapped("", &summary))?;
    write!(
        out,
        "{}",
        wrapped(
            "",
            "Next: run `triage probe https://<your API>/…` from where your service runs, \
             and wrap your client: `TriageLayer::new().layer(client)` (see the README's Quick start)."
        )
    )?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_fit_and_keep_every_word() {
        let text = "word ".repeat(60);
        let out = wrapped("    ", text.trim_end());
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert_eq!(out.split_whitespace().count(), 60);
        assert!(out.lines().skip(1).all(|l| l.starts_with(CONTINUED)));
        assert_eq!(wrapped("    ", "short"), "    short\n");
    }
}
