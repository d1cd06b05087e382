//! `triage probe URL`: the same-path test, printed for people or as JSON.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tower_triage::core::{Profile, redact};
use tower_triage::probe::{ProbeOptions, probe};

/// The probe's arguments, checked.
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// The URL to test.
    url: String,
    /// The request method.
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// A request header, `Name: value` (repeatable). Never printed.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// The request body, or `@FILE` to read it from a file.
    #[arg(long)]
    data: Option<String>,
    /// The provider profile (openai, azure-openai, anthropic, gemini, aws, github, stripe, generic).
    #[arg(long)]
    profile: Option<String>,
    /// `HOST:PORT:ADDR`: use ADDR for HOST:PORT, like curl (repeatable).
    #[arg(long)]
    resolve: Vec<String>,
    /// Trust the certificates in this PEM file instead of the system's roots.
    #[arg(long)]
    cacert: Option<String>,
    /// Go through this HTTP proxy (default: `HTTPS_PROXY` or `HTTP_PROXY`, unless `NO_PROXY` matches).
    #[arg(long)]
    proxy: Option<String>,
    /// Seconds allowed for each connection stage.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Seconds allowed for each attempt's response head.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Retries of the request.
    #[arg(long, default_value_t = 2)]
    max_retries: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Bad usage, with a one-line message.
pub(crate) struct Usage(pub(crate) String);

fn seconds(value: f64, what: &str) -> Result<Duration, Usage> {
    if value.is_finite() && value > 0.0 && value <= 3600.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Usage(format!(
            "{what} must be a number of seconds between 0 and 3600"
        )))
    }
}

fn proxy_from_env(url: &Uri) -> Option<String> {
    let var = |name: &str| {
        std::env::var(name)
            .or_else(|_| std::env::var(name.to_ascii_lowercase()))
            .ok()
    };
    let host = url.host().unwrap_or("");
    if let Some(no_proxy) = var("NO_PROXY") {
        let skip = no_proxy.split(',').map(str::trim).any(|entry| {
            entry == "*"
                || (!entry.is_empty()
                    && (host == entry.trim_start_matches('.')
                        || host.ends_with(&format!(".{}", entry.trim_start_matches('.')))))
        });
        if skip {
            return None;
        }
    }
    if url.scheme_str() == Some("https") {
        var("HTTPS_PROXY")
    } else {
        var("HTTP_PROXY")
    }
    .filter(|p| !p.is_empty())
}

/// Builds the options from the arguments; bad input is a [`Usage`].
pub(crate) fn options(args: &ProbeArgs) -> Result<(Uri, ProbeOptions), Usage> {
    let url: Uri = args
        .url
        .parse()
        .map_err(|_| Usage(format!("not a URL: {}", redact::url_str(&args.url))))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(Usage(
            "the URL must be http:// or https:// with a host".into(),
        ));
    }
    let method = Method::from_bytes(args.method.as_bytes())
        .map_err(|_| Usage(format!("not a method: {}", args.method)))?;
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| Usage("a header must be `Name: value`".into()))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| Usage("invalid header name".into()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| Usage(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    let body = match &args.data {
        None => Bytes::new(),
        Some(d) => match d.strip_prefix('@') {
            Some(file) => Bytes::from(
                std::fs::read(file).map_err(|e| Usage(format!("cannot read {file}: {e}")))?,
            ),
            None => Bytes::from(d.clone()),
        },
    };
    let mut options = ProbeOptions::new()
        .method(method)
        .headers(headers)
        .body(body)
        .connect_timeout(seconds(args.connect_timeout, "--connect-timeout")?)
        .timeout(seconds(args.timeout, "--timeout")?)
        .max_retries(args.max_retries.min(10));
    if let Some(name) = &args.profile {
        let profile =
            Profile::by_name(name).ok_or_else(|| Usage(format!("unknown profile {name}")))?;
        options = options.profile(Some(profile.clone()));
    }
    for r in &args.resolve {
        let mut parts = r.splitn(3, ':');
        let (Some(host), Some(port), Some(addr)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Usage("--resolve takes HOST:PORT:ADDR".into()));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| Usage("--resolve: invalid port".into()))?;
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| Usage("--resolve: invalid address".into()))?;
        options = options.resolve(host, port, addr);
    }
    if let Some(file) = &args.cacert {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| Usage(format!("cannot read {file}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| Usage(format!("{file}: {e}")))?;
            roots.add(cert).map_err(|e| Usage(format!("{file}: {e}")))?;
        }
        options = options.roots(roots);
    }
    let proxy = args.proxy.clone().or_else(|| proxy_from_env(&url));
    if let Some(p) = proxy {
        let p: Uri = p
            .parse()
            .map_err(|_| Usage("--proxy is not a URL".into()))?;
        options = options.proxy(Some(p));
    }
    Ok((url, options))
}

/// Runs the probe; the text to print and whether it succeeded.
pub(crate) async fn run(args: &ProbeArgs) -> Result<(String, bool), Usage> {
    let (url, options) = options(args)?;
    let report = probe(url, options).await;
    let ok = report.ok();
    let text = if args.json {
        format!("{}\n", report.to_json())
    } else {
        redact::text(&report.to_string()).into_owned()
    };
    Ok((text, ok))
}
