//! The controller's certificate authority, certificate requests, and reading identities from
//! certificates.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

use crate::grant::Grant;
use crate::identity::{Identity, IdentityError};

/// A certificate or key that could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("the certificate request must name exactly {expected}, it names {found}")]
    IdentityMismatch { expected: String, found: String },
    #[error("the CA key does not match the CA certificate (it belongs to another CA)")]
    KeyMismatch,
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A PEM certificate with its PEM private key.
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey").finish_non_exhaustive()
    }
}

/// The controller's CA: signs controller, operator and agent certificates.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// Creates a new self-signed CA valid for ten years.
    pub fn generate() -> Result<CertAndKey, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Boltfleet CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads a CA from its PEM certificate and key; refuses a key that is not the
    /// certificate's (it would sign certificates nobody trusting the CA accepts).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert_der = pem_certs(cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Pem("no certificate in CA PEM".into()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| PkiError::Certificate(e.to_string()))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(PkiError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            cert_der,
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `sha256:<hex>` of the CA certificate: the pin agents use to enroll.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// Issues a certificate and a fresh key for `identity` (controller and operators).
    ///
    /// `dns_or_ip` become extra SANs (the controller's names and addresses).
    pub fn issue(
        &self,
        identity: &Identity,
        dns_or_ip: &[String],
        validity: Duration,
    ) -> Result<CertAndKey, PkiError> {
        let key = KeyPair::generate()?;
        let params = self.leaf_params(identity, None, dns_or_ip, validity)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues an operator certificate and a fresh key carrying `grant` (role and tenants).
    pub fn issue_operator(
        &self,
        identity: &Identity,
        grant: &Grant,
        validity: Duration,
    ) -> Result<CertAndKey, PkiError> {
        let key = KeyPair::generate()?;
        let params = self.leaf_params(identity, Some(grant), &[], validity)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a CSR whose only identity must be `expected`; the CA decides everything else
    /// (validity, usages), only the public key comes from the request.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        expected: &Identity,
        validity: Duration,
    ) -> Result<String, PkiError> {
        self.sign_csr_granting(csr_pem, expected, None, validity)
    }

    /// [`CertificateAuthority::sign_csr`] for an operator, granting `grant`: the role and
    /// tenants come from the CA's caller, never from the request.
    pub fn sign_csr_granting(
        &self,
        csr_pem: &str,
        expected: &Identity,
        grant: Option<&Grant>,
        validity: Duration,
    ) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let found: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(uri) => uri.as_str().to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        if found != [expected.uri()] {
            return Err(PkiError::IdentityMismatch {
                expected: expected.uri(),
                found: if found.is_empty() {
                    "nothing".into()
                } else {
                    found.join(", ")
                },
            });
        }
        let params = self.leaf_params(expected, grant, &[], validity)?;
        Ok(params.signed_by(&csr.public_key, &self.issuer)?.pem())
    }

    fn leaf_params(
        &self,
        identity: &Identity,
        grant: Option<&Grant>,
        dns_or_ip: &[String],
        validity: Duration,
    ) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::new(dns_or_ip.to_vec())?;
        params
            .subject_alt_names
            .push(SanType::URI(identity.uri().try_into()?));
        for uri in grant.map(Grant::uris).unwrap_or_default() {
            params.subject_alt_names.push(SanType::URI(uri.try_into()?));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, identity.to_string());
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        // Allow a little clock skew between hosts.
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + validity;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match identity {
            Identity::Controller => vec![ExtendedKeyUsagePurpose::ServerAuth],
            _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }
}

/// A fresh key and a CSR naming `identity` (the agent's side of enrollment and renewal).
pub fn new_csr(identity: &Identity) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(identity.uri().try_into()?)];
    params
        .distinguished_name
        .push(DnType::CommonName, identity.to_string());
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// A CSR for an existing key (renewal keeps the key on the host).
pub fn csr_for_key(identity: &Identity, key_pem: &str) -> Result<String, PkiError> {
    let key = KeyPair::from_pem(key_pem)?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(identity.uri().try_into()?)];
    Ok(params.serialize_request(&key)?.pem()?)
}

/// `sha256:<hex>` of DER bytes.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Checks that a pin is `sha256:` followed by 64 hex digits, and returns it lowercased.
pub fn parse_pin(pin: &str) -> Result<String, PkiError> {
    let hex_part = pin
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| PkiError::Pem(format!("CA pin {pin:?} is not sha256:<64 hex digits>")))?;
    Ok(format!("sha256:{}", hex_part.to_ascii_lowercase()))
}

