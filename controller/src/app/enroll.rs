//! Join tokens, enrollment, certificate renewal and revocation of hosts (bulk enrollment is in
//! `enroll_bulk`).

use std::collections::BTreeMap;
use std::time::Duration;

use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki;
use jiff::Timestamp;
use tonic::Status;
use tracing::{info, warn};

use super::App;
use crate::error::Error;
use crate::state::{HostRecord, TokenRecord};
use crate::tokens;

/// Longest a join token may live.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What an operator asks for when creating a join token.
pub struct NewToken {
    pub host_id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    pub ttl: Duration,
}

impl App {
    /// Creates a single-use join token bound to a host id; returns it with its expiry.
    pub fn create_token(
        &self,
        operator: &str,
        req: NewToken,
        now: Timestamp,
    ) -> Result<(String, i64), Error> {
        let host = HostId::new(&req.host_id)?;
        if req.ttl.is_zero() || req.ttl > MAX_TOKEN_TTL {
            return Err(Error::invalid("ttl", "must be between 1s and 7 days"));
        }
        check_labels(&req.labels)?;
        let token = tokens::generate(&host);
        let created_at = now.as_second();
        let expires_at = created_at + req.ttl.as_secs() as i64;
        let record = TokenRecord {
            host_id: host.to_string(),
            tenant: req.tenant,
            labels: req.labels,
            created_at,
            expires_at,
            created_by: operator.to_string(),
            used_at: None,
        };
        self.state.put_token(&tokens::hash(&token), &record)?;
        self.audit_entry(
            now,
            &format!("operator {operator}"),
            "token.create",
            host.as_str(),
            "",
        )?;
        info!(host = %host, operator, expires_at, "join token created");
        Ok((token, expires_at))
    }

    /// Exchanges a join token and a CSR for a certificate; the token works once. A refused CSR
    /// does not use the token up.
    pub fn enroll(
        &self,
        token: &str,
        csr_pem: &str,
        now: Timestamp,
    ) -> Result<(HostId, String), Error> {
        let key = tokens::hash(token);
        let record = self.state.token(&key)?.ok_or(Error::TokenUnknown)?;
        if record.used_at.is_some() {
            return Err(Error::TokenUsed);
        }
        if record.expires_at <= now.as_second() {
            return Err(Error::TokenExpired);
        }
        let host = HostId::new(&record.host_id)?;
        // A token made before the host was revoked does not bring it back.
        if let Some(revoked_at) = self.state.host(host.as_str()).and_then(|h| h.revoked_at) {
            if record.created_at < revoked_at {
                return Err(Error::Revoked(host.to_string()));
            }
        }
        let cert_pem = self.sign_agent_csr(&host, csr_pem)?;
        let used = TokenRecord {
            used_at: Some(now.as_second()),
            ..record.clone()
        };
        if !self.state.swap_token(&key, &record, &used)? {
            return Err(Error::TokenUsed);
        }
        let serial = serial_of(&cert_pem)?;
        let host_record = HostRecord {
            host_id: host.to_string(),
            tenant: record.tenant,
            labels: record.labels,
            enrolled_at: now.as_second(),
            cert_serials: vec![serial],
            revoked: false,
            revoked_at: None,
        };
        self.put_host(&host, &host_record)?;
        self.state.flush()?;
        // Whoever held the previous key loses its stream at once (its certificate is refused
        // from now on: the record names only the new one).
        self.registry.kick(&host, reenrolled(&host));
        self.audit_entry(
            now,
            &format!("agent {host}"),
            "host.enroll",
            host.as_str(),
            "",
        )?;
        info!(host = %host, "host enrolled");
        Ok((host, cert_pem))
    }

    /// Signs a fresh certificate for an enrolled agent (its key stays on the host).
    pub fn renew(&self, host: &HostId, csr_pem: &str) -> Result<String, Error> {
        let cert_pem = self.sign_agent_csr(host, csr_pem)?;
        let serial = serial_of(&cert_pem)?;
        self.update_host(host, |old| {
            if old.revoked {
                return Err(Error::Revoked(host.to_string()));
            }
            let mut new = old.clone();
            new.cert_serials.push(serial.clone());
            let excess = new.cert_serials.len().saturating_sub(2);
            new.cert_serials.drain(..excess);
            Ok(new)
        })?;
        self.state.flush()?;
        info!(host = %host, "agent certificate renewed");
        Ok(cert_pem)
    }

