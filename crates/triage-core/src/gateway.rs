//! Gateway fingerprints: was this error made by a proxy, load balancer or CDN
//! in front of the API, and what does it say about the upstream?
//!
//! Edge headers alone never prove that a gateway made an error: OpenAI and
//! Anthropic answer every request through Cloudflare (`server: cloudflare`,
//! `cf-ray`), and Anthropic's successes carry `x-envoy-upstream-service-time`.
//! A response counts as *generated* by a gateway only with evidence of its
//! own: its error-page template, a local-reply text, headers only its local
//! replies carry (`x-envoy-ratelimited`, `X-Kong-Response-Latency`,
//! `l5d-proxy-error`), an Envoy error without `x-envoy-upstream-service-time`,
//! or Cloudflare's own 52x codes.
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use triage_core::gateway::{Fingerprint, Gateway, GatewayFault, Upstream};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("server", HeaderValue::from_static("envoy"));
//! let body = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure";
//! let fp = Fingerprint::detect(StatusCode::SERVICE_UNAVAILABLE, &headers, body).unwrap();
//! assert_eq!(fp.gateway(), Gateway::Envoy);
//! assert!(fp.generated());
//! assert_eq!(fp.fault(), Some(GatewayFault::UpstreamUnreachable));
//! assert_eq!(fp.fault().unwrap().upstream(), Upstream::NotReached);
//!
//! // An OpenAI error through Cloudflare is the origin's, not Cloudflare's.
//! let mut headers = HeaderMap::new();
//! headers.insert("server", HeaderValue::from_static("cloudflare"));
//! headers.insert("cf-ray", HeaderValue::from_static("8c135d3eeec4a97a-SYD"));
//! let fp = Fingerprint::detect(StatusCode::TOO_MANY_REQUESTS, &headers, br#"{"error":{"type":"requests"}}"#).unwrap();
//! assert_eq!(fp.gateway(), Gateway::Cloudflare);
//! assert!(!fp.generated());
//! ```

use std::fmt;

use http::{HeaderMap, StatusCode};

/// At most this much of the body is searched.
const MAX_BODY: usize = 16 * 1024;

/// A gateway, proxy or CDN.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gateway {
    /// nginx.
    Nginx,
    /// Envoy (and Istio).
    Envoy,
    /// Cloudflare.
    Cloudflare,
    /// Kong.
    Kong,
    /// AWS Application Load Balancer.
    AwsAlb,
    /// Amazon CloudFront.
    CloudFront,
    /// Amazon API Gateway.
    AwsApiGateway,
    /// Azure Front Door.
    AzureFrontDoor,
    /// Azure API Management.
    AzureApim,
    /// Fastly (Varnish).
    Fastly,
    /// Akamai.
    Akamai,
    /// Linkerd's proxy.
    Linkerd,
}

impl Gateway {
    /// A stable, lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Gateway::Nginx => "nginx",
            Gateway::Envoy => "envoy",
            Gateway::Cloudflare => "cloudflare",
            Gateway::Kong => "kong",
            Gateway::AwsAlb => "aws-alb",
            Gateway::CloudFront => "cloudfront",
            Gateway::AwsApiGateway => "aws-api-gateway",
            Gateway::AzureFrontDoor => "azure-front-door",
            Gateway::AzureApim => "azure-apim",
            Gateway::Fastly => "fastly",
            Gateway::Akamai => "akamai",
            Gateway::Linkerd => "linkerd",
        }
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a gateway's own error says happened.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayFault {
    /// The gateway could not reach the upstream at all.
    UpstreamUnreachable,
    /// The upstream was reached but did not answer in time.
    UpstreamTimeout,
    /// The connection to the upstream broke after the request was sent.
    UpstreamReset,
    /// The upstream answered with something invalid.
    BadUpstreamResponse,
    /// The gateway shed load.
    Overloaded,
    /// The gateway's own rate limit.
    RateLimited,
    /// The gateway's own quota for this client.
    QuotaExceeded,
    /// The CDN could not resolve the origin (Cloudflare 530).
    OriginDns,
    /// The CDN could not make TLS to the origin (Cloudflare 525, 526).
    OriginTls,
    /// A firewall or access rule refused the request.
    AccessDenied,
    /// The gateway has no route for the request.
    RouteNotFound,
    /// A gateway error page with no finer detail.
    Unavailable,
}

