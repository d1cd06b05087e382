//! The interop suite: triage against real software on 127.0.0.1 — nginx as
//! the gateway, tinyproxy as the forward proxy, `openssl s_server` with
//! certificates made by `openssl req`/`x509` — each case asserting the
//! owner, class, stage, attempts and final decision triage reports.
//!
//! Runs when `TRIAGE_INTEROP=1` (`.ci/run` installs nginx-light, tinyproxy
//! and openssl from Debian's packages and sets it); otherwise prints one
//! line saying it was skipped, and why. The DNS cases run dnsmasq in a
//! network namespace of their own (`unshare -rnm`).
//!
//! `cargo test -p triage-interop` (with `TRIAGE_INTEROP=1`).

mod support;

use std::time::Duration;

use triage_interop::{PROGRAMS, enabled, find};
use triage_testkit::suite::Case;

macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        &[$((concat!(stringify!($module), "::", stringify!($name)), || Box::pin($module::$name()))),*]
    };
}

mod dns;
mod gateway;
mod kernel;
mod netns;
mod openssl;
mod proxy;
mod window;

/// How a case says the machine cannot run it (and why): not a failure.
pub(crate) use triage_testkit::suite::SKIP;

const CASES: &[(&str, Case)] = cases![
    gateway::dead_upstream_is_the_gateways_502,
    gateway::stalled_upstream_is_the_gateways_504,
    gateway::limit_req_429_is_a_rate_limit,
    gateway::limit_req_503_is_the_gateway,
    gateway::origin_500_with_its_request_id_is_the_server,
    proxy::connect_allowed_reaches_the_origin,
    proxy::connect_denied_by_the_acl_is_the_proxy,
    proxy::proxy_authentication_required_is_the_proxy,
    proxy::proxy_not_listening_is_the_proxy,
    openssl::a_trusted_certificate_works,
    openssl::expired_certificate_is_tls_never_retried,
    openssl::wrong_host_name_is_tls_never_retried,
    openssl::unknown_ca_is_tls_never_retried,
    openssl::plain_port_spoken_to_with_tls_is_tls_never_retried,
    window::window_reads_openssls_expired_certificate,
    window::window_reads_tinyproxys_status_line,
    dns::a_name_dnsmasq_knows_works,
    dns::nxdomain_is_dns_never_retried,
    dns::servfail_is_dns_retried_a_bounded_number_of_times,
    dns::no_resolver_reachable_is_dns,
    kernel::netem_delay_is_a_connect_timeout,
    kernel::netem_delay_is_a_headers_timeout,
];

/// How long one case may take.
const CASE_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == netns::INNER) {
        std::process::exit(inner(args.get(at + 1).map_or("", String::as_str)));
    }
    if !enabled() {
        println!(
            "interop suite skipped: set TRIAGE_INTEROP=1 to run it against nginx, tinyproxy, \
             openssl s_server and dnsmasq (.ci/run installs them from Debian's packages)"
        );
        return;
    }
    let missing: Vec<String> = PROGRAMS
        .iter()
        .filter(|(program, _)| find(program).is_none())
        .map(|(program, package)| format!("{program} (Debian package {package})"))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "interop suite: TRIAGE_INTEROP=1 but not installed: {}",
            missing.join(", ")
        );
        std::process::exit(1);
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    if !triage_testkit::suite::run("interop", CASES, filter.map(String::as_str), CASE_LIMIT) {
        std::process::exit(1);
    }
}

/// A case inside its namespace (see `netns`); the exit status says how it
/// went.
fn inner(case: &str) -> i32 {
    if !netns::inside_namespace() {
        eprintln!("{} runs only inside the suite's namespace", netns::INNER);
        return 2;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        if case.starts_with("netem-") {
            kernel::inner(case).await
        } else {
            dns::inner(case).await
        }
    });
    match result {
        Ok(()) => 0,
        Err(why) => {
            println!("{}", why.strip_prefix(SKIP).unwrap_or(&why));
            if why.starts_with(SKIP) {
                netns::SKIPPED
            } else {
                1
            }
        }
    }
}
