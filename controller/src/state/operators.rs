//! Records of operators and tenant policies: desired state, written by admins only.

use serde::{Deserialize, Serialize};

/// An operator name and the certificates known to carry it: issued by the controller through
/// `IssueOperatorCert`, or seen on a first call (certificates written by `operator-cert` on the
/// controller host, and those from before operators were recorded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorRecord {
    pub name: String,
    pub certs: Vec<OperatorCert>,
    /// Set by `operator revoke`: every certificate of this name known then is refused, and so
    /// is any unknown one (issued before the revocation and never seen). Certificates issued
    /// afterwards work.
    #[serde(default)]
    pub revoked_at: Option<i64>,
    #[serde(default)]
    pub revoked_by: Option<String>,
}

/// One certificate of an operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorCert {
    /// Hex, as in [`boltfleet_common::pki::CertInfo::serial`].
    pub serial: String,
    /// "viewer", "operator" or "admin" ("admin" for certificates without a role).
    pub role: String,
    /// Empty: the whole fleet.
    pub tenants: Vec<String>,
    /// Unix seconds: issued by the controller, or first seen.
    pub since: i64,
    pub not_after: i64,
    /// Who issued it through the controller; empty when only seen.
    #[serde(default)]
    pub issued_by: String,
    #[serde(default)]
    pub revoked: bool,
}

impl OperatorRecord {
    /// Whether the certificate `serial` of this operator is refused.
    pub fn refuses(&self, serial: &str) -> bool {
        match self.certs.iter().find(|c| c.serial == serial) {
            Some(cert) => cert.revoked,
            None => self.revoked_at.is_some(),
        }
    }
}

/// What a tenant's rollouts must go through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// A rollout touching the tenant waits for an operator other than its creator to approve.
    pub require_approval: bool,
    pub set_by: String,
    pub set_at: i64,
}
