//! What an operator's scope lets it see and touch: hosts of its tenants only. A host outside
//! the scope is `NotFound` (its existence is not revealed), lists and the audit log are cut to
//! the scope, a rollout's selector is cut to it, and a rollout is steered only by a caller
//! whose scope holds every tenant the rollout touches.

use std::collections::BTreeSet;

use boltfleet_common::grant::{Role, Scope};
use boltfleet_common::proto::{self as pb, JobRecord};
use boltfleet_common::version::parse_release;
use jiff::Timestamp;

use crate::app::App;
use crate::auth::Caller;
use crate::error::Error;
use crate::report::{self, FleetReport};
use crate::rollout::{Phase, RolloutSpec};
use crate::state::{AuditRecord, HostRecord, RolloutRecord};

/// The tenants of the hosts a rollout selected.
pub fn rollout_tenants(record: &RolloutRecord) -> BTreeSet<String> {
    record
        .state
        .hosts
        .iter()
        .map(|h| h.tenant.clone())
        .collect()
}

impl App {
    /// The host's record if it is enrolled and inside the caller's scope; `NotFound` alike for
    /// a host that does not exist and one outside the scope.
    pub fn host_for(&self, caller: &Caller, id: &str) -> Result<HostRecord, Error> {
        self.state
            .host(id)
            .filter(|record| caller.allows(&record.tenant))
            .ok_or_else(|| Error::UnknownHost(id.to_string()))
    }

    /// Whether the caller may enroll `host_id` into `tenant` (a token or a bulk enrollment):
    /// an operator of that tenant, and the host id not taken by a host outside its scope.
    pub fn check_enrollment(
        &self,
        caller: &Caller,
        host_id: &str,
        tenant: &str,
    ) -> Result<(), Error> {
        caller.require(Role::Operator, "enrolling hosts")?;
        caller.require_tenant(tenant)?;
        match self.state.host(host_id) {
            Some(existing) if !caller.allows(&existing.tenant) => Err(Error::Forbidden(format!(
                "host id {host_id} is taken outside operator {}'s scope",
                caller.name
            ))),
            _ => Ok(()),
        }
    }

    /// The fleet report of the caller's scope: its rows, version counts and latest come from
    /// hosts inside the scope only.
    pub fn fleet_report_for(
        &self,
        caller: &Caller,
        latest: &str,
        now: Timestamp,
    ) -> Result<FleetReport, Error> {
        let latest = if latest.is_empty() {
            None
        } else {
            Some(parse_release(latest).map_err(|e| Error::invalid("latest", e))?)
        };
        let mut views = self.host_views(now)?;
        views.retain(|v| caller.allows(&v.record.tenant));
        Ok(report::build(views, latest))
    }

    /// A job of a host inside the caller's scope.
    pub fn job_for(&self, caller: &Caller, job_id: &str) -> Result<JobRecord, Error> {
        let job = self.job(job_id)?;
        match self.state.host(&job.host_id) {
            Some(host) if caller.allows(&host.tenant) => Ok(job),
            None if caller.scope == Scope::All => Ok(job),
            _ => Err(Error::UnknownJob(job_id.to_string())),
        }
    }

    /// `spec` with its tenants cut to the caller's scope: a scoped caller's `--select all` is
    /// all of its tenants, and naming only tenants outside the scope selects nothing.
    pub fn spec_for(&self, caller: &Caller, mut spec: RolloutSpec) -> Result<RolloutSpec, Error> {
        let Scope::Tenants(mine) = &caller.scope else {
            return Ok(spec);
        };
        let asked = &spec.selector.tenants;
        let cut: BTreeSet<String> = if asked.is_empty() {
            mine.clone()
        } else {
            asked.intersection(mine).cloned().collect()
        };
        if cut.is_empty() {
            return Err(Error::Precondition(format!(
                "none of the selected tenants is in operator {}'s scope ({})",
                caller.name, caller.scope
            )));
        }
        spec.selector.tenants = cut;
        Ok(spec)
    }

