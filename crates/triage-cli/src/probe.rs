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
    /// Provider profile: openai, azure-openai, anthropic, gemini, aws, github, stripe, generic.
    #[arg(long)]
    profile: Option<String>,
    /// `HOST:PORT:ADDR`: use ADDR for the URL's or the proxy's HOST:PORT (repeatable).
    #[arg(long)]
    resolve: Vec<String>,
    /// Trust the certificates in this PEM file instead of the system's roots.
    #[arg(long)]
    cacert: Option<String>,
    /// HTTP proxy (default: `HTTPS_PROXY` or `HTTP_PROXY`, unless `NO_PROXY` matches).
    #[arg(long)]
    proxy: Option<String>,
    /// Seconds allowed for each attempt's connection (DNS, TCP, proxy and TLS together).
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Seconds allowed for each attempt, its connection and a small body included.
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
    if value.is_finite() && (0.001..=3600.0).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Usage(format!(
            "{what} must be a number of seconds from 0.001 to 3600"
        )))
    }
}

/// Whether `uri` names a port that is no port (`:99999`): the `http`
/// crate keeps it in the authority but gives no number, and a client would
/// quietly use the scheme's default.
fn bad_port(uri: &Uri) -> bool {
    let Some(authority) = uri.authority() else {
        return false;
    };
    let text = authority.as_str();
    let host_end = text.rfind(']').map_or(0, |i| i + 1);
    let after_host = &text[host_end.max(text.rfind('@').map_or(0, |i| i + 1))..];
    match after_host.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() => port.parse::<u16>().is_err(),
        _ => false,
    }
}

/// The most `--data @FILE` reads.
const MAX_DATA: u64 = 16 * 1024 * 1024;

/// The most `--cacert FILE` reads.
const MAX_CACERT: u64 = 4 * 1024 * 1024;

/// The bytes of a regular file of at most `max` bytes (a device, a FIFO or
/// a directory is refused before it is opened for reading, so nothing
/// hangs or grows without bound).
fn read_file(file: &str, max: u64, what: &str) -> Result<Vec<u8>, Usage> {
    use std::io::Read;
    let shown = redact::printable(file, 200);
    let meta =
        std::fs::metadata(file).map_err(|e| Usage(format!("{what}: cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(Usage(format!("{what}: {shown} is not a regular file")));
    }
    if meta.len() > max {
        return Err(Usage(format!(
            "{what}: {shown} is larger than {} MiB",
            max / (1024 * 1024)
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| Usage(format!("{what}: cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(Usage(format!(
            "{what}: {shown} is larger than {} MiB",
            max / (1024 * 1024)
        )));
    }
    Ok(bytes)
}

/// `HOST:PORT:ADDR`, with the host or the address in brackets for IPv6
/// (`[::1]:443:[::1]`).
fn resolve_entry(entry: &str) -> Result<(String, u16, IpAddr), Usage> {
    let bad = || Usage("--resolve takes HOST:PORT:ADDR".into());
    let (host, rest) = match entry.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed.split_once(']').ok_or_else(bad)?;
            (host, rest.strip_prefix(':').ok_or_else(bad)?)
        }
        None => entry.split_once(':').ok_or_else(bad)?,
    };
    let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| Usage("--resolve: invalid port".into()))?;
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| Usage("--resolve: invalid address".into()))?;
    if host.parse::<IpAddr>().is_ok() {
        // hyper-util, like every client, connects to an address directly.
        return Err(Usage(format!(
            "--resolve: {} is an IP address, which is never looked up; give a host name",
            redact::printable(host, 64)
        )));
    }
    Ok((host.to_owned(), port, addr))
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
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none_or(str::is_empty) {
        return Err(Usage(
            "the URL must be http:// or https:// with a host".into(),
        ));
    }
    if bad_port(&url) {
        return Err(Usage("the URL's port must be a number up to 65535".into()));
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
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            // The body's length is the body's: a header that disagrees would
            // hang the request or drop the body.
            return Err(Usage(format!(
                "{name} is set from the body (--data); do not give it"
            )));
        }
        headers.append(name, value);
    }
    let body = match &args.data {
        None => Bytes::new(),
        Some(d) => match d.strip_prefix('@') {
            Some(file) => Bytes::from(read_file(file, MAX_DATA, "--data")?),
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
        let (host, port, addr) = resolve_entry(r)?;
        options = options.resolve(&host, port, addr);
    }
    if let Some(file) = &args.cacert {
        let pem = read_file(file, MAX_CACERT, "--cacert")?;
        let shown = redact::printable(file, 200);
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| Usage(format!("--cacert: {shown}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Usage(format!("--cacert: {shown}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Usage(format!("--cacert: {shown} holds no certificate")));
        }
        options = options.roots(roots);
    }
    let proxy = args.proxy.clone().or_else(|| proxy_from_env(&url));
    if let Some(p) = proxy {
        let p: Uri = p
            .parse()
            .map_err(|_| Usage("--proxy is not a URL".into()))?;
        if p.scheme_str() != Some("http") || p.host().is_none_or(str::is_empty) {
            return Err(Usage(
                "--proxy must be an http:// proxy URL with a host (socks, https and other proxies are not supported)".into(),
            ));
        }
        if bad_port(&p) {
            return Err(Usage(
                "--proxy: the port must be a number up to 65535".into(),
            ));
        }
        options = options.proxy(Some(p));
    }
    Ok((url, options))
}

