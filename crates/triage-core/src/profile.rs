//! Provider profiles: [`Profile`].

use std::borrow::Cow;
use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::headers::ResetFormat;

/// What one pass over a success's head found ([`Profile::scan_head`]).
#[derive(Debug, Clone, Copy)]
pub struct HeadScan<'a> {
    /// A rate window may be used up ([`Profile::reports_exhausted`]).
    pub exhausted: bool,
    /// The `Content-Type` value, if any.
    pub content_type: Option<&'a HeaderValue>,
}

/// The header names of one rate-limit window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// The window's limit.
    pub limit: Option<HeaderName>,
    /// What is left.
    pub remaining: Option<HeaderName>,
    /// When it resets (in the profile's [`ResetFormat`]).
    pub reset: Option<HeaderName>,
}

impl RateHeaders {
    /// Header names for a window; `None` where the provider sends nothing.
    pub const fn new(
        limit: Option<HeaderName>,
        remaining: Option<HeaderName>,
        reset: Option<HeaderName>,
    ) -> RateHeaders {
        RateHeaders {
            limit,
            remaining,
            reset,
        }
    }

    const fn none() -> RateHeaders {
        RateHeaders::new(None, None, None)
    }

    const fn all(limit: &'static str, remaining: &'static str, reset: &'static str) -> RateHeaders {
        RateHeaders::new(
            Some(HeaderName::from_static(limit)),
            Some(HeaderName::from_static(remaining)),
            Some(HeaderName::from_static(reset)),
        )
    }
}

/// What one API provider sends: request-ID headers, rate headers and their
/// formats, retry-hint headers, error codes that mean quota or throttling,
/// and whether its POSTs are safe to replay.
///
/// Built in: [`openai`](Profile::openai), [`azure_openai`](Profile::azure_openai),
/// [`anthropic`](Profile::anthropic), [`gemini`](Profile::gemini),
/// [`aws`](Profile::aws), [`github`](Profile::github), [`stripe`](Profile::stripe)
/// and [`generic`](Profile::generic) (IETF `RateLimit` fields and the
/// `X-RateLimit-*` family). [`Profile::detect`] picks one from the host name;
/// [`Profile::builder`] makes your own.
///
/// Codes and phrases that mean "quota exhausted" for every provider
/// (`insufficient_quota`, `billing_error`, ...) are known to the classifier
/// whatever the profile; a profile adds its own.
///
/// # Example
///
/// ```
/// use http::HeaderName;
/// use triage_core::{Profile, RateHeaders, ResetFormat};
///
/// assert_eq!(Profile::detect("api.openai.com").name(), "openai");
/// assert_eq!(Profile::detect("my-resource.openai.azure.com").name(), "azure-openai");
/// assert_eq!(Profile::detect("internal.example").name(), "generic");
///
/// let acme = Profile::builder("acme")
///     .request_id_header(HeaderName::from_static("x-acme-trace"))
///     .request_rate_headers(RateHeaders::new(
///         Some(HeaderName::from_static("x-acme-limit")),
///         Some(HeaderName::from_static("x-acme-left")),
///         Some(HeaderName::from_static("x-acme-reset")),
///     ))
///     .reset_format(ResetFormat::EpochSeconds)
///     .quota_code("out_of_credits")
///     .build();
/// assert_eq!(acme.name(), "acme");
/// assert!(!acme.replay_safe_posts());
/// ```
#[derive(Debug, Clone)]
pub struct Profile {
    name: Cow<'static, str>,
    request_id_headers: Vec<HeaderName>,
    request_rate: RateHeaders,
    token_rate: RateHeaders,
    reset_format: ResetFormat,
    ietf_ratelimit: bool,
    should_retry_headers: Vec<HeaderName>,
    quota_codes: Cow<'static, [Cow<'static, str>]>,
    rate_codes: Cow<'static, [Cow<'static, str>]>,
    replay_safe_posts: bool,
    idempotency_key: Option<HeaderName>,
    rate_limit_on_forbidden: bool,
    payment_required_is_quota: bool,
    model_in_body: bool,
    table: HeadTable,
}