    /// Every rollout the caller can see (one touching a tenant of its scope), each cut to the
    /// hosts inside the scope.
    pub fn rollout_statuses_for(&self, caller: &Caller) -> Result<Vec<pb::RolloutStatus>, Error> {
        let mut statuses = Vec::new();
        for record in self.state.rollouts()? {
            if visible(caller, &record) {
                statuses.push(cut_status(
                    caller,
                    &record,
                    self.rollout_status(&record.id)?,
                ));
            }
        }
        Ok(statuses)
    }

    /// One rollout's status, cut to the caller's scope; `NotFound` when it touches none of it.
    pub fn rollout_status_for(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::RolloutStatus, Error> {
        let record = self.rollout(id)?;
        if !visible(caller, &record) {
            return Err(Error::UnknownRollout(id.into()));
        }
        Ok(cut_status(caller, &record, self.rollout_status(id)?))
    }

    /// [`App::rollout_status_for`], and whether the rollout is over: completed, or aborted with
    /// nothing left in flight or to roll back (a rollout awaiting approval is not).
    pub fn rollout_watch_for(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(pb::RolloutStatus, bool), Error> {
        let status = self.rollout_status_for(caller, id)?;
        let record = self.rollout(id)?;
        let over = !record.state.is_active() && !matches!(record.state.phase, Phase::Planned);
        Ok((status, over))
    }

    /// A rollout the caller may steer (pause, resume, promote, abort, approve): an operator
    /// whose scope holds every tenant it touches.
    pub fn rollout_to_steer(&self, caller: &Caller, id: &str) -> Result<RolloutRecord, Error> {
        caller.require(Role::Operator, "steering rollouts")?;
        let record = self.rollout(id)?;
        if !visible(caller, &record) {
            return Err(Error::UnknownRollout(id.into()));
        }
        if let Some(other) = rollout_tenants(&record).iter().find(|t| !caller.allows(t)) {
            return Err(Error::Forbidden(format!(
                "rollout {id} also touches tenant {other:?}, outside operator {}'s scope",
                caller.name
            )));
        }
        Ok(record)
    }

    /// The audit log as the caller may read it: a scoped caller sees the entries about hosts,
    /// rollouts and tenants of its scope, and its own.
    pub fn audit_for(&self, caller: &Caller) -> Result<Vec<AuditRecord>, Error> {
        let entries = self.state.audit_log()?;
        if caller.scope == Scope::All {
            return Ok(entries);
        }
        let me = format!("operator {}", caller.name);
        let rollouts = self.state.rollouts()?;
        let about_scope = |target: &str| {
            if let Some(host) = self.state.host(target) {
                return caller.allows(&host.tenant);
            }
            if let Some(tenant) = target.strip_prefix("tenant/") {
                return caller.allows(tenant);
            }
            if let Some(host) = target
                .strip_prefix("host/")
                .and_then(|h| self.state.host(h))
            {
                return caller.allows(&host.tenant);
            }
            rollouts
                .iter()
                .find(|r| r.id == target)
                .is_some_and(|r| rollout_tenants(r).iter().all(|t| caller.allows(t)))
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.actor == me || about_scope(&e.target))
            .collect())
    }
}

fn visible(caller: &Caller, record: &RolloutRecord) -> bool {
    caller.scope == Scope::All || rollout_tenants(record).iter().any(|t| caller.allows(t))
}

/// The status without the hosts outside the caller's scope, its counts of eligible and
/// failed hosts counting the scope's hosts only.
fn cut_status(
    caller: &Caller,
    record: &RolloutRecord,
    mut status: pb::RolloutStatus,
) -> pb::RolloutStatus {
    if caller.scope == Scope::All {
        return status;
    }
    for wave in &mut status.waves {
        wave.hosts.retain(|h| caller.allows(&h.tenant));
    }
    status.skipped.retain(|h| caller.allows(&h.tenant));
    let mine = || {
        record
            .state
            .hosts
            .iter()
            .filter(|h| caller.allows(&h.tenant))
    };
    status.eligible = mine().filter(|h| h.wave.is_some()).count() as u32;
    status.failures = mine().filter(|h| h.state.is_failure()).count() as u32;
    status
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use boltfleet_common::identity::{HostId, Identity};
    use boltfleet_common::pki::new_csr;
    use boltfleet_common::proto::Inventory;

    use super::*;
    use crate::app::{now, tests::app, NewToken};

    /// An app with `a1` in tenant acme and `b1` in globex, both on 1.6.9.
    fn two_tenants(dir: &std::path::Path) -> std::sync::Arc<App> {
        let app = app(dir);
        for (host, tenant) in [("a1", "acme"), ("b1", "globex")] {
            let req = NewToken {
                host_id: host.into(),
                tenant: tenant.into(),
                labels: BTreeMap::new(),
                ttl: Duration::from_secs(60),
            };
            let (token, _) = app
                .create_token("alice", req, crate::app::ts(now()))
                .unwrap();
            let id = HostId::new(host).unwrap();
            let csr = new_csr(&Identity::Agent(id.clone())).unwrap().0;
            app.enroll(&token, &csr, crate::app::ts(now())).unwrap();
            let inventory = Inventory {
                passbolt_version: "1.6.9".into(),
                ..Inventory::default()
            };
            app.record_report(&id, inventory, crate::app::ts_now())
                .unwrap();
        }
        app
    }

    fn operator_of(tenants: &[&str]) -> Caller {
        Caller {
            role: Role::Operator,
            scope: Scope::Tenants(tenants.iter().map(|t| t.to_string()).collect()),
            ..Caller::admin("olga")
        }
    }

    #[test]
    fn hosts_outside_the_scope_are_not_found_and_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let app = two_tenants(dir.path());
        let olga = operator_of(&["acme"]);
        assert!(app.host_for(&olga, "a1").is_ok());
        assert!(matches!(
            app.host_for(&olga, "b1"),
            Err(Error::UnknownHost(_))
        ));
        let report = app
            .fleet_report_for(&olga, "", crate::app::ts_now())
            .unwrap();
        let ids: Vec<&str> = report.rows.iter().map(|r| r.host_id.as_str()).collect();
        assert_eq!(ids, ["a1"]);
        let all = app
            .fleet_report_for(&Caller::admin("root"), "", crate::app::ts_now())
            .unwrap();
        assert_eq!(all.rows.len(), 2);
    }

