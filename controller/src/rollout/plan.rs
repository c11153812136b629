//! The rollout planner: a pure function from a fleet snapshot and a spec to classified hosts
//! ordered into waves.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use boltfleet_common::version::{classify, UpdateClass, Version};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::spec::{serde_version, wave_sizes, RolloutSpec};
use super::window::MaintenanceWindow;

/// One host as the planner and the scheduler see it; the caller resolves everything (window,
/// freeze, job) from the store, so planning and deciding do no I/O.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetHost {
    pub host_id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    /// The installed release; `None` until the agent has reported one.
    pub version: Option<Version>,
    pub online: bool,
    pub healthy: bool,
    /// The last message from the agent.
    pub last_seen: Option<Timestamp>,
    /// The window that applies (the host's own, else its tenant's); `None`: any time.
    pub window: Option<MaintenanceWindow>,
    /// Whether a freeze (global or of the host's tenant) covers it now.
    pub frozen: bool,
    /// Another job (an operator's, or another rollout's) is active on the host: the agent
    /// runs one job at a time, so this rollout's waits.
    pub busy: bool,
    /// Default config files that change on the way to the target, from the agent's config
    /// review; shown in the plan, filled by the caller.
    pub config_changes: Vec<String>,
    /// The host's update job of this rollout, as last reported; `None` before it exists.
    pub job: Option<JobStatus>,
    /// The host's rollback job of this rollout (after `abort --rollback`); `None` before.
    pub rollback_job: Option<JobStatus>,
}

/// What the agent last said of the host's rollout job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    /// Failed after changing the host, and rolled back at `step`.
    RolledBack {
        step: String,
    },
    /// Failed and the rollback failed too: the host needs a person.
    RollbackFailed {
        step: String,
    },
    /// Failed before changing anything (e.g. preflight).
    Failed {
        step: String,
    },
}

/// Why a host takes no part in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    AtTarget,
    /// A new major version: a separate manual upgrade.
    MajorJump,
    Downgrade,
    Offline,
    Unhealthy,
    Frozen,
    /// Its window never opens long enough for the job within the horizon.
    NoWindowInHorizon,
    /// The agent has not reported a version.
    UnknownVersion,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::AtTarget => "already at target",
            SkipReason::MajorJump => "major upgrade: a separate manual procedure",
            SkipReason::Downgrade => "downgrade refused",
            SkipReason::Offline => "offline",
            SkipReason::Unhealthy => "unhealthy",
            SkipReason::Frozen => "frozen",
            SkipReason::NoWindowInHorizon => "no maintenance window long enough within 14 days",
            SkipReason::UnknownVersion => "version unknown",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rollout does with a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostClass {
    Patch,
    Minor,
    Skip(SkipReason),
}

/// One selected host in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedHost {
    pub host_id: String,
    pub tenant: String,
    #[serde(with = "serde_version::option")]
    pub from: Option<Version>,
    pub class: HostClass,
    /// Index of its wave; `None` when skipped.
    pub wave: Option<usize>,
    /// When it may start first: now, or its window's next opening with enough time left;
    /// `None` when skipped or when it has no window (any time).
    pub next_window: Option<Timestamp>,
    pub config_changes: Vec<String>,
}

/// The planner's answer: hosts in rollout order (wave by wave), then the skipped ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    #[serde(with = "serde_version")]
    pub target: Version,
    pub planned_at: Timestamp,
    pub hosts: Vec<PlannedHost>,
    /// Host ids of each wave, canary first.
    pub waves: Vec<Vec<String>>,
}

impl Plan {
    /// Hosts the rollout will update (the base of wave and budget percentages).
    pub fn eligible(&self) -> usize {
        self.waves.iter().map(Vec::len).sum()
    }

    pub fn skipped(&self) -> impl Iterator<Item = (&str, SkipReason)> {
        self.hosts.iter().filter_map(|h| match h.class {
            HostClass::Skip(reason) => Some((h.host_id.as_str(), reason)),
            _ => None,
        })
    }
}

