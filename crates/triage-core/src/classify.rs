//! From evidence to a [`Diagnosis`]: [`classify`].

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::body::{BodyShape, FailureBody};
use crate::evidence::Evidence;
use crate::gateway::{Gateway, GatewayFault, Upstream};
use crate::headers;
use crate::owner::{Class, Owner, QuotaKind, Replay};
use crate::profile::Profile;
use crate::stage::{CertificateProblem, Fault, Stage, TimeoutPhase, TransportFailure};

/// A wait of this length or more asked by a rate-limited answer means a
/// period quota (Azure's "retry after 86400 seconds"), not a rate limit.
pub const QUOTA_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// The verdict on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diagnosis {
    owner: Option<Owner>,
    class: Class,
    replay: Replay,
    retryable: bool,
    server_verdict: Option<bool>,
    gateway: Option<Gateway>,
}

impl Diagnosis {
    const fn new(owner: Owner, class: Class, replay: Replay, retryable: bool) -> Diagnosis {
        Diagnosis {
            owner: Some(owner),
            class,
            replay,
            retryable,
            server_verdict: None,
            gateway: None,
        }
    }

    /// The verdict on a request held back by its route's used-up rate
    /// window, when the answer that said so was no rate limit itself (a
    /// success reporting `remaining: 0`): a rate limit, nothing processed,
    /// retryable once the window reopens.
    pub const fn rate_window() -> Diagnosis {
        Diagnosis::new(
            Owner::RateLimit,
            Class::RateLimited,
            Replay::NotProcessed,
            true,
        )
    }

    /// The verdict on a request refused by a quota stop learned elsewhere
    /// (another replica): the account's quota of `kind` is used up,
    /// nothing processed, not retryable.
    pub const fn quota_stop(kind: QuotaKind) -> Diagnosis {
        Diagnosis::new(
            Owner::Quota,
            Class::QuotaExhausted(kind),
            Replay::NotProcessed,
            false,
        )
    }

    const fn success() -> Diagnosis {
        Diagnosis {
            owner: None,
            class: Class::Success,
            replay: Replay::Processed,
            retryable: false,
            server_verdict: None,
            gateway: None,
        }
    }

    const fn with_gateway(mut self, gateway: Option<Gateway>) -> Diagnosis {
        self.gateway = gateway;
        self
    }

    /// Who has to act; `None` on success.
    pub const fn owner(&self) -> Option<Owner> {
        self.owner
    }

    /// What exactly happened.
    pub const fn class(&self) -> Class {
        self.class
    }

    /// Whether the call succeeded.
    pub const fn is_success(&self) -> bool {
        matches!(self.class, Class::Success)
    }

    /// The stage of a transport failure (`None` when an answer came back).
    pub const fn stage(&self) -> Option<Stage> {
        match self.class {
            Class::Transport(t) => Some(t.stage()),
            _ => None,
        }
    }

    /// Whether the server may already have processed the request.
    pub const fn replay(&self) -> Replay {
        self.replay
    }

    /// Whether trying again can help (before attempts, budget, deadline and
    /// the idempotency gate are weighed).
    pub const fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The server's own verdict (`x-should-retry`, `Stripe-Should-Retry`), when
    /// it sent one and it decided [`is_retryable`](Self::is_retryable).
    pub const fn server_verdict(&self) -> Option<bool> {
        self.server_verdict
    }

    /// The gateway that made the error (or whose rate limit it was).
    pub const fn gateway(&self) -> Option<Gateway> {
        self.gateway
    }

    /// What a person should do next, in one sentence.
    pub const fn next_step(&self) -> &'static str {
        next_step(self.class)
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner {
            None => f.write_str("success"),
            Some(owner) => {
                write!(f, "{owner}: {}", self.class)?;
                if let Some(gateway) = self.gateway {
                    write!(f, " ({})", gateway.name())?;
                }
                Ok(())
            }
        }
    }
}

