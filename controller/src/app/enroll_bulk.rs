//! Enrollment by an operator: CSRs collected from hosts the operator provisions with their own
//! tooling are signed in bulk, without a join token per host.

use std::collections::BTreeMap;

use boltfleet_common::identity::HostId;
use tracing::info;

use super::enroll::{check_labels, serial_of};
use jiff::Timestamp;

use super::App;
use crate::error::Error;
use crate::state::{AuditRecord, HostRecord};

/// Most hosts one request may enroll (keeps the request and the response under the limits).
pub const MAX_BULK_HOSTS: usize = 1000;

/// One host an operator enrolls.
pub struct HostCsr {
    pub host_id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    pub csr_pem: String,
}

impl App {
    /// Signs each host's CSR and records the host as enrolled (a host enrolled before gets a
    /// fresh record: new certificate, tenant and labels). Either every host is enrolled or,
    /// when one entry is refused, none is; the error names the entry.
    pub fn enroll_hosts(
        &self,
        operator: &str,
        hosts: Vec<HostCsr>,
        now: Timestamp,
    ) -> Result<Vec<String>, Error> {
        if hosts.len() > MAX_BULK_HOSTS {
            return Err(Error::invalid(
                "hosts",
                format!(
                    "{} hosts; at most {MAX_BULK_HOSTS} per request",
                    hosts.len()
                ),
            ));
        }
        let at = now.as_second();
        let mut signed = Vec::with_capacity(hosts.len());
        for (i, entry) in hosts.into_iter().enumerate() {
            let id = entry.host_id.clone();
            let named = |e: Error| Error::invalid("hosts", format!("entry {i} ({id}): {e}"));
            let host = HostId::new(&entry.host_id).map_err(|e| named(e.into()))?;
            check_labels(&entry.labels).map_err(named)?;
            let cert_pem = self.sign_agent_csr(&host, &entry.csr_pem).map_err(named)?;
            let record = HostRecord {
                host_id: host.to_string(),
                tenant: entry.tenant,
                labels: entry.labels,
                enrolled_at: at,
                cert_serials: vec![serial_of(&cert_pem)?],
                revoked: false,
                revoked_at: None,
            };
            signed.push((host, record, cert_pem));
        }
        let actor = format!("operator {operator}");
        let mut audit = Vec::with_capacity(signed.len());
        let mut certs = Vec::with_capacity(signed.len());
        for (host, record, cert_pem) in signed {
            self.put_host(&host, &record)?;
            // The previous key holder's stream, if any, ends now.
            self.registry.kick(&host, super::enroll::reenrolled(&host));
            audit.push(AuditRecord::new(
                at,
                &actor,
                "host.enroll",
                host.as_str(),
                "by operator",
            ));
            certs.push(cert_pem);
        }
        self.state.flush()?;
        self.state.audit_all(&audit)?;
        info!(
            operator,
            hosts = certs.len(),
            "hosts enrolled by an operator"
        );
        Ok(certs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::app;
    use boltfleet_common::identity::Identity;
    use boltfleet_common::pki::new_csr;

    fn entry(host: &str) -> HostCsr {
        let csr = new_csr(&Identity::Agent(HostId::new(host).unwrap()))
            .unwrap()
            .0;
        HostCsr {
            host_id: host.into(),
            tenant: "acme".into(),
            labels: BTreeMap::from([("env".into(), "prod".into())]),
            csr_pem: csr,
        }
    }

    #[test]
    fn every_host_gets_a_certificate_and_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let certs = app
            .enroll_hosts(
                "alice",
                vec![entry("web1"), entry("web2")],
                crate::app::ts_now(),
            )
            .unwrap();
        assert_eq!(certs.len(), 2);
        for (host, cert) in ["web1", "web2"].iter().zip(&certs) {
            let record = app.state().host(host).unwrap();
            assert_eq!(record.cert_serials, vec![serial_of(cert).unwrap()]);
            assert_eq!(record.tenant, "acme");
        }
        let log = app.state().audit_log().unwrap();
        assert_eq!(log.len(), 2);
        assert!(log
            .iter()
            .all(|e| e.actor == "operator alice" && e.action == "host.enroll"));
    }

    #[test]
    fn one_bad_entry_enrolls_nobody_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let mut wrong = entry("web2");
        wrong.csr_pem = entry("web3").csr_pem;
        let err = app
            .enroll_hosts("alice", vec![entry("web1"), wrong], crate::app::ts_now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("entry 1 (web2)"), "{err}");
        assert!(app.state().hosts().is_empty());

        let too_many = (0..=MAX_BULK_HOSTS).map(|_| entry("web1")).collect();
        let err = app
            .enroll_hosts("alice", too_many, crate::app::ts_now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 1000"), "{err}");
    }
}