impl GatewayFault {
    /// A stable, lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            GatewayFault::UpstreamUnreachable => "upstream_unreachable",
            GatewayFault::UpstreamTimeout => "upstream_timeout",
            GatewayFault::UpstreamReset => "upstream_reset",
            GatewayFault::BadUpstreamResponse => "bad_upstream_response",
            GatewayFault::Overloaded => "overloaded",
            GatewayFault::RateLimited => "rate_limited",
            GatewayFault::QuotaExceeded => "quota_exceeded",
            GatewayFault::OriginDns => "origin_dns",
            GatewayFault::OriginTls => "origin_tls",
            GatewayFault::AccessDenied => "access_denied",
            GatewayFault::RouteNotFound => "route_not_found",
            GatewayFault::Unavailable => "unavailable",
        }
    }

    /// Whether the upstream can have seen the request.
    pub const fn upstream(self) -> Upstream {
        match self {
            GatewayFault::UpstreamUnreachable
            | GatewayFault::Overloaded
            | GatewayFault::RateLimited
            | GatewayFault::QuotaExceeded
            | GatewayFault::OriginDns
            | GatewayFault::OriginTls
            | GatewayFault::AccessDenied
            | GatewayFault::RouteNotFound => Upstream::NotReached,
            GatewayFault::UpstreamTimeout
            | GatewayFault::UpstreamReset
            | GatewayFault::BadUpstreamResponse => Upstream::MaybeReached,
            GatewayFault::Unavailable => Upstream::Unknown,
        }
    }
}

/// Whether the upstream saw the request, as far as the gateway's error says.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// The request never reached the upstream.
    NotReached,
    /// It may have reached it.
    MaybeReached,
    /// The error does not say.
    Unknown,
}

/// A gateway seen on a response; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    gateway: Gateway,
    fault: Option<GatewayFault>,
}

impl Fingerprint {
    /// Looks at a response for a gateway. `body` is the first bytes of the
    /// body the caller read (at most 16 KiB are searched; may be empty).
    /// `None` when nothing points at a gateway.
    pub fn detect(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Fingerprint> {
        let body = &body[..body.len().min(MAX_BODY)];
        // Error pages and local replies are text or HTML; a JSON body is
        // only searched by the JSON-speaking gateways (Kong, APIM, API Gateway).
        let page = if body.trim_ascii_start().starts_with(b"{") {
            &[][..]
        } else {
            body
        };
        let seen = Seen {
            status,
            headers,
            body,
            page,
        };
        let visible = seen.visible_gateway();
        if status.as_u16() < 400 {
            return visible.map(|gateway| Fingerprint {
                gateway,
                fault: None,
            });
        }
        if let Some((gateway, fault)) = seen.generated() {
            return Some(Fingerprint {
                gateway,
                fault: Some(fault),
            });
        }
        visible.map(|gateway| Fingerprint {
            gateway,
            fault: None,
        })
    }

    /// The gateway.
    pub const fn gateway(&self) -> Gateway {
        self.gateway
    }

    /// Whether the evidence shows the gateway itself made this response.
    pub const fn generated(&self) -> bool {
        self.fault.is_some()
    }

    /// What the gateway's own error says, when it made the response.
    pub const fn fault(&self) -> Option<GatewayFault> {
        self.fault
    }
}

struct Seen<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
    body: &'a [u8],
    page: &'a [u8],
}

