//! The fleet report: one row per host and hosts per version, a pure function of what is stored.

pub mod latest;
pub mod summary;

pub use latest::{Latest, LatestRule};

use std::collections::{BTreeMap, HashMap};

use boltfleet_common::proto::{HostRow, HostWindow, Inventory, JobEvent};
use boltfleet_common::version::{classify, parse_release, parse_release_tag, UpdateClass, Version};

use crate::state::{HostRecord, Observed};

/// One host as the report sees it.
pub struct HostView {
    pub record: HostRecord,
    pub observed: Option<Observed>,
    /// The latest event of the host's newest job, from the job records (`None`: no job, or
    /// none reported yet).
    pub last_job: Option<JobEvent>,
    pub online: bool,
    /// The maintenance window that applies, if any.
    pub window: Option<HostWindow>,
    /// Covered by a freeze now.
    pub frozen: bool,
    /// Its stream was replaced too often lately (see [`crate::door::FLAP_REASON`]).
    pub flapping: bool,
}

/// Rows, version counts, and the version updates are measured against.
pub struct FleetReport {
    pub rows: Vec<HostRow>,
    pub versions: BTreeMap<String, u64>,
    pub latest: Option<Version>,
    /// Where `latest` came from (see [`latest::Latest`]); "" when there is none.
    pub latest_source: String,
}

/// Release versions and tags, each distinct text parsed once: a fleet runs a handful of
/// releases, and a report over a large fleet would otherwise parse the same few strings (and
/// allocate for each) for every host.
#[derive(Default)]
pub struct Releases {
    versions: HashMap<String, Option<Version>>,
    tags: HashMap<String, Option<Version>>,
}

impl Releases {
    /// [`parse_release`], remembered.
    fn parse(&mut self, text: &str) -> Option<Version> {
        remember(&mut self.versions, text, |t| parse_release(t).ok())
    }

    /// [`parse_release_tag`], remembered.
    fn tag(&mut self, text: &str) -> Option<Version> {
        remember(&mut self.tags, text, parse_release_tag)
    }
}

fn remember(
    seen: &mut HashMap<String, Option<Version>>,
    text: &str,
    parse: impl Fn(&str) -> Option<Version>,
) -> Option<Version> {
    if let Some(parsed) = seen.get(text) {
        return parsed.clone();
    }
    let parsed = parse(text);
    seen.insert(text.to_string(), parsed.clone());
    parsed
}

/// Builds the report; `latest` (`--latest`) overrides what the hosts report.
pub fn build(hosts: Vec<HostView>, latest: Option<Version>) -> FleetReport {
    let rule = LatestRule {
        requested: latest,
        ..LatestRule::default()
    };
    build_with(hosts, &rule)
}

/// Builds the report with `latest` decided by `rule` (see [`latest`]).
pub fn build_with(hosts: Vec<HostView>, rule: &LatestRule) -> FleetReport {
    let mut releases = Releases::default();
    let inventories = hosts.iter().filter_map(|h| {
        let inv = h.observed.as_ref()?.inventory.as_ref()?;
        Some((h.record.tenant.as_str(), inv))
    });
    let fleet = rule.fleet(latest::derive(inventories, &mut releases));
    let rows = rows_with(hosts, rule, fleet.as_ref(), &mut releases);
    let versions = version_counts(rows.iter().map(|r| r.version.as_str()));
    let (latest, latest_source) = match fleet {
        Some(l) => (Some(l.version), l.source),
        None => (None, String::new()),
    };
    FleetReport {
        rows,
        versions,
        latest,
        latest_source,
    }
}

/// The rows of `hosts`, each measured against its tenant's `latest` under `rule`.
pub fn rows(hosts: Vec<HostView>, rule: &LatestRule, fleet: Option<&Latest>) -> Vec<HostRow> {
    rows_with(hosts, rule, fleet, &mut Releases::default())
}

fn rows_with(
    hosts: Vec<HostView>,
    rule: &LatestRule,
    fleet: Option<&Latest>,
    releases: &mut Releases,
) -> Vec<HostRow> {
    let fleet = fleet.map(|l| &l.version);
    hosts
        .into_iter()
        .map(|view| {
            let latest = rule.for_tenant(&view.record.tenant, fleet).cloned();
            row(view, latest.as_ref(), releases)
        })
        .collect()
}

/// Hosts per installed version ("unknown" for none).
pub fn version_counts<'a>(versions: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for version in versions {
        let key = if version.is_empty() {
            "unknown"
        } else {
            version
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|(version, n)| (version.to_string(), n))
        .collect()
}

/// The newest release reported by enough of `hosts` (see [`latest::derive`]).
pub fn derive_latest<'a>(
    hosts: impl IntoIterator<Item = (&'a str, &'a Inventory)>,
) -> Option<Latest> {
    latest::derive(hosts, &mut Releases::default())
}

/// One host's row. The view is taken apart, not cloned: the inventory moves into the row.
fn row(view: HostView, latest: Option<&Version>, releases: &mut Releases) -> HostRow {
    let HostView {
        record,
        observed,
        last_job,
        online,
        window,
        frozen,
        flapping,
    } = view;
    let observed = observed.unwrap_or_default();
    let healthy = observed.is_healthy() && !flapping;
    let Observed {
        inventory,
        last_seen,
        ..
    } = observed;
    let none = Inventory::default();
    let inv = inventory.as_ref().unwrap_or(&none);
    let health_reasons = inv
        .health
        .as_ref()
        .map_or(&[][..], |h| h.reasons.as_slice());
    let mut reasons: Vec<String> = inv.errors.iter().chain(health_reasons).cloned().collect();
    if inventory.is_none() {
        reasons.push("no report received yet".into());
    }
    if flapping {
        reasons.insert(0, crate::door::FLAP_REASON.into());
    }
    let update = match (releases.parse(&inv.passbolt_version), latest) {
        (Some(current), Some(latest)) => match classify(&current, latest) {
            c @ (UpdateClass::Patch | UpdateClass::Minor | UpdateClass::Major) => c.to_string(),
            UpdateClass::AtTarget | UpdateClass::Downgrade => String::new(),
        },
        _ => String::new(),
    };
    let version = inv.passbolt_version.clone();
    let migrations_pending = inv.migrations.as_ref().is_some_and(|m| m.pending);
    HostRow {
        host_id: record.host_id,
        tenant: record.tenant,
        labels: record.labels.into_iter().collect(),
        version,
        online,
        healthy,
        last_seen,
        migrations_pending,
        update,
        revoked: record.revoked,
        health_reasons: reasons,
        inventory,
        last_job,
        window,
        frozen,
        summary: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boltfleet_common::proto::{Health, MigrationState};

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
            last_job: None,
            online: true,
            window: None,
            frozen: false,
            flapping: false,
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
