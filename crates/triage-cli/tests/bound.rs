//! Issue 14, item 3: the probe's process ends within the bound it prints,
//! whatever the resolver does. Inside a network and mount namespace of its
//! own (`unshare -rnm`, unprivileged), `/etc/resolv.conf` names a resolver
//! on 127.0.0.1 that receives queries and never answers, with glibc told to
//! wait 5 s three times; the probe's DNS stage gives up after its connect
//! timeout, and the process must not wait for the lookup thread.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `script` under `unshare -rnm sh -c`, with `args` as `$1…`.
fn in_namespace(script: &str, args: &[&str]) -> Option<std::process::Output> {
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    Command::new(unshare)
        .args(["-rnm", "sh", "-c", script, "sh"])
        .args(args)
        .output()
        .ok()
}

#[test]
fn a_silent_resolver_does_not_hold_the_process_past_its_bound() {
    let dir = std::env::temp_dir().join(format!("triage-bound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rc = dir.join("resolv.conf");
    std::fs::write(&rc, "nameserver 127.0.0.1\noptions timeout:5 attempts:3\n").unwrap();
    // A resolver that reads every query and answers none.
    let silent = "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('127.0.0.1', 53))\nend = time.time() + 60\nwhile time.time() < end:\n    s.recv(512)\n";
    let script = dir.join("silent.py");
    std::fs::write(&script, silent).unwrap();
    let probe = env!("CARGO_BIN_EXE_triage");
    let started = Instant::now();
    let out = in_namespace(
        "ip link set lo up && mount --bind \"$1\" /etc/resolv.conf && \
         (python3 \"$2\" >/dev/null 2>&1 &) && sleep 0.3 && \
         exec \"$3\" probe http://api.quiet.test/ --connect-timeout 0.5 --timeout 0.5 --max-retries 0",
        &[rc.to_str().unwrap(), script.to_str().unwrap(), probe],
    );
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let Some(out) = out else {
        panic!("unshare is needed for this test (util-linux)");
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare: ") || stderr.contains("python3: not found") {
        panic!("this machine cannot run the namespace: {stderr}");
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("dns"), "{stdout}");
    // The DNS stage gave up after 0.5 s; glibc would wait 5 s × 3 × 2
    // (A and AAAA). The process ends well before that.
    assert!(
        took < Duration::from_secs(5),
        "the process took {took:?}: {stdout}"
    );
}
