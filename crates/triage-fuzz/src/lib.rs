//! A fuzzing harness for triage-core that runs on stable Rust: every header
//! parser, the failure-body reader, the redaction of free text and URLs,
//! `classify()` with the retry rules on arbitrary evidence, and the X.509
//! certificate summary.
//!
//! Each [`Target`] takes bytes and checks what must hold for any input —
//! no panic, every wait within [`MAX_DELAY`],
//! an exhausted quota never retried, no key left in scrubbed text — and
//! panics when it does not. The runner ([`fuzz`]) mutates a seed corpus
//! (byte flips, inserts, deletions, splices, dictionary tokens) for a fixed
//! time, catches panics, and returns the inputs that failed, so they can be
//! kept as regression files (`regressions/<target>/`).
//!
//! Run: `cargo run --release -p triage-fuzz -- --seconds 60` (every target),
//! or `-- --target classify --seconds 600`.
#![forbid(unsafe_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use triage_core::body::FailureBody;
use triage_core::gateway::Fingerprint;
use triage_core::headers::{self, MAX_DELAY, ResetFormat, RetryAfter};
use triage_core::x509::{CertSummary, MAX_NAME};
use triage_core::{
    AttemptContext, CertificateProblem, Decision, Evidence, Fault, Owner, Profile, RetryBudget,
    RetryRules, Stage, TimeoutPhase, TransportFailure, classify, redact,
};

/// One fuzz target: a name, seeds, and a check that panics on a violation.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name given to `--target`.
    pub name: &'static str,
    /// Inputs to start from.
    pub seeds: &'static [&'static [u8]],
    /// Runs one input; panics when an invariant breaks.
    pub check: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "headers",
        seeds: HEADER_SEEDS,
        check: check_headers,
    },
    Target {
        name: "ratelimit",
        seeds: RATELIMIT_SEEDS,
        check: check_ratelimit,
    },
    Target {
        name: "failure_body",
        seeds: BODY_SEEDS,
        check: check_failure_body,
    },
    Target {
        name: "redact",
        seeds: REDACT_SEEDS,
        check: check_redact,
    },
    Target {
        name: "classify",
        seeds: CLASSIFY_SEEDS,
        check: check_classify,
    },
    Target {
        name: "x509",
        seeds: X509_SEEDS,
        check: check_x509,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

const HEADER_SEEDS: &[&[u8]] = &[
    b"120",
    b"1.5",
    b"Wed, 21 Oct 2015 07:28:00 GMT",
    b"6m0s",
    b"1h2m3.5s",
    b"20ms",
    b"3\xc2\xb5s",
    b"2026-12-01T02:30:00.123Z",
    b"1764556200",
    b"true",
    b"false",
    b"-1",
    b"0.1234567891",
    b"99999999999999999999999",
    b"Please try again in 20s.",
    b"Please retry in 1m30.5s",
    b"Rate limit reached. Please try again in 6ms.",
];

const RATELIMIT_SEEDS: &[&[u8]] = &[
    b"\"default\";r=50;t=30",
    b"\"burst\";r=0;t=1, \"daily\";r=900;t=3600",
    b"\"default\";q=100;w=60",
    b"\"p\";q=10;w=1, \"q\";q=20;w=60;qu=\"requests\"",
    b"r=1;t=\"x\"",
];

const BODY_SEEDS: &[&[u8]] = &[
    br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#,
    br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#,
    br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>",
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    br#"{"type":"https://example.com/probs/out-of-credit","title":"You do not have enough credit.","status":403,"detail":"Your current balance is 30, but that costs 50."}"#,
    br#"{"statusCode": 429, "message": "Rate limit is exceeded. Try again in 12 seconds."}"#,
    b"upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    br#"[{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]}]"#,
    br#"{"message":"\ud83d\ude00 \u00e9\\\"","documentation_url":"https://docs.github.com/rest"}"#,
];

const REDACT_SEEDS: &[&[u8]] = &[
    b"proxy said: Authorization: Bearer sk-proj-SECRETSECRETSECRET1",
    b"GET https://api.example.com/v1/x?api_key=abc123&page=2 failed",
    b"key=AIzaSyA1234567890abcdefghijklmnopqrstuv",
    b"AKIAIOSFODNN7EXAMPLE wrote Basic dXNlcjpwYXNz",
    b"https://user:pass@example.com/path?token=t0k3n#frag",
    b"no secret here at all",
    b"https://api.example.com/v1/keys/sk-proj-SECRETSECRETSECRET1/usage",
];

