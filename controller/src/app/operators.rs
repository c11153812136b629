//! Operators as the controller records them: certificates issued through it (`IssueOperatorCert`)
//! or seen on a first call, their revocation, and the check every admin call makes.

use boltfleet_common::grant::{Grant, Role};
use boltfleet_common::identity::Identity;
use boltfleet_common::pki;
use jiff::Timestamp;
use tracing::{info, warn};

use crate::app::App;
use crate::auth::Caller;
use crate::ca::OPERATOR_CERT_VALIDITY;
use crate::error::Error;
use crate::state::{OperatorCert, OperatorRecord};

/// How often a record is re-read when another call changed it meanwhile.
const CAS_TRIES: usize = 8;

impl App {
    /// Refuses a revoked operator certificate; records one seen for the first time (so that
    /// `operator list` shows certificates written by `operator-cert` too).
    pub fn check_operator(
        &self,
        caller: &Caller,
        not_after: i64,
        now: Timestamp,
    ) -> Result<(), Error> {
        for _ in 0..CAS_TRIES {
            let old = self.state.operator(&caller.name)?;
            if let Some(record) = &old {
                if record.refuses(&caller.serial) {
                    warn!(operator = %caller.name, serial = %caller.serial, "revoked operator certificate refused");
                    return Err(Error::Forbidden(format!(
                        "operator {}'s certificate is revoked",
                        caller.name
                    )));
                }
                if record.certs.iter().any(|c| c.serial == caller.serial) {
                    return Ok(());
                }
            }
            let mut new = old.clone().unwrap_or_else(|| OperatorRecord {
                name: caller.name.clone(),
                ..OperatorRecord::default()
            });
            new.certs.push(OperatorCert {
                serial: caller.serial.clone(),
                role: caller.role.to_string(),
                tenants: caller.scope.tenant_list(),
                since: now.as_second(),
                not_after,
                ..OperatorCert::default()
            });
            if self.state.swap_operator(&caller.name, old.as_ref(), &new)? {
                info!(operator = %caller.name, serial = %caller.serial, role = %caller.role, "operator certificate seen first");
                return Ok(());
            }
        }
        Err(Error::Precondition(format!(
            "operator {} changed too often at once; try again",
            caller.name
        )))
    }

    /// Signs an operator's CSR with `grant` (admins only); returns the certificate PEM.
    pub fn issue_operator_cert(
        &self,
        by: &Caller,
        name: &str,
        grant: &Grant,
        csr_pem: &str,
        now: Timestamp,
    ) -> Result<String, Error> {
        by.require(Role::Admin, "issuing operator certificates")?;
        let identity = Identity::operator(name)?;
        let cert_pem = self
            .ca
            .sign_csr_granting(csr_pem, &identity, Some(grant), OPERATOR_CERT_VALIDITY)
            .map_err(Error::Csr)?;
        let der = pki::pem_certs(&cert_pem).map_err(Error::Pki)?.remove(0);
        let info = pki::inspect(&der).map_err(Error::Pki)?;
        let cert = OperatorCert {
            serial: info.serial,
            role: grant.role.to_string(),
            tenants: grant.scope.tenant_list(),
            since: now.as_second(),
            not_after: info.not_after.unix_timestamp(),
            issued_by: by.name.clone(),
            revoked: false,
        };
        self.change_operator(name, |record| record.certs.push(cert.clone()))?;
        self.audit_entry(
            now,
            &format!("operator {}", by.name),
            "operator.issue",
            name,
            &grant.to_string(),
        )?;
        info!(operator = name, by = %by.name, %grant, "operator certificate issued");
        Ok(cert_pem)
    }

    /// Every recorded operator, by name (admins only).
    pub fn operators(&self, by: &Caller) -> Result<Vec<OperatorRecord>, Error> {
        by.require(Role::Admin, "listing operators")?;
        Ok(self
            .state
            .operators()?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Refuses every certificate of `name` issued until now, recorded or not (admins only).
    pub fn revoke_operator(&self, by: &Caller, name: &str, now: Timestamp) -> Result<(), Error> {
        by.require(Role::Admin, "revoking operators")?;
        Identity::operator(name)?;
        let at = now.as_second();
        self.change_operator(name, |record| {
            record.revoked_at = Some(at);
            record.revoked_by = Some(by.name.clone());
            for cert in &mut record.certs {
                cert.revoked = true;
            }
        })?;
        self.audit_entry(
            now,
            &format!("operator {}", by.name),
            "operator.revoke",
            name,
            "",
        )?;
        warn!(operator = name, by = %by.name, "operator revoked");
        Ok(())
    }

    /// Applies `change` to the record of `name` (created when missing) and makes it durable.
    fn change_operator(
        &self,
        name: &str,
        change: impl Fn(&mut OperatorRecord),
    ) -> Result<(), Error> {
        for _ in 0..CAS_TRIES {
            let old = self.state.operator(name)?;
            let mut new = old.clone().unwrap_or_else(|| OperatorRecord {
                name: name.into(),
                ..OperatorRecord::default()
            });
            change(&mut new);
            if self.state.swap_operator(name, old.as_ref(), &new)? {
                return Ok(());
            }
        }
        Err(Error::Precondition(format!(
            "operator {name} changed too often at once; try again"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::app;

    fn caller(name: &str, serial: &str) -> Caller {
        Caller {
            serial: serial.into(),
            ..Caller::admin(name)
        }
    }

    #[test]
    fn revoking_an_operator_refuses_its_certificates_known_or_not_but_not_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let admin = caller("root", "00");
        app.check_operator(&caller("bob", "aa"), 0, crate::app::ts_now())
            .unwrap();
        assert_eq!(app.operators(&admin).unwrap()[0].certs[0].serial, "aa");
        app.revoke_operator(&admin, "bob", crate::app::ts_now())
            .unwrap();
        assert!(app
            .check_operator(&caller("bob", "aa"), 0, crate::app::ts_now())
            .is_err());
        assert!(
            app.check_operator(&caller("bob", "bb"), 0, crate::app::ts_now())
                .is_err(),
            "unknown one"
        );

        let (csr, _key) = pki::new_csr(&Identity::operator("bob").unwrap()).unwrap();
        let grant = Grant::new(Role::Viewer, &[]).unwrap();
        let pem = app
            .issue_operator_cert(&admin, "bob", &grant, &csr, crate::app::ts_now())
            .unwrap();
        let serial = crate::app::enroll::serial_of(&pem).unwrap();
        app.check_operator(&caller("bob", &serial), 0, crate::app::ts_now())
            .unwrap();
        assert!(app
            .check_operator(&caller("bob", "aa"), 0, crate::app::ts_now())
            .is_err());
    }

    #[test]
    fn only_admins_issue_list_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let op = Caller {
            role: Role::Operator,
            ..caller("bob", "aa")
        };
        assert!(matches!(app.operators(&op), Err(Error::Forbidden(_))));
        assert!(matches!(
            app.revoke_operator(&op, "carol", crate::app::ts_now()),
            Err(Error::Forbidden(_))
        ));
        let grant = Grant::new(Role::Admin, &[]).unwrap();
        assert!(matches!(
            app.issue_operator_cert(&op, "bob", &grant, "x", crate::app::ts_now()),
            Err(Error::Forbidden(_))
        ));
    }
}
