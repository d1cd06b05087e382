//! The built `triage` binary: the tour names every class and exits 0; bad
//! usage exits 2 with one line.

use std::process::Command;

fn triage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(args)
        .output()
        .expect("run triage")
}

#[test]
fn the_tour_shows_every_failure_class() {
    let out = triage(&["tour"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for class in [
        "class success",
        "quota_exhausted.billing",
        "request_too_large",
        "quota_exhausted.spend_limit",
        "quota_exhausted.period",
        "unauthenticated",
        "forbidden",
        "bad_request",
        "not_found",
        "server_error.500",
        "overloaded",
        "gateway.unavailable",
        "gateway.upstream_unreachable",
        "gateway.origin_tls",
        "transport.dns.name_not_found",
        "transport.connect.refused",
        "transport.connect.timeout.connect",
        "transport.await_headers.reset",
        "transport.await_headers.timeout.headers",
        "transport.tls.certificate.unknown_issuer",
        "transport.tls.certificate.expired",
        "transport.proxy.proxy_auth_required",
        "body broke after 4000 bytes",
        // Whole-body mode, the route breaker and the diagnosis window.
        "delivered whole: 30000 bytes, after 2 attempt(s)",
        "route_open",
        "without a connection; the route opened at",
        "captured: attempt #1 (window 1/10): dns ok",
        "peer certificate subject \"CN=svc.test\"",
    ] {
        assert!(text.contains(class), "{class} missing from:\n{text}");
    }
    // Quota is never retried; the refused connect is, a bounded number of times.
    let quota = text
        .lines()
        .find(|l| l.contains("exhausted quota"))
        .unwrap();
    assert!(quota.contains(" 1  not_retryable"), "{quota}");
    let refused = text
        .lines()
        .find(|l| l.contains("connection refused"))
        .unwrap();
    assert!(refused.contains(" 3  attempts_exhausted"), "{refused}");
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    let out = triage(&["nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("triage: "), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn help_and_version_exit_0() {
    let out = triage(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("tour"));
    let out = triage(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