const CLASSIFY_SEEDS: &[&[u8]] = &[
    b"\x01\xad\x00retry-after\x0020\x01x-request-id\x00req_1\x00{\"error\":{\"type\":\"insufficient_quota\"}}",
    b"\x01\xf6\x01server\x00nginx\x00<html><title>502 Bad Gateway</title></html>",
    b"\x01\xf7\x02x-envoy-upstream-service-time\x0012\x00upstream connect error",
    b"\x00\x03\x05",
    b"\x01\xc8\x00x-ratelimit-remaining-requests\x000\x01x-ratelimit-reset-requests\x001s\x00",
    b"\x01\x93\x03x-should-retry\x00true\x00",
];

/// Real DER certificates: an rcgen root (`UTCTime`), an rcgen leaf with
/// BMP, T.61, Universal and UTF-8 names and `GeneralizedTime`, and a
/// hand-made v1 certificate with a multi-valued RDN.
const X509_SEEDS: &[&[u8]] = &[
    include_bytes!("../seeds/x509/root-utctime.der"),
    include_bytes!("../seeds/x509/leaf-generalizedtime.der"),
    include_bytes!("../seeds/x509/v1-multivalued-rdn.der"),
];

fn within_max(d: Option<Duration>, what: &str, input: &[u8]) {
    if let Some(d) = d {
        assert!(
            d <= MAX_DELAY,
            "{what}: {d:?} over MAX_DELAY from {input:?}"
        );
    }
}

/// Every header parser on the same bytes.
fn check_headers(input: &[u8]) {
    let now = UNIX_EPOCH + Duration::from_secs(1_764_556_200);
    within_max(
        headers::parse_retry_after_ms(input),
        "retry-after-ms",
        input,
    );
    within_max(
        headers::parse_amz_retry_after(input),
        "x-amz-retry-after",
        input,
    );
    let _ = headers::parse_should_retry(input);
    let _ = headers::parse_count(input);
    let _ = headers::is_streaming_media_type(input);
    if let Some(after) = RetryAfter::parse(input) {
        within_max(Some(after.delay_from(now)), "retry-after", input);
        within_max(Some(after.delay_from(UNIX_EPOCH)), "retry-after", input);
    }
    for format in [
        ResetFormat::Auto,
        ResetFormat::GoDuration,
        ResetFormat::DeltaSeconds,
        ResetFormat::EpochSeconds,
        ResetFormat::Rfc3339,
    ] {
        within_max(headers::parse_reset(input, format, now), "reset", input);
    }
    let text = String::from_utf8_lossy(input);
    within_max(headers::parse_go_duration(&text), "go duration", input);
    within_max(
        headers::parse_proto_duration(&text),
        "proto duration",
        input,
    );
    within_max(headers::parse_delay_seconds(&text), "delay seconds", input);
    within_max(headers::parse_millis(&text), "millis", input);
    within_max(headers::delay_in_message(&text), "message", input);
}

/// The IETF `RateLimit` and `RateLimit-Policy` lists.
fn check_ratelimit(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    // Bounded: a list yields at most one entry per byte of input.
    assert!(headers::ratelimit_entries(&text).count() <= text.len() + 1);
    assert!(headers::policy_entries(&text).count() <= text.len() + 1);
    if let Some(entry) = headers::most_restrictive(&text) {
        within_max(entry.reset, "ratelimit reset", input);
    }
}

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/problem+json",
    "text/html; charset=utf-8",
    "text/plain",
    "application/xml",
    "",
];

/// The bounded failure-body reader, and the gateway fingerprint over it.
fn check_failure_body(input: &[u8]) {
    let (selector, body) = input.split_first().unwrap_or((&0, &[]));
    let content_type = CONTENT_TYPES[usize::from(*selector) % CONTENT_TYPES.len()];
    let aws = (selector & 0x80 != 0).then_some("ThrottlingException:http://internal");
    let read = FailureBody::read(Some(content_type), aws, body);
    for (what, text) in [
        ("code", read.code()),
        ("kind", read.kind()),
        ("message", read.message()),
        ("request id", read.request_id()),
    ] {
        if let Some(text) = text {
            assert!(text.len() <= 2048, "{what} of {} bytes", text.len());
            assert!(
                !text.chars().any(char::is_control),
                "{what} has control characters: {text:?}"
            );
        }
    }
    within_max(read.retry_delay(), "body retry delay", input);
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html"),
    );
    for status in [502u16, 503, 429] {
        let status = StatusCode::from_u16(status).expect("status");
        let _ = Fingerprint::detect(status, &headers, body);
    }
}