    #[test]
    fn selectors_are_cut_to_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let app = two_tenants(dir.path());
        let olga = operator_of(&["acme", "initech"]);
        let spec = RolloutSpec::new(semver::Version::new(1, 6, 10));
        let all = app.spec_for(&olga, spec.clone()).unwrap();
        let tenants: Vec<&str> = all.selector.tenants.iter().map(String::as_str).collect();
        assert_eq!(tenants, ["acme", "initech"]);
        let mut both = spec.clone();
        both.selector.tenants = ["acme".to_string(), "globex".to_string()].into();
        let cut = app.spec_for(&olga, both).unwrap();
        assert_eq!(cut.selector.tenants.len(), 1);
        let mut foreign = spec;
        foreign.selector.tenants = ["globex".to_string()].into();
        assert!(matches!(
            app.spec_for(&olga, foreign),
            Err(Error::Precondition(_))
        ));
        let plan = app.plan_rollout(&all, jiff::Timestamp::now()).unwrap();
        let planned: Vec<&str> = plan.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(planned, ["a1"]);
    }

    #[test]
    fn the_audit_log_is_cut_to_the_scope_and_the_callers_own_entries() {
        let dir = tempfile::tempdir().unwrap();
        let app = two_tenants(dir.path());
        app.set_freeze("root", None, true, jiff::Timestamp::now())
            .unwrap();
        app.set_freeze("olga", Some("acme"), true, jiff::Timestamp::now())
            .unwrap();
        let olga = operator_of(&["acme"]);
        let seen: Vec<String> = app
            .audit_for(&olga)
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.action, e.target))
            .collect();
        assert_eq!(
            seen,
            ["token.create a1", "host.enroll a1", "freeze.on tenant/acme"]
        );
        assert_eq!(app.audit_for(&Caller::admin("root")).unwrap().len(), 6);
    }
}
