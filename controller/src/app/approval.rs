//! The two-person rule, as a per-tenant policy: a rollout touching a tenant that requires
//! approval is stored planned, not started, until an operator other than its creator approves
//! it. Both the creation and the approval are in the audit log.

use std::collections::BTreeSet;

use boltfleet_common::grant::Role;
use jiff::Timestamp;
use tracing::info;

use crate::app::App;
use crate::auth::Caller;
use crate::error::Error;
use crate::rollout::Plan;
use crate::state::{Approval, RolloutRecord, TenantPolicy};

impl App {
    /// Sets whether rollouts touching `tenant` need a second operator's approval (admins).
    pub fn set_policy(
        &self,
        by: &Caller,
        tenant: &str,
        require_approval: bool,
        now: Timestamp,
    ) -> Result<(), Error> {
        by.require(Role::Admin, "setting tenant policies")?;
        if tenant.trim().is_empty() {
            return Err(Error::invalid("tenant", "must not be empty"));
        }
        let policy = TenantPolicy {
            require_approval,
            set_by: by.name.clone(),
            set_at: now.as_second(),
        };
        self.state.put_policy(tenant, &policy)?;
        self.audit_entry(
            now,
            &format!("operator {}", by.name),
            "policy.set",
            &format!("tenant/{tenant}"),
            &format!("require_approval={require_approval}"),
        )?;
        info!(tenant, by = %by.name, require_approval, "tenant policy set");
        Ok(())
    }

    /// The approval a rollout of `plan` needs: the tenants of its hosts to update whose policy
    /// requires one; `None` when none does.
    pub(crate) fn approval_needed(&self, plan: &Plan) -> Result<Option<Approval>, Error> {
        let touched: BTreeSet<&str> = plan
            .hosts
            .iter()
            .filter(|h| h.wave.is_some())
            .map(|h| h.tenant.as_str())
            .collect();
        let mut tenants = Vec::new();
        for tenant in touched {
            if self
                .state
                .policy(tenant)?
                .is_some_and(|p| p.require_approval)
            {
                tenants.push(tenant.to_string());
            }
        }
        Ok((!tenants.is_empty()).then_some(Approval {
            tenants,
            approved_by: None,
            approved_at: None,
        }))
    }

    /// Approves a rollout awaiting approval and starts it. The approver must be an operator
    /// whose scope holds the rollout's tenants, and not the rollout's creator.
    pub fn approve_rollout(
        &self,
        caller: &Caller,
        id: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<RolloutRecord, Error> {
        let record = self.rollout_to_steer(caller, id)?;
        if !record.awaiting_approval() {
            return Err(Error::Precondition(format!(
                "rollout {id} is not awaiting approval"
            )));
        }
        if record.created_by == caller.name {
            return Err(Error::Forbidden(format!(
                "rollout {id} was started by operator {}: another operator must approve it",
                caller.name
            )));
        }
        self.change_rollout(&caller.name, id, "rollout.approve", note, now, |r| {
            if let Some(approval) = &mut r.approval {
                approval.approved_by = Some(caller.name.clone());
                approval.approved_at = Some(now);
            }
            r.state.start(now)
        })
    }
}