/// Key-like tokens of `text`: what scrubbing must leave out.
fn keys(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '&' | '=' | '?'))
        .filter(|t| {
            t.strip_prefix("sk-").is_some_and(|rest| {
                rest.len() >= 20
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        })
        .collect()
}

/// Free text and URLs: keys never survive, scrubbing is stable.
fn check_redact(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let clean = redact::text(&text);
    // Every key that stands as a word of its own is gone (a key glued to
    // other characters is not a word, and is not looked for).
    let left = keys(&clean);
    for key in keys(&text) {
        assert!(
            !left.contains(&key),
            "key {key:?} survived in {clean:?} (from {text:?})"
        );
    }
    assert_eq!(
        redact::text(&clean),
        clean,
        "scrubbing twice changed {clean:?}"
    );
    // A URL: a key as a path segment or a query value never survives.
    if !text.contains(char::is_whitespace) {
        let url = redact::url_str(&text);
        let pieces = |s: &str| -> Vec<String> {
            s.split(['/', '?', '&', '=', '#', ';', ',', '@', ':'])
                .filter(|t| keys(t) == [*t])
                .map(str::to_owned)
                .collect()
        };
        let left = pieces(&url);
        for key in pieces(&text) {
            assert!(!left.contains(&key), "key {key:?} survived in URL {url:?}");
        }
    }
    if let Ok(uri) = text.parse::<Uri>() {
        let _ = redact::uri(&uri);
    }
}

const HEADER_NAMES: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-ms-retry-after-ms",
    "x-amz-retry-after",
    "x-should-retry",
    "stripe-should-retry",
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-reset",
    "anthropic-ratelimit-requests-reset",
    "ratelimit",
    "ratelimit-policy",
    "server",
    "via",
    "cf-ray",
    "x-envoy-upstream-service-time",
    "content-type",
    "x-amzn-errortype",
];

const METHODS: &[Method] = &[Method::GET, Method::POST, Method::PUT, Method::DELETE];

/// A reader over the fuzz input: bytes as choices, `\0`-separated strings.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }
    fn until_nul(&mut self) -> &'a [u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        let (part, rest) = self.0.split_at(end);
        self.0 = rest.get(1..).unwrap_or(&[]);
        part
    }
}

/// `classify()` and the retry rules on evidence made from the input: a
/// status (or a transport failure), headers, a body, a profile.
fn check_classify(input: &[u8]) {
    let mut bytes = Bytes(input);
    let profiles = Profile::builtin();
    let profile = profiles[usize::from(bytes.byte()) % profiles.len()];
    let method = &METHODS[usize::from(bytes.byte()) % METHODS.len()];
    let attempt = u32::from(bytes.byte() % 5) + 1;
    let now = UNIX_EPOCH + Duration::from_secs(1_764_556_200);
    let evidence = if bytes.byte() & 1 == 0 {
        transport_evidence(&mut bytes)
    } else {
        let code = u16::from_be_bytes([bytes.byte(), bytes.byte()]);
        let status = StatusCode::from_u16(100 + code % 500).expect("status");
        let mut headers = HeaderMap::new();
        for _ in 0..(bytes.byte() % 8) {
            let name = HEADER_NAMES[usize::from(bytes.byte()) % HEADER_NAMES.len()];
            if let Ok(value) = HeaderValue::from_bytes(bytes.until_nul()) {
                headers.append(HeaderName::from_static(name), value);
            }
        }
        let mut evidence = Evidence::from_response(status, &headers, profile, now);
        if status.as_u16() >= 400 {
            evidence.read_failure_body(&headers, bytes.0);
        }
        evidence
    };
    let diagnosis = classify(&evidence, profile);
    let rules = RetryRules::default();
    let budget = RetryBudget::default();
    let context = AttemptContext::new(attempt, method)
        .replayable(true)
        .random(0.5);
    let decision = rules.decide(
        &diagnosis,
        &evidence,
        profile,
        &context,
        &budget,
        std::time::Instant::now(),
    );
    if let Decision::Retry(retry) = &decision {
        assert!(
            retry.delay() <= rules.retry_after_cap().max(Duration::from_secs(8)),
            "a retry waits {:?}",
            retry.delay()
        );
        assert!(
            attempt <= 2,
            "attempt {attempt} retried past the default 2 retries"
        );
        assert_ne!(
            diagnosis.owner(),
            Some(Owner::Quota),
            "an exhausted quota was retried"
        );
        assert!(
            !matches!(
                evidence.transport().map(|t| t.fault()),
                Some(Fault::NameNotFound | Fault::Certificate(_) | Fault::ProxyAuthRequired)
            ),
            "a permanent transport fault was retried: {diagnosis:?}"
        );
    }
    if evidence.status().is_some_and(|s| s.as_u16() < 400) && evidence.transport().is_none() {
        assert!(
            diagnosis.is_success(),
            "{:?} is not a success",
            evidence.status()
        );
    }
    // The class always renders, and the packet of the attempt builds.
    let _ = diagnosis.class().to_string();
    let mut packet = triage_core::PacketBuilder::new(
        method,
        &Uri::from_static("https://api.example.com/v1"),
        profile,
        SystemTime::now(),
    );
    packet.push_attempt(&evidence, &diagnosis, &decision);
    let _ = packet.finish(Duration::ZERO).to_string();
}

