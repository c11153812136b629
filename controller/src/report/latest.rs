//! Which release the fleet report measures updates against, and where it came from: asked
//! for in the request, set by an operator (`release latest`, for one tenant or the whole
//! fleet), or derived from what hosts report — never from one host alone.
//!
//! The derivation: the newest release (a `vX.Y.Z` tag of an install's repository, or an
//! installed version) reported by at least [`MIN_HOSTS`] hosts; when the hosts in view belong
//! to more than one tenant, those hosts must also belong to at least two tenants, so that one
//! customer's servers cannot move everyone else's `latest`.

use std::collections::{BTreeMap, HashMap, HashSet};

use boltfleet_common::proto::Inventory;
use boltfleet_common::version::Version;

use super::Releases;

/// Hosts that must report a release before the fleet takes it for its `latest`.
pub const MIN_HOSTS: usize = 2;

/// What decides `latest`: the request's, then the operator's settings, then the hosts'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatestRule {
    /// `report --latest`: wins over everything, for every row.
    pub requested: Option<Version>,
    /// `release latest X.Y.Z` for the whole fleet.
    pub global: Option<Version>,
    /// `release latest X.Y.Z --tenant T`: for that tenant's rows.
    pub tenants: BTreeMap<String, Version>,
}

/// The release updates are measured against, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub version: Version,
    /// "requested", "operator", "operator (tenant T)" or "hosts (N hosts, M tenants)".
    pub source: String,
}

#[derive(Default)]
struct Seen {
    hosts: usize,
    tenants: HashSet<String>,
}

/// The newest release reported by enough hosts (see the module doc), with its source.
pub fn derive<'a>(
    hosts: impl IntoIterator<Item = (&'a str, &'a Inventory)>,
    releases: &mut Releases,
) -> Option<Latest> {
    let mut seen: HashMap<Version, Seen> = HashMap::new();
    let mut tenants_in_view: HashSet<&str> = HashSet::new();
    for (tenant, inv) in hosts {
        tenants_in_view.insert(tenant);
        let mut mine = [
            releases.tag(&inv.newest_tag),
            releases.parse(&inv.passbolt_version),
        ];
        if mine[0] == mine[1] {
            mine[1] = None;
        }
        for version in mine.into_iter().flatten() {
            let entry = seen.entry(version).or_default();
            entry.hosts += 1;
            if !entry.tenants.contains(tenant) {
                entry.tenants.insert(tenant.to_string());
            }
        }
    }
    let need_tenants = if tenants_in_view.len() > 1 { 2 } else { 1 };
    seen.into_iter()
        .filter(|(_, s)| s.hosts >= MIN_HOSTS && s.tenants.len() >= need_tenants)
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(version, s)| Latest {
            version,
            source: format!("hosts ({} hosts, {} tenants)", s.hosts, s.tenants.len()),
        })
}

impl LatestRule {
    /// The report's own `latest` (its header): requested, else the fleet-wide setting, else
    /// `derived`.
    pub fn fleet(&self, derived: Option<Latest>) -> Option<Latest> {
        if let Some(v) = &self.requested {
            return Some(Latest {
                version: v.clone(),
                source: "requested".into(),
            });
        }
        if let Some(v) = &self.global {
            return Some(Latest {
                version: v.clone(),
                source: "operator".into(),
            });
        }
        derived
    }

    /// The release a row of `tenant` is measured against: requested, else the tenant's
    /// setting, else the report's `fleet` one.
    pub fn for_tenant<'a>(
        &'a self,
        tenant: &str,
        fleet: Option<&'a Version>,
    ) -> Option<&'a Version> {
        self.requested
            .as_ref()
            .or_else(|| self.tenants.get(tenant))
            .or(fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(version: &str, tag: &str) -> Inventory {
        Inventory {
            passbolt_version: version.into(),
            newest_tag: tag.into(),
            ..Inventory::default()
        }
    }

    fn derived(hosts: &[(&str, Inventory)]) -> Option<(String, String)> {
        let mut releases = Releases::default();
        derive(hosts.iter().map(|(t, i)| (*t, i)), &mut releases)
            .map(|l| (l.version.to_string(), l.source))
    }

    #[test]
    fn one_host_alone_never_sets_latest() {
        type Case<'a> = (&'a str, Vec<(&'a str, Inventory)>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "one liar among honest hosts of two tenants",
                vec![
                    ("acme", inv("1.6.9", "v1.6.10")),
                    ("globex", inv("1.6.10", "v1.6.10")),
                    ("evil", inv("1.6.10", "v1.99.0")),
                ],
                Some("1.6.10"),
            ),
            (
                "two liars of one tenant in a fleet of several",
                vec![
                    ("acme", inv("1.6.9", "v1.6.10")),
                    ("globex", inv("1.6.10", "v1.6.10")),
                    ("evil", inv("1.6.10", "v1.99.0")),
                    ("evil", inv("1.99.0", "v1.99.0")),
                ],
                Some("1.6.10"),
            ),
            (
                "a single-tenant fleet needs two hosts",
                vec![
                    ("acme", inv("1.6.9", "v1.6.10")),
                    ("acme", inv("1.6.9", "")),
                ],
                Some("1.6.9"),
            ),
            (
                "a single host",
                vec![("acme", inv("1.6.9", "v1.6.10"))],
                None,
            ),
            (
                "tag and version of one host count once",
                vec![("acme", inv("1.6.10", "v1.6.10")), ("acme", inv("", ""))],
                None,
            ),
        ];
        for (what, hosts, want) in cases {
            let got = derived(&hosts).map(|(v, _)| v);
            assert_eq!(got.as_deref(), want, "{what}");
        }
        let hosts = [
            ("acme", inv("1.6.9", "v1.6.10")),
            ("globex", inv("1.6.10", "v1.6.10")),
        ];
        assert_eq!(derived(&hosts).unwrap().1, "hosts (2 hosts, 2 tenants)");
    }

    #[test]
    fn the_request_wins_then_the_tenants_setting_then_the_fleets() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        let rule = LatestRule {
            requested: None,
            global: Some(v("1.6.10")),
            tenants: BTreeMap::from([("acme".to_string(), v("1.6.8"))]),
        };
        let fleet = rule.fleet(None).unwrap();
        assert_eq!(
            (fleet.version.to_string(), fleet.source.as_str()),
            ("1.6.10".into(), "operator")
        );
        assert_eq!(
            rule.for_tenant("acme", Some(&fleet.version)),
            Some(&v("1.6.8"))
        );
        assert_eq!(
            rule.for_tenant("globex", Some(&fleet.version)),
            Some(&v("1.6.10"))
        );
        let asked = LatestRule {
            requested: Some(v("1.7.0")),
            ..rule
        };
        assert_eq!(asked.for_tenant("acme", None), Some(&v("1.7.0")));
        assert_eq!(asked.fleet(None).unwrap().source, "requested");
    }
}
