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
    let printed = String::from_utf8(out.stdout).unwrap();
    // Long notes wrap at 100 columns onto deeper-indented lines: read them
    // whole.
    let text = printed.replace("\n      ", " ");
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
    // Issue 18: a request after an answer that used up the window waits for
    // its reset, and is not refused.
    let paced = text
        .lines()
        .find(|l| l.contains("rate window used up: paced"))
        .unwrap();
    assert!(paced.contains(" 1  success"), "{paced}");
    assert!(
        text.contains("for the window's reset, then sent once; the upstream refused 0 request(s)"),
        "the pacing note missing from:\n{text}"
    );
    // Issue 18: a stream's error event before the commit point is retried;
    // after it, reported and not retried.
    let first = text
        .lines()
        .find(|l| l.contains("stream: error event first"))
        .unwrap();
    assert!(first.contains(" 2  success"), "{first}");
    let mid = text
        .lines()
        .find(|l| l.contains("stream: error event mid-way"))
        .unwrap();
    assert!(mid.contains(" 1  success"), "{mid}");
    assert!(
        text.contains(
            "error event in the stream after 135 bytes: overloaded (server), outcome committed"
        ),
        "the stream error's note missing from:\n{text}"
    );
    // Issue 18: a POST that meets a 500 is resent with the key minted for it.
    let keyed = text
        .lines()
        .find(|l| l.contains("POST 500, idempotency key"))
        .unwrap();
    assert!(keyed.contains(" 2  success"), "{keyed}");
    assert!(
        text.contains("the same on all 2 attempts"),
        "the key's note missing from:\n{text}"
    );
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

/// Issue 16, the CLI: at most 100 columns, no colour codes off a terminal
/// (forced with `CLICOLOR_FORCE`, never with `NO_COLOR`), and the tour ends
/// with the next step.
#[test]
fn the_tour_fits_100_columns_and_colours_only_when_asked() {
    let out = triage(&["tour"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(!text.contains('\x1b'), "colour codes off a terminal");
    let next = text.lines().rev().take(3).collect::<Vec<_>>().join(" ");
    assert!(next.contains("Next: run `triage probe"), "{next}");
    assert!(next.contains("TriageLayer::new().layer(client)"), "{next}");

    let forced = Command::new(env!("CARGO_BIN_EXE_triage"))
        .arg("tour")
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let coloured = String::from_utf8(forced.stdout).unwrap();
    assert!(
        coloured.contains("\x1b[31mconnection_path"),
        "forced colour"
    );
    let plain = Command::new(env!("CARGO_BIN_EXE_triage"))
        .arg("tour")
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains('\x1b'),
        "NO_COLOR wins"
    );
}

/// Issue 16, the CLI: the tour prints each row as it finishes, not the
/// whole table at the end (its waits add up to seconds).
#[test]
fn the_tour_prints_each_row_as_it_finishes() {
    use std::io::{BufRead, BufReader};
    use std::time::Instant;
    let mut child = Command::new(env!("CARGO_BIN_EXE_triage"))
        .arg("tour")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first_row = None;
    let mut lines = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        lines += 1;
        if first_row.is_none() && line.starts_with("1   success") {
            first_row = Some(Instant::now());
        }
    }
    let ended = Instant::now();
    assert!(child.wait().unwrap().success());
    let first_row = first_row.expect("the first row");
    assert!(lines > 60);
    // The later rows wait out a 300 ms server wait, 1 s timeouts and a
    // route's backoff: seconds after the first row was already printed.
    assert!(
        ended.duration_since(first_row) > std::time::Duration::from_secs(2),
        "the first row came only {:?} before the end",
        ended.duration_since(first_row)
    );
}

/// Issue 16, the CLI: the help describes both commands, `probe --help`
/// gives examples and the exit statuses, and every help fits 100 columns.
#[test]
fn help_describes_both_commands_with_examples_and_exit_statuses() {
    let top = String::from_utf8(triage(&["--help"]).stdout).unwrap();
    assert!(
        top.contains("`triage tour` shows every failure class"),
        "{top}"
    );
    assert!(
        top.contains("`triage probe URL` sends one request"),
        "{top}"
    );
    assert!(top.contains("Examples:"), "{top}");
    let probe = String::from_utf8(triage(&["probe", "--help"]).stdout).unwrap();
    for part in [
        "Examples:",
        "Exit status:",
        "  2  bad usage",
        "--max-retries",
    ] {
        assert!(probe.contains(part), "{part} missing: {probe}");
    }
    for args in [
        &["--help"][..],
        &["-h"],
        &["probe", "--help"],
        &["tour", "--help"],
    ] {
        let text = String::from_utf8(triage(args).stdout).unwrap();
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{args:?}: {line}");
        }
    }
}