/// All certificates in a PEM text, as DER.
pub fn pem_certs(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PkiError::Pem("no certificate found".into()));
    }
    Ok(certs)
}

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub identity: Identity,
    /// The role and tenants of an operator certificate; `None` when it names none (agents,
    /// the controller, and operator certificates issued before roles existed).
    pub grant: Option<Grant>,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Reads the boltfleet identity (exactly one boltfleet URI SAN) and validity of a certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    let uris: Vec<&str> = san
        .map(|ext| ext.value.general_names.iter())
        .into_iter()
        .flatten()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    let grant = Grant::from_uris(uris.iter().copied())?;
    let identities: Vec<Identity> = uris
        .iter()
        .copied()
        .filter(|uri| uri.starts_with("spiffe://boltfleet/"))
        .map(Identity::from_uri)
        .collect::<Result<_, _>>()?;
    let [identity] = <[Identity; 1]>::try_from(identities).map_err(|found| {
        PkiError::Certificate(format!(
            "expected one boltfleet identity, found {}",
            found.len()
        ))
    })?;
    let validity = cert.validity();
    Ok(CertInfo {
        identity,
        grant,
        serial: hex::encode(cert.raw_serial()),
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
    })
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand_bytes();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte
    SerialNumber::from_slice(&bytes)
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut out)
        .expect("system random source");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::HostId;

    fn ca() -> CertificateAuthority {
        let keys = CertificateAuthority::generate().unwrap();
        CertificateAuthority::load(&keys.cert_pem, &keys.key_pem).unwrap()
    }

    fn der(pem: &str) -> Vec<u8> {
        pem_certs(pem).unwrap().remove(0)
    }

    #[test]
    fn a_ca_key_of_another_ca_is_refused() {
        let (one, other) = (
            CertificateAuthority::generate().unwrap(),
            CertificateAuthority::generate().unwrap(),
        );
        assert!(CertificateAuthority::load(&one.cert_pem, &one.key_pem).is_ok());
        let mixed = CertificateAuthority::load(&one.cert_pem, &other.key_pem);
        assert!(matches!(mixed, Err(PkiError::KeyMismatch)));
    }

    #[test]
    fn issued_certificates_carry_their_identity() {
        let ca = ca();
        let op = Identity::operator("alice").unwrap();
        let issued = ca.issue(&op, &[], Duration::from_secs(3600)).unwrap();
        let info = inspect(&der(&issued.cert_pem)).unwrap();
        assert_eq!(info.identity, op);
        assert!(info.not_after > OffsetDateTime::now_utc());
        assert_eq!(ca.fingerprint().len(), "sha256:".len() + 64);
        assert_eq!(
            parse_pin(&ca.fingerprint().to_uppercase().replace("SHA256", "sha256")).unwrap(),
            ca.fingerprint()
        );
    }

    #[test]
    fn csr_is_signed_only_for_its_own_identity() {
        let ca = ca();
        let web1 = Identity::Agent(HostId::new("web1").unwrap());
        let web2 = Identity::Agent(HostId::new("web2").unwrap());
        let (csr, _key) = new_csr(&web1).unwrap();
        let cert = ca.sign_csr(&csr, &web1, Duration::from_secs(60)).unwrap();
        assert_eq!(inspect(&der(&cert)).unwrap().identity, web1);
        let err = ca
            .sign_csr(&csr, &web2, Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, PkiError::IdentityMismatch { .. }), "{err}");
        assert!(ca
            .sign_csr("garbage", &web1, Duration::from_secs(60))
            .is_err());
    }

    #[test]
    fn operator_certificates_carry_their_grant_and_old_ones_none() {
        use crate::grant::Role;
        let ca = ca();
        let op = Identity::operator("bob").unwrap();
        let grant = Grant::new(Role::Operator, &["acme".into()]).unwrap();
        let issued = ca
            .issue_operator(&op, &grant, Duration::from_secs(60))
            .unwrap();
        let info = inspect(&der(&issued.cert_pem)).unwrap();
        assert_eq!(
            (info.identity, info.grant),
            (op.clone(), Some(grant.clone()))
        );
        let (csr, _key) = new_csr(&op).unwrap();
        let signed = ca
            .sign_csr_granting(&csr, &op, Some(&grant), Duration::from_secs(60))
            .unwrap();
        assert_eq!(inspect(&der(&signed)).unwrap().grant, Some(grant));
        let old = ca.issue(&op, &[], Duration::from_secs(60)).unwrap();
        assert_eq!(inspect(&der(&old.cert_pem)).unwrap().grant, None);
    }

    #[test]
    fn pins_are_checked() {
        assert!(parse_pin("sha256:abc").is_err());
        assert!(parse_pin(&format!("md5:{}", "a".repeat(64))).is_err());
        assert!(parse_pin(&format!("sha256:{}", "g".repeat(64))).is_err());
    }
}
