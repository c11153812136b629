//! The fleet as operators list it: pages of summary rows, one host in full, the `latest`
//! operators set, and forgetting a revoked host.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::HostRow;
use boltfleet_common::version::parse_release;
use prost::Message;
use tracing::{info, warn};

use jiff::Timestamp;

use super::{App, Detail};
use crate::auth::Caller;
use crate::error::Error;
use crate::report::{self, summary, Latest, LatestRule};
use crate::state::{freeze_key, HostRecord, LatestRecord, Observed};
use boltfleet_common::grant::Role;

/// The latest release derived from a scope's hosts, while the fleet is as it was then.
pub(crate) struct LatestMemo {
    scope: String,
    generation: (u64, u64),
    derived: Option<Latest>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rows per page when the request does not say.
pub const PAGE_SIZE: usize = 500;
/// Most rows a page holds, whatever the request says.
pub const PAGE_SIZE_MAX: usize = 1000;
/// A page ends before its rows pass this size (encoded), so that it always fits in the CLI's
/// 4 MiB message limit.
pub const PAGE_BYTES: usize = 1024 * 1024;

/// A host id and its tenant.
type HostTenant = (String, String);

/// One page of the fleet report.
pub struct FleetPage {
    /// Summary rows (see [`summary::summarize`]).
    pub rows: Vec<HostRow>,
    /// Hosts per version, over the whole fleet; on the first page only.
    pub versions: BTreeMap<String, u64>,
    pub latest: Option<Latest>,
    /// Tenants with their own `release latest`.
    pub tenant_latest: BTreeMap<String, String>,
    /// The host id to start the next page after; "" on the last page.
    pub next_page_token: String,
}

impl App {
    /// How `latest` is decided: `requested` (X.Y.Z, may be ""), then the operators' settings.
    pub fn latest_rule(&self, requested: &str) -> Result<LatestRule, Error> {
        let requested = if requested.is_empty() {
            None
        } else {
            Some(parse_release(requested).map_err(|e| Error::invalid("latest", e))?)
        };
        let mut rule = LatestRule {
            requested,
            ..LatestRule::default()
        };
        for (key, record) in self.state.latest_releases()? {
            let Ok(version) = parse_release(&record.version) else {
                continue;
            };
            match key.strip_prefix("tenant/") {
                Some(tenant) => {
                    rule.tenants.insert(tenant.to_string(), version);
                }
                None => rule.global = Some(version),
            }
        }
        Ok(rule)
    }

    /// Sets (or, with `version` "", clears) the `latest` of `tenant` ("" for the fleet): the
    /// fleet's is an admin's to set, a tenant's an operator's of that tenant.
    pub fn set_latest(
        &self,
        caller: &Caller,
        tenant: &str,
        version: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        if tenant.is_empty() {
            caller.require(Role::Admin, "setting the fleet's latest release")?;
        } else {
            caller.require(Role::Operator, "setting a tenant's latest release")?;
            caller.require_tenant(tenant)?;
        }
        let operator = caller.name.as_str();
        let key = freeze_key(Some(tenant).filter(|t| !t.is_empty()));
        let target = if tenant.is_empty() { "fleet" } else { tenant };
        if version.is_empty() {
            self.state.put_latest(&key, None)?;
        } else {
            let version = parse_release(version).map_err(|e| Error::invalid("version", e))?;
            let record = LatestRecord {
                version: version.to_string(),
                set_by: operator.to_string(),
                set_at: now.as_second(),
            };
            self.state.put_latest(&key, Some(&record))?;
        }
        let detail = if version.is_empty() {
            "cleared"
        } else {
            version
        };
        self.audit_entry(
            now,
            &format!("operator {operator}"),
            "release.latest",
            target,
            detail,
        )?;
        info!(operator, target, version = detail, "latest release set");
        Ok(())
    }

