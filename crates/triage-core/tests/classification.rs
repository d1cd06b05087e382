//! The classification table: real answers from each provider (shapes and
//! values from the provider research), each row asserting the owner, the
//! class and the retry decision of a first attempt under default rules.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use triage_core::gateway::{Gateway, GatewayFault};
use triage_core::{
    AttemptContext, CertificateProblem, Class, Decision, DelaySource, Evidence, Fault, Owner,
    Profile, QuotaKind, Replay, ReplayBasis, RetryBudget, RetryRules, Stage, Stop, TimeoutPhase,
    TransportFailure, classify,
};

/// The first backoff delay with the jitter sample fixed at 0.5:
/// 0.5 s × (1 − 0.25 × 0.5).
const FIRST_BACKOFF: Duration = Duration::from_micros(437_500);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Retry(Duration, DelaySource, ReplayBasis),
    Stop(Stop),
}

struct Case {
    name: &'static str,
    profile: &'static Profile,
    method: Method,
    status: Option<u16>,
    transport: Option<TransportFailure>,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
}

fn case(name: &'static str, profile: &'static Profile) -> Case {
    Case {
        name,
        profile,
        method: Method::POST,
        status: None,
        transport: None,
        headers: Vec::new(),
        body: "",
    }
}

impl Case {
    fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    fn transport(mut self, stage: Stage, fault: Fault) -> Self {
        self.transport = Some(TransportFailure::new(stage, fault));
        self
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
    fn json(self, body: &'static str) -> Self {
        self.header("content-type", "application/json").body(body)
    }
    fn body(mut self, body: &'static str) -> Self {
        self.body = body;
        self
    }

    #[track_caller]
    fn expect(self, owner: Option<Owner>, class: Class, expect: Expect) -> triage_core::Diagnosis {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut evidence = match (self.status, self.transport) {
            (Some(status), transport) => {
                let status = StatusCode::from_u16(status).expect("valid status");
                let mut ev = Evidence::from_response(status, &headers, self.profile, now);
                if status.as_u16() >= 400 {
                    ev.read_failure_body(&headers, self.body.as_bytes());
                }
                if let Some(t) = transport {
                    ev.set_transport(t);
                }
                ev
            }
            (None, Some(t)) => Evidence::from_transport(t),
            (None, None) => panic!(
                "{}: a case needs a status or a transport failure",
                self.name
            ),
        };
        evidence.set_elapsed(Duration::from_millis(30));
        let diagnosis = classify(&evidence, self.profile);
        assert_eq!(
            diagnosis.owner(),
            owner,
            "{}: owner ({diagnosis})",
            self.name
        );
        assert_eq!(
            diagnosis.class(),
            class,
            "{}: class ({diagnosis})",
            self.name
        );

        let idempotency_key = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"));
        let attempt = AttemptContext::new(1, &self.method)
            .idempotency_key(idempotency_key)
            .random(0.5);
        let decision = RetryRules::default().decide(
            &diagnosis,
            &evidence,
            self.profile,
            &attempt,
            &RetryBudget::default(),
            Instant::now(),
        );
        let got = match decision {
            Decision::Retry(r) => Expect::Retry(r.delay(), r.source(), r.basis()),
            Decision::Stop(s) => Expect::Stop(s),
        };
        assert_eq!(got, expect, "{}: decision", self.name);
        diagnosis
    }
}

fn retry_backoff(basis: ReplayBasis) -> Expect {
    Expect::Retry(FIRST_BACKOFF, DelaySource::Backoff, basis)
}

fn not_retryable(owner: Owner) -> Expect {
    Expect::Stop(Stop::NotRetryable(owner))
}

const OPENAI_QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
const OPENAI_RATE: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29800, Requested 1200. Please try again in 1.146s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
const OPENAI_TOO_LARGE: &str = r#"{"error":{"message":"Request too large for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Requested 34307. The input or output tokens must be reduced in order to run successfully.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
const GEMINI_PER_DAY: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.0-flash"},"quotaValue":"200"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
const GEMINI_PER_MINUTE: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":"15"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;

#[test]
fn openai() {
    let p = Profile::openai();
    case("openai insufficient_quota", p)
        .status(429)
        .header("x-request-id", "req_1")
        .json(OPENAI_QUOTA)
        .expect(
            Some(Owner::Quota),
            Class::QuotaExhausted(QuotaKind::Billing),
            not_retryable(Owner::Quota),
        );
    case("openai credit_balance_exhausted", p)
        .status(429)
        .json(r#"{"error":{"message":"Your credit balance is exhausted.","type":"insufficient_quota","param":null,"code":"credit_balance_exhausted"}}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::Billing), not_retryable(Owner::Quota));
    case("openai rate limit with retry-after-ms", p)
        .status(429)
        .header("retry-after-ms", "1500")
        .header("retry-after", "2")
        .json(OPENAI_RATE)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(
                Duration::from_millis(1500),
                DelaySource::RetryAfterMs,
                ReplayBasis::NotProcessed,
            ),
        );
    case("openai rate limit, wait only in the message", p)
        .status(429)
        .json(OPENAI_RATE)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(
                Duration::from_millis(1146),
                DelaySource::Body,
                ReplayBasis::NotProcessed,
            ),
        );
    case("openai request too large is the request's", p)
        .status(429)
        .json(OPENAI_TOO_LARGE)
        .expect(
            Some(Owner::Request),
            Class::RequestTooLarge,
            not_retryable(Owner::Request),
        );
    case("openai exhausted window resetting in 6m0s is over the cap", p)
        .status(429)
        .header("x-ratelimit-remaining-requests", "0")
        .header("x-ratelimit-reset-requests", "6m0s")
        .json(r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Stop(Stop::WaitTooLong(Duration::from_secs(360))),
        );
    case("openai exhausted token window resetting in 8.64s", p)
        .status(429)
        .header("x-ratelimit-remaining-tokens", "0")
        .header("x-ratelimit-reset-tokens", "8.64s")
        .json(r#"{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(Duration::from_millis(8640), DelaySource::ResetHeader, ReplayBasis::NotProcessed),
        );
    case("openai 503 engine overloaded", p)
        .status(503)
        .json(r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#)
        .expect(Some(Owner::Server), Class::Overloaded, retry_backoff(ReplayBasis::NotProcessed));
    case("openai 503 slow down", p)
        .status(503)
        .json(r#"{"error":{"message":"Slow Down","type":"server_error","param":null,"code":null}}"#)
        .expect(
            Some(Owner::Server),
            Class::Overloaded,
            retry_backoff(ReplayBasis::NotProcessed),
        );
    case("openai 500 POST is replayed: the profile says so", p)
        .status(500)
        .header("x-request-id", "req_500")
        .json(r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#)
        .expect(
            Some(Owner::Server),
            Class::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
            retry_backoff(ReplayBasis::Profile),
        );
    case("openai 500 behind cloudflare is still the server's", p)
        .status(500)
        .header("server", "cloudflare")
        .header("cf-ray", "8c135d3eeec4a97a-SYD")
        .header("x-request-id", "req_cf")
        .json(r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#)
        .expect(
            Some(Owner::Server),
            Class::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
            retry_backoff(ReplayBasis::Profile),
        );
    case("openai 401", p)
        .status(401)
        .json(r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#)
        .expect(Some(Owner::Auth), Class::Unauthenticated, not_retryable(Owner::Auth));
    case("openai 403", p)
        .status(403)
        .json(r#"{"error":{"message":"You are not allowed to sample from this model","type":"invalid_request_error","param":null,"code":null}}"#)
        .expect(Some(Owner::Permission), Class::Forbidden, not_retryable(Owner::Permission));
    case("openai 404 model", p)
        .status(404)
        .json(r#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#)
        .expect(Some(Owner::Request), Class::NotFound, not_retryable(Owner::Request));
    case("openai 400", p)
        .status(400)
        .json(r#"{"error":{"message":"Invalid 'messages': empty array.","type":"invalid_request_error","param":"messages","code":"empty_array"}}"#)
        .expect(Some(Owner::Request), Class::BadRequest, not_retryable(Owner::Request));
    case("openai 422", p)
        .status(422)
        .json(r#"{"error":{"message":"Unprocessable","type":"invalid_request_error","param":null,"code":null}}"#)
        .expect(Some(Owner::Request), Class::UnprocessableEntity, not_retryable(Owner::Request));
}

#[test]
fn anthropic() {
    let p = Profile::anthropic();
    case("anthropic rate limit with retry-after", p)
        .status(429)
        .header("request-id", "req_011CSLsW7mFqvHHnzrKdKjAE")
        .header("retry-after", "20")
        .header("x-should-retry", "true")
        .json(r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"},"request_id":"req_011CSLsW7mFqvHHnzrKdKjAE"}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(Duration::from_secs(20), DelaySource::RetryAfter, ReplayBasis::NotProcessed),
        );
    case("anthropic spend limit", p)
        .status(429)
        .json(r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your monthly spend limit.","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_2"}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::SpendLimit), not_retryable(Owner::Quota));
    case("anthropic 529 overloaded", p)
        .status(529)
        .json(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_3"}"#)
        .expect(Some(Owner::Server), Class::Overloaded, retry_backoff(ReplayBasis::NotProcessed));
    case("anthropic credit balance too low on 400", p)
        .status(400)
        .json(r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"req_4"}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::Billing), not_retryable(Owner::Quota));
    case("anthropic usage limits on 400", p)
        .status(400)
        .json(r#"{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC."}}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::SpendLimit), not_retryable(Owner::Quota));
    case("anthropic 402 billing_error", p)
        .status(402)
        .json(r#"{"type":"error","error":{"type":"billing_error","message":"Billing issue"}}"#)
        .expect(
            Some(Owner::Quota),
            Class::QuotaExhausted(QuotaKind::Billing),
            not_retryable(Owner::Quota),
        );
    case("anthropic 400 with x-should-retry: false", p)
        .status(400)
        .header("x-should-retry", "false")
        .json(r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}"#)
        .expect(Some(Owner::Request), Class::BadRequest, Expect::Stop(Stop::ServerSaidNo));
    case("anthropic 500 with x-should-retry: true", p)
        .status(500)
        .header("x-should-retry", "true")
        .json(r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#)
        .expect(
            Some(Owner::Server),
            Class::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
            retry_backoff(ReplayBasis::NotProcessed),
        );
    case("anthropic 413 from its edge", p)
        .status(413)
        .json(r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#)
        .expect(Some(Owner::Request), Class::RequestTooLarge, not_retryable(Owner::Request));
}

#[test]
fn gemini_and_azure() {
    let g = Profile::gemini();
    case("gemini per-day quota", g)
        .status(429)
        .json(GEMINI_PER_DAY)
        .expect(
            Some(Owner::Quota),
            Class::QuotaExhausted(QuotaKind::Period),
            not_retryable(Owner::Quota),
        );
    case("gemini per-minute limit waits its RetryInfo", g)
        .status(429)
        .json(GEMINI_PER_MINUTE)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(
                Duration::from_secs(37),
                DelaySource::Body,
                ReplayBasis::NotProcessed,
            ),
        );
    case("gemini 503 model overloaded", g)
        .status(503)
        .json(r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#)
        .expect(Some(Owner::Server), Class::Overloaded, retry_backoff(ReplayBasis::NotProcessed));
    case("gemini 400 enable billing", g)
        .status(400)
        .json(r#"{"error":{"code":400,"message":"Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.","status":"FAILED_PRECONDITION"}}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::Billing), not_retryable(Owner::Quota));

    let a = Profile::azure_openai();
    case("azure token rate limit", a)
        .status(429)
        .header("retry-after", "6")
        .header("apim-request-id", "5b5c1b8e-3f6a-4c55-a0ad-6b8f0f6f2f1d")
        .json(r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(Duration::from_secs(6), DelaySource::RetryAfter, ReplayBasis::NotProcessed),
        );
    case("azure daily quota asks a day", a)
        .status(429)
        .header("retry-after", "86400")
        .json(r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 have exceeded call rate limit of your current AIServices S0 pricing tier. Please retry after 86400 seconds."}}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::Period), not_retryable(Owner::Quota));
    case("azure APIM quota 403", a)
        .status(403)
        .json(r#"{"statusCode":403,"message":"Out of call volume quota. Quota will be replenished in 2.12 days."}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::Period), not_retryable(Owner::Quota));
}

#[test]
fn aws_github_stripe() {
    let aws = Profile::aws();
    case("dynamodb throttling on 400", aws)
        .status(400)
        .header("x-amzn-requestid", "ABCDEF")
        .json(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#)
        .expect(Some(Owner::RateLimit), Class::RateLimited, retry_backoff(ReplayBasis::NotProcessed));
    case("bedrock throttling 429", aws)
        .status(429)
        .header(
            "x-amzn-errortype",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        )
        .json(r#"{"message":"Too many requests, please wait before trying again."}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            retry_backoff(ReplayBasis::NotProcessed),
        );
    case("bedrock x-amz-retry-after", aws)
        .status(429)
        .header("x-amz-retry-after", "2500")
        .header("x-amzn-errortype", "ThrottlingException")
        .json(r#"{"message":"Too many requests"}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(
                Duration::from_millis(2500),
                DelaySource::AmzRetryAfter,
                ReplayBasis::NotProcessed,
            ),
        );
    case("bedrock service quota", aws)
        .status(400)
        .header("x-amzn-errortype", "ServiceQuotaExceededException")
        .json(r#"{"message":"Your request exceeds the service quota for your account."}"#)
        .expect(
            Some(Owner::Quota),
            Class::QuotaExhausted(QuotaKind::Period),
            not_retryable(Owner::Quota),
        );
    case("aws access denied", aws)
        .status(403)
        .header("x-amzn-errortype", "AccessDeniedException")
        .json(r#"{"message":"You don't have access to the model with the specified model ID."}"#)
        .expect(
            Some(Owner::Permission),
            Class::Forbidden,
            not_retryable(Owner::Permission),
        );
    case("s3 503 slow down", aws)
        .status(503)
        .method(Method::PUT)
        .header("content-type", "application/xml")
        .body("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc</HostId></Error>")
        .expect(Some(Owner::RateLimit), Class::RateLimited, retry_backoff(ReplayBasis::NotProcessed));

    let gh = Profile::github();
    case("github primary limit on 403 waits for the reset", gh)
        .status(403)
        .method(Method::GET)
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", "1800000030")
        .json(r#"{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(Duration::from_secs(30), DelaySource::ResetHeader, ReplayBasis::NotProcessed),
        );
    case("github secondary limit", gh)
        .status(403)
        .header("retry-after", "60")
        .json(r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/free-pro-team@latest/rest/overview/resources-in-the-rest-api#secondary-rate-limits"}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(Duration::from_secs(60), DelaySource::RetryAfter, ReplayBasis::NotProcessed),
        );
    case("github 403 without rate signals is permission", gh)
        .status(403)
        .header("x-ratelimit-remaining", "4999")
        .json(r#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest"}"#)
        .expect(Some(Owner::Permission), Class::Forbidden, not_retryable(Owner::Permission));

    let st = Profile::stripe();
    case("stripe lock_timeout is a retryable conflict", st)
        .status(429)
        .json(r#"{"error":{"code":"lock_timeout","doc_url":"https://stripe.com/docs/error-codes/lock-timeout","message":"This object cannot be accessed right now because another API request or Stripe process is currently accessing it.","type":"invalid_request_error"}}"#)
        .expect(Some(Owner::Request), Class::Conflict, retry_backoff(ReplayBasis::NotProcessed));
    case("stripe 402 card decline is the request's", st)
        .status(402)
        .json(r#"{"error":{"code":"card_declined","decline_code":"insufficient_funds","doc_url":"https://stripe.com/docs/error-codes/card-declined","message":"Your card has insufficient funds.","type":"card_error"}}"#)
        .expect(
            Some(Owner::Request),
            Class::ClientError(StatusCode::PAYMENT_REQUIRED),
            not_retryable(Owner::Request),
        );
    case(
        "stripe 500 POST without an idempotency key is not replayed",
        st,
    )
    .status(500)
    .header("request-id", "req_stripe")
    .json(r#"{"error":{"message":"An unknown error occurred","type":"api_error"}}"#)
    .expect(
        Some(Owner::Server),
        Class::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
        Expect::Stop(Stop::NotReplaySafe(Replay::Ambiguous)),
    );
    case("stripe 500 POST with an idempotency key is replayed", st)
        .status(500)
        .header("idempotency-key", "order-42")
        .json(r#"{"error":{"message":"An unknown error occurred","type":"api_error"}}"#)
        .expect(
            Some(Owner::Server),
            Class::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
            retry_backoff(ReplayBasis::IdempotencyKey),
        );
    case("stripe should-retry false on 500", st)
        .status(500)
        .header("stripe-should-retry", "false")
        .json(r#"{"error":{"message":"An unknown error occurred","type":"api_error"}}"#)
        .expect(
            Some(Owner::Server),
            Class::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
            Expect::Stop(Stop::ServerSaidNo),
        );
    case("stripe legacy rate_limit on 400", st)
        .status(400)
        .json(r#"{"error":{"code":"rate_limit","message":"Too many requests hit the API too quickly.","type":"invalid_request_error","doc_url":"https://stripe.com/docs/error-codes/rate-limit"}}"#)
        .expect(Some(Owner::RateLimit), Class::RateLimited, retry_backoff(ReplayBasis::NotProcessed));
}

#[test]
fn gateways() {
    let g = Profile::generic();
    let d = case("envoy connect failure is the route's, never reached", g)
        .status(503)
        .header("server", "envoy")
        .header("content-type", "text/plain")
        .body("upstream connect error or disconnect/reset before headers. reset reason: connection failure")
        .expect(Some(Owner::Route), Class::Gateway(GatewayFault::UpstreamUnreachable), retry_backoff(ReplayBasis::NotProcessed));
    assert_eq!(d.gateway(), Some(Gateway::Envoy));
    let d = case("envoy's own rate limit", g)
        .status(429)
        .header("server", "envoy")
        .header("x-envoy-ratelimited", "true")
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            retry_backoff(ReplayBasis::NotProcessed),
        );
    assert_eq!(d.gateway(), Some(Gateway::Envoy));
    case("envoy upstream timeout on GET", g)
        .status(504)
        .method(Method::GET)
        .header("server", "envoy")
        .body("upstream request timeout")
        .expect(
            Some(Owner::Route),
            Class::Gateway(GatewayFault::UpstreamTimeout),
            retry_backoff(ReplayBasis::IdempotentMethod),
        );
    case("nginx 502 page on GET", g)
        .status(502)
        .method(Method::GET)
        .header("server", "nginx/1.24.0")
        .header("content-type", "text/html")
        .body(NGINX_502)
        .expect(
            Some(Owner::Route),
            Class::Gateway(GatewayFault::Unavailable),
            retry_backoff(ReplayBasis::IdempotentMethod),
        );
    case("nginx 502 page on POST is not replayed", g)
        .status(502)
        .header("server", "nginx")
        .header("content-type", "text/html")
        .body(NGINX_502)
        .expect(
            Some(Owner::Route),
            Class::Gateway(GatewayFault::Unavailable),
            Expect::Stop(Stop::NotReplaySafe(Replay::Ambiguous)),
        );
    case(
        "origin 500 through nginx keeps its request id: the server's",
        g,
    )
    .status(500)
    .header("server", "nginx")
    .header("x-request-id", "origin-7")
    .json(r#"{"error":{"message":"database unavailable","type":"server_error"}}"#)
    .expect(
        Some(Owner::Server),
        Class::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
        Expect::Stop(Stop::NotReplaySafe(Replay::Ambiguous)),
    );
    case("cloudflare 522", g)
        .status(522)
        .header("server", "cloudflare")
        .header("cf-ray", "8c135d3eeec4a97a-SYD")
        .header("content-type", "text/html")
        .body("<!DOCTYPE html><html><head><title>example.com | 522: Connection timed out</title></head><body>Ray ID: 8c135d3eeec4a97a</body></html>")
        .expect(Some(Owner::Route), Class::Gateway(GatewayFault::UpstreamUnreachable), retry_backoff(ReplayBasis::NotProcessed));
    case("cloudflare 526 invalid origin certificate", g)
        .status(526)
        .header("server", "cloudflare")
        .header("cf-ray", "8c135d3eeec4a97a-SYD")
        .body("<html><head><title>example.com | 526: Invalid SSL certificate</title></head></html>")
        .expect(
            Some(Owner::Route),
            Class::Gateway(GatewayFault::OriginTls),
            not_retryable(Owner::Route),
        );
    let d = case("kong's own rate limit", g)
        .status(429)
        .header("x-kong-response-latency", "0")
        .header("server", "kong/3.4.0")
        .json(r#"{"message":"API rate limit exceeded"}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            retry_backoff(ReplayBasis::NotProcessed),
        );
    assert_eq!(d.gateway(), Some(Gateway::Kong));
    case("problem+json quota exceeded", g)
        .status(429)
        .header("content-type", "application/problem+json")
        .body(r#"{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Request cannot be satisfied as assigned quota has been exceeded","violated-policies":["daily"]}"#)
        .expect(Some(Owner::Quota), Class::QuotaExhausted(QuotaKind::Period), not_retryable(Owner::Quota));
    case("generic 409 is retryable contention", g)
        .status(409)
        .expect(
            Some(Owner::Request),
            Class::Conflict,
            retry_backoff(ReplayBasis::NotProcessed),
        );
    case("generic 408 POST is retried", g).status(408).expect(
        Some(Owner::Request),
        Class::RequestTimeout,
        retry_backoff(ReplayBasis::NotProcessed),
    );
    case("generic 200", g)
        .status(200)
        .expect(None, Class::Success, Expect::Stop(Stop::Success));
}

#[test]
fn connection_path() {
    let g = Profile::generic();
    let transport = |stage, fault| Class::Transport(TransportFailure::new(stage, fault));
    case("dns name not found is never retried", g)
        .transport(Stage::Dns, Fault::NameNotFound)
        .expect(
            Some(Owner::ConnectionPath),
            transport(Stage::Dns, Fault::NameNotFound),
            not_retryable(Owner::ConnectionPath),
        );
    case("tls unknown CA is never retried", g)
        .transport(
            Stage::Tls,
            Fault::Certificate(CertificateProblem::UnknownIssuer),
        )
        .expect(
            Some(Owner::ConnectionPath),
            transport(
                Stage::Tls,
                Fault::Certificate(CertificateProblem::UnknownIssuer),
            ),
            not_retryable(Owner::ConnectionPath),
        );
    case("proxy 407 is never retried", g)
        .transport(Stage::Proxy, Fault::ProxyAuthRequired)
        .expect(
            Some(Owner::ConnectionPath),
            transport(Stage::Proxy, Fault::ProxyAuthRequired),
            not_retryable(Owner::ConnectionPath),
        );
    case("refused connect POST is retried: nothing was sent", g)
        .transport(Stage::Connect, Fault::Refused)
        .expect(
            Some(Owner::ConnectionPath),
            transport(Stage::Connect, Fault::Refused),
            retry_backoff(ReplayBasis::NotProcessed),
        );
    case("reset before headers on a generic POST is not replayed", g)
        .transport(Stage::AwaitHeaders, Fault::Reset)
        .expect(
            Some(Owner::ConnectionPath),
            transport(Stage::AwaitHeaders, Fault::Reset),
            Expect::Stop(Stop::NotReplaySafe(Replay::Ambiguous)),
        );
    case(
        "reset before headers on an OpenAI POST is replayed",
        Profile::openai(),
    )
    .transport(Stage::AwaitHeaders, Fault::Reset)
    .expect(
        Some(Owner::ConnectionPath),
        transport(Stage::AwaitHeaders, Fault::Reset),
        retry_backoff(ReplayBasis::Profile),
    );
    case("headers timeout on GET", g)
        .method(Method::GET)
        .transport(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers))
        .expect(
            Some(Owner::ConnectionPath),
            transport(Stage::AwaitHeaders, Fault::Timeout(TimeoutPhase::Headers)),
            retry_backoff(ReplayBasis::IdempotentMethod),
        );
    case(
        "body reset after a 200 on a Stripe POST: it was processed",
        Profile::stripe(),
    )
    .status(200)
    .transport(Stage::Body, Fault::Reset)
    .expect(
        Some(Owner::ConnectionPath),
        transport(Stage::Body, Fault::Reset),
        Expect::Stop(Stop::NotReplaySafe(Replay::Processed)),
    );
    case("cancelled by the caller", g)
        .transport(Stage::AwaitHeaders, Fault::Cancelled)
        .expect(
            Some(Owner::Caller),
            Class::Cancelled,
            not_retryable(Owner::Caller),
        );
}

/// Issue 18: explicit timing wins over a marker. An answer whose own
/// headers reopen its window within the cap is a rate window, whatever its
/// code or problem type says; without timing (or with a wait of a day) the
/// marker stands.
#[test]
fn explicit_timing_wins_over_a_quota_marker() {
    let openai = Profile::openai();
    let g = Profile::generic();
    case("insufficient_quota with Retry-After: 20", openai)
        .status(429)
        .header("retry-after", "20")
        .json(OPENAI_QUOTA)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(
                Duration::from_secs(20),
                DelaySource::RetryAfter,
                ReplayBasis::NotProcessed,
            ),
        );
    case(
        "insufficient_quota with an exhausted window's reset",
        openai,
    )
    .status(429)
    .header("x-ratelimit-remaining-requests", "0")
    .header("x-ratelimit-reset-requests", "1.5s")
    .json(OPENAI_QUOTA)
    .expect(
        Some(Owner::RateLimit),
        Class::RateLimited,
        Expect::Retry(
            Duration::from_millis(1500),
            DelaySource::ResetHeader,
            ReplayBasis::NotProcessed,
        ),
    );
    case("a quota problem type with retry-after-ms", g)
        .status(429)
        .header("retry-after-ms", "800")
        .header("content-type", "application/problem+json")
        .body(r#"{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Quota exceeded"}"#)
        .expect(
            Some(Owner::RateLimit),
            Class::RateLimited,
            Expect::Retry(
                Duration::from_millis(800),
                DelaySource::RetryAfterMs,
                ReplayBasis::NotProcessed,
            ),
        );
    // No timing: the marker stands.
    case("insufficient_quota alone", openai)
        .status(429)
        .json(OPENAI_QUOTA)
        .expect(
            Some(Owner::Quota),
            Class::QuotaExhausted(QuotaKind::Billing),
            not_retryable(Owner::Quota),
        );
    // A window that reports no exhaustion gives no timing.
    case("insufficient_quota with a window not used up", openai)
        .status(429)
        .header("x-ratelimit-remaining-requests", "4")
        .header("x-ratelimit-reset-requests", "1.5s")
        .json(OPENAI_QUOTA)
        .expect(
            Some(Owner::Quota),
            Class::QuotaExhausted(QuotaKind::Billing),
            not_retryable(Owner::Quota),
        );
    // A wait past the cap is no window that reopens soon.
    case("insufficient_quota with Retry-After: 3600", openai)
        .status(429)
        .header("retry-after", "3600")
        .json(OPENAI_QUOTA)
        .expect(
            Some(Owner::Quota),
            Class::QuotaExhausted(QuotaKind::Billing),
            not_retryable(Owner::Quota),
        );
}
