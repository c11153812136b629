//! Operators' maintenance windows and freezes, and how a host's window is shown.

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::HostWindow;
use jiff::Timestamp;
use tracing::info;

use crate::app::App;
use crate::error::Error;
use crate::rollout::{MaintenanceWindow, Windows};
use crate::state::{freeze_key, FreezeRecord, WindowKey};

impl App {
    /// Sets (or, with `None`, clears) the window of a tenant or a host. A host's own window
    /// wins over its tenant's.
    pub fn set_window(
        &self,
        operator: &str,
        key: WindowKey,
        window: Option<MaintenanceWindow>,
        now: Timestamp,
    ) -> Result<(), Error> {
        match &key {
            WindowKey::Host(id) => {
                let host = HostId::new(id)?;
                if self.state.host(host.as_str()).is_none() {
                    return Err(Error::UnknownHost(host.to_string()));
                }
            }
            WindowKey::Tenant(t) if t.trim().is_empty() => {
                return Err(Error::invalid("tenant", "must not be empty"));
            }
            WindowKey::Tenant(_) => {}
        }
        self.state.put_window(&key, window.as_ref())?;
        let (action, detail) = match &window {
            Some(w) => ("window.set", w.to_string()),
            None => ("window.clear", String::new()),
        };
        self.audit_entry(
            now,
            &format!("operator {operator}"),
            action,
            &key.key(),
            &detail,
        )?;
        info!(target = %key.key(), operator, window = %detail, "maintenance window changed");
        self.wake_scheduler();
        Ok(())
    }

    /// Freezes (`on`) or thaws the whole fleet (`tenant` None) or one tenant. Under a freeze
    /// no update starts; updates in flight finish.
    pub fn set_freeze(
        &self,
        operator: &str,
        tenant: Option<&str>,
        on: bool,
        now: Timestamp,
    ) -> Result<(), Error> {
        if tenant.is_some_and(|t| t.trim().is_empty()) {
            return Err(Error::invalid("tenant", "must not be empty"));
        }
        let key = freeze_key(tenant);
        let record = on.then(|| FreezeRecord {
            by: operator.into(),
            at: now,
        });
        self.state.put_freeze(&key, record.as_ref())?;
        let action = if on { "freeze.on" } else { "freeze.off" };
        self.audit_entry(now, &format!("operator {operator}"), action, &key, "")?;
        info!(target = %key, operator, on, "freeze changed");
        self.wake_scheduler();
        Ok(())
    }
}

/// The window that applies to a host, as `hosts` shows it.
pub fn host_window(
    windows: &Windows,
    host_id: &str,
    tenant: &str,
    now: Timestamp,
) -> Option<HostWindow> {
    let window = windows.for_host(host_id, tenant)?;
    let source = if windows.hosts.contains_key(host_id) {
        "host"
    } else {
        "tenant"
    };
    Some(HostWindow {
        cron: window.cron().into(),
        duration: humantime::format_duration(window.duration()).to_string(),
        tz: window.tz().into(),
        source: source.into(),
        open_now: window.is_open(now),
        next_open: window.next_open(now).map_or(0, |t| t.as_second()),
    })
}
