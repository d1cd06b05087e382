//! A real resolver: the system's (glibc's `getaddrinfo`, through
//! hyper-util's `GaiResolver`) asking dnsmasq on 127.0.0.1:53, inside a
//! namespace of the case's own (see `netns`), where no query can leave.

use std::fs;

use tokio::net::UdpSocket;
use tower_triage::core::{Owner, Stage};
use triage_interop::{Scratch, dnsmasq};
use triage_testkit::Upstream;

use crate::netns::in_namespace;
use crate::support::{Expect, get, seen, verify};

pub(crate) async fn a_name_dnsmasq_knows_works() -> Result<(), String> {
    in_namespace("dns-known").await
}

pub(crate) async fn nxdomain_is_dns_never_retried() -> Result<(), String> {
    in_namespace("dns-nxdomain").await
}

pub(crate) async fn servfail_is_dns_retried_a_bounded_number_of_times() -> Result<(), String> {
    in_namespace("dns-servfail").await
}

pub(crate) async fn no_resolver_reachable_is_dns() -> Result<(), String> {
    in_namespace("dns-no-resolver").await
}

/// An upstream DNS server that answers every query SERVFAIL, as a broken
/// authoritative server does; dnsmasq passes the answer on.
async fn servfail_server() -> Result<u16, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        for _ in 0..64 {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if n < 12 {
                continue;
            }
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80; // a response
            answer[3] = 0x80 | 2; // recursion available, RCODE 2: SERVFAIL
            let _ = socket.send_to(&answer, from).await;
        }
    });
    Ok(port)
}

/// How many times dnsmasq was asked for `name` (A queries).
fn queries(dir: &Scratch, name: &str) -> usize {
    let log = fs::read_to_string(dir.join("queries.log")).unwrap_or_default();
    let needle = format!("query[A] {name} ");
    log.lines().filter(|l| l.contains(&needle)).count()
}

/// Inside the namespace: dnsmasq, the upstream, one call, and the verdict.
pub(crate) async fn inner(case: &str) -> Result<(), String> {
    let dir = Scratch::new("dns-inner").map_err(|e| e.to_string())?;
    let upstream = Upstream::start().await.map_err(|e| e.to_string())?;
    let port = upstream.addr().port();
    let servfail = servfail_server().await?;
    let resolver = if case == "dns-no-resolver" {
        None
    } else {
        Some(dnsmasq(
            &dir,
            &[
                "--address=/known.test/127.0.0.1".to_owned(),
                "--address=/nx.test/".to_owned(),
                format!("--server=/servfail.test/127.0.0.1#{servfail}"),
            ],
        )?)
    };
    let (name, expect) = match case {
        "dns-known" => (
            "api.known.test",
            Expect {
                status: Some(200),
                owner: Some(None),
                attempts: Some(1),
                decision: Some("success"),
                ..Expect::default()
            },
        ),
        "dns-nxdomain" => (
            "api.nx.test",
            Expect {
                status: Some(0),
                owner: Some(Some(Owner::ConnectionPath)),
                stage: Some(Some(Stage::Dns)),
                class: Some("transport.dns.name_not_found"),
                attempts: Some(1),
                decision: Some("not_retryable"),
                ..Expect::default()
            },
        ),
        "dns-servfail" | "dns-no-resolver" => (
            if case == "dns-servfail" {
                "api.servfail.test"
            } else {
                "api.nowhere.test"
            },
            Expect {
                status: Some(0),
                owner: Some(Some(Owner::ConnectionPath)),
                stage: Some(Some(Stage::Dns)),
                class: Some("transport.dns.resolver_failed"),
                attempts: Some(3),
                decision: Some("attempts_exhausted"),
                ..Expect::default()
            },
        ),
        other => return Err(format!("no DNS case {other:?}")),
    };
    let url = format!("http://{name}:{port}/ok");
    let seen = seen(get(tower_triage::connect::http_connector(), &url).await).await;
    let log = || {
        format!(
            "{}\n--- queries ---\n{}",
            resolver.as_ref().map(|r| r.log_text()).unwrap_or_default(),
            fs::read_to_string(dir.join("queries.log")).unwrap_or_default()
        )
    };
    verify(&format!("{name} through dnsmasq"), &seen, expect)
        .map_err(|e| format!("{e}\n{}", log()))?;
    // Every attempt asked the resolver once: no lookup is made behind the
    // layer's back, and none is saved by a cache the layer does not know.
    if resolver.is_some() && case != "dns-known" {
        let asked = queries(&dir, name);
        if asked != seen.attempts as usize {
            return Err(format!(
                "{} attempts, but dnsmasq was asked {asked} times\n{}",
                seen.attempts,
                log()
            ));
        }
    }
    Ok(())
}
