//! The fleet as the dashboard shows it: a snapshot of every host's summary row (read page by
//! page from `FleetReport`), searched, filtered, sorted and paged here, and the Fleet page's
//! counts and per-tenant versions computed from it.
//!
//! The controller's list calls page in host id order without filters, so the ui server keeps
//! one snapshot and answers every table query from memory; with 50,000 hosts that is 50 pages
//! of 1,000 rows to read once per refresh, and a filter and sort over 50,000 rows per query
//! (milliseconds), never a walk through the controller's pages per click.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use boltfleet_common::version::{parse_release, Version};
use serde::{Deserialize, Serialize};

use crate::cli::rows::HostLine;

/// Rows per page of the hosts table when the query does not say, and at most.
pub const PAGE_SIZE: usize = 50;
pub const PAGE_SIZE_MAX: usize = 500;

/// Every host the operator may see, as of one read of the controller.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub rows: Vec<Row>,
    /// The release updates are measured against, and where it came from.
    pub latest: Option<String>,
    pub latest_source: Option<String>,
    /// Tenants with their own `release latest`.
    pub tenant_latest: BTreeMap<String, String>,
    /// Unix seconds of the read.
    pub taken_at: i64,
}

/// One host, with what sorting needs parsed once.
#[derive(Debug, Clone)]
pub struct Row {
    pub view: HostLine,
    pub version: Option<Version>,
    /// Host id, tenant, version and labels in lower case, for the search box.
    haystack: String,
}

impl Row {
    pub fn new(view: HostLine) -> Self {
        let version = view.version.as_deref().and_then(|v| parse_release(v).ok());
        let mut haystack = format!(
            "{} {} {}",
            view.host_id,
            view.tenant,
            view.version.as_deref().unwrap_or("")
        );
        for (k, v) in &view.labels {
            haystack.push_str(&format!(" {k}={v}"));
        }
        Row {
            version,
            haystack: haystack.to_lowercase(),
            view,
        }
    }

    /// The maintenance page is on, as far as the controller knows: an update or rollback is
    /// running, or a failed rollback left the site in maintenance for a human.
    pub fn in_maintenance(&self) -> bool {
        self.view
            .last_job
            .as_ref()
            .is_some_and(|j| matches!(j.state, "running" | "rollback_failed"))
    }
}

/// A query of the hosts table, as the page's address holds it. Unknown parameters are
/// refused by name.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostQuery {
    /// Words that must all appear in the host id, tenant, version or labels.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub tenant: String,
    /// X.Y.Z, or "unknown".
    #[serde(default)]
    pub version: String,
    /// healthy | unhealthy
    #[serde(default)]
    pub health: String,
    /// online | offline
    #[serde(default)]
    pub online: String,
    /// patch | minor | major | none
    #[serde(default)]
    pub update: String,
    /// host | tenant | version | health | online | update | last_seen
    #[serde(default)]
    pub sort: String,
    /// asc | desc
    #[serde(default)]
    pub dir: String,
    /// 1-based.
    #[serde(default)]
    pub page: Option<usize>,
    #[serde(default)]
    pub size: Option<usize>,
}

/// A page of the hosts table.
#[derive(Debug, Serialize)]
pub struct HostPage {
    pub rows: Vec<HostLine>,
    /// Hosts matching the query, and hosts in the snapshot.
    pub matched: usize,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub size: usize,
    /// The choices of the filters, over the whole snapshot.
    pub tenants: Vec<String>,
    pub versions: Vec<String>,
    pub taken_at: i64,
}

/// A bad query parameter, named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad query parameter {name}: {reason}")]
pub struct QueryError {
    pub name: &'static str,
    pub reason: String,
}

fn one_of(name: &'static str, value: &str, allowed: &[&str]) -> Result<(), QueryError> {
    if value.is_empty() || allowed.contains(&value) {
        return Ok(());
    }
    Err(QueryError {
        name,
        reason: format!("{value:?} is not one of {}", allowed.join(", ")),
    })
}

impl HostQuery {
    fn validate(&self) -> Result<(), QueryError> {
        one_of("health", &self.health, &["healthy", "unhealthy"])?;
        one_of("online", &self.online, &["online", "offline"])?;
        one_of("update", &self.update, &["patch", "minor", "major", "none"])?;
        one_of(
            "sort",
            &self.sort,
            &[
                "host",
                "tenant",
                "version",
                "health",
                "online",
                "update",
                "last_seen",
            ],
        )?;
        one_of("dir", &self.dir, &["asc", "desc"])?;
        if !self.version.is_empty() && self.version != "unknown" {
            parse_release(&self.version).map_err(|e| QueryError {
                name: "version",
                reason: e.to_string(),
            })?;
        }
        if self.page == Some(0) {
            return Err(QueryError {
                name: "page",
                reason: "pages count from 1".into(),
            });
        }
        match self.size {
            Some(n) if n == 0 || n > PAGE_SIZE_MAX => Err(QueryError {
                name: "size",
                reason: format!("between 1 and {PAGE_SIZE_MAX}"),
            }),
            _ => Ok(()),
        }
    }