/// Plans `spec` over `fleet` at `now`.
///
/// Hosts the selector picks are classified; skipped hosts stay out of the rollout (a plan is a
/// snapshot: re-plan to pick them up later). The eligible hosts are ordered by interleaving
/// tenants — tenants by name, each tenant's hosts by id, one host per tenant in turn — so the
/// canary and early waves sample many customers and no tenant is updated whole before others
/// start; then cut into waves by [`wave_sizes`].
pub fn plan(fleet: &[FleetHost], spec: &RolloutSpec, now: Timestamp) -> Plan {
    let selected = select(fleet, spec);
    // Hosts share a few windows (their tenant's): look each distinct one up once.
    let mut starts = HashMap::new();
    let mut eligible: Vec<Vec<PlannedHost>> = Vec::new();
    let mut skipped = Vec::new();
    let mut tenant = None;
    for host in selected {
        let planned = plan_host(host, spec, now, &mut starts);
        if let HostClass::Skip(_) = planned.class {
            skipped.push(planned);
            continue;
        }
        // `selected` is grouped by tenant: a new tenant starts a new group.
        if tenant != Some(host.tenant.as_str()) {
            tenant = Some(host.tenant.as_str());
            eligible.push(Vec::new());
        }
        eligible.last_mut().expect("a group").push(planned);
    }
    let mut ordered = interleave(eligible);
    let mut waves = Vec::new();
    let mut next = 0;
    for (wave, size) in wave_sizes(&spec.waves, ordered.len())
        .into_iter()
        .enumerate()
    {
        let members = &mut ordered[next..next + size];
        members.iter_mut().for_each(|h| h.wave = Some(wave));
        waves.push(members.iter().map(|h| h.host_id.clone()).collect());
        next += size;
    }
    ordered.extend(skipped);
    Plan {
        target: spec.target.clone(),
        planned_at: now,
        hosts: ordered,
        waves,
    }
}

/// The hosts the selector picks, ordered by tenant then host id (input order among equals),
/// without repeated host ids. Grouping by tenant first spares a sort of the whole fleet by
/// string pairs, which dominated the plan of a large fleet.
fn select<'a>(fleet: &'a [FleetHost], spec: &RolloutSpec) -> Vec<&'a FleetHost> {
    let mut by_tenant: HashMap<&str, Vec<&FleetHost>> = HashMap::new();
    for host in fleet
        .iter()
        .filter(|h| spec.selector.matches(&h.host_id, &h.tenant, &h.labels))
    {
        by_tenant.entry(&host.tenant).or_default().push(host);
    }
    let mut tenants: Vec<(&str, Vec<&FleetHost>)> = by_tenant.into_iter().collect();
    tenants.sort_unstable_by_key(|(tenant, _)| *tenant);
    let mut selected = Vec::with_capacity(tenants.iter().map(|(_, hosts)| hosts.len()).sum());
    for (_, mut hosts) in tenants {
        hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        selected.extend(hosts);
    }
    selected.dedup_by(|a, b| a.host_id == b.host_id);
    selected
}

fn plan_host<'a>(
    host: &'a FleetHost,
    spec: &RolloutSpec,
    now: Timestamp,
    starts: &mut HashMap<&'a MaintenanceWindow, Option<Timestamp>>,
) -> PlannedHost {
    let mut next_window = None;
    let class = match classify_host(host, &spec.target) {
        Err(reason) => HostClass::Skip(reason),
        Ok(class) => match &host.window {
            None => class,
            Some(window) => match *starts
                .entry(window)
                .or_insert_with(|| window.next_start(now, spec.expected_job_duration))
            {
                None => HostClass::Skip(SkipReason::NoWindowInHorizon),
                at => {
                    next_window = at;
                    class
                }
            },
        },
    };
    PlannedHost {
        host_id: host.host_id.clone(),
        tenant: host.tenant.clone(),
        from: host.version.clone(),
        class,
        wave: None,
        next_window,
        config_changes: host.config_changes.clone(),
    }
}

/// Patch or minor by version alone, or why not.
pub(crate) fn version_class(
    version: Option<&Version>,
    target: &Version,
) -> Result<HostClass, SkipReason> {
    match version.map(|v| classify(v, target)) {
        None => Err(SkipReason::UnknownVersion),
        Some(UpdateClass::AtTarget) => Err(SkipReason::AtTarget),
        Some(UpdateClass::Major) => Err(SkipReason::MajorJump),
        Some(UpdateClass::Downgrade) => Err(SkipReason::Downgrade),
        Some(UpdateClass::Patch) => Ok(HostClass::Patch),
        Some(UpdateClass::Minor) => Ok(HostClass::Minor),
    }
}

