//! `openssl s_server` with certificates made by `openssl req`/`x509` at
//! test time: every certificate problem is the TLS stage and is never
//! retried; a plain port spoken to with TLS is a TLS failure too.

use tower_triage::core::{Owner, Stage};
use triage_interop::{Scratch, nginx, openssl_ca, openssl_leaf, openssl_server};

use crate::support::{Expect, get, https_trusting, seen, verify};

/// A server certificate problem, and the class triage must name.
async fn tls_case(
    what: &str,
    host: &str,
    days: i32,
    signed_by_trusted: bool,
    class: &'static str,
) -> Result<(), String> {
    let dir = Scratch::new("openssl").map_err(|e| e.to_string())?;
    let trusted = openssl_ca(&dir, "triage interop CA")?;
    let foreign = openssl_ca(&dir, "some other CA")?;
    let issuer = if signed_by_trusted {
        &trusted
    } else {
        &foreign
    };
    let leaf = openssl_leaf(&dir, issuer, host, days)?;
    let server = openssl_server(&dir, &leaf, Some(issuer))?;
    let url = format!("https://svc.test:{}/", server.addr().port());
    let seen = seen(get(https_trusting(&trusted.cert)?, &url).await).await;
    let expect = if class == "success" {
        Expect {
            status: Some(200),
            owner: Some(None),
            attempts: Some(1),
            decision: Some("success"),
            ..Expect::default()
        }
    } else {
        Expect {
            status: Some(0),
            owner: Some(Some(Owner::ConnectionPath)),
            stage: Some(Some(Stage::Tls)),
            class: Some(class),
            attempts: Some(1),
            decision: Some("not_retryable"),
            ..Expect::default()
        }
    };
    verify(what, &seen, expect).map_err(|e| format!("{e}\n{}", server.log_text()))
}

pub(crate) async fn a_trusted_certificate_works() -> Result<(), String> {
    tls_case(
        "a certificate for svc.test from the trusted CA",
        "svc.test",
        30,
        true,
        "success",
    )
    .await
}

pub(crate) async fn expired_certificate_is_tls_never_retried() -> Result<(), String> {
    tls_case(
        "an expired certificate (openssl x509 -days -1)",
        "svc.test",
        -1,
        true,
        "transport.tls.certificate.expired",
    )
    .await
}

pub(crate) async fn wrong_host_name_is_tls_never_retried() -> Result<(), String> {
    tls_case(
        "a certificate for other.test",
        "other.test",
        30,
        true,
        "transport.tls.certificate.wrong_name",
    )
    .await
}

pub(crate) async fn unknown_ca_is_tls_never_retried() -> Result<(), String> {
    tls_case(
        "a certificate from a CA the client does not trust",
        "svc.test",
        30,
        false,
        "transport.tls.certificate.unknown_issuer",
    )
    .await
}

pub(crate) async fn plain_port_spoken_to_with_tls_is_tls_never_retried() -> Result<(), String> {
    // nginx speaking plain HTTP on its port; the client speaks TLS to it.
    let dir = Scratch::new("nginx-plain").map_err(|e| e.to_string())?;
    let nginx = nginx(&dir, "", "    location / { return 200 'plain'; }")?;
    let ca_dir = Scratch::new("openssl-ca").map_err(|e| e.to_string())?;
    let trusted = openssl_ca(&ca_dir, "triage interop CA")?;
    let url = format!("https://svc.test:{}/", nginx.addr().port());
    let seen = seen(get(https_trusting(&trusted.cert)?, &url).await).await;
    verify(
        "TLS spoken to nginx's plain HTTP port",
        &seen,
        Expect {
            status: Some(0),
            owner: Some(Some(Owner::ConnectionPath)),
            stage: Some(Some(Stage::Tls)),
            class: Some("transport.tls.tls_protocol"),
            attempts: Some(1),
            decision: Some("not_retryable"),
            ..Expect::default()
        },
    )
}
