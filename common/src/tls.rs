//! Every TLS configuration Boltfleet uses, built in one place so binaries and tests share it.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::pki::{fingerprint, parse_pin, PkiError};

/// A controller address or TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid controller URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("TLS setup: {0}")]
    Config(String),
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Installs the ring crypto provider for rustls; call once at process start.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS for the controller's listener: its certificate chain, and client certificates verified
/// against the CA when presented. Optional so that enrollment works before a host has a
/// certificate; every other RPC requires one (see the controller's auth). HTTP/2 only.
pub fn server_config(
    ca_pem: &str,
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for der in crate::pki::pem_certs(ca_pem)? {
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
    }
    let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = crate::pki::pem_certs(chain_pem)?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::Config(format!("server key: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("server certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// How a client proves who it is and decides whom to trust.
#[derive(Clone)]
pub enum ClientTls {
    /// Mutual TLS: trust the CA, present our certificate.
    Mutual {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    },
    /// Server-authenticated TLS for enrollment: trust the CA whose fingerprint is pinned,
    /// whatever it is, as long as the controller presents it in its chain.
    Pinned { pin: String },
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientTls::Mutual { .. } => f.write_str("ClientTls::Mutual"),
            ClientTls::Pinned { pin } => write!(f, "ClientTls::Pinned({pin})"),
        }
    }
}

/// Builds the endpoint for a controller URL (`https://host:port`), with timeouts and keepalives
/// suitable for a long-lived agent stream.
pub fn endpoint(url: &str, tls: &ClientTls) -> Result<Endpoint, TlsError> {
    let bad = |reason: &str| TlsError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if !url.starts_with("https://") {
        return Err(bad("expected https://host:port"));
    }
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| bad(&e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let endpoint = match tls {
        ClientTls::Mutual {
            ca_pem,
            cert_pem,
            key_pem,
        } => endpoint.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .identity(Identity::from_pem(cert_pem, key_pem)),
        ),
        ClientTls::Pinned { pin } => endpoint.tls_config_with_verifier(
            ClientTlsConfig::new(),
            Arc::new(PinnedCaVerifier::new(&parse_pin(pin)?)),
        ),
    };
    endpoint.map_err(|e| bad(&e.to_string()))
}

/// Connects to the controller now (fails fast when it is unreachable or untrusted).
pub async fn connect(url: &str, tls: &ClientTls) -> Result<Channel, TlsError> {
    endpoint(url, tls)?
        .connect()
        .await
        .map_err(|source| TlsError::Connect {
            url: url.to_string(),
            source,
        })
}

/// Accepts a server whose chain contains the CA certificate with the pinned fingerprint and
/// whose certificate that CA signed for the name we dialled.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedCaVerifier {
    fn new(pin: &str) -> Self {
        Self {
            pin: pin.to_string(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the controller's CA does not match the pin {}",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
