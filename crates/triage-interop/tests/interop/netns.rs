//! Cases that need a network of their own: each runs in a network and
//! mount namespace (`unshare -rnm`, unprivileged), where loopback is
//! brought up and the suite's `resolv.conf` (nameserver 127.0.0.1, one try
//! of one second) is bind-mounted over `/etc/resolv.conf`; this test binary
//! runs again inside with `--in-namespace CASE`.

use std::fs;
use std::time::Duration;

use triage_interop::{Scratch, find};

/// The argument that runs a case inside its namespace.
pub(crate) const INNER: &str = "--in-namespace";

/// Exit status of an inner case that the machine cannot run.
pub(crate) const SKIPPED: i32 = 3;

/// Runs `case` in a fresh namespace; its output is the error on failure.
pub(crate) async fn in_namespace(case: &str) -> Result<(), String> {
    let dir = Scratch::new("netns").map_err(|e| e.to_string())?;
    fs::write(
        dir.join("resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .map_err(|e| e.to_string())?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let ip = find("ip").ok_or("ip (iproute2) is not installed")?;
    let unshare = find("unshare").ok_or("unshare (util-linux) is not installed")?;
    let script = format!(
        "{ip} link set lo up && mount --bind {rc} /etc/resolv.conf && exec \"$0\" {INNER} \"$1\"",
        ip = ip.display(),
        rc = dir.join("resolv.conf").display(),
    );
    let mut command = tokio::process::Command::new(unshare);
    command
        .args(["-rnm", "sh", "-c", &script])
        .arg(&me)
        .arg(case)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(40), command.output())
        .await
        .map_err(|_| format!("{case}: the namespace did not finish within 40 s"))?
        .map_err(|e| format!("{case}: cannot run unshare: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match output.status.code() {
        Some(0) => Ok(()),
        Some(SKIPPED) => Err(format!("{}{}", crate::SKIP, stdout.trim())),
        _ => Err(format!(
            "{case} in its namespace ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// Whether this process sees the suite's `resolv.conf`: inner cases run
/// only there, so that a mistaken run never asks the machine's resolver.
pub(crate) fn inside_namespace() -> bool {
    fs::read_to_string("/etc/resolv.conf").is_ok_and(|rc| {
        rc.starts_with("nameserver 127.0.0.1\n") && rc.contains("options timeout:1 attempts:1")
    })
}