/// Classifies one attempt's evidence under a provider profile (allocation-free).
///
/// The [`Diagnosis`] says who owns the failure, what it was, where
/// it happened, whether the request may have been processed, whether trying
/// again can help, and what a person should do next.
///
/// This is the one place that answers "why was this retried?" together with
/// [`RetryRules::decide`](crate::RetryRules::decide). The rules, in order:
///
/// 1. A transport failure is owned by the connection path (or the caller, if
///    it cancelled); its stage and fault decide the rest.
/// 2. A status below 400 is a success.
/// 3. An error made by a gateway (its own page or local reply, without the
///    origin's request ID) is owned by the route provider; a gateway's own
///    rate limit or quota is a rate limit or quota that names the gateway.
/// 4. Quota markers (`insufficient_quota`, spend limits, per-day quota IDs,
///    waits of a day or more, ...) make it a quota failure: never retried.
/// 5. Throttling markers (429, AWS throttling codes on 400, GitHub's 403 with
///    an exhausted window or "secondary rate limit") make it a rate limit,
///    except a 429 "Request too large", which no wait will fix.
/// 6. Otherwise the status decides: 401 auth, 403 permission, 408/409
///    retryable request errors, other 4xx the request, 529 and "overloaded"
///    503s the server's overload, other 5xx the server.
/// 7. `x-should-retry` / `Stripe-Should-Retry` override whether to retry,
///    except that an exhausted quota is never retried.
///
/// # Example
///
/// ```
/// use std::time::SystemTime;
/// use http::{HeaderMap, StatusCode};
/// use triage_core::{classify, Class, Evidence, Owner, Profile, QuotaKind};
///
/// let body = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
/// let headers = HeaderMap::new();
/// let profile = Profile::openai();
/// let mut evidence = Evidence::from_response(StatusCode::TOO_MANY_REQUESTS, &headers, profile, SystemTime::now());
/// evidence.read_failure_body(&headers, body);
///
/// let diagnosis = classify(&evidence, profile);
/// assert_eq!(diagnosis.owner(), Some(Owner::Quota));
/// assert_eq!(diagnosis.class(), Class::QuotaExhausted(QuotaKind::Billing));
/// assert!(!diagnosis.is_retryable());
/// ```
pub fn classify(evidence: &Evidence, profile: &Profile) -> Diagnosis {
    if let Some(failure) = evidence.transport() {
        return classify_transport(failure, evidence.status().is_some());
    }
    let Some(status) = evidence.status() else {
        // Nothing came back and nothing was recorded: treat it as a lost answer.
        return classify_transport(
            TransportFailure::new(Stage::AwaitHeaders, Fault::Unknown),
            false,
        );
    };
    if status.as_u16() < 400 {
        return Diagnosis::success();
    }
    let mut diagnosis = classify_status(status, evidence, profile);
    if let Some(verdict) = evidence.hints().should_retry {
        if diagnosis.owner != Some(Owner::Quota) {
            diagnosis.retryable = verdict;
            diagnosis.server_verdict = Some(verdict);
            if verdict && diagnosis.replay == Replay::Ambiguous {
                // The server says this request may be sent again.
                diagnosis.replay = Replay::NotProcessed;
            }
        }
    }
    diagnosis
}

fn classify_transport(failure: TransportFailure, answered: bool) -> Diagnosis {
    if failure.fault() == Fault::Cancelled {
        let replay = if failure.request_may_have_left() {
            Replay::Ambiguous
        } else {
            Replay::NotProcessed
        };
        return Diagnosis::new(Owner::Caller, Class::Cancelled, replay, false);
    }
    if failure.fault() == Fault::Timeout(TimeoutPhase::Pool) {
        // The caller's own concurrency limit: nothing left this process,
        // and another attempt would wait for the same slots.
        return Diagnosis::new(
            Owner::Caller,
            Class::Transport(failure),
            Replay::NotProcessed,
            false,
        );
    }
    let replay = match failure.stage() {
        _ if answered => Replay::Processed,
        Stage::Body => Replay::Processed,
        _ if !failure.request_may_have_left() => Replay::NotProcessed,
        _ => Replay::Ambiguous,
    };
    // HTTP/2's ENHANCE_YOUR_CALM: the server answered on the connection,
    // asking for less load; the path to it works.
    let owner = match failure.fault() {
        Fault::SlowDown => Owner::Server,
        _ => Owner::ConnectionPath,
    };
    Diagnosis::new(
        owner,
        Class::Transport(failure),
        replay,
        failure.is_transient(),
    )
}

/// Text fields of a failure body, for marker matching.
struct Said<'a> {
    body: Option<&'a FailureBody>,
}

impl<'a> Said<'a> {
    fn codes(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.body.into_iter().flat_map(|b| {
            [b.code(), b.kind(), b.detail_code(), b.reason()]
                .into_iter()
                .flatten()
        })
    }