/// Patch or minor, or why the host cannot be updated now. Version reasons come first: they
/// hold whatever the host's state.
fn classify_host(host: &FleetHost, target: &Version) -> Result<HostClass, SkipReason> {
    let class = version_class(host.version.as_ref(), target)?;
    if !host.online {
        Err(SkipReason::Offline)
    } else if !host.healthy {
        Err(SkipReason::Unhealthy)
    } else if host.frozen {
        Err(SkipReason::Frozen)
    } else {
        Ok(class)
    }
}

/// Round-robin over the groups: the first of each, then the second of each, ... Exhausted
/// groups drop out, so a few large tenants do not make every round visit every small one.
fn interleave<T>(groups: Vec<Vec<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(groups.iter().map(Vec::len).sum());
    let mut iters: Vec<_> = groups.into_iter().map(Vec::into_iter).collect();
    while !iters.is_empty() {
        iters.retain_mut(|group| group.next().map(|item| out.push(item)).is_some());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::testkit::{at, host, spec};

    fn classes(plan: &Plan) -> Vec<(&str, HostClass)> {
        plan.hosts
            .iter()
            .map(|h| (h.host_id.as_str(), h.class))
            .collect()
    }

    #[test]
    fn every_skip_reason_and_both_update_classes() {
        use SkipReason::*;
        let now = at("2025-01-15T12:00:00Z");
        let cases: [(FleetHost, HostClass); 10] = [
            (host("patch").version("1.3.0"), HostClass::Patch),
            (host("minor").version("1.2.9"), HostClass::Minor),
            (host("same").version("1.3.2"), HostClass::Skip(AtTarget)),
            (host("major").version("0.9.0"), HostClass::Skip(MajorJump)),
            (host("newer").version("1.4.0"), HostClass::Skip(Downgrade)),
            (
                host("off").version("1.3.0").offline(),
                HostClass::Skip(Offline),
            ),
            (
                host("sick").version("1.3.0").unhealthy(),
                HostClass::Skip(Unhealthy),
            ),
            (
                host("cold").version("1.3.0").frozen(),
                HostClass::Skip(Frozen),
            ),
            (
                host("never").version("1.3.0").window("0 1 30 2 * 4h UTC"),
                HostClass::Skip(NoWindowInHorizon),
            ),
            (host("silent"), HostClass::Skip(UnknownVersion)),
        ];
        for (fleet_host, want) in cases {
            let id = fleet_host.host_id.clone();
            let plan = plan(&[fleet_host], &spec("1.3.2"), now);
            assert_eq!(classes(&plan), [(id.as_str(), want)], "{id}");
            assert_eq!(plan.eligible(), usize::from(plan.hosts[0].wave.is_some()));
        }
        // Version reasons win over state reasons.
        let both = host("x").version("1.3.2").offline().frozen();
        assert_eq!(
            plan(&[both], &spec("1.3.2"), now).hosts[0].class,
            HostClass::Skip(AtTarget)
        );
    }

    #[test]
    fn waves_are_cumulative_and_round_up() {
        let now = at("2025-01-15T12:00:00Z");
        let cases: [(&str, usize, &[usize]); 4] = [
            ("1,10%,100%", 7, &[1, 1, 5]),
            ("1,10%,100%", 20, &[1, 1, 18]),
            ("1,10%,50%,100%", 40, &[1, 3, 16, 20]),
            ("2,100%", 1, &[1]),
        ];
        for (waves, n, want) in cases {
            let fleet: Vec<FleetHost> = (0..n)
                .map(|i| host(&format!("h{i:02}")).version("1.3.0"))
                .collect();
            let mut s = spec("1.3.2");
            s.waves = crate::rollout::spec::parse_waves(waves).unwrap();
            let plan = plan(&fleet, &s, now);
            let sizes: Vec<usize> = plan.waves.iter().map(Vec::len).collect();
            assert_eq!(sizes, want, "{waves} over {n}");
            assert_eq!(plan.hosts[0].wave, Some(0));
        }
    }

    #[test]
    fn percentages_count_only_eligible_hosts() {
        let now = at("2025-01-15T12:00:00Z");
        let mut fleet: Vec<FleetHost> = (0..10)
            .map(|i| host(&format!("h{i}")).version("1.3.0"))
            .collect();
        fleet.extend((0..10).map(|i| host(&format!("z{i}")).version("1.3.2")));
        let mut s = spec("1.3.2");
        s.waves = crate::rollout::spec::parse_waves("20%,100%").unwrap();
        let plan = plan(&fleet, &s, now);
        assert_eq!((plan.eligible(), plan.waves[0].len()), (10, 2));
        assert_eq!(plan.skipped().count(), 10);
        assert!(
            plan.hosts[10..].iter().all(|h| h.wave.is_none()),
            "skipped last"
        );
    }

    #[test]
    fn tenants_interleave_in_a_deterministic_order() {
        let now = at("2025-01-15T12:00:00Z");
        let fleet = vec![
            host("b2").tenant("globex").version("1.3.0"),
            host("a3").tenant("acme").version("1.3.0"),
            host("c1").tenant("initech").version("1.3.0"),
            host("a1").tenant("acme").version("1.3.0"),
            host("b1").tenant("globex").version("1.3.0"),
            host("a2").tenant("acme").version("1.3.0"),
        ];
        let order =
            |fleet: &[FleetHost]| -> Vec<Vec<String>> { plan(fleet, &spec("1.3.2"), now).waves };
        let waves = order(&fleet);
        assert_eq!(
            waves,
            [vec!["a1"], vec!["b1"], vec!["c1", "a2", "b2", "a3"]]
        );
        let mut reversed = fleet.clone();
        reversed.reverse();
        assert_eq!(order(&reversed), waves, "input order does not matter");
    }

    #[test]
    fn the_selector_picks_hosts_and_windows_give_the_first_start() {
        let now = at("2025-01-15T12:00:00Z");
        let fleet = vec![
            host("a1")
                .tenant("acme")
                .version("1.3.0")
                .window("0 22 * * * 4h Europe/Paris"),
            host("a2")
                .tenant("acme")
                .version("1.3.0")
                .label("env", "test"),
            host("g1").tenant("globex").version("1.3.0"),
        ];
        let mut s = spec("1.3.2");
        s.selector = "tenant=acme".parse().unwrap();
        let p = plan(&fleet, &s, now);
        let ids: Vec<&str> = p.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(ids, ["a1", "a2"]);
        assert_eq!(p.hosts[0].next_window, Some(at("2025-01-15T21:00:00Z")));
        assert_eq!(p.hosts[1].next_window, None, "no window: any time");

        // A window too short for the expected job duration is no window at all.
        let mut tight = spec("1.3.2");
        tight.expected_job_duration = std::time::Duration::from_secs(5 * 3600);
        let p = plan(&fleet[..1], &tight, now);
        assert_eq!(
            p.hosts[0].class,
            HostClass::Skip(SkipReason::NoWindowInHorizon)
        );

        s.selector = "label:env=test".parse().unwrap();
        assert_eq!(plan(&fleet, &s, now).waves, [vec!["a2"]]);
    }

    #[test]
    fn selection_matches_a_sort_of_the_whole_fleet_even_with_repeated_ids() {
        // The order before selection grouped by tenant: a stable sort by (tenant, host id),
        // then repeated ids dropped (keeping the first).
        let fleet: Vec<FleetHost> = (0..400)
            .map(|i| {
                host(&format!("h{}", (i * 7919) % 97))
                    .tenant(&format!("t{}", (i * 31) % 13))
                    .version("1.3.0")
            })
            .collect();
        let mut want: Vec<&FleetHost> = fleet.iter().collect();
        want.sort_by(|a, b| (&a.tenant, &a.host_id).cmp(&(&b.tenant, &b.host_id)));
        want.dedup_by(|a, b| a.host_id == b.host_id);
        let got = select(&fleet, &spec("1.3.2"));
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, w)| std::ptr::eq(*g, *w)));
    }

    #[test]
    fn interleaving_takes_one_of_each_group_in_turn() {
        let groups = vec![vec![1, 4, 6, 7], vec![], vec![2, 5], vec![3]];
        assert_eq!(interleave(groups), [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_plan_carries_config_changes_and_serializes() {
        let now = at("2025-01-15T12:00:00Z");
        let mut h = host("a1").version("1.3.0");
        h.config_changes = vec!["M config/passbolt.default.php".into()];
        let p = plan(&[h], &spec("1.3.2"), now);
        assert_eq!(p.hosts[0].config_changes, ["M config/passbolt.default.php"]);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""class":"patch""#), "{json}");
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}