    /// Signs an agent's CSR for `host`: the CSR must name that host and nothing else.
    pub(crate) fn sign_agent_csr(&self, host: &HostId, csr_pem: &str) -> Result<String, Error> {
        self.ca
            .sign_csr(
                csr_pem,
                &Identity::Agent(host.clone()),
                self.agent_cert_validity,
            )
            .map_err(Error::Csr)
    }

    /// Revokes a host: its certificates are refused from now on, its stream is cut and its
    /// unused join tokens are void. It comes back only through a token created afterwards.
    pub fn revoke(&self, operator: &str, host_id: &str, now: Timestamp) -> Result<(), Error> {
        let host = HostId::new(host_id)?;
        let at = now.as_second();
        self.update_host(&host, |old| {
            Ok(HostRecord {
                revoked: true,
                revoked_at: Some(at),
                cert_serials: Vec::new(),
                ..old.clone()
            })
        })?;
        let voided = self.void_tokens(&host)?;
        self.state.flush()?;
        self.registry.kick(
            &host,
            Status::permission_denied(format!("host {host} is revoked")),
        );
        self.audit_entry(
            now,
            &format!("operator {operator}"),
            "host.revoke",
            host.as_str(),
            "",
        )?;
        warn!(host = %host, operator, voided_tokens = voided, "host revoked");
        Ok(())
    }

    /// Deletes the host's unused join tokens; returns how many.
    fn void_tokens(&self, host: &HostId) -> Result<usize, Error> {
        let mut voided = 0;
        for (key, token) in self.state.tokens()? {
            if token.host_id == host.as_str() && token.used_at.is_none() {
                self.state.remove_token(&key)?;
                voided += 1;
            }
        }
        Ok(voided)
    }

    /// Stores a host's record as enrollment wrote it (store, then memory).
    pub(crate) fn put_host(&self, host: &HostId, record: &HostRecord) -> Result<(), Error> {
        Ok(self
            .state
            .write_hosts()
            .put(host.as_str(), record.clone())?)
    }

    /// Replaces an enrolled host's record with `change(old)`, atomically: host writes hold the
    /// host cache's write lock from the read to the write.
    fn update_host(
        &self,
        host: &HostId,
        change: impl FnOnce(&HostRecord) -> Result<HostRecord, Error>,
    ) -> Result<(), Error> {
        let mut hosts = self.state.write_hosts();
        let old = hosts
            .get(host.as_str())
            .ok_or_else(|| Error::UnknownHost(host.to_string()))?;
        let new = change(old)?;
        hosts.put(host.as_str(), new)?;
        Ok(())
    }
}

/// The status a stream ends with when its host enrolled again (with another key).
pub(crate) fn reenrolled(host: &HostId) -> Status {
    Status::permission_denied(format!(
        "host {host} enrolled again: this key's certificate is no longer valid"
    ))
}

/// Label keys are non-empty and hold no `=` (selectors are written `key=value`).
pub(crate) fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), Error> {
    for key in labels.keys() {
        if key.is_empty() || key.contains('=') {
            return Err(Error::invalid("labels", format!("bad label key {key:?}")));
        }
    }
    Ok(())
}

