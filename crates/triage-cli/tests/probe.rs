//! `triage probe` against the testkit on loopback: the right owner and
//! stage, JSON with every field, exit statuses, and no secret printed.
//! Names are given with `--resolve`; `*.invalid` never exists.

use std::process::{Command, Output};

use triage_testkit::{CertProblem, Proxy, ProxyBehavior, TlsUpstream, Upstream};

async fn triage(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_triage"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Everything a run printed, stdout then stderr.
fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A raw HTTP server on 127.0.0.1 that answers every request with
/// `answer`, then closes; one task per connection (the probe's own connect
/// test holds one open, silent).
async fn raw_server(answer: String) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let answer = std::sync::Arc::clone(&answer);
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// A PEM file holding the CA `der`, in a scratch folder of its own named
/// for `case`: (the folder, the file).
fn ca_file(der: &[u8], case: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64(der)
    );
    let dir = std::env::temp_dir().join(format!("triage-{case}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    (dir, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_path_exits_0_with_every_stage() {
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    let out = triage(args(&[
        "probe",
        &upstream.url("/ok"),
        "--resolve",
        &format!("svc.test:{port}:127.0.0.1"),
        "--json",
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    for field in [
        "url",
        "ok",
        "owner",
        "class",
        "stage",
        "status",
        "request_id",
        "attempts",
        "retries",
        "elapsed_ms",
        "next_step",
        "packet",
    ] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    assert_eq!(v["ok"], true);
    assert!(v["owner"].is_null());
    assert_eq!(v["status"], 200);
    let stages: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dns", "connect", "http"]);
    assert_eq!(upstream.hits("/ok"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_quota_is_diagnosed_with_exit_1() {
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    let url = format!(
        "{}?key=sk-SECRETQUERYKEY1234567",
        upstream.url("/openai/429/quota")
    );
    let out = triage(args(&[
        "probe",
        &url,
        "--resolve",
        &format!("svc.test:{port}:127.0.0.1"),
        "--profile",
        "openai",
        "-X",
        "POST",
        "-H",
        "Authorization: Bearer sk-proj-SECRETHEADERKEY123456",
        "--data",
        "{}",
        "--json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("SECRET"), "a secret leaked: {text}");
    let v = json(&out);
    assert_eq!(v["owner"], "quota");
    assert_eq!(v["class"], "quota_exhausted.billing");
    assert_eq!(v["status"], 429);
    assert_eq!(v["request_id"], "req_quota_1");
    assert_eq!(v["retries"], 0);
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    for field in [
        "n",
        "status",
        "stage",
        "owner",
        "class",
        "has_body",
        "request_id",
        "decision",
        "delay_ms",
    ] {
        assert!(
            attempts[0].get(field).is_some(),
            "attempt field {field} missing"
        );
    }
    assert_eq!(attempts[0]["decision"], "not_retryable");
    assert_eq!(upstream.hits("/openai/429/quota"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_faults_name_their_stage() {
    // DNS: a name that cannot exist.
    let out = triage(args(&["probe", "http://api.nowhere.invalid/v1", "--json"])).await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["owner"], "connection_path");
    assert_eq!(v["stage"], "dns");
    // Issue 14, item 2: every connection-path failure has a packet, whose
    // finding says what was proved and where the evidence changed.
    let finding = v["packet"]["finding"]
        .as_str()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(
        finding.starts_with("DNS failed for api.nowhere.invalid after "),
        "{finding}"
    );
    assert!(finding.contains("the evidence changed at dns"), "{finding}");

    // Connect: a closed port.
    let port = triage_testkit::closed_port().unwrap().port();
    let out = triage(args(&[
        "probe",
        &format!("http://svc.test:{port}/"),
        "--resolve",
        &format!("svc.test:{port}:127.0.0.1"),
        "--json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["stage"], "connect");
    assert_eq!(v["class"], "transport.connect.refused");

    // TLS: a certificate from an unknown CA.
    let tls = TlsUpstream::start(CertProblem::UnknownIssuer)
        .await
        .unwrap();
    let (dir, ca) = ca_file(tls.ca_der(), "probe");
    let tport = tls.addr().port();
    let out = triage(args(&[
        "probe",
        &tls.url("/ok"),
        "--resolve",
        &format!("svc.test:{tport}:127.0.0.1"),
        "--cacert",
        ca.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("first point where the evidence changed: tls"),
        "{text}"
    );
    assert!(
        text.contains("transport.tls.certificate.unknown_issuer"),
        "{text}"
    );
    // What the server presented, read from its certificate.
    assert!(
        text.contains("certificate subject \"CN=svc.test\" issued by \"CN=another test CA\""),
        "{text}"
    );
    // The packet, and its finding.
    let finding = text
        .lines()
        .find_map(|l| l.strip_prefix("  finding:     "))
        .unwrap_or_else(|| panic!("{text}"));
    for part in [
        "DNS resolved svc.test to 127.0.0.1 in ",
        &format!("; TCP connected to 127.0.0.1:{tport} in "),
        "; TLS failed after ",
        "the server's certificate subject \"CN=svc.test\" issued by \"CN=another test CA\"",
        "; no status, no body, no request ID; the evidence changed at tls",
    ] {
        assert!(finding.contains(part), "{part:?} in {finding}");
    }
    // A certificate refused for good is not tried again.
    assert!(text.contains("  attempts:    1 in "), "{text}");
    // The same packet in JSON.
    let out = triage(args(&[
        "probe",
        &tls.url("/ok"),
        "--resolve",
        &format!("svc.test:{tport}:127.0.0.1"),
        "--cacert",
        ca.to_str().unwrap(),
        "--json",
    ]))
    .await;
    let v = json(&out);
    assert_eq!(v["packet"]["stage"], "tls", "{v:#}");
    let again = v["packet"]["finding"].as_str().unwrap();
    assert!(
        again.starts_with("DNS resolved svc.test to 127.0.0.1 in ")
            && again.contains("; TLS failed after "),
        "{again}"
    );
    assert_eq!(
        v["packet"]["details"][0]["peer"]["issuer"],
        "CN=another test CA"
    );

    // Proxy: credentials required.
    let upstream = Upstream::start().await.unwrap();
    let proxy = Proxy::start(ProxyBehavior::AuthRequired).await.unwrap();
    let out = triage(args(&[
        "probe",
        &upstream.ip_url("/ok"),
        "--proxy",
        &format!("http://127.0.0.1:{}", proxy.addr().port()),
        "--json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["stage"], "proxy");
    assert_eq!(v["class"], "transport.proxy.proxy_auth_required");
    assert_eq!(upstream.total_hits(), 0);
    let finding = v["packet"]["finding"]
        .as_str()
        .unwrap_or_else(|| panic!("{v:#}"));
    let to_proxy = format!(
        "TCP connected to the proxy at 127.0.0.1:{} in ",
        proxy.addr().port()
    );
    for part in [
        to_proxy.as_str(),
        "; the proxy refused the tunnel after ",
        "407",
    ] {
        assert!(finding.contains(part), "{part:?} in {finding}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_level_faults_name_their_owner_and_stage() {
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    let resolve = format!("svc.test:{port}:127.0.0.1");
    for (path, owner, class, stage, hits) in [
        (
            "/gateway/nginx/502",
            "route",
            "gateway.unavailable",
            "http",
            3,
        ),
        ("/status/401", "auth", "unauthenticated", "http", 1),
        (
            "/fault/rst-before-headers",
            "connection_path",
            "transport.await_headers.reset",
            "await_headers",
            3,
        ),
        ("/anthropic/529", "server", "overloaded", "http", 3),
    ] {
        let out = triage(args(&[
            "probe",
            &upstream.url(path),
            "--resolve",
            &resolve,
            "--json",
        ]))
        .await;
        assert_eq!(out.status.code(), Some(1), "{path}");
        let v = json(&out);
        assert_eq!(v["owner"], owner, "{path}: {v}");
        assert_eq!(v["class"], class, "{path}");
        assert_eq!(v["stage"], stage, "{path}");
        assert_eq!(
            v["attempts"].as_array().unwrap().len(),
            hits as usize,
            "{path}"
        );
        assert_eq!(upstream.hits(path), hits, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2_with_one_line() {
    for bad in [
        vec!["probe", "not a url"],
        vec!["probe", "http://a.test/", "--timeout", "-1"],
        vec!["probe", "http://a.test/", "--profile", "nope"],
        vec!["probe", "http://a.test/", "--resolve", "broken"],
        vec!["probe", "http://a.test/", "-H", "no-colon"],
    ] {
        let out = triage(args(&bad)).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{bad:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_ends_within_the_printed_bound() {
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    let out = triage(args(&[
        "probe",
        &upstream.url("/fault/slow-headers?ms=20000"),
        "--resolve",
        &format!("svc.test:{port}:127.0.0.1"),
        "--connect-timeout",
        "1",
        "--timeout",
        "0.5",
        "--json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["owner"], "connection_path");
    assert_eq!(report["stage"], "await_headers");
    assert_eq!(report["class"], "transport.await_headers.timeout.headers");
    assert_eq!(report["retries"], 2, "{report:#}");
    // 3 attempts of 0.5 s (each covers its connection) and 10 s of waits.
    assert_eq!(report["bound_ms"], 11_500);
    let elapsed = report["elapsed_ms"].as_u64().unwrap();
    assert!(elapsed <= 11_500, "took {elapsed} ms");
    assert_eq!(upstream.hits("/fault/slow-headers"), 3);

    // The text report says it too.
    let text = triage(args(&[
        "probe",
        &upstream.url("/fault/slow-headers?ms=20000"),
        "--resolve",
        &format!("svc.test:{port}:127.0.0.1"),
        "--timeout",
        "0.2",
        "--max-retries",
        "0",
    ]))
    .await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("of a bound of 10 s"), "{text}");
}

/// Issue 14, item 1: HTTPS through a proxy is TLS inside the tunnel. A
/// recording proxy sees nothing after `CONNECT` but TLS records: no request
/// line, no header, no query secret in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_a_proxy_is_tls_inside_the_tunnel() {
    let tls = TlsUpstream::start(CertProblem::None).await.unwrap();
    let proxy = Proxy::start(ProxyBehavior::Tunnel).await.unwrap();
    let (dir, ca) = ca_file(tls.ca_der(), "tunnel");
    let out = triage(args(&[
        "probe",
        &format!("{}?key=qs3cr3t-in-query", tls.url("/ok")),
        "--proxy",
        &format!("http://127.0.0.1:{}", proxy.addr().port()),
        "--cacert",
        ca.to_str().unwrap(),
        "-H",
        "authorization: Bearer sk-probe-s3cr3t-42",
        "-H",
        "x-api-key: k3y-s3cr3t-77",
        "--json",
    ]))
    .await;
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tls.hits("/ok") >= 1,
        "the origin answered through the tunnel"
    );
    let tunneled = proxy.tunneled();
    assert!(!tunneled.is_empty());
    // A TLS record (handshake, 0x16) first, and no byte of the request in
    // clear anywhere.
    assert_eq!(tunneled[0], 0x16, "the tunnel starts with a TLS handshake");
    let clear = String::from_utf8_lossy(&tunneled).to_ascii_lowercase();
    for secret in [
        "sk-probe-s3cr3t-42",
        "k3y-s3cr3t-77",
        "qs3cr3t-in-query",
        "authorization",
        "x-api-key",
        "get /ok",
    ] {
        assert!(
            !clear.contains(secret),
            "{secret} crossed the proxy in clear"
        );
    }
    // The CONNECT heads name the origin only.
    for head in proxy.connect_heads() {
        assert!(head.starts_with("CONNECT svc.test:"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("s3cr3t"), "{head}");
    }
}

/// Issue 14, item 8: credentials in the proxy URL are sent as
/// `Proxy-Authorization: Basic`, by the probe's own CONNECT and by the
/// layer's proxied connector, and never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_credentials_in_the_url_are_sent_and_never_printed() {
    let upstream = Upstream::start().await.unwrap();
    let proxy = Proxy::start(ProxyBehavior::Basic("probe-user:pr0xy-p@ss"))
        .await
        .unwrap();
    let proxy_url = format!(
        "http://probe-user:pr0xy-p%40ss@127.0.0.1:{}",
        proxy.addr().port()
    );
    let url = upstream.ip_url("/ok");
    for json in [true, false] {
        let mut list = vec!["probe", "--proxy", proxy_url.as_str(), url.as_str()];
        if json {
            list.push("--json");
        }
        let out = triage(args(&list)).await;
        let printed = printed(&out);
        assert_eq!(out.status.code(), Some(0), "{printed}");
        for secret in ["pr0xy-p", "cHJvYmUtdXNlcjpwcjB4eS1wQHNz"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
    }
    assert!(proxy.connects() >= 2);
    assert!(upstream.hits("/ok") >= 2);
    assert!(
        proxy.connect_heads().iter().all(|h| h
            .to_ascii_lowercase()
            .contains("proxy-authorization: basic")),
        "{:?}",
        proxy.connect_heads().len()
    );
}

/// Issue 14, items 5 and 7: remote text is printed safe. A proxy's status
/// line with escape codes and binary, and a huge request ID, come out on
/// one line each, without control characters, capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_text_is_printed_without_control_characters_and_capped() {
    static HOSTILE: &[u8] =
        b"HTTP/1.1 403 \x1b[31mDenied\x1b[0m\x07\x00\x08\x08\x08 \xff\xfe binary\r\n\r\n";
    let upstream = Upstream::start().await.unwrap();
    let proxy = Proxy::start(ProxyBehavior::Answer(HOSTILE)).await.unwrap();
    let out = triage(args(&[
        "probe",
        &upstream.ip_url("/ok"),
        "--proxy",
        &format!("http://127.0.0.1:{}", proxy.addr().port()),
    ]))
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Denied"), "{text}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "a control character was printed: {text:?}"
    );

    // A request ID of 8 KiB from the far side is kept to a few hundred
    // bytes, in text and in JSON.
    let long_id = "r".repeat(8 * 1024);
    let addr = raw_server(format!(
        "HTTP/1.1 503 Service Unavailable\r\nx-request-id: {long_id}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
    .await;
    let url = format!("http://{addr}/v1");
    for as_json in [true, false] {
        let mut list = vec!["probe", url.as_str(), "--max-retries", "0"];
        if as_json {
            list.push("--json");
        }
        let out = triage(args(&list)).await;
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            !printed.contains(&"r".repeat(600)),
            "the request ID was printed whole ({} bytes)",
            printed.len()
        );
        assert!(printed.contains(&"r".repeat(100)), "{printed}");
        if as_json {
            let v = json(&out);
            assert!(v["request_id"].as_str().unwrap().len() < 300);
        }
    }
}

/// Issue 14, item 5: an upstream that echoes what the request carried — an
/// `x-api-key` value that looks like no known key, a query value, a JWT in
/// `authorization` — in its request ID, error code and message: none of it
/// is printed, in text or JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_request_carried_are_never_printed_back() {
    const KEY: &str = "zq9LongSecretValue77";
    const QUERY: &str = "s3ssionValue4242";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.c2lnbmF0dXJl";
    // Every secret echoed back, as a careless upstream does.
    let body = format!(
        r#"{{"error":{{"code":"{KEY}","type":"invalid_request_error","message":"key {KEY} with session {QUERY} and token {JWT} is not valid"}}}}"#
    );
    let addr = raw_server(format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nx-request-id: {KEY}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let url = format!("http://{addr}/v1/things?session={QUERY}");
    let key_header = format!("x-api-key: {KEY}");
    let auth_header = format!("authorization: Bearer {JWT}");
    for as_json in [true, false] {
        let mut list = vec![
            "probe",
            url.as_str(),
            "-H",
            key_header.as_str(),
            "-H",
            auth_header.as_str(),
        ];
        if as_json {
            list.push("--json");
        }
        let out = triage(args(&list)).await;
        let printed = printed(&out);
        assert_eq!(out.status.code(), Some(1), "{printed}");
        assert!(printed.contains("auth"), "diagnosed: {printed}");
        for secret in [KEY, QUERY, JWT] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        if as_json {
            let v = json(&out);
            assert_eq!(v["owner"], "auth");
        }
    }
}

/// Issue 14, item 4: every resolved address is tried. The first refuses,
/// the second answers: the probe goes through, and says which it tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resolved_address_is_tried() {
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    let out = triage(args(&[
        "probe",
        &upstream.url("/ok"),
        "--resolve",
        &format!("svc.test:{port}:127.0.0.2"),
        "--resolve",
        &format!("svc.test:{port}:127.0.0.1"),
    ]))
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "connected to 127.0.0.1:{port} (tried first: 127.0.0.2)"
        )),
        "{text}"
    );
    assert_eq!(upstream.hits("/ok"), 1);
}

/// Issue 14, item 2: the probe is the layer. A refused connect is retried
/// as the layer retries it, every attempt is listed, and the packet is
/// printed, in text and in JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_gets_the_layers_retries_and_a_packet() {
    let port = triage_testkit::closed_port().unwrap().port();
    let url = format!("http://svc.test:{port}/v1");
    let resolve = format!("svc.test:{port}:127.0.0.1");
    let out = triage(args(&[
        "probe",
        &url,
        "--resolve",
        &resolve,
        "--max-retries",
        "2",
        "--json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["class"], "transport.connect.refused");
    assert_eq!(v["retries"], 2, "{v:#}");
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{v:#}");
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["n"], n + 1);
        assert_eq!(attempt["stage"], "connect");
        assert!(attempt["status"].is_null());
    }
    let packet = &v["packet"];
    assert_eq!(packet["attempts_total"], 3, "{v:#}");
    assert_eq!(packet["details"].as_array().unwrap().len(), 3);
    let finding = packet["finding"].as_str().unwrap();
    assert_eq!(v["finding"], finding);
    assert!(
        finding.starts_with("DNS resolved svc.test to 127.0.0.1 in "),
        "{finding}"
    );
    assert!(
        finding.contains("TCP connect to 127.0.0.1 failed"),
        "{finding}"
    );
    assert!(
        finding.contains("no status, no body, no request ID"),
        "{finding}"
    );
    // The stages are the last attempt's.
    let stages: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dns", "connect"]);

    let text = triage(args(&[
        "probe",
        &url,
        "--resolve",
        &resolve,
        "--max-retries",
        "2",
    ]))
    .await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("triage escalation packet"), "{text}");
    assert!(text.contains("  attempts:    3 in "), "{text}");
    assert!(
        text.contains("  finding:     DNS resolved svc.test"),
        "{text}"
    );
    assert!(
        text.contains("first point where the evidence changed: connect"),
        "{text}"
    );
}

/// Issue 14, item 2: for the AI profiles the packet names the model the
/// JSON body asked for, and prints nothing else of the body, with retries
/// or without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_probe_names_the_model_and_nothing_else_of_the_body() {
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    for retries in ["0", "1"] {
        let out = triage(args(&[
            "probe",
            &upstream.url("/status/500"),
            "--resolve",
            &format!("svc.test:{port}:127.0.0.1"),
            "--profile",
            "openai",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"model":"gpt-probe-1","input":"the SECRET-PROMPT"}"#,
            "--max-retries",
            retries,
            "--json",
        ]))
        .await;
        let text = printed(&out);
        assert!(!text.contains("SECRET-PROMPT"), "{text}");
        let v = json(&out);
        assert_eq!(v["packet"]["model"], "gpt-probe-1", "{retries}: {v:#}");
    }
}

/// Issue 14, item 6: every query value is redacted in what the probe
/// prints, whatever its name (`jwt`, `pat`, `session`...), names kept; a
/// harmless one on the allow-list (`api-version`) stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_values_are_redacted_by_default_names_kept() {
    let upstream = Upstream::start().await.unwrap();
    let port = upstream.addr().port();
    let url =
        upstream.url("/status/401?jwt=eyJqwtValue123&pat=patValue98765&api-version=2024-06-01");
    for mode in [None, Some("--json")] {
        let mut list = vec!["probe", url.as_str(), "--resolve"];
        let resolve = format!("svc.test:{port}:127.0.0.1");
        list.push(&resolve);
        list.extend(mode);
        let out = triage(args(&list)).await;
        let text = printed(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        for value in ["eyJqwtValue123", "patValue98765"] {
            assert!(!text.contains(value), "{value} printed: {text}");
        }
        assert!(
            text.contains("?jwt=[redacted]&pat=[redacted]&api-version=2024-06-01"),
            "{text}"
        );
    }
}
