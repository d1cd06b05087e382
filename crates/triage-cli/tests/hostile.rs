//! Hostile and malformed input to `triage probe` (issue 14, items 9 and
//! 10): each gets one clear line on stderr and exit status 2, quickly —
//! never a hang, an unbounded read, or a silently rewritten request.

use std::process::{Command, Output};
use std::time::Duration;

/// Runs `triage` with `args`, bounded to 30 s.
async fn triage(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_triage"))
            .args(&args)
            .output()
            .unwrap()
    });
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("triage ended within 30 s")
        .unwrap()
}

/// Exit 2 with exactly one line on stderr, printable, containing `needle`.
async fn refused(args: &[&str], needle: &str) {
    let out = triage(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr:?}");
    assert!(
        !stderr.trim_end_matches('\n').chars().any(char::is_control),
        "{args:?}: {stderr:?}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: {needle:?} in {stderr:?}"
    );
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("triage-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_read_bounded_and_only_when_regular() {
    let url = "http://svc.invalid/";
    refused(
        &["probe", url, "--data", "@/dev/zero"],
        "not a regular file",
    )
    .await;
    refused(
        &["probe", url, "--cacert", "/dev/zero"],
        "not a regular file",
    )
    .await;
    refused(&["probe", url, "--data", "@/"], "not a regular file").await;
    // A FIFO nobody writes to would block an open for reading forever.
    let fifo = scratch("fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let data = format!("@{}", fifo.display());
        refused(&["probe", url, "--data", &data], "not a regular file").await;
    }
    // Over the caps: a sparse file of 17 MiB, 5 MiB of PEM.
    let big = scratch("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 * 1024 * 1024)
        .unwrap();
    let data = format!("@{}", big.display());
    refused(&["probe", url, "--data", &data], "larger than 16 MiB").await;
    std::fs::File::create(&big)
        .unwrap()
        .set_len(5 * 1024 * 1024)
        .unwrap();
    refused(
        &["probe", url, "--cacert", big.to_str().unwrap()],
        "larger than 4 MiB",
    )
    .await;
    // A CA file without a certificate.
    let empty = scratch("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    refused(
        &["probe", url, "--cacert", empty.to_str().unwrap()],
        "holds no certificate",
    )
    .await;
    let _ = std::fs::remove_dir_all(empty.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_silently_rewritten() {
    let url = "http://svc.invalid/";
    // A port past 65535 is not port 80.
    refused(&["probe", "http://127.0.0.1:99999/"], "65535").await;
    // Only plain HTTP proxies, with a host.
    for proxy in [
        "socks5://127.0.0.1:1080",
        "ftp://127.0.0.1:21",
        "https://127.0.0.1:3128",
        "/path",
    ] {
        refused(&["probe", url, "--proxy", proxy], "--proxy").await;
    }
    refused(
        &["probe", url, "--proxy", "http://127.0.0.1:99999"],
        "65535",
    )
    .await;
    // A timeout that rounds to zero.
    refused(&["probe", url, "--timeout", "1e-300"], "--timeout").await;
    refused(
        &["probe", url, "--connect-timeout", "0"],
        "--connect-timeout",
    )
    .await;
    // A Content-Length of its own would hang the request or drop the body.
    refused(
        &["probe", url, "-H", "Content-Length: 100"],
        "content-length",
    )
    .await;
    refused(
        &["probe", url, "-H", "Content-Length: 0", "--data", "x"],
        "content-length",
    )
    .await;
    refused(
        &["probe", url, "-H", "Transfer-Encoding: chunked"],
        "transfer-encoding",
    )
    .await;
    // A method with CR/LF stays one line.
    refused(
        &["probe", url, "-X", "GE T\r\nInjected: yes"],
        "not a method",
    )
    .await;
    // A missing URL names what is missing.
    refused(&["probe"], "<URL>").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_for_an_address_is_refused_in_one_line() {
    // An IP address is never looked up (by hyper-util, as by any client):
    // an entry for one would be silently ignored, so it is bad usage, in
    // either bracketed or plain form; a malformed entry too.
    let port = triage_testkit::closed_port().unwrap().port();
    let url = format!("http://[::1]:{port}/ok");
    refused(
        &[
            "probe",
            &url,
            "--resolve",
            &format!("[::1]:{port}:127.0.0.1"),
        ],
        "is an IP address",
    )
    .await;
    refused(
        &[
            "probe",
            "http://127.0.0.1:1/",
            "--resolve",
            "127.0.0.1:1:127.0.0.2",
        ],
        "is an IP address",
    )
    .await;
    refused(
        &["probe", &url, "--resolve", "[::1:80:127.0.0.1"],
        "--resolve",
    )
    .await;
}