pub(crate) fn serial_of(cert_pem: &str) -> Result<String, Error> {
    let der = pki::pem_certs(cert_pem).map_err(Error::Pki)?.remove(0);
    Ok(pki::inspect(&der).map_err(Error::Pki)?.serial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::now;
    use crate::app::tests::{app, csr, token};

    #[test]
    fn a_token_enrolls_once_and_only_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 60, 1000);
        assert!(matches!(
            app.enroll(&t, &csr("web1"), crate::app::ts(1060)),
            Err(Error::TokenExpired)
        ));
        let (host, _) = app.enroll(&t, &csr("web1"), crate::app::ts(1059)).unwrap();
        assert_eq!(host.as_str(), "web1");
        assert!(matches!(
            app.enroll(&t, &csr("web1"), crate::app::ts(1059)),
            Err(Error::TokenUsed)
        ));
        assert!(matches!(
            app.enroll("bf1.web1.00", &csr("web1"), crate::app::ts(1000)),
            Err(Error::TokenUnknown)
        ));
        let record = app.state().host("web1").unwrap();
        assert_eq!(
            (record.tenant.as_str(), record.labels["env"].as_str()),
            ("acme", "prod")
        );
        let stored = app.state().tokens().unwrap();
        assert!(
            stored.iter().all(|(key, _)| !key.contains(&t[9..])),
            "only the hash is stored"
        );
    }

    #[test]
    fn revoking_voids_leftover_tokens_and_only_a_newer_token_brings_the_host_back() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let first = token(&app, "web1", 3600, now());
        app.enroll(&first, &csr("web1"), crate::app::ts(now()))
            .unwrap();
        let leftover = token(&app, "web1", 3600, now());
        app.revoke("alice", "web1", crate::app::ts_now()).unwrap();
        assert!(matches!(
            app.enroll(&leftover, &csr("web1"), crate::app::ts(now())),
            Err(Error::TokenUnknown)
        ));
        assert!(app.state().host("web1").unwrap().revoked, "still revoked");
        // A token stored before the revocation (as if voiding had missed it) is refused too.
        let old = token(&app, "web1", 3600, now() - 10);
        assert!(matches!(
            app.enroll(&old, &csr("web1"), crate::app::ts(now())),
            Err(Error::Revoked(_))
        ));
        let fresh = token(&app, "web1", 3600, now() + 1);
        app.enroll(&fresh, &csr("web1"), crate::app::ts(now()))
            .unwrap();
        assert!(
            !app.state().host("web1").unwrap().revoked,
            "an operator's new token"
        );
    }

    #[tokio::test]
    async fn enrolling_again_cuts_the_previous_key_holders_stream() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 3600, now());
        app.enroll(&t, &csr("web1"), crate::app::ts(now())).unwrap();
        let host = HostId::new("web1").unwrap();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let old = app.registry.register(&host, tx);
        let again = token(&app, "web1", 3600, now());
        app.enroll(&again, &csr("web1"), crate::app::ts(now()))
            .unwrap();
        let status = old.stop.await.unwrap();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("enrolled again"), "{status}");
    }

    #[test]
    fn a_csr_for_another_host_is_refused_without_using_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 60, 1000);
        assert!(matches!(
            app.enroll(&t, &csr("web2"), crate::app::ts(1001)),
            Err(Error::Csr(_))
        ));
        assert!(app.state().host("web2").is_none());
        assert!(app.enroll(&t, &csr("web1"), crate::app::ts(1001)).is_ok());
    }

    #[test]
    fn ttl_and_host_id_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let req = |host: &str, ttl| NewToken {
            host_id: host.into(),
            tenant: String::new(),
            labels: BTreeMap::new(),
            ttl: Duration::from_secs(ttl),
        };
        assert!(app
            .create_token("alice", req("a/b", 60), crate::app::ts(0))
            .is_err());
        assert!(app
            .create_token("alice", req("web1", 0), crate::app::ts(0))
            .is_err());
        assert!(app
            .create_token("alice", req("web1", 8 * 24 * 3600), crate::app::ts(0))
            .is_err());
    }

    #[test]
    fn revoking_clears_the_certificates_and_renewal_keeps_two() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let t = token(&app, "web1", 60, 1000);
        app.enroll(&t, &csr("web1"), crate::app::ts(1001)).unwrap();
        let host = HostId::new("web1").unwrap();
        for _ in 0..3 {
            app.renew(&host, &csr("web1")).unwrap();
        }
        assert_eq!(app.state().host("web1").unwrap().cert_serials.len(), 2);
        app.revoke("alice", "web1", crate::app::ts_now()).unwrap();
        let record = app.state().host("web1").unwrap();
        assert!(record.revoked && record.cert_serials.is_empty());
        assert!(matches!(
            app.renew(&host, &csr("web1")),
            Err(Error::Revoked(_))
        ));
        let actions: Vec<String> = app
            .state()
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["token.create", "host.enroll", "host.revoke"]);
    }
}