impl Seen<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(|v| v.as_bytes())
    }

    fn has(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    fn header_has(&self, name: &str, needle: &str) -> bool {
        self.headers
            .get_all(name)
            .iter()
            .any(|v| contains(v.as_bytes(), needle.as_bytes()))
    }

    fn server_starts(&self, prefix: &str) -> bool {
        self.header("server").is_some_and(|v| {
            v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        })
    }

    fn body_has(&self, needle: &str) -> bool {
        contains(self.body, needle.as_bytes())
    }

    /// Searches a text or HTML body (never a JSON one).
    fn page_has(&self, needle: &str) -> bool {
        contains(self.page, needle.as_bytes())
    }

    fn code(&self) -> u16 {
        self.status.as_u16()
    }

    /// The gateway the headers (or an unmistakable body) point at.
    fn visible_gateway(&self) -> Option<Gateway> {
        if self.has("l5d-proxy-error") {
            Some(Gateway::Linkerd)
        } else if self.has("x-kong-response-latency")
            || self.has("x-kong-upstream-latency")
            || self.server_starts("kong")
            || self.header_has("via", "kong/")
        {
            Some(Gateway::Kong)
        } else if self.server_starts("envoy")
            || self.server_starts("istio-envoy")
            || self.has("x-envoy-ratelimited")
            || self.has("x-envoy-overloaded")
        {
            Some(Gateway::Envoy)
        } else if self.server_starts("cloudflare") || self.has("cf-ray") {
            Some(Gateway::Cloudflare)
        } else if self.header_has("via", "cloudfront") || self.has("x-amz-cf-id") {
            Some(Gateway::CloudFront)
        } else if self.has("x-amz-apigw-id") {
            Some(Gateway::AwsApiGateway)
        } else if self.server_starts("awselb") {
            Some(Gateway::AwsAlb)
        } else if self.server_starts("akamaighost") || self.has("x-reference-error") {
            Some(Gateway::Akamai)
        } else if self.has("x-served-by")
            && (self.header_has("via", "varnish") || self.has("x-timer"))
        {
            Some(Gateway::Fastly)
        } else if self.has("x-azure-ref") {
            Some(Gateway::AzureFrontDoor)
        } else if self.server_starts("nginx") || self.page_has("<hr><center>nginx") {
            Some(Gateway::Nginx)
        } else if self.has("x-envoy-upstream-service-time") {
            Some(Gateway::Envoy)
        } else if self.apim_body() {
            Some(Gateway::AzureApim)
        } else {
            None
        }
    }

    fn apim_body(&self) -> bool {
        let trimmed = self.body.trim_ascii_start();
        trimmed.starts_with(b"{") && contains(&trimmed[..trimmed.len().min(32)], b"\"statusCode\"")
    }

    /// The gateway that made this error response and what it says, if the
    /// evidence shows one did.
    fn generated(&self) -> Option<(Gateway, GatewayFault)> {
        let code = self.code();
        if self.has("l5d-proxy-error") {
            let fault = match code {
                504 => GatewayFault::UpstreamTimeout,
                429 => GatewayFault::RateLimited,
                _ => GatewayFault::Unavailable,
            };
            return Some((Gateway::Linkerd, fault));
        }
        if let Some(fault) = self.envoy() {
            return Some((Gateway::Envoy, fault));
        }
        if let Some(fault) = self.cloudflare() {
            return Some((Gateway::Cloudflare, fault));
        }
        if self.has("x-kong-response-latency") {
            return self.kong().map(|f| (Gateway::Kong, f));
        }
        if self.apim_body() {
            let fault = match code {
                429 => GatewayFault::RateLimited,
                403 if self.body_has("quota") => GatewayFault::QuotaExceeded,
                _ => return None,
            };
            return Some((Gateway::AzureApim, fault));
        }
        if self.has("x-amzn-waf-action") {
            let gateway = if self.visible_gateway() == Some(Gateway::CloudFront) {
                Gateway::CloudFront
            } else {
                Gateway::AwsAlb
            };
            return Some((gateway, GatewayFault::AccessDenied));
        }
        if self.has("x-amz-apigw-id") || self.has("x-amzn-errortype") {
            if let Some(fault) = self.api_gateway() {
                return Some((Gateway::AwsApiGateway, fault));
            }
        }
        if self.page_has("generated by cloudfront")
            || self.header_has("x-cache", "error from cloudfront")
                && self.page_has("could not be satisfied")
        {
            let fault = match code {
                403 => GatewayFault::AccessDenied,
                504 => GatewayFault::UpstreamTimeout,
                _ => GatewayFault::Unavailable,
            };
            return Some((Gateway::CloudFront, fault));
        }
        if self.page_has("guru mediation") || self.page_has("varnish cache server") {
            let fault = if self.page_has("first byte timeout") {
                GatewayFault::UpstreamTimeout
            } else if self.page_has("backends failed") || self.page_has("backend is unhealthy") {
                GatewayFault::UpstreamUnreachable
            } else if self.page_has("backend read error") {
                GatewayFault::UpstreamReset
            } else {
                GatewayFault::Unavailable
            };
            return Some((Gateway::Fastly, fault));
        }
        if self.page_has("reference #")
            && (self.page_has("access denied") || self.visible_gateway() == Some(Gateway::Akamai))
        {
            let fault = if self.page_has("access denied") {
                GatewayFault::AccessDenied
            } else {
                GatewayFault::Unavailable
            };
            return Some((Gateway::Akamai, fault));
        }
        if self.has("x-azure-ref") && self.page_has("our services aren't available right now") {
            return Some((Gateway::AzureFrontDoor, GatewayFault::Unavailable));
        }
        let html = self.page_has("<html") && self.page_has("<title>");
        if html && self.page_has("<hr><center>nginx") {
            return status_page_fault(code).map(|f| (Gateway::Nginx, f));
        }
        if html && self.server_starts("awselb") {
            let fault = match code {
                503 => GatewayFault::UpstreamUnreachable,
                504 => GatewayFault::UpstreamTimeout,
                other => status_page_fault(other)?,
            };
            return Some((Gateway::AwsAlb, fault));
        }
        if html && self.server_starts("nginx") && self.body.len() < 1024 {
            // A bare nginx page whose footer was customised away.
            let title = format_title(code);
            if title.is_some_and(|t| self.page_has(t)) {
                return status_page_fault(code).map(|f| (Gateway::Nginx, f));
            }
        }
        None
    }

    fn envoy(&self) -> Option<GatewayFault> {
        if self.header("x-envoy-ratelimited").is_some() || self.page_has("local_rate_limited") {
            return Some(GatewayFault::RateLimited);
        }
        if self.header_has("x-envoy-overloaded", "true") || self.page_has("envoy overloaded") {
            return Some(GatewayFault::Overloaded);
        }
        if self.page_has("upstream connect error or disconnect/reset before headers") {
            return Some(if self.page_has("reset reason: connection failure") {
                GatewayFault::UpstreamUnreachable
            } else if self.page_has("reset reason: overflow") {
                GatewayFault::Overloaded
            } else if self.page_has("protocol error") {
                GatewayFault::BadUpstreamResponse
            } else {
                GatewayFault::UpstreamReset
            });
        }
        if self.page_has("no healthy upstream") {
            return Some(GatewayFault::UpstreamUnreachable);
        }
        if self.page_has("upstream request timeout") {
            return Some(GatewayFault::UpstreamTimeout);
        }
        let is_envoy = self.server_starts("envoy") || self.server_starts("istio-envoy");
        if is_envoy && !self.has("x-envoy-upstream-service-time") && self.code() >= 500 {
            // No upstream headers were received: Envoy answered by itself.
            return Some(match self.code() {
                504 => GatewayFault::UpstreamTimeout,
                _ => GatewayFault::Unavailable,
            });
        }
        None
    }

    fn cloudflare(&self) -> Option<GatewayFault> {
        let fault = match self.code() {
            520 => GatewayFault::UpstreamReset,
            521..=523 => GatewayFault::UpstreamUnreachable,
            524 => GatewayFault::UpstreamTimeout,
            525 | 526 => GatewayFault::OriginTls,
            530 => GatewayFault::OriginDns,
            code if self.visible_gateway() == Some(Gateway::Cloudflare)
                && (self.page_has("cf-error-details")
                    || (self.page_has("ray id") && self.page_has("cloudflare"))) =>
            {
                match code {
                    403 => GatewayFault::AccessDenied,
                    429 => GatewayFault::RateLimited,
                    _ => GatewayFault::Unavailable,
                }
            }
            _ => return None,
        };
        Some(fault)
    }

    fn kong(&self) -> Option<GatewayFault> {
        let fault = if self.body_has("api rate limit exceeded") {
            GatewayFault::RateLimited
        } else if self.body_has("no route matched") {
            GatewayFault::RouteNotFound
        } else if self.body_has("upstream server is currently unavailable")
            || self.body_has("failure to get a peer")
        {
            GatewayFault::UpstreamUnreachable
        } else if self.body_has("upstream server is timing out") {
            GatewayFault::UpstreamTimeout
        } else if self.body_has("invalid response was received from the upstream") {
            GatewayFault::BadUpstreamResponse
        } else {
            match self.code() {
                429 => GatewayFault::RateLimited,
                504 => GatewayFault::UpstreamTimeout,
                500..=599 => GatewayFault::Unavailable,
                _ => return None,
            }
        };
        Some(fault)
    }

    fn api_gateway(&self) -> Option<GatewayFault> {
        let message = |m: &str| {
            contains(self.body, format!("\"message\":\"{m}\"").as_bytes())
                || contains(self.body, format!("\"message\": \"{m}\"").as_bytes())
        };
        if message("Too Many Requests") {
            Some(GatewayFault::RateLimited)
        } else if message("Limit Exceeded") {
            Some(GatewayFault::QuotaExceeded)
        } else if message("Endpoint request timed out") {
            Some(GatewayFault::UpstreamTimeout)
        } else if message("Missing Authentication Token") {
            Some(GatewayFault::RouteNotFound)
        } else {
            None
        }
    }
}