/// Headers whose values are no secret and common enough that scrubbing
/// them by value would blot out ordinary output.
const PLAIN_HEADERS: &[&str] = &["content-type", "accept", "accept-encoding", "user-agent"];

/// Everything the probe sends that it must never print back, by exact
/// value: header values (and each word of them, for `Bearer <token>`),
/// query values, the URL's and the proxy's user info; percent-decoded
/// forms too.
fn sent_values(args: &ProbeArgs, url: &Uri) -> Vec<String> {
    let mut values = Vec::new();
    let mut add = |value: &str| {
        let value = value.trim();
        if value.len() >= 6 {
            values.push(value.to_owned());
            let decoded =
                String::from_utf8_lossy(&redact::percent_decode(value.as_bytes())).into_owned();
            if decoded != value {
                values.push(decoded);
            }
        }
    };
    for header in &args.headers {
        if let Some((name, value)) = header.split_once(':') {
            if PLAIN_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str()) {
                continue;
            }
            add(value);
            for word in value.split_whitespace() {
                add(word);
            }
        }
    }
    if let Some(query) = url.query() {
        for pair in query.split('&') {
            match pair.split_once('=') {
                // Printed as it is (`api-version=2024-06-01`).
                Some((name, _)) if redact::is_harmless_param(name) => {}
                Some((_, value)) => add(value),
                None => add(pair),
            }
        }
    }
    let proxy = args.proxy.clone().or_else(|| proxy_from_env(url));
    let proxy_authority = proxy
        .as_deref()
        .and_then(|p| p.parse::<Uri>().ok())
        .and_then(|p| p.authority().map(|a| a.as_str().to_owned()));
    for authority in [
        url.authority().map(|a| a.as_str().to_owned()),
        proxy_authority,
    ]
    .into_iter()
    .flatten()
    {
        if let Some((user_info, _)) = authority.rsplit_once('@') {
            add(user_info);
            for part in user_info.split(':') {
                add(part);
            }
        }
    }
    values
}

/// Runs the probe; the text to print and whether it succeeded. Whatever
/// is printed is scrubbed of secrets by pattern and of every value the
/// probe sent by exact value (an upstream may echo them back).
pub(crate) async fn run(args: &ProbeArgs) -> Result<(String, bool), Usage> {
    let (url, options) = options(args)?;
    let sent = sent_values(args, &url);
    let report = probe(url, options).await;
    let ok = report.ok();
    let text = if args.json {
        format!("{}\n", report.to_json())
    } else {
        redact::text(&report.to_string()).into_owned()
    };
    Ok((redact::scrub_exact(&text, &sent).into_owned(), ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_past_65535_are_no_ports() {
        for (uri, bad) in [
            ("http://127.0.0.1:99999/", true),
            ("http://127.0.0.1:99999", true),
            ("http://user:pw@proxy.test:70000", true),
            ("http://[::1]:99999/", true),
            ("http://[::1]/", false),
            ("http://127.0.0.1:8080", false),
            ("http://user:pw@proxy.test", false),
            ("http://h:/", false),
        ] {
            let parsed: Uri = uri.parse().unwrap();
            assert_eq!(bad_port(&parsed), bad, "{uri}");
        }
    }
}