/// Which value a response header fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A request-ID header, by preference (0 is the most preferred).
    RequestId(u8),
    /// A rate header: window (0 requests, 1 tokens) and field (0 limit,
    /// 1 remaining, 2 reset).
    Rate(u8, u8),
}

/// The profile's header names with what each fills in, and a mask of their
/// lengths, so one pass over a response's headers finds them all.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadTable {
    entries: Vec<(HeaderName, Slot)>,
    lengths: u128,
}

impl HeadTable {
    fn build(
        request_ids: &[HeaderName],
        requests: &RateHeaders,
        tokens: &RateHeaders,
    ) -> HeadTable {
        let mut entries = Vec::new();
        for (i, name) in request_ids.iter().enumerate().take(usize::from(u8::MAX)) {
            entries.push((name.clone(), Slot::RequestId(i as u8)));
        }
        for (w, window) in [requests, tokens].into_iter().enumerate() {
            for (f, name) in [&window.limit, &window.remaining, &window.reset]
                .into_iter()
                .enumerate()
            {
                if let Some(name) = name {
                    entries.push((name.clone(), Slot::Rate(w as u8, f as u8)));
                }
            }
        }
        let lengths = entries
            .iter()
            .map(|(n, _)| n.as_str().len())
            .filter(|len| *len < 128)
            .fold(0u128, |mask, len| mask | (1u128 << len));
        HeadTable { entries, lengths }
    }

    /// What `name` fills in, if anything.
    #[inline]
    pub(crate) fn slot(&self, name: &HeaderName) -> Option<Slot> {
        let len = name.as_str().len();
        if len >= 128 || self.lengths & (1u128 << len) == 0 {
            return None;
        }
        // Names that share a length usually differ in their last bytes
        // (`-requests`, `-tokens`): compare those before the whole name.
        let name = name.as_str().as_bytes();
        let last = name[len - 1];
        self.entries
            .iter()
            .find(|(n, _)| {
                let n = n.as_str().as_bytes();
                n.len() == len && n[len - 1] == last && n == name
            })
            .map(|(_, slot)| *slot)
    }
}