    fn has_code(&self, wanted: &str) -> bool {
        self.codes().any(|c| c.eq_ignore_ascii_case(wanted))
    }

    fn has_any_code<'b>(&self, wanted: impl IntoIterator<Item = &'b str>) -> bool {
        wanted.into_iter().any(|w| self.has_code(w))
    }

    fn message(&self) -> &'a str {
        self.body.and_then(FailureBody::message).unwrap_or("")
    }

    fn message_has(&self, needle: &str) -> bool {
        contains_ignore_ascii_case(self.message(), needle)
    }

    fn shape(&self) -> Option<BodyShape> {
        self.body.map(FailureBody::shape)
    }

    fn quota_ids(&self) -> impl Iterator<Item = &'a str> {
        self.body.into_iter().flat_map(FailureBody::quota_ids)
    }
}

/// Codes that mean an exhausted quota or missing credit, whatever the provider.
const QUOTA_CODES: &[(&str, QuotaKind)] = &[
    ("insufficient_quota", QuotaKind::Billing),
    ("credit_balance_exhausted", QuotaKind::Billing),
    ("billing_error", QuotaKind::Billing),
    ("billing_hard_limit_reached", QuotaKind::Billing),
    ("billing_not_active", QuotaKind::Billing),
    ("BILLING_DISABLED", QuotaKind::Billing),
    ("enforced_spend_limit_reached", QuotaKind::SpendLimit),
    ("organization_spend_limit_exceeded", QuotaKind::SpendLimit),
    ("project_spend_limit_exceeded", QuotaKind::SpendLimit),
    ("ServiceQuotaExceededException", QuotaKind::Period),
    (
        "https://iana.org/assignments/http-problem-types#quota-exceeded",
        QuotaKind::Period,
    ),
];

/// Message phrases that mean an exhausted quota or credit.
const QUOTA_PHRASES: &[(&str, QuotaKind)] = &[
    ("credit balance is too low", QuotaKind::Billing),
    ("check your plan and billing details", QuotaKind::Billing),
    (
        "reached your specified api usage limits",
        QuotaKind::SpendLimit,
    ),
    ("spend limit", QuotaKind::SpendLimit),
    ("out of call volume quota", QuotaKind::Period),
];

fn quota_kind(
    status: StatusCode,
    said: &Said<'_>,
    evidence: &Evidence,
    profile: &Profile,
) -> Option<QuotaKind> {
    // Explicit timing wins over a marker: an answer whose own headers
    // reopen the window soon (a wait asked for, or the reset of a window
    // it says is used up) is a rate window, whatever its code or problem
    // type says. Without timing, the marker stands.
    if reopens_soon(evidence) {
        return None;
    }
    if let Some(kind) = QUOTA_CODES
        .iter()
        .find(|(code, _)| said.has_code(code))
        .map(|(_, kind)| *kind)
    {
        return Some(kind);
    }
    if said.has_any_code(profile.quota_codes()) {
        return Some(QuotaKind::Billing);
    }
    // Google: the same "exceeded your current quota" text is sent for
    // per-minute and per-day limits; only the quota ID tells them apart.
    if said.shape() == Some(BodyShape::Google) {
        let period = said.quota_ids().any(|id| {
            contains_ignore_ascii_case(id, "PerDay") || contains_ignore_ascii_case(id, "PerMonth")
        });
        if period {
            return Some(QuotaKind::Period);
        }
        if status == StatusCode::BAD_REQUEST
            && said.has_code("FAILED_PRECONDITION")
            && said.message_has("billing")
        {
            return Some(QuotaKind::Billing);
        }
        return None;
    }
    if let Some(kind) = QUOTA_PHRASES
        .iter()
        .find(|(phrase, _)| said.message_has(phrase))
        .map(|(_, kind)| *kind)
    {
        return Some(kind);
    }
    if said.message_has("exceeded your current quota") {
        return Some(QuotaKind::Billing);
    }
    // AWS API Gateway usage plans: 429 "Limit Exceeded" is the quota,
    // "Too Many Requests" the throttle.
    if status == StatusCode::TOO_MANY_REQUESTS
        && said.shape() == Some(BodyShape::AwsJson)
        && said.message().eq_ignore_ascii_case("Limit Exceeded")
    {
        return Some(QuotaKind::Period);
    }
    // A throttled answer that asks to wait a day or more is a period quota
    // (Azure OpenAI's daily and trial limits).
    let throttled = matches!(status.as_u16(), 429 | 503) || status == StatusCode::FORBIDDEN;
    if throttled && asked_wait(evidence).is_some_and(|wait| wait >= QUOTA_WAIT) {
        return Some(QuotaKind::Period);
    }
    None
}

