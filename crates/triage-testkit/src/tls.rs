//! Test certificates made at start-up with rcgen, and what can be wrong
//! with them.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What is wrong with the server's certificate.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertProblem {
    /// Nothing: signed by the CA the client trusts, for `svc.test`, valid now.
    None,
    /// Signed by another CA than [`TlsUpstream::ca_der`](crate::TlsUpstream::ca_der).
    UnknownIssuer,
    /// For `other.test`, not `svc.test`.
    WrongName,
    /// Expired in 2001.
    Expired,
}

/// A certificate authority for tests.
pub(crate) struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

/// The CA of every upstream's certificate ("triage test CA"), made once per
/// process: a client that trusts it trusts every upstream started later.
pub(crate) fn shared_ca() -> Result<&'static TestCa, BoxError> {
    static CA: std::sync::OnceLock<Result<TestCa, String>> = std::sync::OnceLock::new();
    CA.get_or_init(|| TestCa::new("triage test CA").map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.clone().into())
}

/// The DER of the CA that signs every TLS upstream's certificate (one per
/// process; [`CertProblem::UnknownIssuer`] upstreams use another): what a
/// client built before its upstreams trusts.
pub fn ca_der() -> std::io::Result<&'static [u8]> {
    shared_ca().map(TestCa::der).map_err(std::io::Error::other)
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Result<TestCa, BoxError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        // Each CA has its own name: with rcgen's default name for both, a
        // foreign chain reads as a bad signature instead of an unknown issuer.
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate()?;
        let der = params.self_signed(&key)?.der().clone();
        Ok(TestCa { params, key, der })
    }

    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// A TLS acceptor whose certificate has `problem`.
    pub(crate) fn acceptor(&self, problem: CertProblem) -> Result<TlsAcceptor, BoxError> {
        Ok(TlsAcceptor::from(Arc::new(self.server_config(problem)?)))
    }

    /// The server configuration behind [`TestCa::acceptor`] (no ALPN).
    pub(crate) fn server_config(
        &self,
        problem: CertProblem,
    ) -> Result<rustls::ServerConfig, BoxError> {
        let other;
        let issuer_ca = if problem == CertProblem::UnknownIssuer {
            other = TestCa::new("another test CA")?;
            &other
        } else {
            self
        };
        let name = if problem == CertProblem::WrongName {
            "other.test"
        } else {
            "svc.test"
        };
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        if problem == CertProblem::Expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&issuer_ca.params, &issuer_ca.key);
        let cert = params.signed_by(&key, &issuer)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), issuer_ca.der.clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )?;
        Ok(config)
    }
}
