//! What an operator certificate grants: a role and a tenant scope, carried as extra URI SANs
//! beside the operator's identity (`urn:boltfleet:role:<role>`, `urn:boltfleet:tenant:<tenant>`
//! once per tenant). An operator certificate without a role SAN was issued before roles
//! existed and grants admin over the whole fleet.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::identity::IdentityError;

const ROLE_PREFIX: &str = "urn:boltfleet:role:";
const TENANT_PREFIX: &str = "urn:boltfleet:tenant:";

/// What an operator may do, each role including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: hosts, reports, jobs, rollouts, plans, the audit log.
    Viewer,
    /// Also starts and steers jobs and rollouts, creates join tokens, freezes its tenants.
    Operator,
    /// Everything: any tenant, the global freeze, windows, policies, operators.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(IdentityError::BadName {
                what: "role (viewer, operator or admin)",
                text: other.to_string(),
            }),
        }
    }
}

/// Which tenants' hosts an operator sees and acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole fleet (and hosts without a tenant).
    All,
    /// Only hosts of these tenants.
    Tenants(BTreeSet<String>),
}

impl Scope {
    /// Whether a host of `tenant` is inside the scope.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenants(tenants) => tenants.contains(tenant),
        }
    }

    /// The tenants as records and the wire list them: empty for the whole fleet.
    pub fn tenant_list(&self) -> Vec<String> {
        match self {
            Scope::All => Vec::new(),
            Scope::Tenants(t) => t.iter().cloned().collect(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all tenants"),
            Scope::Tenants(t) => {
                let names: Vec<&str> = t.iter().map(String::as_str).collect();
                write!(f, "tenants {}", names.join(", "))
            }
        }
    }
}

/// A role over a scope, as an operator certificate carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

impl Grant {
    /// What a certificate without role SANs grants: admin over everything.
    pub fn legacy() -> Self {
        Self {
            role: Role::Admin,
            scope: Scope::All,
        }
    }

    /// A grant of `role` over `tenants` (none: the whole fleet). Tenant names follow the
    /// rules of host ids; an admin's scope is always the whole fleet.
    pub fn new(role: Role, tenants: &[String]) -> Result<Self, IdentityError> {
        if tenants.is_empty() {
            return Ok(Self {
                role,
                scope: Scope::All,
            });
        }
        if role == Role::Admin {
            return Err(IdentityError::BadName {
                what: "grant (an admin's scope is the whole fleet; give no tenant)",
                text: tenants.join(","),
            });
        }
        for tenant in tenants {
            crate::identity::HostId::new(tenant).map_err(|_| IdentityError::BadName {
                what: "tenant",
                text: tenant.clone(),
            })?;
        }
        Ok(Self {
            role,
            scope: Scope::Tenants(tenants.iter().cloned().collect()),
        })
    }

    /// The URI SANs that carry this grant.
    pub fn uris(&self) -> Vec<String> {
        let mut uris = vec![format!("{ROLE_PREFIX}{}", self.role)];
        if let Scope::Tenants(tenants) = &self.scope {
            uris.extend(tenants.iter().map(|t| format!("{TENANT_PREFIX}{t}")));
        }
        uris
    }

    /// The grant in a certificate's URI SANs: `None` when they name no role (a certificate
    /// from before roles). More than one role, or a tenant without a role, is refused.
    pub fn from_uris<'a>(
        uris: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Self>, IdentityError> {
        let mut roles = Vec::new();
        let mut tenants = Vec::new();
        for uri in uris {
            if let Some(role) = uri.strip_prefix(ROLE_PREFIX) {
                roles.push(role.parse::<Role>()?);
            } else if let Some(tenant) = uri.strip_prefix(TENANT_PREFIX) {
                tenants.push(tenant.to_string());
            }
        }
        match roles.as_slice() {
            [] if tenants.is_empty() => Ok(None),
            [role] => Grant::new(*role, &tenants).map(Some),
            _ => Err(IdentityError::NotBoltfleet(format!(
                "{} roles and {} tenants in one certificate",
                roles.len(),
                tenants.len()
            ))),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.role, self.scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip_through_their_uris() {
        for grant in [
            Grant::new(Role::Viewer, &[]).unwrap(),
            Grant::new(Role::Operator, &["acme".into(), "globex".into()]).unwrap(),
            Grant::new(Role::Admin, &[]).unwrap(),
        ] {
            let uris = grant.uris();
            let back = Grant::from_uris(uris.iter().map(String::as_str)).unwrap();
            assert_eq!(back, Some(grant));
        }
        assert_eq!(
            Grant::from_uris(["spiffe://boltfleet/operator/a"]).unwrap(),
            None
        );
    }

    #[test]
    fn scopes_allow_only_their_tenants() {
        let grant = Grant::new(Role::Operator, &["acme".into()]).unwrap();
        assert!(grant.scope.allows("acme"));
        assert!(!grant.scope.allows("globex"));
        assert!(!grant.scope.allows(""));
        assert!(Scope::All.allows("globex"));
    }

    #[test]
    fn bad_grants_are_refused() {
        assert!(Grant::new(Role::Admin, &["acme".into()]).is_err());
        assert!(Grant::new(Role::Operator, &["a b".into()]).is_err());
        assert!("root".parse::<Role>().is_err());
        let two_roles = ["urn:boltfleet:role:viewer", "urn:boltfleet:role:admin"];
        assert!(Grant::from_uris(two_roles).is_err());
        assert!(Grant::from_uris(["urn:boltfleet:tenant:acme"]).is_err());
    }
}