/// The longest wait an answer's headers may ask for and still be a rate
/// window rather than a quota: the default cap on honoured waits.
const WINDOW_TIMING: Duration = Duration::from_secs(120);

/// Whether the answer's headers say when its window reopens, within
/// [`WINDOW_TIMING`]: `retry-after-ms`, `Retry-After`, `x-amz-retry-after`,
/// or the reset of a rate window it reports used up. (A body's retry delay
/// does not count: Google sends one with its per-day quota too.)
fn reopens_soon(evidence: &Evidence) -> bool {
    let soon = |wait: Duration| !wait.is_zero() && wait <= WINDOW_TIMING;
    evidence
        .hints()
        .server_delay()
        .map(|(wait, _)| wait)
        .or_else(|| evidence.rate().exhausted_reset())
        .is_some_and(soon)
}

/// The longest wait the answer asked for, in headers or in the body.
fn asked_wait(evidence: &Evidence) -> Option<Duration> {
    let header = evidence.hints().server_delay().map(|(d, _)| d);
    let body = evidence.failure_body().and_then(|b| {
        b.retry_delay()
            .or_else(|| b.message().and_then(headers::delay_in_message))
    });
    header.max(body)
}

fn is_rate_limited(
    status: StatusCode,
    said: &Said<'_>,
    evidence: &Evidence,
    profile: &Profile,
) -> bool {
    if said.has_any_code(profile.rate_codes()) && status.as_u16() < 500 {
        return true;
    }
    match status.as_u16() {
        429 => true,
        403 if profile.rate_limit_on_forbidden() => {
            evidence.rate().requests.is_exhausted()
                || said.message_has("secondary rate limit")
                || said.message_has("rate limit exceeded")
        }
        400 => {
            said.has_any_code(Profile::aws().rate_codes())
                || said.has_code("RATE_LIMIT_EXCEEDED")
                || (said.shape() == Some(BodyShape::Stripe) && said.has_code("rate_limit"))
        }
        503 => said.has_code("SlowDown"),
        _ => false,
    }
}

fn classify_status(status: StatusCode, evidence: &Evidence, profile: &Profile) -> Diagnosis {
    let said = Said {
        body: evidence.failure_body(),
    };
    if let Some(diagnosis) = gateway_answer(evidence) {
        return diagnosis;
    }
    if let Some(diagnosis) = marked(status, &said, evidence, profile) {
        return diagnosis;
    }
    by_status(status, &said, evidence, profile)
}

/// A gateway's own answer (its fingerprint says it generated the page),
/// unless it is a bare error page carrying the origin's request ID.
fn gateway_answer(evidence: &Evidence) -> Option<Diagnosis> {
    let has_request_id = evidence.request_id_str().is_some();
    let fp = evidence.fingerprint().filter(|fp| fp.generated())?;
    let gateway = Some(fp.gateway());
    let diagnosis = match fp.fault() {
        Some(GatewayFault::RateLimited) => Diagnosis::new(
            Owner::RateLimit,
            Class::RateLimited,
            Replay::NotProcessed,
            true,
        ),
        Some(GatewayFault::QuotaExceeded) => Diagnosis::new(
            Owner::Quota,
            Class::QuotaExhausted(QuotaKind::Period),
            Replay::NotProcessed,
            false,
        ),
        // A bare error page that carries the origin's request ID came
        // through the gateway from the origin's own infrastructure.
        Some(GatewayFault::Unavailable) | None if has_request_id => return None,
        fault => {
            let fault = fault.unwrap_or(GatewayFault::Unavailable);
            let replay = match fault.upstream() {
                Upstream::NotReached => Replay::NotProcessed,
                _ => Replay::Ambiguous,
            };
            let retryable = matches!(
                fault,
                GatewayFault::UpstreamUnreachable
                    | GatewayFault::UpstreamTimeout
                    | GatewayFault::UpstreamReset
                    | GatewayFault::BadUpstreamResponse
                    | GatewayFault::Overloaded
                    | GatewayFault::Unavailable
            );
            Diagnosis::new(Owner::Route, Class::Gateway(fault), replay, retryable)
        }
    };
    Some(diagnosis.with_gateway(gateway))
}