const fn h(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

const NO_CODES: &[Cow<'static, str>] = &[];

/// The IETF `RateLimit` field.
const IETF_RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// AWS throttling codes (smithy-rs `THROTTLING_ERRORS`), also sent on HTTP 400
/// by awsJson services.
const AWS_THROTTLING: &[Cow<'static, str>] = &[
    Cow::Borrowed("Throttling"),
    Cow::Borrowed("ThrottlingException"),
    Cow::Borrowed("ThrottledException"),
    Cow::Borrowed("RequestThrottledException"),
    Cow::Borrowed("TooManyRequestsException"),
    Cow::Borrowed("ProvisionedThroughputExceededException"),
    Cow::Borrowed("TransactionInProgressException"),
    Cow::Borrowed("RequestLimitExceeded"),
    Cow::Borrowed("BandwidthLimitExceeded"),
    Cow::Borrowed("LimitExceededException"),
    Cow::Borrowed("RequestThrottled"),
    Cow::Borrowed("SlowDown"),
    Cow::Borrowed("PriorRequestNotComplete"),
    Cow::Borrowed("EC2ThrottledException"),
];

fn build_openai() -> Profile {
    Profile {
        name: Cow::Borrowed("openai"),
        request_id_headers: vec![h("x-request-id")],
        request_rate: RateHeaders::all(
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        token_rate: RateHeaders::all(
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ),
        reset_format: ResetFormat::GoDuration,
        ietf_ratelimit: false,
        should_retry_headers: vec![h("x-should-retry")],
        quota_codes: Cow::Borrowed(&[
            Cow::Borrowed("organization_spend_limit_exceeded"),
            Cow::Borrowed("project_spend_limit_exceeded"),
            Cow::Borrowed("billing_hard_limit_reached"),
            Cow::Borrowed("billing_not_active"),
        ]),
        rate_codes: Cow::Borrowed(&[Cow::Borrowed("rate_limit_exceeded")]),
        replay_safe_posts: true,
        idempotency_key: None,
        rate_limit_on_forbidden: false,
        payment_required_is_quota: true,
        model_in_body: true,
        table: HeadTable::default(),
    }
    .with_table()
}

fn build_azure_openai() -> Profile {
    Profile {
        name: Cow::Borrowed("azure-openai"),
        request_id_headers: vec![
            h("apim-request-id"),
            h("x-request-id"),
            h("x-ms-request-id"),
        ],
        request_rate: RateHeaders::all(
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        token_rate: RateHeaders::all(
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ),
        reset_format: ResetFormat::Auto,
        ietf_ratelimit: false,
        should_retry_headers: vec![h("x-should-retry")],
        quota_codes: Cow::Borrowed(NO_CODES),
        rate_codes: Cow::Borrowed(NO_CODES),
        replay_safe_posts: true,
        idempotency_key: None,
        rate_limit_on_forbidden: false,
        payment_required_is_quota: true,
        model_in_body: true,
        table: HeadTable::default(),
    }
    .with_table()
}

fn build_anthropic() -> Profile {
    Profile {
        name: Cow::Borrowed("anthropic"),
        request_id_headers: vec![h("request-id")],
        request_rate: RateHeaders::all(
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ),
        token_rate: RateHeaders::all(
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ),
        reset_format: ResetFormat::Rfc3339,
        ietf_ratelimit: false,
        should_retry_headers: vec![h("x-should-retry")],
        quota_codes: Cow::Borrowed(NO_CODES),
        rate_codes: Cow::Borrowed(&[Cow::Borrowed("rate_limit_error")]),
        replay_safe_posts: true,
        idempotency_key: None,
        rate_limit_on_forbidden: false,
        payment_required_is_quota: true,
        model_in_body: true,
        table: HeadTable::default(),
    }
    .with_table()
}

fn build_gemini() -> Profile {
    Profile {
        name: Cow::Borrowed("gemini"),
        request_id_headers: Vec::new(),
        request_rate: RateHeaders::none(),
        token_rate: RateHeaders::none(),
        reset_format: ResetFormat::Auto,
        ietf_ratelimit: false,
        should_retry_headers: Vec::new(),
        quota_codes: Cow::Borrowed(NO_CODES),
        rate_codes: Cow::Borrowed(&[Cow::Borrowed("RATE_LIMIT_EXCEEDED")]),
        replay_safe_posts: true,
        idempotency_key: None,
        rate_limit_on_forbidden: false,
        payment_required_is_quota: true,
        model_in_body: false,
        table: HeadTable::default(),
    }
    .with_table()
}

fn build_aws() -> Profile {
    Profile {
        name: Cow::Borrowed("aws"),
        request_id_headers: vec![h("x-amzn-requestid"), h("x-amz-request-id")],
        request_rate: RateHeaders::none(),
        token_rate: RateHeaders::none(),
        reset_format: ResetFormat::Auto,
        ietf_ratelimit: false,
        should_retry_headers: Vec::new(),
        quota_codes: Cow::Borrowed(&[Cow::Borrowed("ServiceQuotaExceededException")]),
        rate_codes: Cow::Borrowed(AWS_THROTTLING),
        replay_safe_posts: false,
        idempotency_key: None,
        rate_limit_on_forbidden: false,
        payment_required_is_quota: true,
        model_in_body: false,
        table: HeadTable::default(),
    }
    .with_table()
}

fn build_github() -> Profile {
    Profile {
        name: Cow::Borrowed("github"),
        request_id_headers: vec![h("x-github-request-id")],
        request_rate: RateHeaders::all(
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ),
        token_rate: RateHeaders::none(),
        reset_format: ResetFormat::EpochSeconds,
        ietf_ratelimit: false,
        should_retry_headers: Vec::new(),
        quota_codes: Cow::Borrowed(NO_CODES),
        rate_codes: Cow::Borrowed(NO_CODES),
        replay_safe_posts: false,
        idempotency_key: None,
        rate_limit_on_forbidden: true,
        payment_required_is_quota: true,
        model_in_body: false,
        table: HeadTable::default(),
    }
    .with_table()
}

fn build_stripe() -> Profile {
    Profile {
        name: Cow::Borrowed("stripe"),
        request_id_headers: vec![h("request-id")],
        request_rate: RateHeaders::none(),
        token_rate: RateHeaders::none(),
        reset_format: ResetFormat::Auto,
        ietf_ratelimit: false,
        should_retry_headers: vec![h("stripe-should-retry")],
        quota_codes: Cow::Borrowed(NO_CODES),
        rate_codes: Cow::Borrowed(&[Cow::Borrowed("rate_limit")]),
        replay_safe_posts: false,
        idempotency_key: Some(h("idempotency-key")),
        rate_limit_on_forbidden: false,
        payment_required_is_quota: false,
        model_in_body: false,
        table: HeadTable::default(),
    }
    .with_table()
}

fn build_generic() -> Profile {
    Profile {
        name: Cow::Borrowed("generic"),
        request_id_headers: vec![h("x-request-id"), h("request-id"), h("x-amzn-requestid")],
        request_rate: RateHeaders::all(
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ),
        token_rate: RateHeaders::none(),
        reset_format: ResetFormat::Auto,
        ietf_ratelimit: true,
        should_retry_headers: vec![h("x-should-retry")],
        quota_codes: Cow::Borrowed(NO_CODES),
        rate_codes: Cow::Borrowed(NO_CODES),
        replay_safe_posts: false,
        idempotency_key: None,
        rate_limit_on_forbidden: false,
        payment_required_is_quota: true,
        model_in_body: false,
        table: HeadTable::default(),
    }
    .with_table()
}

static BUILTIN: LazyLock<[Profile; 8]> = LazyLock::new(|| {
    [
        build_openai(),
        build_azure_openai(),
        build_anthropic(),
        build_gemini(),
        build_aws(),
        build_github(),
        build_stripe(),
        build_generic(),
    ]
});
static BUILTIN_REFS: LazyLock<[&'static Profile; 8]> = LazyLock::new(|| {
    let all: &'static [Profile; 8] = &BUILTIN;
    [
        &all[0], &all[1], &all[2], &all[3], &all[4], &all[5], &all[6], &all[7],
    ]
});

impl Profile {
    /// OpenAI: `x-request-id`, `x-ratelimit-*-{requests,tokens}` with Go-style
    /// reset durations, `retry-after-ms`, `x-should-retry`; POSTs replay-safe
    /// (its SDKs retry them).
    pub fn openai() -> &'static Profile {
        &BUILTIN[0]
    }

    /// Azure OpenAI / AI services: `apim-request-id`, OpenAI's rate header
    /// names with second resets, `retry-after-ms` and `x-ms-retry-after-ms`.
    pub fn azure_openai() -> &'static Profile {
        &BUILTIN[1]
    }

    /// Anthropic: `request-id`, `anthropic-ratelimit-*` with RFC 3339 resets,
    /// `x-should-retry`, 529 overloaded.
    pub fn anthropic() -> &'static Profile {
        &BUILTIN[2]
    }

    /// Gemini / Google AI: no rate headers; the body carries `RetryInfo` and
    /// `QuotaFailure` (per-minute is a rate limit, per-day a quota).
    pub fn gemini() -> &'static Profile {
        &BUILTIN[3]
    }

    /// AWS: `x-amzn-RequestId` / `x-amz-request-id`, `x-amz-retry-after` (ms),
    /// throttling codes (also on HTTP 400).
    pub fn aws() -> &'static Profile {
        &BUILTIN[4]
    }

    /// GitHub: `x-github-request-id`, `x-ratelimit-*` with epoch resets; a 403
    /// with `x-ratelimit-remaining: 0` or "secondary rate limit" is a rate limit.
    pub fn github() -> &'static Profile {
        &BUILTIN[5]
    }

    /// Stripe: `Request-Id`, `Stripe-Should-Retry`; 402 is a card decline (the
    /// request's owner), not a quota.
    pub fn stripe() -> &'static Profile {
        &BUILTIN[6]
    }

    /// Any other API: `x-request-id` / `request-id`, the IETF `RateLimit` and
    /// `RateLimit-Policy` fields and `X-RateLimit-*`, `Retry-After` in all its
    /// forms, `x-should-retry`.
    pub fn generic() -> &'static Profile {
        &BUILTIN[7]
    }

    /// Every built-in profile, `generic` last.
    pub fn builtin() -> &'static [&'static Profile] {
        &*BUILTIN_REFS
    }

    /// A built-in profile by name (`openai`, `azure-openai`, `anthropic`,
    /// `gemini`, `aws`, `github`, `stripe`, `generic`; ASCII case-insensitive).
    pub fn by_name(name: &str) -> Option<&'static Profile> {
        BUILTIN.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The built-in profile for a host name (without port), `generic` when
    /// none matches.
    pub fn detect(host: &str) -> &'static Profile {
        let host = host.strip_suffix('.').unwrap_or(host);
        let is = |exact: &str| host.eq_ignore_ascii_case(exact);
        let under = |suffix: &str| {
            host.len() > suffix.len()
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        };
        if is("api.openai.com") {
            &BUILTIN[0]
        } else if under("openai.azure.com")
            || under("cognitiveservices.azure.com")
            || under("services.ai.azure.com")
        {
            &BUILTIN[1]
        } else if is("api.anthropic.com") {
            &BUILTIN[2]
        } else if is("generativelanguage.googleapis.com") {
            &BUILTIN[3]
        } else if is("amazonaws.com") || under("amazonaws.com") {
            &BUILTIN[4]
        } else if is("api.github.com") {
            &BUILTIN[5]
        } else if is("api.stripe.com") {
            &BUILTIN[6]
        } else {
            &BUILTIN[7]
        }
    }

    /// Starts a profile of your own, with no headers and no codes: add what
    /// your provider sends.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> ProfileBuilder {
        ProfileBuilder {
            profile: Profile {
                name: name.into(),
                request_id_headers: Vec::new(),
                request_rate: RateHeaders::none(),
                token_rate: RateHeaders::none(),
                reset_format: ResetFormat::Auto,
                ietf_ratelimit: false,
                should_retry_headers: Vec::new(),
                quota_codes: Cow::Borrowed(NO_CODES),
                rate_codes: Cow::Borrowed(NO_CODES),
                replay_safe_posts: false,
                idempotency_key: None,
                rate_limit_on_forbidden: false,
                payment_required_is_quota: true,
                model_in_body: false,
                table: HeadTable::default(),
            },
        }
    }

    /// Starts a profile of your own from a copy of this one.
    pub fn to_builder(&self, name: impl Into<Cow<'static, str>>) -> ProfileBuilder {
        let mut profile = self.clone();
        profile.name = name.into();
        ProfileBuilder { profile }
    }

    fn with_table(mut self) -> Profile {
        self.table = HeadTable::build(
            &self.request_id_headers,
            &self.request_rate,
            &self.token_rate,
        );
        self
    }

    pub(crate) fn head_table(&self) -> &HeadTable {
        &self.table
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name, shared when it is static (every built-in's).
    pub(crate) fn name_cow(&self) -> Cow<'static, str> {
        self.name.clone()
    }

    /// Headers that carry the origin's request ID, in order of preference.
    pub fn request_id_headers(&self) -> &[HeaderName] {
        &self.request_id_headers
    }

    /// The request-count rate window's header names.
    pub fn request_rate_headers(&self) -> &RateHeaders {
        &self.request_rate
    }

    /// The token rate window's header names.
    pub fn token_rate_headers(&self) -> &RateHeaders {
        &self.token_rate
    }

    /// How the reset headers are written.
    pub fn reset_format(&self) -> ResetFormat {
        self.reset_format
    }

    /// Whether the IETF `RateLimit` / `RateLimit-Policy` fields are read.
    pub fn reads_ietf_ratelimit(&self) -> bool {
        self.ietf_ratelimit
    }

    /// Whether `headers` may say a rate window is used up: one of the
    /// profile's `remaining` headers is `0`, or (where the profile reads
    /// them) the IETF `RateLimit` field has a member with `r=0`. A quick
    /// look for every answer (a value's length per header, most of the
    /// time); [`Evidence::from_response`](crate::Evidence::from_response)
    /// reads the windows when it says yes.
    pub fn reports_exhausted(&self, headers: &HeaderMap) -> bool {
        self.scan_head(headers).exhausted
    }

    /// One pass over a success's head: [`reports_exhausted`](Self::reports_exhausted)
    /// and the `Content-Type` (for a layer that treats streams apart).
    pub fn scan_head<'a>(&self, headers: &'a HeaderMap) -> HeadScan<'a> {
        // The values first: a `0` is rare, and a value's length is at hand
        // where a name's slot is a lookup.
        let zero = |value: &HeaderValue| value.len() <= 4 && value.as_bytes().trim_ascii() == b"0";
        let mut scan = HeadScan {
            exhausted: false,
            content_type: None,
        };
        for (name, value) in headers {
            if zero(value) {
                scan.exhausted =
                    scan.exhausted || matches!(self.table.slot(name), Some(Slot::Rate(_, 1)));
            } else if scan.content_type.is_none() && *name == http::header::CONTENT_TYPE {
                scan.content_type = Some(value);
            }
        }
        scan.exhausted = scan.exhausted
            || (self.ietf_ratelimit
                && headers.get(&IETF_RATELIMIT).is_some_and(|value| {
                    let bytes = value.as_bytes();
                    bytes.windows(3).enumerate().any(|(i, w)| {
                        w.eq_ignore_ascii_case(b"r=0")
                            && bytes.get(i + 3).is_none_or(|b| !b.is_ascii_digit())
                    })
                }));
        scan
    }

    /// Headers that carry the server's own retry verdict (`true`/`false`).
    pub fn should_retry_headers(&self) -> &[HeaderName] {
        &self.should_retry_headers
    }

    /// Error codes (body `code`, `type` or detail code) that mean the quota
    /// is exhausted, beyond those every profile knows.
    pub fn quota_codes(&self) -> impl Iterator<Item = &str> {
        self.quota_codes.iter().map(|c| c.as_ref())
    }

    /// Error codes that mean throttling, whatever the status (AWS sends them
    /// on HTTP 400).
    pub fn rate_codes(&self) -> impl Iterator<Item = &str> {
        self.rate_codes.iter().map(|c| c.as_ref())
    }

    /// Whether a POST or PATCH that may have been processed can be sent again
    /// (the AI providers' own SDKs do so).
    pub fn replay_safe_posts(&self) -> bool {
        self.replay_safe_posts
    }

    /// The header the API reads an idempotency key from, when it honours
    /// one: a POST or PATCH that carries a key is safe to send again after
    /// an ambiguous failure, since the API answers a repeat with the first
    /// answer. Set for [`stripe`](Profile::stripe) (`Idempotency-Key`); a
    /// layer mints one key per logical request into it (see
    /// `tower_triage::IdempotencyKeys`).
    pub fn idempotency_key_header(&self) -> Option<&HeaderName> {
        self.idempotency_key.as_ref()
    }

    /// Whether a 403 can be a rate limit (with `remaining: 0` or "secondary
    /// rate limit"), as GitHub sends it.
    pub fn rate_limit_on_forbidden(&self) -> bool {
        self.rate_limit_on_forbidden
    }

    /// Whether 402 Payment Required means the account's quota or credit
    /// (true), or a business decline of this request (Stripe's card errors).
    pub fn payment_required_is_quota(&self) -> bool {
        self.payment_required_is_quota
    }

    /// Whether a request's JSON body names the model (`"model": "…"`), so
    /// an escalation packet can name it (OpenAI, Azure OpenAI, Anthropic).
    pub fn model_in_body(&self) -> bool {
        self.model_in_body
    }
}

