//! Who is calling: the identity in the peer certificate, and what that role may do.

use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki;
use tonic::Request;

use crate::app::App;
use crate::error::Error;

/// The identity and certificate serial of the caller, from its verified client certificate.
pub fn caller<T>(request: &Request<T>) -> Result<(Identity, String), Error> {
    let certs = request.peer_certs().ok_or(Error::NoCertificate)?;
    let leaf = certs.first().ok_or(Error::NoCertificate)?;
    let info = pki::inspect(leaf).map_err(|e| Error::Forbidden(e.to_string()))?;
    Ok((info.identity, info.serial))
}

/// The operator's name, or `PermissionDenied` for any other role.
pub fn operator<T>(request: &Request<T>) -> Result<String, Error> {
    match caller(request)? {
        (Identity::Operator(name), _) => Ok(name),
        (other, _) => Err(Error::Forbidden(format!(
            "{other} may not use the admin service"
        ))),
    }
}

/// The agent's host id, checked against the host records (held in memory): enrolled, not
/// revoked, and presenting a certificate the controller issued to it most recently.
pub fn agent<T>(request: &Request<T>, app: &App) -> Result<HostId, Error> {
    let (identity, serial) = caller(request)?;
    let Identity::Agent(host) = identity else {
        return Err(Error::Forbidden(format!(
            "{identity} may not use the agent service"
        )));
    };
    let record = app
        .host(host.as_str())
        .ok_or_else(|| Error::UnknownHost(host.to_string()))?;
    if record.revoked || !record.cert_serials.contains(&serial) {
        return Err(Error::Revoked(host.to_string()));
    }
    Ok(host)
}
