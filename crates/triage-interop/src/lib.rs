//! triage against real servers: helpers of the interop suite
//! (`tests/interop.rs`) to run nginx, tinyproxy and `openssl s_server` on
//! 127.0.0.1 with configurations written at test time, and to make
//! certificates with the `openssl` command.
//!
//! Every server is a child process in a scratch directory of its own, on a
//! port of its own, killed when its guard is dropped; every wait is bounded.
//! The suite runs when `TRIAGE_INTEROP=1` (`.ci/run` installs the servers
//! from Debian's packages and sets it).
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that turns the suite on.
pub const ENABLE: &str = "TRIAGE_INTEROP";

/// The programs the suite runs, and the Debian package of each.
pub const PROGRAMS: &[(&str, &str)] = &[
    ("nginx", "nginx-light"),
    ("tinyproxy", "tinyproxy"),
    ("openssl", "openssl"),
    ("dnsmasq", "dnsmasq-base"),
    ("unshare", "util-linux"),
    ("ip", "iproute2"),
];

/// Whether `TRIAGE_INTEROP=1`.
pub fn enabled() -> bool {
    std::env::var(ENABLE).is_ok_and(|v| v == "1")
}

/// Where `program` is on the `PATH` (or in `/usr/sbin`, where Debian puts
/// nginx), if anywhere.
pub use triage_testkit::suite::find_program as find;

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, empty directory named after `what`.
    pub fn new(what: &str) -> io::Result<Scratch> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("triage-interop-{}-{what}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server; killed (and waited for) when dropped.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Server {
    /// Starts `command` with its output in `log`, and waits (at most 10 s)
    /// until it accepts connections at `addr`.
    pub fn start(
        name: &str,
        mut command: Command,
        log: PathBuf,
        addr: SocketAddr,
    ) -> Result<Server, String> {
        let out = fs::File::create(&log).map_err(|e| format!("{name}: log file: {e}"))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{name}: log file: {e}"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{name}: cannot start {command:?}: {e}"))?;
        let mut server = Server {
            name: name.to_owned(),
            child,
            log,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "{name} exited ({status}) before listening on {addr}:\n{}",
                    server.log_text()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not listen on {addr} within 10 s:\n{}",
                    server.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it wrote so far (its log), for a failure message.
    pub fn log_text(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        // The end is what matters; keep messages readable.
        let start = text.len().saturating_sub(4000);
        let start = (start..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        format!("--- {} log ---\n{}", self.name, &text[start..])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to its end; its output in the error when it fails.
pub fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// nginx on 127.0.0.1, in the foreground, one process, everything in its
/// scratch directory. `http` goes into the `http` block before the server;
/// `server` into the `server` block.
pub fn nginx(dir: &Scratch, http: &str, server: &str) -> Result<Server, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let root = dir.path().display();
    let mut conf = String::new();
    let _ = write!(
        conf,
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {root}/nginx.pid;\n\
         error_log {root}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n\
         client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n\
         fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n\
         scgi_temp_path {root}/scgi;\n\
         {http}\n  server {{\n    listen 127.0.0.1:{port};\n{server}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, conf).map_err(|e| e.to_string())?;
    let program = find("nginx").ok_or("nginx is not installed (Debian: nginx-light)")?;
    let mut command = Command::new(program);
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&path);
    Server::start(
        "nginx",
        command,
        dir.join("stdout.log"),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

/// tinyproxy on 127.0.0.1, in the foreground; `extra` lines are appended
/// to its configuration (`ConnectPort`, `BasicAuth`, ...).
pub fn tinyproxy(dir: &Scratch, extra: &str) -> Result<Server, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let root = dir.path().display();
    let conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 10\nMaxClients 32\n\
         LogFile \"{root}/tinyproxy.log\"\nLogLevel Info\nPidFile \"{root}/tinyproxy.pid\"\n\
         Allow 127.0.0.1\nDisableViaHeader Yes\n{extra}\n"
    );
    let path = dir.join("tinyproxy.conf");
    fs::write(&path, conf).map_err(|e| e.to_string())?;
    let program = find("tinyproxy").ok_or("tinyproxy is not installed")?;
    let mut command = Command::new(program);
    command.arg("-d").arg("-c").arg(&path);
    Server::start(
        "tinyproxy",
        command,
        dir.join("stdout.log"),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

fn openssl() -> Result<Command, String> {
    Ok(Command::new(
        find("openssl").ok_or("openssl is not installed")?,
    ))
}

/// A self-signed CA made by `openssl req -x509` (P-256), named `name`.
pub fn openssl_ca(dir: &Scratch, name: &str) -> Result<Pem, String> {
    let file = name.replace(' ', "-");
    let pem = Pem {
        cert: dir.join(&format!("{file}.pem")),
        key: dir.join(&format!("{file}.key")),
    };
    run(openssl()?
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&pem.key)
        .arg("-out")
        .arg(&pem.cert))?;
    Ok(pem)
}

/// A server certificate for `host` signed by `ca` with `openssl x509 -req`;
/// `days` of -1 makes one that has already expired.
pub fn openssl_leaf(dir: &Scratch, ca: &Pem, host: &str, days: i32) -> Result<Pem, String> {
    let file = format!("{host}-{days}");
    let pem = Pem {
        cert: dir.join(&format!("{file}.pem")),
        key: dir.join(&format!("{file}.key")),
    };
    let csr = dir.join(&format!("{file}.csr"));
    let ext = dir.join(&format!("{file}.ext"));
    fs::write(&ext, format!("subjectAltName=DNS:{host}\n")).map_err(|e| e.to_string())?;
    run(openssl()?
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .arg("-nodes")
        .arg("-subj")
        .arg(format!("/CN={host}"))
        .arg("-keyout")
        .arg(&pem.key)
        .arg("-out")
        .arg(&csr))?;
    run(openssl()?
        .args(["x509", "-req", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca.cert)
        .arg("-CAkey")
        .arg(&ca.key)
        .args(["-set_serial", &format!("{}", 1000 + days.unsigned_abs())])
        .args(["-days", &days.to_string()])
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&pem.cert))?;
    Ok(pem)
}

/// `openssl s_server` on 127.0.0.1 with `pem` (and `chain`, the issuing
/// CA, sent along), answering HTTP with a status page (`-www`).
pub fn openssl_server(dir: &Scratch, pem: &Pem, chain: Option<&Pem>) -> Result<Server, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let mut command = openssl()?;
    command
        .args(["s_server", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&pem.cert)
        .arg("-key")
        .arg(&pem.key);
    if let Some(ca) = chain {
        command.arg("-cert_chain").arg(&ca.cert);
    }
    Server::start(
        "openssl s_server",
        command,
        dir.join(&format!("s_server-{port}.log")),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

/// dnsmasq on 127.0.0.1:53 — for use inside a network namespace of the
/// suite's own (`unshare -rnm`), where port 53 of loopback is ours. It keeps
/// its user (an unprivileged namespace cannot change groups), reads no
/// system file, logs every query to `queries.log` in `dir`, and takes
/// `args` (`--address=/nx.test/`, `--server=...`).
pub fn dnsmasq(dir: &Scratch, args: &[String]) -> Result<Server, String> {
    let program = find("dnsmasq").ok_or("dnsmasq is not installed (Debian: dnsmasq-base)")?;
    let mut command = Command::new(program);
    command
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
        ])
        .args([
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--port=53",
        ])
        .args(["--user=", "--group=", "--log-queries"])
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .arg(format!(
            "--log-facility={}",
            dir.join("queries.log").display()
        ))
        .args(args);
    Server::start(
        "dnsmasq",
        command,
        dir.join("dnsmasq.out"),
        SocketAddr::from(([127, 0, 0, 1], 53)),
    )
}