/// What the answer's markers say before its status does: an exhausted
/// quota, a request too large sent as 429, lock contention, a rate limit.
fn marked(
    status: StatusCode,
    said: &Said<'_>,
    evidence: &Evidence,
    profile: &Profile,
) -> Option<Diagnosis> {
    if let Some(kind) = quota_kind(status, said, evidence, profile) {
        return Some(Diagnosis::new(
            Owner::Quota,
            Class::QuotaExhausted(kind),
            Replay::NotProcessed,
            false,
        ));
    }
    if status == StatusCode::TOO_MANY_REQUESTS && said.message_has("request too large") {
        // OpenAI: same code as a rate limit, but the request will never fit.
        return Some(Diagnosis::new(
            Owner::Request,
            Class::RequestTooLarge,
            Replay::NotProcessed,
            false,
        ));
    }
    if said.has_code("lock_timeout") {
        // Stripe sends lock contention as 429 `lock_timeout`.
        return Some(Diagnosis::new(
            Owner::Request,
            Class::Conflict,
            Replay::NotProcessed,
            true,
        ));
    }
    if is_rate_limited(status, said, evidence, profile) {
        return Some(Diagnosis::new(
            Owner::RateLimit,
            Class::RateLimited,
            Replay::NotProcessed,
            true,
        ));
    }
    None
}

/// The status's own meaning.
fn by_status(
    status: StatusCode,
    said: &Said<'_>,
    evidence: &Evidence,
    profile: &Profile,
) -> Diagnosis {
    let code = status.as_u16();
    match code {
        401 => Diagnosis::new(
            Owner::Auth,
            Class::Unauthenticated,
            Replay::Processed,
            false,
        ),
        402 if profile.payment_required_is_quota() => Diagnosis::new(
            Owner::Quota,
            Class::QuotaExhausted(QuotaKind::Billing),
            Replay::NotProcessed,
            false,
        ),
        403 => Diagnosis::new(
            Owner::Permission,
            Class::Forbidden,
            Replay::Processed,
            false,
        ),
        404 => Diagnosis::new(Owner::Request, Class::NotFound, Replay::Processed, false),
        408 => Diagnosis::new(
            Owner::Request,
            Class::RequestTimeout,
            Replay::NotProcessed,
            true,
        ),
        409 => Diagnosis::new(Owner::Request, Class::Conflict, Replay::NotProcessed, true),
        413 => Diagnosis::new(
            Owner::Request,
            Class::RequestTooLarge,
            Replay::NotProcessed,
            false,
        ),
        422 => Diagnosis::new(
            Owner::Request,
            Class::UnprocessableEntity,
            Replay::Processed,
            false,
        ),
        400 => Diagnosis::new(Owner::Request, Class::BadRequest, Replay::Processed, false),
        405..=499 | 402 => Diagnosis::new(
            Owner::Request,
            Class::ClientError(status),
            Replay::Processed,
            false,
        ),
        _ if is_overloaded(status, said, evidence) => {
            Diagnosis::new(Owner::Server, Class::Overloaded, Replay::NotProcessed, true)
        }
        500.. => {
            // The request may have been processed, unless the server asked
            // to come back later.
            let replay = if code == 503 && evidence.hints().server_delay().is_some() {
                Replay::NotProcessed
            } else {
                Replay::Ambiguous
            };
            Diagnosis::new(Owner::Server, Class::ServerError(status), replay, true)
        }
        _ => Diagnosis::new(
            Owner::Request,
            Class::ClientError(status),
            Replay::Processed,
            false,
        ),
    }
}

fn is_overloaded(status: StatusCode, said: &Said<'_>, evidence: &Evidence) -> bool {
    match status.as_u16() {
        529 => true,
        503 => {
            said.has_code("overloaded_error")
                || said.message_has("overloaded")
                || said.message_has("slow down")
                || evidence
                    .fingerprint()
                    .is_some_and(|fp| fp.fault() == Some(GatewayFault::Overloaded))
        }
        _ => said.has_code("overloaded_error"),
    }
}

/// Whether `haystack` contains `needle`, ASCII case-insensitively (no
/// allocation); shared with the error texts of [`crate::detect`].
pub(crate) fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

