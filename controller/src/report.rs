//! The fleet report: one row per host and hosts per version, a pure function of what is stored.

use std::collections::BTreeMap;

use boltfleet_common::proto::{HostRow, HostWindow};
use boltfleet_common::version::{classify, parse_release, parse_release_tag, UpdateClass, Version};

use crate::store::{HostRecord, Observed};

/// One host as the report sees it.
pub struct HostView {
    pub record: HostRecord,
    pub observed: Option<Observed>,
    pub online: bool,
    /// The maintenance window that applies, if any.
    pub window: Option<HostWindow>,
    /// Covered by a freeze now.
    pub frozen: bool,
}

/// Rows, version counts, and the version updates are measured against.
pub struct FleetReport {
    pub rows: Vec<HostRow>,
    pub versions: BTreeMap<String, u64>,
    pub latest: Option<Version>,
}

/// The newest release the fleet has seen: the highest release tag any host's repository
/// holds, or the highest installed version.
pub fn newest_seen(hosts: &[HostView]) -> Option<Version> {
    hosts
        .iter()
        .filter_map(|h| h.observed.as_ref()?.inventory.as_ref())
        .flat_map(|inv| {
            [
                parse_release_tag(&inv.newest_tag),
                parse_release(&inv.passbolt_version).ok(),
            ]
        })
        .flatten()
        .max()
}

/// Builds the report; `latest` overrides the newest version seen in the fleet.
pub fn build(hosts: Vec<HostView>, latest: Option<Version>) -> FleetReport {
    let latest = latest.or_else(|| newest_seen(&hosts));
    let mut versions = BTreeMap::new();
    let rows: Vec<HostRow> = hosts
        .into_iter()
        .map(|view| row(view, latest.as_ref()))
        .collect();
    for row in &rows {
        let key = if row.version.is_empty() {
            "unknown".to_string()
        } else {
            row.version.clone()
        };
        *versions.entry(key).or_insert(0) += 1;
    }
    FleetReport {
        rows,
        versions,
        latest,
    }
}

fn row(view: HostView, latest: Option<&Version>) -> HostRow {
    let HostView {
        record,
        observed,
        online,
        window,
        frozen,
    } = view;
    let observed = observed.unwrap_or_default();
    let inventory = observed.inventory.clone();
    let inv = inventory.clone().unwrap_or_default();
    let health = inv.health.clone().unwrap_or_default();
    let mut reasons = inv.errors.clone();
    reasons.extend(health.reasons.iter().cloned());
    if inventory.is_none() {
        reasons.push("no report received yet".into());
    }
    let update = match (parse_release(&inv.passbolt_version).ok(), latest) {
        (Some(current), Some(latest)) => match classify(&current, latest) {
            c @ (UpdateClass::Patch | UpdateClass::Minor | UpdateClass::Major) => c.to_string(),
            UpdateClass::AtTarget | UpdateClass::Downgrade => String::new(),
        },
        _ => String::new(),
    };
    HostRow {
        host_id: record.host_id,
        tenant: record.tenant,
        labels: record.labels.into_iter().collect(),
        version: inv.passbolt_version.clone(),
        online,
        healthy: inventory.is_some() && health.healthy && inv.errors.is_empty(),
        last_seen: observed.last_seen,
        migrations_pending: inv.migrations.as_ref().is_some_and(|m| m.pending),
        update,
        revoked: record.revoked,
        health_reasons: reasons,
        inventory,
        last_job: observed.last_job,
        window,
        frozen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boltfleet_common::proto::{Health, Inventory, MigrationState};

    fn view(id: &str, version: &str, newest_tag: &str, healthy: bool) -> HostView {
        HostView {
            record: HostRecord {
                host_id: id.into(),
                tenant: "acme".into(),
                ..HostRecord::default()
            },
            observed: Some(Observed {
                inventory: Some(Inventory {
                    passbolt_version: version.into(),
                    newest_tag: newest_tag.into(),
                    health: Some(Health {
                        healthy,
                        reasons: if healthy {
                            vec![]
                        } else {
                            vec!["db down".into()]
                        },
                        ..Health::default()
                    }),
                    migrations: Some(MigrationState {
                        known: true,
                        pending: version == "1.3.0",
                        ..MigrationState::default()
                    }),
                    ..Inventory::default()
                }),
                last_seen: 100,
                ..Observed::default()
            }),
            online: true,
            window: None,
            frozen: false,
        }
    }

    #[test]
    fn classifies_against_the_newest_tag_in_the_fleet() {
        let report = build(
            vec![
                view("a", "1.6.10", "v1.6.10", true),
                view("b", "1.6.9", "v1.6.10", true),
                view("c", "1.3.0", "v2.0.0", false),
                view("d", "2.0.0", "v2.0.0", true),
            ],
            None,
        );
        assert_eq!(report.latest, Some(Version::new(2, 0, 0)));
        let update: Vec<&str> = report.rows.iter().map(|r| r.update.as_str()).collect();
        assert_eq!(update, ["major", "major", "major", ""]);
        assert!(!report.rows[2].healthy);
        assert_eq!(report.rows[2].health_reasons, ["db down"]);
        assert!(report.rows[2].migrations_pending);
        assert_eq!(report.versions.get("1.6.10"), Some(&1));
    }

    #[test]
    fn explicit_latest_wins_and_unknown_versions_are_counted() {
        let mut silent = view("z", "", "", true);
        silent.observed = None;
        let report = build(
            vec![
                view("a", "1.6.10", "v2.0.0", true),
                view("b", "1.6.9", "", true),
                view("c", "1.3.2", "", true),
                silent,
            ],
            Some(Version::new(1, 6, 10)),
        );
        let update: Vec<&str> = report.rows.iter().map(|r| r.update.as_str()).collect();
        assert_eq!(update, ["", "patch", "minor", ""]);
        assert_eq!(report.versions.get("unknown"), Some(&1));
        assert!(!report.rows[3].healthy);
        assert_eq!(report.rows[3].health_reasons, ["no report received yet"]);
    }
}
