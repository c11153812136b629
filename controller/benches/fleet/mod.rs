//! A synthetic fleet for the benches: 50,000 hosts over 2,000 tenants, generated from a fixed
//! seed so every run (and both benches) measure the same fleet.
//!
//! Shape: tenant sizes skewed (a few large customers, a long tail of small ones); labels
//! `env`, `region`, `tier`; installed versions spread over five minors of 4.x plus a few 3.x,
//! 5.0 and unreported hosts; about 10% of hosts under a maintenance window (tenant windows
//! and host overrides, five cron shapes in five zones); some hosts offline or unhealthy;
//! 1% of tenants frozen. Each bench maps [`SimHost`]s to its own input types.

// Each bench uses part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

pub const HOSTS: usize = 50_000;
pub const TENANTS: usize = 2_000;
/// The rollout target and the newest release tag the fleet has seen.
pub const TARGET: &str = "4.12.1";
/// A fixed instant (a Wednesday), so window searches do not depend on the day of the run.
pub const NOW: &str = "2025-06-11T12:00:00Z";
const SEED: u64 = 0x0b01_7f1e_e750_0042;

/// Installed releases with their weight (per mille). `None`: no report yet.
const VERSIONS: &[(Option<&str>, u32)] = &[
    (Some("4.12.1"), 180), // at target
    (Some("4.12.0"), 220), // patch
    (Some("4.11.2"), 150), // minor from here on
    (Some("4.11.0"), 90),
    (Some("4.10.3"), 110),
    (Some("4.10.1"), 60),
    (Some("4.9.7"), 70),
    (Some("4.9.0"), 40),
    (Some("4.8.5"), 30),
    (Some("3.12.2"), 20), // major jump: skipped
    (Some("5.0.0"), 10),  // ahead of target: downgrade refused
    (None, 20),
];

/// Cron shapes operators use: nightly, weeknights, weekend, twice weekly, monthly.
const CRONS: &[(&str, &str)] = &[
    ("0 22 * * *", "4h"),
    ("30 1 * * 1-5", "2h"),
    ("0 2 * * 6,0", "6h"),
    ("0 3 * * 2,4", "3h"),
    ("0 4 1 * *", "4h"),
];
const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "UTC",
    "Australia/Sydney",
];

/// One host as both benches need it.
#[derive(Debug, Clone)]
pub struct SimHost {
    pub id: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    pub version: Option<&'static str>,
    pub online: bool,
    pub healthy: bool,
    pub migrations_pending: bool,
    pub revoked: bool,
    /// Whether a job of this host is stored (about 10%).
    pub has_job: bool,
    /// Pseudo-random bits for per-host detail (disk sizes, serials, ...).
    pub noise: u64,
}

/// The fleet and what operators configured for it.
pub struct SimFleet {
    pub hosts: Vec<SimHost>,
    /// `CRON DURATION ZONE` by tenant and by host (host windows override the tenant's).
    pub tenant_windows: BTreeMap<String, String>,
    pub host_windows: BTreeMap<String, String>,
    pub frozen_tenants: BTreeSet<String>,
}

impl SimFleet {
    /// The window text that applies to `host`, if any.
    pub fn window_for(&self, host: &SimHost) -> Option<&str> {
        self.host_windows
            .get(&host.id)
            .or_else(|| self.tenant_windows.get(&host.tenant))
            .map(String::as_str)
    }

    /// One line describing the fleet, printed by the benches so results state their input.
    pub fn summary(&self) -> String {
        let count = |f: fn(&SimHost) -> bool| self.hosts.iter().filter(|h| f(h)).count();
        let windowed = self
            .hosts
            .iter()
            .filter(|h| self.window_for(h).is_some())
            .count();
        let frozen = self
            .hosts
            .iter()
            .filter(|h| self.frozen_tenants.contains(&h.tenant))
            .count();
        format!(
            "fleet: {} hosts, {} tenants, {} windowed ({} tenant windows, {} host windows), \
             {} offline, {} unhealthy, {} frozen, {} unreported, {} with a job",
            self.hosts.len(),
            self.hosts
                .iter()
                .map(|h| &h.tenant)
                .collect::<BTreeSet<_>>()
                .len(),
            windowed,
            self.tenant_windows.len(),
            self.host_windows.len(),
            count(|h| !h.online),
            count(|h| !h.healthy),
            frozen,
            count(|h| h.version.is_none()),
            count(|h| h.has_job),
        )
    }
}

/// splitmix64: tiny, fast, and the same sequence on every platform and crate version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub fn tenant_name(i: usize) -> String {
    format!("customer-{i:04}")
}

fn window_text(rng: &mut Rng) -> String {
    let (cron, duration) = rng.pick(CRONS);
    format!("{cron} {duration} {}", rng.pick(ZONES))
}

fn version(rng: &mut Rng) -> Option<&'static str> {
    let mut roll = rng.below(VERSIONS.iter().map(|(_, w)| u64::from(*w)).sum());
    for (v, w) in VERSIONS {
        if roll < u64::from(*w) {
            return *v;
        }
        roll -= u64::from(*w);
    }
    unreachable!("weights cover the roll")
}

/// The fleet of `n` hosts over `tenants` tenants.
pub fn generate(n: usize, tenants: usize) -> SimFleet {
    let mut rng = Rng::new(SEED);
    let mut tenant_windows = BTreeMap::new();
    let mut frozen_tenants = BTreeSet::new();
    for t in 0..tenants {
        if rng.chance(70) {
            tenant_windows.insert(tenant_name(t), window_text(&mut rng));
        }
        if rng.chance(10) {
            frozen_tenants.insert(tenant_name(t));
        }
    }
    let mut host_windows = BTreeMap::new();
    let mut hosts = Vec::with_capacity(n);
    for i in 0..n {
        // u² skews sizes: the first tenants hold hundreds of hosts, the tail a handful.
        let u = rng.unit();
        let tenant = tenant_name(((u * u) * tenants as f64) as usize);
        let id = format!("{tenant}-pb{i:05}");
        let env = if rng.chance(800) { "prod" } else { "staging" };
        let labels = BTreeMap::from([
            ("env".to_string(), env.to_string()),
            (
                "region".to_string(),
                rng.pick(&["eu-west", "eu-central", "us-east", "us-west", "ap-south"])
                    .to_string(),
            ),
            (
                "tier".to_string(),
                rng.pick(&["ce", "pro", "pro", "cloud"]).to_string(),
            ),
        ]);
        if rng.chance(30) {
            host_windows.insert(id.clone(), window_text(&mut rng));
        }
        let version = version(&mut rng);
        hosts.push(SimHost {
            online: !rng.chance(30),
            healthy: version.is_some() && !rng.chance(25),
            migrations_pending: rng.chance(15),
            revoked: rng.chance(2),
            has_job: rng.chance(100),
            noise: rng.next_u64(),
            id,
            tenant,
            labels,
            version,
        });
    }
    SimFleet {
        hosts,
        tenant_windows,
        host_windows,
        frozen_tenants,
    }
}

/// The benches' fleet: [`HOSTS`] hosts over [`TENANTS`] tenants.
pub fn standard() -> SimFleet {
    generate(HOSTS, TENANTS)
}
