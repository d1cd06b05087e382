//! `redis-server` from Debian's packages, on 127.0.0.1, started by the
//! suite: no persistence, its own port, killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Where `redis-server` is, if anywhere.
pub(crate) fn find() -> Option<PathBuf> {
    triage_testkit::suite::find_program("redis-server")
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `redis-server`.
pub(crate) struct Redis {
    pub(crate) port: u16,
    child: Child,
}

impl Redis {
    /// Starts one on `port` with `extra` arguments, and waits (at most
    /// 5 s) until it answers `PING`.
    pub(crate) async fn start(port: u16, extra: &[&str]) -> Result<Redis, String> {
        Redis::spawn(port, false, extra).await
    }

    /// Starts one that speaks TLS only, on `port`, with `extra` arguments
    /// (the certificate files), and waits (at most 5 s) until the port
    /// accepts connections.
    pub(crate) async fn start_tls(port: u16, extra: &[&str]) -> Result<Redis, String> {
        Redis::spawn(port, true, extra).await
    }

    async fn spawn(port: u16, tls: bool, extra: &[&str]) -> Result<Redis, String> {
        let program = find().ok_or("redis-server is not installed (Debian: redis-server)")?;
        let port_text = port.to_string();
        let (plain, tls_port) = if tls {
            ("0", port_text.as_str())
        } else {
            (port_text.as_str(), "0")
        };
        let mut args = vec![
            "--port",
            plain,
            "--tls-port",
            tls_port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ];
        args.extend_from_slice(extra);
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("redis-server did not start: {e}"))?;
        let redis = Redis { port, child };
        for _ in 0..100 {
            let up = if tls {
                redis.accepts().await
            } else {
                redis.ping().await
            };
            if up {
                return Ok(redis);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "redis-server on port {port} did not answer PING within 5 s"
        ))
    }

    /// `redis://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether it answers `PING` with `+PONG` (a plain socket: no client
    /// state to get in the way).
    async fn ping(&self) -> bool {
        let Ok(Ok(mut socket)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        else {
            return false;
        };
        if socket.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        // `+PONG`, or `-NOAUTH` from one that wants a password: either
        // way, it is up.
        let mut answer = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_millis(200), socket.read_exact(&mut answer)).await,
            Ok(Ok(_)) if &answer == b"+PONG\r\n" || &answer == b"-NOAUTH"
        )
    }

    /// Whether its port accepts connections.
    async fn accepts(&self) -> bool {
        tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Writes a CA (`ca.pem`) and a certificate for `127.0.0.1` that it signed
/// (`server.pem`, `server.key`) into `dir`; returns the CA's PEM.
pub(crate) fn write_certificates(dir: &std::path::Path) -> Result<Vec<u8>, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let e = |e: rcgen::Error| e.to_string();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "triage-fleet test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca = ca_params.self_signed(&ca_key).map_err(e)?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(e)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().map_err(e)?;
    let cert = params
        .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
        .map_err(e)?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("ca.pem", ca.pem())?;
    write("server.pem", cert.pem())?;
    write("server.key", key.serialize_pem())?;
    Ok(ca.pem().into_bytes())
}