/// Builds a [`Profile`]; see [`Profile::builder`].
#[derive(Debug, Clone)]
pub struct ProfileBuilder {
    profile: Profile,
}

impl ProfileBuilder {
    /// Adds a header that carries the origin's request ID.
    pub fn request_id_header(mut self, name: HeaderName) -> Self {
        self.profile.request_id_headers.push(name);
        self
    }

    /// Sets the request-count window's header names.
    pub fn request_rate_headers(mut self, headers: RateHeaders) -> Self {
        self.profile.request_rate = headers;
        self
    }

    /// Sets the token window's header names.
    pub fn token_rate_headers(mut self, headers: RateHeaders) -> Self {
        self.profile.token_rate = headers;
        self
    }

    /// Sets how reset headers are written.
    pub fn reset_format(mut self, format: ResetFormat) -> Self {
        self.profile.reset_format = format;
        self
    }

    /// Reads the IETF `RateLimit` / `RateLimit-Policy` fields.
    pub fn ietf_ratelimit(mut self, read: bool) -> Self {
        self.profile.ietf_ratelimit = read;
        self
    }

    /// Adds a header that carries the server's retry verdict (`true`/`false`).
    pub fn should_retry_header(mut self, name: HeaderName) -> Self {
        self.profile.should_retry_headers.push(name);
        self
    }