/// The certificate summary: names within [`MAX_NAME`] characters and fit
/// for a one-line log, times within years 1970 to 9999.
fn check_x509(input: &[u8]) {
    let Some(cert) = CertSummary::from_der(input) else {
        return;
    };
    for (what, name) in [("subject", cert.subject()), ("issuer", cert.issuer())] {
        assert!(
            name.chars().count() <= MAX_NAME,
            "{what} of {} characters",
            name.chars().count()
        );
        assert!(
            !name.chars().any(char::is_control),
            "{what} has control characters: {name:?}"
        );
    }
    if cert.is_self_signed() {
        assert_eq!(cert.subject(), cert.issuer(), "self-signed, names differ");
    }
    // 10000-01-01T00:00:00Z
    let end = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
    for t in [cert.not_before(), cert.not_after()].into_iter().flatten() {
        assert!(t < end, "a time past year 9999: {t:?}");
    }
    let line = cert.to_string();
    assert!(
        !line.chars().any(char::is_control),
        "the summary is not one line: {line:?}"
    );
}

fn transport_evidence(bytes: &mut Bytes<'_>) -> Evidence {
    const STAGES: &[Stage] = &[
        Stage::Dns,
        Stage::Connect,
        Stage::Proxy,
        Stage::Tls,
        Stage::Write,
        Stage::AwaitHeaders,
        Stage::Body,
    ];
    let faults = [
        Fault::NameNotFound,
        Fault::ResolverFailed,
        Fault::Refused,
        Fault::Unreachable,
        Fault::Timeout(TimeoutPhase::Connect),
        Fault::Timeout(TimeoutPhase::Headers),
        Fault::Timeout(TimeoutPhase::Total),
        Fault::Reset,
        Fault::Closed,
        Fault::Certificate(CertificateProblem::UnknownIssuer),
        Fault::Certificate(CertificateProblem::Expired),
        Fault::TlsProtocol,
        Fault::TlsHandshake,
        Fault::ProxyAuthRequired,
        Fault::ProxyRejected,
        Fault::Protocol,
        Fault::Cancelled,
        Fault::Unsent,
        Fault::StreamRefused,
        Fault::StreamReset,
        Fault::SlowDown,
        Fault::Unknown,
    ];
    let stage = STAGES[usize::from(bytes.byte()) % STAGES.len()];
    let fault = faults[usize::from(bytes.byte()) % faults.len()];
    Evidence::from_transport(TransportFailure::new(stage, fault))
}

/// A small, fast generator (xorshift64*), seeded for repeatable runs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Tokens worth inserting: separators, digits, units, secrets, JSON.
const DICTIONARY: &[&[u8]] = &[
    b"\0",
    b";",
    b",",
    b"=",
    b"\"",
    b".",
    b"-",
    b"ms",
    b"s",
    b"m",
    b"h",
    b"us",
    b"\xc2\xb5",
    b"999999999999999999999",
    b"0",
    b"1e9",
    b"NaN",
    b"GMT",
    b"T",
    b"Z",
    b"+",
    b"sk-",
    b"Bearer ",
    b"AIza",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\\u",
    b"\\",
    b"<",
    b">",
    b"</title>",
    b"insufficient_quota",
    b"retryDelay",
    b"\xff",
    b"\xe2\x80\x8b",
    b"\r\n",
];