const fn next_step(class: Class) -> &'static str {
    match class {
        Class::Success => "nothing to do",
        Class::Transport(t) => transport_next_step(t),
        Class::Cancelled => {
            "the caller cancelled the request before it finished; nothing to fix unless that was unexpected"
        }
        Class::Unauthenticated => {
            "check the API key, its project and organization, and that the base URL belongs to the key's provider"
        }
        Class::Forbidden => {
            "the credentials are valid but not allowed to do this: check the key's roles, scopes, organization and model access"
        }
        Class::QuotaExhausted(QuotaKind::Billing) => {
            "the account has no credit or billing is not active: the account owner must add credit or fix billing; retrying will not help"
        }
        Class::QuotaExhausted(QuotaKind::SpendLimit) => {
            "the account reached its spend limit: the account owner must raise it or wait for the next period; retrying will not help"
        }
        Class::QuotaExhausted(QuotaKind::Period) => {
            "the quota for this period is used up: wait for it to renew or ask the account owner to raise it; retrying now will not help"
        }
        Class::RateLimited => {
            "rate limited: wait as the answer says (Retry-After, reset headers), then lower the request rate or concurrency"
        }
        Class::BadRequest => {
            "the API rejected the request: fix the parameters named in the error message"
        }
        Class::NotFound => {
            "the path, model or resource does not exist: check the base URL, the API version and the resource name"
        }
        Class::RequestTimeout => {
            "the server timed out waiting for the request: retry, and check that the request body is sent promptly"
        }
        Class::Conflict => {
            "the resource is locked or changed concurrently: retry after a short wait"
        }
        Class::RequestTooLarge => {
            "the request is larger than the API accepts: shorten the input or split the request"
        }
        Class::UnprocessableEntity => {
            "the request is well-formed but rejected: fix the fields named in the error message"
        }
        Class::ClientError(_) => {
            "the API refused this request: read the error message and fix the request"
        }
        Class::ServerError(_) => {
            "the API's servers failed: retry with backoff, and give the request ID to the provider if it persists"
        }
        Class::Overloaded => "the API is overloaded: back off, retry later, and lower concurrency",
        Class::Gateway(fault) => gateway_next_step(fault),
    }
}

