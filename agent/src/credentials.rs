//! The agent's key, certificate and CA in its state directory, and their renewal.

use std::path::{Path, PathBuf};

use boltfleet_common::files::{create_private_dir, write_atomic, write_private};
use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::{self, CertInfo, PkiError};
use boltfleet_common::tls::ClientTls;
use time::OffsetDateTime;

/// The agent's credentials are missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source} (has this host been enrolled? run `boltfleet-agent enroll`)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("agent certificate: {0}")]
    Pki(#[from] PkiError),
    #[error("agent certificate names {0}, not an agent")]
    NotAgent(Identity),
}

/// Paths of the credential files under `state_dir`.
#[derive(Debug, Clone)]
pub struct CredentialFiles {
    dir: PathBuf,
}

/// Loaded credentials.
#[derive(Clone)]
pub struct Credentials {
    pub host: HostId,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: CertInfo,
}

impl CredentialFiles {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.to_path_buf(),
        }
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("agent.key")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("agent.crt")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Stores a freshly issued certificate beside its key (both 0600), with the CA.
    pub fn store(
        &self,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<(), CredentialsError> {
        create_private_dir(&self.dir).map_err(|source| CredentialsError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let write = |path: PathBuf, text: &str, private: bool| {
            let result = if private {
                write_private(&path, text.as_bytes())
            } else {
                write_atomic(&path, text.as_bytes(), 0o644)
            };
            result.map_err(|source| CredentialsError::Write { path, source })
        };
        write(self.key(), key_pem, true)?;
        write(self.cert(), cert_pem, true)?;
        write(self.ca(), ca_pem, false)
    }

    /// Replaces only the certificate (renewal keeps the key).
    pub fn store_cert(&self, cert_pem: &str) -> Result<(), CredentialsError> {
        write_private(&self.cert(), cert_pem.as_bytes()).map_err(|source| CredentialsError::Write {
            path: self.cert(),
            source,
        })
    }

    pub fn load(&self) -> Result<Credentials, CredentialsError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| CredentialsError::Read { path, source })
        };
        let (ca_pem, cert_pem, key_pem) = (read(self.ca())?, read(self.cert())?, read(self.key())?);
        let der = pki::pem_certs(&cert_pem)?.remove(0);
        let cert = pki::inspect(&der)?;
        let Identity::Agent(host) = cert.identity.clone() else {
            return Err(CredentialsError::NotAgent(cert.identity));
        };
        Ok(Credentials {
            host,
            ca_pem,
            cert_pem,
            key_pem,
            cert,
        })
    }
}

impl Credentials {
    pub fn client_tls(&self) -> ClientTls {
        ClientTls::Mutual {
            ca_pem: self.ca_pem.clone(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }

    /// True once less than a third of the certificate's lifetime is left.
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        let lifetime = self.cert.not_after - self.cert.not_before;
        self.cert.not_after - now < lifetime / 3
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("host", &self.host)
            .field("not_after", &self.cert.not_after)
            .finish_non_exhaustive()
    }
}