    /// Adds an error code that means the quota is exhausted.
    pub fn quota_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.profile.quota_codes.to_mut().push(code.into());
        self
    }

    /// Adds an error code that means throttling.
    pub fn rate_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.profile.rate_codes.to_mut().push(code.into());
        self
    }

    /// Names the header the API reads an idempotency key from (see
    /// [`Profile::idempotency_key_header`]).
    pub fn idempotency_key_header(mut self, name: HeaderName) -> Self {
        self.profile.idempotency_key = Some(name);
        self
    }

    /// Whether POSTs that may have been processed can be sent again.
    pub fn replay_safe_posts(mut self, safe: bool) -> Self {
        self.profile.replay_safe_posts = safe;
        self
    }

    /// Whether a 403 with an exhausted window is a rate limit.
    pub fn rate_limit_on_forbidden(mut self, yes: bool) -> Self {
        self.profile.rate_limit_on_forbidden = yes;
        self
    }

    /// Whether 402 means the account's quota (true) or this request.
    pub fn payment_required_is_quota(mut self, yes: bool) -> Self {
        self.profile.payment_required_is_quota = yes;
        self
    }

    /// Whether the request's JSON body names the model (see
    /// [`Profile::model_in_body`]).
    pub fn model_in_body(mut self, yes: bool) -> Self {
        self.profile.model_in_body = yes;
        self
    }

    /// The profile.
    pub fn build(self) -> Profile {
        self.profile.with_table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_provider_from_its_host() {
        let table = [
            ("api.openai.com", "openai"),
            ("API.OpenAI.com.", "openai"),
            ("contoso.openai.azure.com", "azure-openai"),
            ("contoso.cognitiveservices.azure.com", "azure-openai"),
            ("api.anthropic.com", "anthropic"),
            ("generativelanguage.googleapis.com", "gemini"),
            ("bedrock-runtime.us-east-1.amazonaws.com", "aws"),
            ("s3.amazonaws.com", "aws"),
            ("api.github.com", "github"),
            ("api.stripe.com", "stripe"),
            ("openai.com", "generic"),
            ("evilopenai.azure.com", "generic"),
            ("notamazonaws.com", "generic"),
            ("", "generic"),
            ("127.0.0.1", "generic"),
        ];
        for (host, name) in table {
            assert_eq!(Profile::detect(host).name(), name, "{host}");
        }
    }

    #[test]
    fn by_name_finds_every_builtin() {
        for profile in Profile::builtin() {
            let found = Profile::by_name(profile.name()).expect("builtin by name");
            assert_eq!(found.name(), profile.name());
        }
        assert!(Profile::by_name("nope").is_none());
    }

    #[test]
    fn ai_providers_replay_posts_and_others_do_not() {
        for name in ["openai", "azure-openai", "anthropic", "gemini"] {
            assert!(
                Profile::by_name(name).unwrap().replay_safe_posts(),
                "{name}"
            );
        }
        for name in ["aws", "github", "stripe", "generic"] {
            assert!(
                !Profile::by_name(name).unwrap().replay_safe_posts(),
                "{name}"
            );
        }
    }

    #[test]
    fn only_stripe_names_an_idempotency_key_header() {
        for profile in Profile::builtin() {
            let expected = (profile.name() == "stripe").then_some("idempotency-key");
            assert_eq!(
                profile.idempotency_key_header().map(HeaderName::as_str),
                expected,
                "{}",
                profile.name()
            );
        }
        let acme = Profile::builder("acme")
            .idempotency_key_header(HeaderName::from_static("x-acme-once"))
            .build();
        assert_eq!(
            acme.idempotency_key_header().map(HeaderName::as_str),
            Some("x-acme-once")
        );
    }

    #[test]
    fn reports_exhausted_looks_at_remaining_headers_and_the_ietf_field() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(HeaderName::from_static(name), value.parse().unwrap());
            }
            map
        };
        let openai = Profile::openai();
        let used_up = headers(&[
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-remaining-tokens", " 0 "),
        ]);
        assert!(openai.reports_exhausted(&used_up));
        assert!(!openai.reports_exhausted(&headers(&[
            ("x-ratelimit-remaining-requests", "10"),
            ("x-ratelimit-remaining-tokens", "0.5"),
            ("x-ratelimit-limit-requests", "0"),
            ("content-type", "0"),
        ])));
        let generic = Profile::generic();
        assert!(generic.reports_exhausted(&headers(&[("x-ratelimit-remaining", "0")])));
        assert!(generic.reports_exhausted(&headers(&[("ratelimit", "\"default\";r=0;t=3")])));
        assert!(
            generic.reports_exhausted(&headers(&[("ratelimit", "\"a\";r=7;t=1, \"b\";R=0;t=30")]))
        );
        assert!(!generic.reports_exhausted(&headers(&[("ratelimit", "\"default\";r=05;t=3")])));
        // OpenAI's profile does not read the IETF field.
        assert!(!openai.reports_exhausted(&headers(&[("ratelimit", "\"default\";r=0;t=3")])));
        assert!(!generic.reports_exhausted(&HeaderMap::new()));
    }

    #[test]
    fn builder_copies_and_extends() {
        let p = Profile::openai()
            .to_builder("openai-proxy")
            .request_id_header(HeaderName::from_static("x-proxy-id"))
            .quota_code("proxy_budget_exhausted")
            .build();
        assert_eq!(p.name(), "openai-proxy");
        assert_eq!(p.request_id_headers().len(), 2);
        assert!(p.quota_codes().any(|c| c == "proxy_budget_exhausted"));
        assert!(p.quota_codes().any(|c| c == "billing_not_active"));
        assert!(p.replay_safe_posts());
        // The built-in is untouched.
        assert_eq!(Profile::openai().request_id_headers().len(), 1);
    }
}