    /// One page of the fleet report as `caller` sees it: summary rows of the hosts of its
    /// scope after `page_token`, in id order; `latest` and (on the first page) the version
    /// counts over the whole scope.
    pub fn fleet_page(
        &self,
        caller: &Caller,
        requested: &str,
        page_token: &str,
        page_size: usize,
        now: Timestamp,
    ) -> Result<FleetPage, Error> {
        let rule = self.latest_rule(requested)?;
        let size = match page_size {
            0 => PAGE_SIZE,
            n => n.min(PAGE_SIZE_MAX),
        };
        // The derived latest is kept for the next pages while no host or version changed.
        let generation = self.state.fleet_generation();
        let scope = caller.scope.to_string();
        let memo = lock(&self.latest_memo)
            .as_ref()
            .filter(|m| m.scope == scope && m.generation == generation)
            .map(|m| m.derived.clone());
        let first = page_token.is_empty();
        let whole = first || memo.is_none();
        let (all, page): (Vec<HostTenant>, Vec<(String, HostRecord)>) = {
            let hosts = self.state.hosts();
            let all = if whole {
                hosts
                    .iter()
                    .filter(|(_, r)| caller.allows(&r.tenant))
                    .map(|(id, r)| (id.clone(), r.tenant.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            let after = match page_token {
                "" => Bound::Unbounded,
                token => Bound::Excluded(token.to_string()),
            };
            let page = hosts
                .range((after, Bound::Unbounded))
                .filter(|(_, r)| caller.allows(&r.tenant))
                .take(size + 1)
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect();
            (all, page)
        };
        // Latest and versions from every host's observation (shared, not copied).
        let observed: Vec<Option<Arc<Observed>>> = self
            .state
            .observations()
            .get_all(all.iter().map(|(id, _)| id.as_str()));
        let derived = memo.unwrap_or_else(|| {
            let inventories = all.iter().zip(&observed).filter_map(|((_, tenant), o)| {
                Some((tenant.as_str(), o.as_ref()?.inventory.as_ref()?))
            });
            let derived = report::derive_latest(inventories);
            *lock(&self.latest_memo) = Some(LatestMemo {
                scope,
                generation,
                derived: derived.clone(),
            });
            derived
        });
        let fleet = rule.fleet(derived);
        let versions = if first {
            report::version_counts(observed.iter().map(|o| {
                o.as_ref()
                    .and_then(|o| o.inventory.as_ref())
                    .map_or("", |inv| inv.passbolt_version.as_str())
            }))
        } else {
            BTreeMap::new()
        };
        let more = page.len() > size;
        let mut page = page;
        page.truncate(size);
        let views = self.views_of(page, now, Detail::Summary)?;
        let mut rows = Vec::with_capacity(views.len());
        let mut bytes = 0;
        let mut cut_short = false;
        for mut row in report::rows(views, &rule, fleet.as_ref()) {
            summary::summarize(&mut row);
            bytes += row.encoded_len() + 8;
            if bytes > PAGE_BYTES && !rows.is_empty() {
                cut_short = true;
                break;
            }
            rows.push(row);
        }
        let next_page_token = match rows.last() {
            Some(last) if more || cut_short => last.host_id.clone(),
            _ => String::new(),
        };
        let tenant_latest = rule
            .tenants
            .iter()
            .map(|(t, v)| (t.clone(), v.to_string()))
            .collect();
        Ok(FleetPage {
            rows,
            versions,
            latest: fleet,
            tenant_latest,
            next_page_token,
        })
    }

    /// One host's full row, for a caller whose scope holds it: its whole inventory and last
    /// job (`latest` as that caller's scope derives it).
    pub fn host_row(
        &self,
        caller: &Caller,
        host_id: &str,
        now: Timestamp,
    ) -> Result<HostRow, Error> {
        let host = HostId::new(host_id)?;
        let record = self.host_for(caller, host.as_str())?;
        let rule = self.latest_rule("")?;
        let fleet = {
            let hosts = self.state.hosts();
            let all: Vec<(&String, &HostRecord)> = hosts
                .iter()
                .filter(|(_, r)| caller.allows(&r.tenant))
                .collect();
            let observed = self
                .state
                .observations()
                .get_all(all.iter().map(|(id, _)| id.as_str()));
            let inventories = all.iter().zip(&observed).filter_map(|((_, r), o)| {
                Some((r.tenant.as_str(), o.as_ref()?.inventory.as_ref()?))
            });
            rule.fleet(report::derive_latest(inventories))
        };
        let views = self.views_of(vec![(host.to_string(), record)], now, Detail::Full)?;
        report::rows(views, &rule, fleet.as_ref())
            .pop()
            .ok_or_else(|| Error::UnknownHost(host.to_string()))
    }

    /// Removes a revoked host's record and observation; refused for a host not revoked.
    pub fn forget_host(&self, caller: &Caller, host_id: &str, now: Timestamp) -> Result<(), Error> {
        caller.require(Role::Operator, "forgetting a host")?;
        let host = HostId::new(host_id)?;
        self.host_for(caller, host.as_str())?;
        let operator = caller.name.as_str();
        {
            let mut hosts = self.state.write_hosts();
            let record = hosts
                .get(host.as_str())
                .ok_or_else(|| Error::UnknownHost(host.to_string()))?;
            if !record.revoked {
                return Err(Error::Precondition(format!(
                    "host {host} is not revoked: revoke it first (boltfleet host revoke {host})"
                )));
            }
            hosts.remove(host.as_str())?;
        }
        self.state.observations().remove(host.as_str())?;
        self.door.forget(host.as_str());
        self.state.flush()?;
        self.audit_entry(
            now,
            &format!("operator {operator}"),
            "host.forget",
            host.as_str(),
            "",
        )?;
        warn!(host = %host, operator, "host forgotten");
        Ok(())
    }
}
