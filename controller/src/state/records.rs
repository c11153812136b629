//! The records the controller stores: desired state (hosts, tokens) apart from observed state.

use std::collections::BTreeMap;

use boltfleet_common::proto::Inventory;
use serde::{Deserialize, Serialize};

/// A host as the operators enrolled it. Desired state: only operators and enrollment change it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    pub host_id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds of the (last) enrollment.
    pub enrolled_at: i64,
    /// Serials (hex) of the certificates this host may present: the newest two, so that a
    /// renewal does not cut off a stream opened with the previous one.
    pub cert_serials: Vec<String>,
    pub revoked: bool,
    /// Unix seconds of the last revocation: only a token created after it enrolls the host
    /// again.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// What the host's agent last said. Observed state: only agents change it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub inventory: Option<Inventory>,
    /// Unix seconds of the last message from the agent.
    pub last_seen: i64,
    pub agent_version: String,
}

impl Observed {
    /// The one health rule, for reports and rollouts alike: the agent sent an inventory, its
    /// healthcheck passed, and it could read everything it looked at.
    pub fn is_healthy(&self) -> bool {
        self.inventory.as_ref().is_some_and(|inv| {
            inv.health.as_ref().is_some_and(|h| h.healthy) && inv.errors.is_empty()
        })
    }
}

/// The release an operator set as the fleet's (or a tenant's) `latest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestRecord {
    /// X.Y.Z
    pub version: String,
    pub set_by: String,
    pub set_at: i64,
}

/// A join token, stored under the hash of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub host_id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub created_by: String,
    /// Set once the token enrolled a host; a used token never works again.
    pub used_at: Option<i64>,
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: i64,
    /// Who did it: `operator NAME`, `agent HOST`, `controller`.
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl AuditRecord {
    pub fn new(at: i64, actor: &str, action: &str, target: &str, detail: &str) -> Self {
        Self {
            at,
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
        }
    }
}
