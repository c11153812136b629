//! The admin service's requests and answers: operators' windows, specs, the audit log and
//! operator records between the wire and the domain.

use boltfleet_common::proto::{self as pb, SetWindowRequest};

use crate::error::Error;
use crate::rollout::{MaintenanceWindow, RolloutSpec, WindowError};
use crate::state::{AuditRecord, OperatorRecord, WindowKey};

/// The rollout spec of a request, parsed; errors name the field.
pub fn spec_from_request(spec: Option<pb::RolloutSpec>) -> Result<RolloutSpec, Error> {
    let spec = spec.ok_or_else(|| Error::invalid("spec", "missing"))?;
    Ok(super::rollout::spec_from_wire(&spec)?)
}

/// The window a `SetWindow` asks for: whose, and the window (`None` clears it).
pub fn window_from_wire(
    req: SetWindowRequest,
) -> Result<(WindowKey, Option<MaintenanceWindow>), Error> {
    let key = match (req.tenant.is_empty(), req.host_id.is_empty()) {
        (false, true) => WindowKey::Tenant(req.tenant),
        (true, false) => WindowKey::Host(req.host_id),
        _ => {
            return Err(Error::invalid(
                "tenant",
                "give exactly one of tenant and host_id",
            ))
        }
    };
    if req.cron.trim().is_empty() {
        return Ok((key, None));
    }
    let duration = humantime::parse_duration(req.duration.trim())
        .map_err(|_| WindowError::Duration(req.duration.clone()))?;
    Ok((
        key,
        Some(MaintenanceWindow::new(&req.cron, duration, req.tz.trim())?),
    ))
}

pub fn audit_to_wire(e: AuditRecord) -> pb::AuditEntry {
    pb::AuditEntry {
        at: e.at,
        actor: e.actor,
        action: e.action,
        target: e.target,
        detail: e.detail,
    }
}

pub fn operator_to_wire(r: OperatorRecord) -> pb::OperatorInfo {
    pb::OperatorInfo {
        name: r.name,
        certs: r
            .certs
            .into_iter()
            .map(|c| pb::OperatorCertInfo {
                serial: c.serial,
                role: c.role,
                tenants: c.tenants,
                since: c.since,
                not_after: c.not_after,
                issued_by: c.issued_by,
                revoked: c.revoked,
            })
            .collect(),
        revoked_at: r.revoked_at.unwrap_or(0),
        revoked_by: r.revoked_by.unwrap_or_default(),
    }
}

/// `cluster status`'s answer.
pub fn cluster_to_wire(status: crate::app::peers::ClusterStatus) -> pb::ClusterStatusResponse {
    let leader = status.leader.unwrap_or_default();
    pb::ClusterStatusResponse {
        engine: status.engine.to_string(),
        controllers: status
            .controllers
            .into_iter()
            .map(|(c, answering)| pb::ControllerStatus {
                leader: c.name == leader,
                name: c.name,
                address: c.address,
                agents: c.agents,
                started: c.started,
                last_seen: c.seen,
                version: c.version,
                answering,
            })
            .collect(),
        members: status
            .members
            .into_iter()
            .map(|m| pb::StoreMember {
                healthy: m.error.is_none(),
                endpoint: m.endpoint,
                version: m.version,
                db_size_bytes: m.db_size_bytes,
                raft_leader: m.raft_leader,
                error: m.error.unwrap_or_default(),
            })
            .collect(),
        leader,
    }
}