    fn matches(&self, row: &Row, words: &[String]) -> bool {
        let v = &row.view;
        let text_ok = words.iter().all(|w| row.haystack.contains(w.as_str()));
        let tenant_ok = self.tenant.is_empty() || v.tenant == self.tenant;
        let version_ok = match self.version.as_str() {
            "" => true,
            "unknown" => v.version.is_none(),
            want => v.version.as_deref() == Some(want),
        };
        let health_ok = match self.health.as_str() {
            "healthy" => v.healthy,
            "unhealthy" => !v.healthy,
            _ => true,
        };
        let online_ok = match self.online.as_str() {
            "online" => v.online,
            "offline" => !v.online,
            _ => true,
        };
        let update_ok = match self.update.as_str() {
            "" => true,
            "none" => v.update.is_none(),
            class => v.update.as_deref() == Some(class),
        };
        text_ok && tenant_ok && version_ok && health_ok && online_ok && update_ok
    }

    fn order(&self, a: &Row, b: &Row) -> Ordering {
        let (x, y) = (&a.view, &b.view);
        let by = match self.sort.as_str() {
            "tenant" => x.tenant.cmp(&y.tenant),
            // Unknown versions first, then semver order (1.10.0 after 1.9.0).
            "version" => a.version.cmp(&b.version),
            // Unhealthy first in ascending order: what needs a look comes up.
            "health" => x.healthy.cmp(&y.healthy),
            "online" => x.online.cmp(&y.online),
            "update" => update_rank(&x.update).cmp(&update_rank(&y.update)),
            "last_seen" => x.last_seen.cmp(&y.last_seen),
            _ => Ordering::Equal,
        };
        let by = by.then_with(|| x.host_id.cmp(&y.host_id));
        if self.dir == "desc" {
            by.reverse()
        } else {
            by
        }
    }
}

fn update_rank(update: &Option<String>) -> u8 {
    match update.as_deref() {
        None => 0,
        Some("patch") => 1,
        Some("minor") => 2,
        Some(_) => 3,
    }
}