/// The fault an nginx-style status page means, for the statuses a gateway
/// makes on its own.
fn status_page_fault(code: u16) -> Option<GatewayFault> {
    match code {
        403 => Some(GatewayFault::AccessDenied),
        404 => Some(GatewayFault::RouteNotFound),
        429 => Some(GatewayFault::RateLimited),
        504 => Some(GatewayFault::UpstreamTimeout),
        500..=599 => Some(GatewayFault::Unavailable),
        _ => None,
    }
}

fn format_title(code: u16) -> Option<&'static str> {
    match code {
        502 => Some("<title>502 Bad Gateway</title>"),
        503 => Some("<title>503 Service Temporarily Unavailable</title>"),
        504 => Some("<title>504 Gateway Time-out</title>"),
        429 => Some("<title>429 Too Many Requests</title>"),
        _ => None,
    }
}

/// ASCII case-insensitive substring search.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let first = needle[0].to_ascii_lowercase();
    hay.windows(needle.len())
        .any(|w| w[0].to_ascii_lowercase() == first && w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    const NGINX_504: &str = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n";
    const NGINX_429: &str = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

    fn fp(
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &str,
    ) -> Option<Fingerprint> {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(*n, HeaderValue::from_static(v));
        }
        Fingerprint::detect(StatusCode::from_u16(status).unwrap(), &map, body.as_bytes())
    }

    fn made(gateway: Gateway, fault: GatewayFault) -> Option<Fingerprint> {
        Some(Fingerprint {
            gateway,
            fault: Some(fault),
        })
    }

    fn seen(gateway: Gateway) -> Option<Fingerprint> {
        Some(Fingerprint {
            gateway,
            fault: None,
        })
    }

    #[test]
    fn table() {
        use Gateway::*;
        use GatewayFault::*;
        let cf = [("server", "cloudflare"), ("cf-ray", "8c135d3eeec4a97a-SYD")];
        let cases: Vec<(&str, Option<Fingerprint>, Option<Fingerprint>)> = vec![
            (
                "nginx 502",
                fp(502, &[("server", "nginx")], NGINX_502),
                made(Nginx, Unavailable),
            ),
            (
                "nginx 502 without server header",
                fp(502, &[], NGINX_502),
                made(Nginx, Unavailable),
            ),
            (
                "nginx 504",
                fp(504, &[("server", "nginx/1.24.0")], NGINX_504),
                made(Nginx, UpstreamTimeout),
            ),
            (
                "nginx 429",
                fp(429, &[("server", "nginx")], NGINX_429),
                made(Nginx, RateLimited),
            ),
            (
                "nginx passes origin json",
                fp(500, &[("server", "nginx")], r#"{"error":"db"}"#),
                seen(Nginx),
            ),
            (
                "envoy connection failure",
                fp(
                    503,
                    &[("server", "envoy")],
                    "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                ),
                made(Envoy, UpstreamUnreachable),
            ),
            (
                "envoy connection termination",
                fp(
                    503,
                    &[("server", "envoy")],
                    "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection termination",
                ),
                made(Envoy, UpstreamReset),
            ),
            (
                "envoy overflow",
                fp(
                    503,
                    &[("server", "istio-envoy")],
                    "upstream connect error or disconnect/reset before headers. reset reason: overflow",
                ),
                made(Envoy, Overloaded),
            ),
            (
                "envoy timeout",
                fp(504, &[("server", "envoy")], "upstream request timeout"),
                made(Envoy, UpstreamTimeout),
            ),
            (
                "envoy no healthy",
                fp(503, &[], "no healthy upstream"),
                made(Envoy, UpstreamUnreachable),
            ),
            (
                "envoy overloaded",
                fp(503, &[("server", "envoy")], "envoy overloaded"),
                made(Envoy, Overloaded),
            ),
            (
                "envoy ratelimited",
                fp(429, &[("x-envoy-ratelimited", "true")], ""),
                made(Envoy, RateLimited),
            ),
            (
                "envoy passes origin 500",
                fp(
                    500,
                    &[("server", "envoy"), ("x-envoy-upstream-service-time", "12")],
                    r#"{"type":"error"}"#,
                ),
                seen(Envoy),
            ),
            (
                "openai 429 via cloudflare",
                fp(429, &cf, r#"{"error":{"code":"rate_limit_exceeded"}}"#),
                seen(Cloudflare),
            ),
            (
                "anthropic 500 with envoy time header",
                fp(
                    500,
                    &[
                        ("x-envoy-upstream-service-time", "40"),
                        ("via", "1.1 google"),
                    ],
                    r#"{"type":"error"}"#,
                ),
                seen(Envoy),
            ),
            (
                "cloudflare 520",
                fp(520, &cf, "<title>520</title>"),
                made(Cloudflare, UpstreamReset),
            ),
            (
                "cloudflare 521",
                fp(521, &cf, ""),
                made(Cloudflare, UpstreamUnreachable),
            ),
            (
                "cloudflare 522",
                fp(522, &cf, ""),
                made(Cloudflare, UpstreamUnreachable),
            ),
            (
                "cloudflare 523",
                fp(523, &cf, ""),
                made(Cloudflare, UpstreamUnreachable),
            ),
            (
                "cloudflare 524",
                fp(524, &cf, ""),
                made(Cloudflare, UpstreamTimeout),
            ),
            (
                "cloudflare 525",
                fp(525, &cf, ""),
                made(Cloudflare, OriginTls),
            ),
            (
                "cloudflare 526",
                fp(526, &cf, ""),
                made(Cloudflare, OriginTls),
            ),
            (
                "cloudflare 530",
                fp(530, &cf, "error code: 1016"),
                made(Cloudflare, OriginDns),
            ),
            (
                "cloudflare branded passthrough",
                fp(502, &cf, r#"{"error":"bad gateway"}"#),
                seen(Cloudflare),
            ),
            (
                "cloudflare waf",
                fp(
                    403,
                    &cf,
                    "<html><title>Attention Required! | Cloudflare</title><div id=\"cf-error-details\">Ray ID: 8c13</div></html>",
                ),
                made(Cloudflare, AccessDenied),
            ),
            (
                "kong rate limit",
                fp(
                    429,
                    &[("x-kong-response-latency", "0"), ("server", "kong/3.4.0")],
                    r#"{"message":"API rate limit exceeded"}"#,
                ),
                made(Kong, RateLimited),
            ),
            (
                "kong no route",
                fp(
                    404,
                    &[("x-kong-response-latency", "1")],
                    r#"{"message":"no Route matched with those values"}"#,
                ),
                made(Kong, RouteNotFound),
            ),
            (
                "kong proxied 503",
                fp(
                    503,
                    &[
                        ("x-kong-upstream-latency", "3"),
                        ("x-kong-proxy-latency", "1"),
                    ],
                    r#"{"error":"down"}"#,
                ),
                seen(Kong),
            ),
            (
                "alb 502",
                fp(
                    502,
                    &[("server", "awselb/2.0")],
                    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
                ),
                made(AwsAlb, Unavailable),
            ),
            (
                "cloudfront 403",
                fp(
                    403,
                    &[
                        ("via", "1.1 abc.cloudfront.net (CloudFront)"),
                        ("x-cache", "Error from cloudfront"),
                    ],
                    "<HTML><TITLE>ERROR: The request could not be satisfied</TITLE> Generated by cloudfront (CloudFront) Request ID: xyz",
                ),
                made(CloudFront, AccessDenied),
            ),
            (
                "cloudfront 504",
                fp(
                    504,
                    &[("x-amz-cf-id", "abc")],
                    "ERROR: The request could not be satisfied. Generated by cloudfront (CloudFront)",
                ),
                made(CloudFront, UpstreamTimeout),
            ),
            (
                "api gateway throttle",
                fp(
                    429,
                    &[
                        ("x-amzn-errortype", "TooManyRequestsException"),
                        ("x-amz-apigw-id", "abc="),
                    ],
                    r#"{"message":"Too Many Requests"}"#,
                ),
                made(AwsApiGateway, RateLimited),
            ),
            (
                "api gateway usage plan quota",
                fp(
                    429,
                    &[("x-amz-apigw-id", "abc=")],
                    r#"{"message":"Limit Exceeded"}"#,
                ),
                made(AwsApiGateway, QuotaExceeded),
            ),
            (
                "api gateway timeout",
                fp(
                    504,
                    &[("x-amz-apigw-id", "abc=")],
                    r#"{"message": "Endpoint request timed out"}"#,
                ),
                made(AwsApiGateway, UpstreamTimeout),
            ),
            (
                "apim 429",
                fp(
                    429,
                    &[],
                    r#"{"statusCode":429,"message":"Rate limit is exceeded. Try again in 26 seconds."}"#,
                ),
                made(AzureApim, RateLimited),
            ),
            (
                "apim quota",
                fp(
                    403,
                    &[],
                    r#"{"statusCode":403,"message":"Out of call volume quota. Quota will be replenished in 2.12 days."}"#,
                ),
                made(AzureApim, QuotaExceeded),
            ),
            (
                "fastly",
                fp(
                    503,
                    &[("x-served-by", "cache-den8225-DEN"), ("via", "1.1 varnish")],
                    "Error 503 first byte timeout\n\nGuru Mediation:\nDetails: cache-den8225-DEN 1700000000 123\nVarnish cache server",
                ),
                made(Fastly, UpstreamTimeout),
            ),
            (
                "akamai",
                fp(
                    403,
                    &[("server", "AkamaiGHost")],
                    "<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY>You don't have permission. Reference #18.c52a1602.1700000000.abc</BODY></HTML>",
                ),
                made(Akamai, AccessDenied),
            ),
            (
                "linkerd",
                fp(503, &[("l5d-proxy-error", "service in fail-fast")], ""),
                made(Linkerd, Unavailable),
            ),
            (
                "afd",
                fp(
                    503,
                    &[("x-azure-ref", "0abc")],
                    "<h2>Our services aren't available right now</h2>",
                ),
                made(AzureFrontDoor, Unavailable),
            ),
            (
                "plain 500",
                fp(
                    500,
                    &[("content-type", "application/json")],
                    r#"{"error":"x"}"#,
                ),
                None,
            ),
            (
                "200 through cloudflare",
                fp(200, &cf, "{}"),
                seen(Cloudflare),
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..2000), server in "\\PC{0,20}") {
            let mut map = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&server) {
                map.insert("server", v);
            }
            let status = StatusCode::from_u16(status).unwrap();
            let got = Fingerprint::detect(status, &map, &body);
            if status.as_u16() < 400 {
                prop_assert!(got.is_none_or(|f| !f.generated()));
            }
        }
    }
}
