//! Who is calling: the identity in the peer certificate, and what that role may do.
//!
//! Every admin call starts with [`operator`]: the caller's name, role and tenant scope, read
//! from its certificate only (never from a message), checked against revoked operator
//! certificates. What the role and scope allow is asked of the [`Caller`] it returns.

use boltfleet_common::grant::{Grant, Role, Scope};
use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::{self, CertInfo};
use tonic::Request;

use crate::app::App;
use crate::error::Error;
use crate::metrics::Refusal;

/// What the caller's verified client certificate says.
pub fn peer<T>(request: &Request<T>) -> Result<CertInfo, Error> {
    let certs = request.peer_certs().ok_or(Error::NoCertificate)?;
    let leaf = certs.first().ok_or(Error::NoCertificate)?;
    pki::inspect(leaf).map_err(|e| Error::Forbidden(e.to_string()))
}

/// The identity and certificate serial of the caller, from its verified client certificate.
pub fn caller<T>(request: &Request<T>) -> Result<(Identity, String), Error> {
    let info = peer(request)?;
    Ok((info.identity, info.serial))
}

/// An operator making an admin call: who, with which role, over which tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    /// Serial (hex) of the certificate it called with.
    pub serial: String,
}

impl Caller {
    /// An admin over the whole fleet (the controller's own work, and tests).
    pub fn admin(name: &str) -> Self {
        Self {
            name: name.into(),
            role: Role::Admin,
            scope: Scope::All,
            serial: String::new(),
        }
    }

    /// `PermissionDenied` unless the caller's role is at least `role`; `what` names the act.
    pub fn require(&self, role: Role, what: &str) -> Result<(), Error> {
        if self.role >= role {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "operator {} is a {}: {what} needs the {role} role",
            self.name, self.role
        )))
    }

    /// Whether hosts of `tenant` are inside the caller's scope.
    pub fn allows(&self, tenant: &str) -> bool {
        self.scope.allows(tenant)
    }

    /// `PermissionDenied` unless `tenant` is inside the scope (for tenants the caller names
    /// itself: tokens, freezes; hosts out of scope are `NotFound` instead).
    pub fn require_tenant(&self, tenant: &str) -> Result<(), Error> {
        if self.allows(tenant) {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "operator {} may act on {}, not on tenant {tenant:?}",
            self.name, self.scope
        )))
    }
}

/// The operator calling, or `PermissionDenied` for any other identity and for a revoked
/// operator certificate. A certificate without a role (issued before roles) is an admin's.
pub fn operator<T>(request: &Request<T>, app: &App) -> Result<Caller, Error> {
    counted(app, operator_of(request, app))
}

fn operator_of<T>(request: &Request<T>, app: &App) -> Result<Caller, Error> {
    let info = peer(request)?;
    let Identity::Operator(name) = &info.identity else {
        return Err(Error::Forbidden(format!(
            "{} may not use the admin service",
            info.identity
        )));
    };
    let grant = info.grant.clone().unwrap_or_else(Grant::legacy);
    let caller = Caller {
        name: name.clone(),
        role: grant.role,
        scope: grant.scope,
        serial: info.serial.clone(),
    };
    app.check_operator(
        &caller,
        info.not_after.unix_timestamp(),
        jiff::Timestamp::now(),
    )?;
    Ok(caller)
}

/// The agent's host id, checked against the host records (held in memory): enrolled, not
/// revoked, and presenting a certificate the controller issued to it most recently.
pub fn agent<T>(request: &Request<T>, app: &App) -> Result<HostId, Error> {
    counted(app, agent_of(request, app))
}

/// Counts a refused caller in the metrics.
fn counted<T>(app: &App, result: Result<T, Error>) -> Result<T, Error> {
    if result.is_err() {
        app.metrics().refused(Refusal::Auth);
    }
    result
}

fn agent_of<T>(request: &Request<T>, app: &App) -> Result<HostId, Error> {
    let (identity, serial) = caller(request)?;
    let Identity::Agent(host) = identity else {
        return Err(Error::Forbidden(format!(
            "{identity} may not use the agent service"
        )));
    };
    let record = app
        .state()
        .host(host.as_str())
        .ok_or_else(|| Error::UnknownHost(host.to_string()))?;
    if record.revoked || !record.cert_serials.contains(&serial) {
        return Err(Error::Revoked(host.to_string()));
    }
    Ok(host)
}