impl Snapshot {
    /// One page of the hosts table: the rows matching `query`, sorted, the page asked for
    /// (the last one when it asks past the end).
    pub fn query(&self, query: &HostQuery) -> Result<HostPage, QueryError> {
        query.validate()?;
        let words: Vec<String> = query
            .q
            .to_lowercase()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut matched: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| query.matches(r, &words))
            .collect();
        matched.sort_by(|a, b| query.order(a, b));
        let size = query.size.unwrap_or(PAGE_SIZE);
        let pages = matched.len().div_ceil(size).max(1);
        let page = query.page.unwrap_or(1).min(pages);
        let rows = matched
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|r| r.view.clone())
            .collect();
        Ok(HostPage {
            rows,
            matched: matched.len(),
            total: self.rows.len(),
            page,
            pages,
            size,
            tenants: self.tenants(),
            versions: self.versions().into_iter().map(|(v, _)| v).collect(),
            taken_at: self.taken_at,
        })
    }

    fn tenants(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.rows.iter().map(|r| r.view.tenant.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// Versions seen, newest first ("unknown" last), with their parsed form.
    fn versions(&self) -> Vec<(String, Option<Version>)> {
        let mut set: Vec<(String, Option<Version>)> = self
            .rows
            .iter()
            .map(|r| {
                let name = r.view.version.clone().unwrap_or_else(|| "unknown".into());
                (name, r.version.clone())
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        set.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        set
    }

    /// The Fleet page: counts, and hosts per version and tenant.
    pub fn summary(&self) -> FleetSummary {
        let mut counts = Counts::default();
        let mut tenants: BTreeMap<String, Counts> = BTreeMap::new();
        let mut by_version: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for row in &self.rows {
            let v = &row.view;
            counts.add(row);
            tenants.entry(v.tenant.clone()).or_default().add(row);
            let version = v.version.clone().unwrap_or_else(|| "unknown".into());
            *by_version
                .entry(version)
                .or_default()
                .entry(v.tenant.clone())
                .or_default() += 1;
        }
        let versions = self
            .versions()
            .into_iter()
            .map(|(version, _)| VersionCount {
                by_tenant: by_version.remove(&version).unwrap_or_default(),
                version,
            })
            .collect();
        FleetSummary {
            latest: self.latest.clone(),
            latest_source: self.latest_source.clone(),
            tenant_latest: self.tenant_latest.clone(),
            counts,
            tenants: tenants
                .into_iter()
                .map(|(tenant, counts)| TenantCount { tenant, counts })
                .collect(),
            versions,
            taken_at: self.taken_at,
        }
    }
}

/// What the Fleet page shows.
#[derive(Debug, Serialize)]
pub struct FleetSummary {
    pub latest: Option<String>,
    pub latest_source: Option<String>,
    pub tenant_latest: BTreeMap<String, String>,
    pub counts: Counts,
    pub tenants: Vec<TenantCount>,
    /// Newest first.
    pub versions: Vec<VersionCount>,
    pub taken_at: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub hosts: u64,
    pub patch: u64,
    pub minor: u64,
    pub major: u64,
    pub unhealthy: u64,
    pub offline: u64,
    pub maintenance: u64,
    pub window_open: u64,
    pub frozen: u64,
    pub revoked: u64,
}

impl Counts {
    fn add(&mut self, row: &Row) {
        let v = &row.view;
        let one = |yes: bool| u64::from(yes);
        self.hosts += 1;
        self.patch += one(v.update.as_deref() == Some("patch"));
        self.minor += one(v.update.as_deref() == Some("minor"));
        self.major += one(v.update.as_deref() == Some("major"));
        self.unhealthy += one(!v.healthy);
        self.offline += one(!v.online);
        self.maintenance += one(row.in_maintenance());
        self.window_open += one(v.window.as_ref().is_some_and(|w| w.open_now));
        self.frozen += one(v.frozen);
        self.revoked += one(v.revoked);
    }
}

#[derive(Debug, Serialize)]
pub struct TenantCount {
    pub tenant: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Serialize)]
pub struct VersionCount {
    pub version: String,
    pub by_tenant: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use boltfleet_common::proto::HostRow;

    use super::*;

    fn row(id: &str, tenant: &str, version: &str, healthy: bool, update: &str) -> Row {
        Row::new(HostLine::from(&HostRow {
            host_id: id.into(),
            tenant: tenant.into(),
            version: version.into(),
            online: healthy,
            healthy,
            update: update.into(),
            ..HostRow::default()
        }))
    }

    fn snapshot(rows: Vec<Row>) -> Snapshot {
        Snapshot {
            rows,
            ..Snapshot::default()
        }
    }

    fn ids(page: &HostPage) -> Vec<&str> {
        page.rows.iter().map(|r| r.host_id.as_str()).collect()
    }

    fn query(pairs: &str) -> HostQuery {
        serde_json::from_str(pairs).unwrap()
    }

    #[test]
    fn filters_combine_and_versions_sort_as_versions() {
        let s = snapshot(vec![
            row("a1", "acme", "1.9.0", true, "minor"),
            row("a2", "acme", "1.10.0", false, ""),
            row("g1", "globex", "1.9.0", true, "minor"),
            row("g2", "globex", "", false, ""),
        ]);
        let page = s.query(&query(r#"{"tenant":"acme"}"#)).unwrap();
        assert_eq!(ids(&page), ["a1", "a2"]);
        let page = s
            .query(&query(r#"{"sort":"version","dir":"desc"}"#))
            .unwrap();
        assert_eq!(ids(&page), ["a2", "g1", "a1", "g2"]);
        let page = s
            .query(&query(r#"{"health":"unhealthy","version":"unknown"}"#))
            .unwrap();
        assert_eq!(ids(&page), ["g2"]);
        let page = s.query(&query(r#"{"update":"minor","q":"GLOB"}"#)).unwrap();
        assert_eq!(ids(&page), ["g1"]);
        assert_eq!(page.total, 4);
        assert_eq!(page.versions, ["1.10.0", "1.9.0", "unknown"]);
        assert_eq!(page.tenants, ["acme", "globex"]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let s = snapshot(vec![]);
        let err = s.query(&query(r#"{"health":"sick"}"#)).unwrap_err();
        assert_eq!(err.name, "health");
        assert_eq!(
            s.query(&query(r#"{"version":"v1"}"#)).unwrap_err().name,
            "version"
        );
        assert_eq!(
            s.query(&query(r#"{"size":100000}"#)).unwrap_err().name,
            "size"
        );
        assert_eq!(s.query(&query(r#"{"page":0}"#)).unwrap_err().name, "page");
        assert!(serde_json::from_str::<HostQuery>(r#"{"color":"red"}"#).is_err());
    }

    #[test]
    fn fifty_thousand_hosts_page_and_count_exactly() {
        let rows: Vec<Row> = (0..50_000)
            .map(|i| {
                let tenant = format!("t{}", i % 7);
                let version = format!("1.{}.{}", i % 3, i % 5);
                row(&format!("h{i:05}"), &tenant, &version, i % 10 != 0, "")
            })
            .collect();
        let s = snapshot(rows);
        let q = query(r#"{"tenant":"t3","health":"unhealthy","size":500,"page":2}"#);
        let page = s.query(&q).unwrap();
        // i % 7 == 3 and i % 10 == 0: i = 10 (mod 70), 50000 / 70 rounded up.
        assert_eq!(page.matched, 715);
        assert_eq!((page.page, page.pages, page.rows.len()), (2, 2, 215));
        assert!(page.rows.iter().all(|r| r.tenant == "t3" && !r.healthy));
        let summary = s.summary();
        assert_eq!(summary.counts.hosts, 50_000);
        assert_eq!(summary.counts.unhealthy, 5_000);
        assert_eq!(summary.tenants.len(), 7);
        let total: u64 = summary
            .versions
            .iter()
            .flat_map(|v| v.by_tenant.values())
            .sum();
        assert_eq!(total, 50_000);
        assert_eq!(summary.versions[0].version, "1.2.4");
    }
}