const fn transport_next_step(t: TransportFailure) -> &'static str {
    match (t.stage(), t.fault()) {
        (_, Fault::NameNotFound) => {
            "the host name does not resolve from this runtime: check the host in the base URL"
        }
        (_, Fault::ResolverFailed) => {
            "the resolver of this runtime failed or did not answer: check its DNS configuration and egress to the resolver"
        }
        (Stage::Proxy, Fault::ProxyAuthRequired) => {
            "the proxy wants credentials: set them in the proxy URL or the Proxy-Authorization header"
        }
        (Stage::Proxy, Fault::ProxyRejected) => {
            "the proxy refused to open a tunnel to this host: check its allow list (ACL) and NO_PROXY"
        }
        (Stage::Proxy, Fault::Reset | Fault::Closed) => {
            "the proxy dropped the connection: retry, and check the proxy's logs if it repeats"
        }
        (Stage::Proxy, _) => {
            "the proxy is not reachable from this runtime: check HTTPS_PROXY/HTTP_PROXY and that the proxy is up"
        }
        (_, Fault::Refused) => {
            "nothing accepts connections at this address and port from this runtime: check the base URL's port and that the service is up"
        }
        (_, Fault::Unreachable) => {
            "there is no route from this runtime to the host: check egress rules, VPN and proxy settings"
        }
        (_, Fault::Certificate(CertificateProblem::UnknownIssuer)) => {
            "the server's certificate is not trusted here: check the CA bundle (SSL_CERT_FILE) or a TLS-intercepting proxy"
        }
        (_, Fault::Certificate(CertificateProblem::WrongName)) => {
            "the certificate does not name this host: check the host in the base URL, or a TLS-intercepting proxy"
        }
        (_, Fault::Certificate(CertificateProblem::Expired | CertificateProblem::NotYetValid)) => {
            "the certificate is outside its validity period: check this machine's clock, then tell the server's owner"
        }
        (_, Fault::Certificate(_)) => {
            "the server's certificate was refused: check the CA bundle and the host in the base URL"
        }
        (_, Fault::TlsProtocol) => {
            "the peer does not speak TLS here: check the scheme (https or http) and the port of the base URL"
        }
        (_, Fault::TlsHandshake) => {
            "the TLS handshake was cut off: retry, and test the route from this runtime if it repeats"
        }
        (_, Fault::Timeout(TimeoutPhase::Pool)) => {
            "no connection slot became free in time: lower concurrency or raise the pool limit"
        }
        (_, Fault::Timeout(TimeoutPhase::Connect)) => {
            "the host did not accept a connection in time: check firewall and egress rules and the proxy settings of this runtime"
        }
        (_, Fault::Timeout(TimeoutPhase::Write)) => {
            "sending the request stalled: check the upload path and proxies that buffer request bodies"
        }
        (_, Fault::Timeout(TimeoutPhase::Headers)) => {
            "no answer arrived in time: the API or the route is slow; check the provider's status or raise the timeout"
        }
        (_, Fault::Timeout(TimeoutPhase::BodyIdle)) => {
            "the response body stalled: check proxies and load balancers with idle timeouts, or raise the body timeout"
        }
        (_, Fault::Timeout(TimeoutPhase::FirstByte)) => {
            "the stream's head arrived, then no first event in time: the API is slow to start generating; check the provider's status, or raise the first-byte timeout"
        }
        (_, Fault::Timeout(TimeoutPhase::Body)) => {
            "the whole response body did not arrive within the attempt timeout: the API or the route is slow; raise the timeout, or stream large responses"
        }
        (_, Fault::Timeout(_)) => {
            "the total deadline passed: raise it, or find the slow attempt in the packet"
        }
        (Stage::Body, _) => {
            "the response broke mid-body: retry idempotent calls, and check proxies and load balancers that cut long responses"
        }
        (_, Fault::Reset | Fault::Closed) => {
            "the connection broke before an answer: retry, and test the route if it repeats (proxy or load-balancer idle timeouts)"
        }
        (_, Fault::Protocol) => {
            "the peer did not answer with valid HTTP: check the scheme, port and any proxy in between"
        }
        (_, Fault::Unsent) => {
            "the connection ended before the request was sent: it was not processed; retry, and test the route if it repeats"
        }
        (_, Fault::StreamRefused) => {
            "the server refused the HTTP/2 stream before processing it: safe to send again; if it repeats, the server is shedding load or draining"
        }
        (_, Fault::StreamReset) => {
            "the server reset the HTTP/2 stream after the request went out: retry idempotent calls, and check the server's logs if it repeats"
        }
        (_, Fault::SlowDown) => {
            "the server asked for less load (HTTP/2 ENHANCE_YOUR_CALM): back off and lower concurrency"
        }
        (_, Fault::Unknown) => {
            "an error this layer does not recognise: it was retried only as far as it was safe; read the error chain, and test the route from this runtime (triage probe)"
        }
        (_, Fault::Cancelled) => {
            "the caller cancelled the request before it finished; nothing to fix unless that was unexpected"
        }
        (_, _) => {
            "the connection failed: test the route from this runtime (triage probe) and read the error chain"
        }
    }
}

const fn gateway_next_step(fault: GatewayFault) -> &'static str {
    match fault {
        GatewayFault::UpstreamUnreachable => {
            "a gateway in front of the API could not reach it: check the route provider's status and upstream configuration"
        }
        GatewayFault::UpstreamTimeout => {
            "a gateway timed out waiting for the API: check the API's status and the gateway's timeouts"
        }
        GatewayFault::UpstreamReset => {
            "the connection between a gateway and the API broke: retry, and check the route provider if it repeats"
        }
        GatewayFault::BadUpstreamResponse => {
            "a gateway got an invalid answer from the API: check the API's status and the gateway's logs"
        }
        GatewayFault::Overloaded => "a gateway shed load: back off and check the gateway's limits",
        GatewayFault::RateLimited => {
            "a gateway's own rate limit: wait, and check its limits for this client"
        }
        GatewayFault::QuotaExceeded => {
            "a gateway's quota for this client is used up: ask its owner to raise it"
        }
        GatewayFault::OriginDns => {
            "the CDN could not resolve the API's origin: the route provider's DNS configuration is wrong"
        }
        GatewayFault::OriginTls => {
            "the CDN could not make TLS to the API's origin: the route provider's origin certificate is wrong"
        }
        GatewayFault::AccessDenied => {
            "a gateway or firewall refused the request before it reached the API: check the route provider's rules for this client"
        }
        GatewayFault::RouteNotFound => {
            "the gateway has no route for this path: check the base URL and the gateway's routes"
        }
        _ => {
            "a gateway in front of the API answered with an error: check the route provider's status and configuration"
        }
    }
}
