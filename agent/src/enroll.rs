//! Enrollment: a key made on this host, a CSR and the join token, sent over TLS pinned to the
//! controller's CA fingerprint.

use boltfleet_common::identity::{token_host, HostId, Identity, IdentityError};
use boltfleet_common::pki::{self, PkiError};
use boltfleet_common::proto::enroll_service_client::EnrollServiceClient;
use boltfleet_common::proto::EnrollRequest;
use boltfleet_common::tls::{self, ClientTls, TlsError};
use tracing::info;

use crate::credentials::{CredentialFiles, CredentialsError};

/// Why enrollment failed; nothing is written in that case.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("join token: {0}")]
    Token(IdentityError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("controller refused enrollment: {0}")]
    Refused(String),
    #[error("the CA the controller returned does not match the pin")]
    CaMismatch,
    #[error("this host is already enrolled as {0} ({1} exists); remove it to enroll again")]
    AlreadyEnrolled(HostId, String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Enrolls this host; returns its host id. `host_override` puts another identity in the CSR
/// than the one the token names (the controller refuses it; useful to check that it does).
pub async fn enroll(
    controller: &str,
    token: &str,
    pin: &str,
    files: &CredentialFiles,
    host_override: Option<HostId>,
) -> Result<HostId, EnrollError> {
    let pin = pki::parse_pin(pin)?;
    if let Ok(existing) = files.load() {
        return Err(EnrollError::AlreadyEnrolled(
            existing.host,
            files.cert().display().to_string(),
        ));
    }
    let host = match host_override {
        Some(host) => host,
        None => token_host(token).map_err(EnrollError::Token)?,
    };
    let (csr_pem, key_pem) = pki::new_csr(&Identity::Agent(host.clone()))?;
    let channel = tls::connect(controller, &ClientTls::Pinned { pin: pin.clone() }).await?;
    let response = EnrollServiceClient::new(channel)
        .enroll(EnrollRequest {
            token: token.trim().to_string(),
            csr_pem,
        })
        .await
        .map_err(|status| EnrollError::Refused(status.message().to_string()))?
        .into_inner();
    let ca_der = pki::pem_certs(&response.ca_pem)?.remove(0);
    if pki::fingerprint(&ca_der) != pin {
        return Err(EnrollError::CaMismatch);
    }
    files.store(&response.ca_pem, &response.certificate_pem, &key_pem)?;
    info!(host = %host, "enrolled");
    Ok(host)
}