/// One mutation of `input` (never longer than `max` bytes).
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>], max: usize) {
    match rng.below(7) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] = rng.next_u64() as u8;
        }
        2 if !input.is_empty() => {
            let i = rng.below(input.len());
            let n = 1 + rng.below(input.len() - i).min(16);
            input.drain(i..i + n);
        }
        3 => {
            let token = DICTIONARY[rng.below(DICTIONARY.len())];
            let at = rng.below(input.len() + 1);
            input.splice(at..at, token.iter().copied());
        }
        4 if !corpus.is_empty() => {
            // Splice: our head, another input's tail.
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(input.len() + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        5 if !input.is_empty() => {
            // Repeat a run: long inputs, deep nesting.
            let i = rng.below(input.len());
            let n = 1 + rng.below(input.len() - i).min(8);
            let run = input[i..i + n].to_vec();
            for _ in 0..1 + rng.below(32) {
                input.splice(i..i, run.iter().copied());
            }
        }
        _ => {
            let at = rng.below(input.len() + 1);
            input.insert(at, rng.next_u64() as u8);
        }
    }
    input.truncate(max);
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Run {
    /// Inputs checked.
    pub executions: u64,
    /// Inputs whose check panicked, with the panic's message.
    pub findings: Vec<(Vec<u8>, String)>,
}

/// Runs `target` on mutations of its seeds (and `extra` inputs) for
/// `duration`, or `max_executions`, whichever comes first. An input that
/// takes longer than `stall` (a hang, or work out of all proportion to its
/// size) is written to `stall_dir/<target>/` and ends the process: a hang
/// cannot be caught like a panic.
pub fn fuzz(
    target: &Target,
    extra: &[Vec<u8>],
    seed: u64,
    duration: Duration,
    max_executions: u64,
    stall: Option<(Duration, std::path::PathBuf)>,
) -> Run {
    let mut rng = Rng::new(seed);
    let mut corpus: Vec<Vec<u8>> = target.seeds.iter().map(|s| s.to_vec()).collect();
    corpus.extend(extra.iter().cloned());
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let current = std::sync::Arc::new(std::sync::Mutex::new((0u64, Vec::new())));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = stall.map(|(limit, dir)| {
        let current = std::sync::Arc::clone(&current);
        let done = std::sync::Arc::clone(&done);
        let name = target.name;
        std::thread::spawn(move || watch(name, &current, &done, limit, &dir))
    });
    let mut run = Run::default();
    let started = Instant::now();
    while run.executions < max_executions
        && (run.executions % 256 != 0 || started.elapsed() < duration)
    {
        let mut input = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut input, &corpus, 4096);
        }
        run.executions += 1;
        if watchdog.is_some() {
            let mut slot = current.lock().unwrap_or_else(|e| e.into_inner());
            slot.0 = run.executions;
            slot.1.clone_from(&input);
        }
        if let Err(message) = check(target, &input) {
            if run.findings.len() < 16 {
                run.findings.push((input.clone(), message));
            }
        } else if rng.below(64) == 0 && corpus.len() < 4096 {
            // Keep some inputs that passed, to mutate further.
            corpus.push(input);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    run
}

type Current = std::sync::Mutex<(u64, Vec<u8>)>;

fn watch(
    name: &str,
    current: &Current,
    done: &std::sync::atomic::AtomicBool,
    limit: Duration,
    dir: &std::path::Path,
) {
    let mut last = (0, Instant::now());
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let slot = current.lock().unwrap_or_else(|e| e.into_inner());
        if slot.0 != last.0 {
            last = (slot.0, Instant::now());
        } else if last.1.elapsed() > limit {
            let dir = dir.join(name);
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("stall-{}.bin", slot.0));
            let _ = std::fs::write(&path, &slot.1);
            eprintln!(
                "{name}: one input ran for over {limit:?} (a hang?); kept in {}\n  input {:?}",
                path.display(),
                slot.1
            );
            std::process::exit(3);
        }
    }
}

/// Runs one input; the panic message when the check fails.
pub fn check(target: &Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (target.check)(input))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

/// The inputs kept under `dir/<target>/` (regressions, extra seeds).
pub fn kept(dir: &std::path::Path, target: &str) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}
