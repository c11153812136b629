//! Property tests: random fleets, specs and job outcomes, simulated tick by tick with a fake
//! clock, checking the scheduler's invariants at every tick.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::decide::decide;
use super::plan::{plan, FleetHost, JobStatus};
use super::spec::{parse_waves, FailureBudget, Promotion, RolloutSpec};
use super::state::{HostState, Phase, RolloutState};
use super::testkit::{at, host};
use super::window::{later, MaintenanceWindow};

const TARGET: &str = "1.3.2";
pub(super) const MIN: u64 = 60;
/// The longest the simulation lets time jump without an event.
pub(super) const MAX_STEP: Duration = Duration::from_secs(6 * 3600);
pub(super) const MAX_TICKS: usize = 3000;

static WINDOWS: LazyLock<Vec<MaintenanceWindow>> = LazyLock::new(|| {
    [
        "0 22 * * * 4h Europe/Paris",
        "30 1 * * * 2h America/New_York",
        "0 12 * * 1-5 1h UTC",
        "0 2 * * * 3h Europe/Paris",
    ]
    .iter()
    .map(|w| w.parse().unwrap())
    .collect()
});

/// Around Paris's spring-forward and fall-back nights.
pub(super) const STARTS: [&str; 2] = ["2025-03-28T10:00:00Z", "2025-10-24T10:00:00Z"];

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeed,
    RollBack,
    RollbackFail,
    Fail,
    Hang,
}

#[derive(Debug, Clone)]
pub(super) struct SimHost {
    tenant: usize,
    version: &'static str,
    window: Option<usize>,
    ready_at_plan: bool,
    job_minutes: u64,
    outcome: Outcome,
    /// Minutes after its update succeeds when the host turns unhealthy.
    sick_after: Option<u64>,
    /// Minutes after the start when the host goes offline for good.
    offline_at: Option<u64>,
}

pub(super) fn sim_host() -> impl Strategy<Value = SimHost> {
    let version = prop_oneof![
        6 => Just("1.3.0"),
        3 => Just("1.2.0"),
        1 => Just("1.3.2"),
        1 => Just("1.4.0"),
        1 => Just("0.9.0"),
    ];
    let outcome = prop_oneof![
        40 => Just(Outcome::Succeed),
        1 => Just(Outcome::RollBack),
        1 => Just(Outcome::RollbackFail),
        1 => Just(Outcome::Fail),
        1 => Just(Outcome::Hang),
    ];
    (
        0..3usize,
        version,
        prop::option::weighted(0.5, 0..WINDOWS.len()),
        prop::bool::weighted(0.9),
        5..130u64, // a few run past the 120m healthy deadline
        outcome,
        prop::option::weighted(0.03, 0..60u64),
        prop::option::weighted(0.1, 0..3000u64),
    )
        .prop_map(
            |(tenant, version, window, ready_at_plan, job_minutes, outcome, sick, offline)| {
                SimHost {
                    tenant,
                    version,
                    window,
                    ready_at_plan,
                    job_minutes,
                    outcome,
                    sick_after: sick,
                    offline_at: offline,
                }
            },
        )
}

pub(super) fn sim_spec() -> impl Strategy<Value = RolloutSpec> {
    let waves = prop::sample::select(vec![
        "100%",
        "1,100%",
        "1,10%,100%",
        "2,50%,100%",
        "1,10%,50%,100%",
    ]);
    let budget = prop_oneof![
        (0..6u32).prop_map(FailureBudget::Count),
        (0..50u8).prop_map(FailureBudget::Percent),
    ];
    let promotion = prop_oneof![Just(Promotion::Auto), Just(Promotion::Manual)];
    (
        waves,
        1..5u32,
        prop::option::of(1..3u32),
        budget,
        prop::sample::select(vec![0, 10, 60u64]),
        promotion,
    )
        .prop_map(|(waves, parallel, per_tenant, budget, soak, promotion)| {
            let mut spec = super::testkit::spec(TARGET);
            spec.waves = parse_waves(waves).unwrap();
            spec.max_parallel = parallel;
            spec.max_parallel_per_tenant = per_tenant;
            spec.max_failures = budget;
            spec.min_healthy_time = Duration::from_secs(soak * MIN);
            spec.promotion = promotion;
            spec.healthy_deadline = Duration::from_secs(120 * MIN);
            spec.ready_timeout = Duration::from_secs(60 * MIN);
            spec
        })
}

/// The fake world: hosts, when each was started, a freeze of one tenant for a while.
pub(super) struct World {
    pub(super) hosts: Vec<SimHost>,
    pub(super) t0: Timestamp,
    pub(super) started: HashMap<String, Timestamp>,
    /// (tenant, from minute, to minute)
    pub(super) freeze: Option<(usize, u64, u64)>,
}

impl World {
    pub(super) fn id(i: usize) -> String {
        format!("h{i:02}")
    }

    pub(super) fn at_min(&self, minutes: u64) -> Timestamp {
        later(self.t0, Duration::from_secs(minutes * MIN))
    }

    /// When the host's job ends, if started.
    fn job_end(&self, i: usize) -> Option<Timestamp> {
        let start = self.started.get(&Self::id(i))?;
        Some(later(
            *start,
            Duration::from_secs(self.hosts[i].job_minutes * MIN),
        ))
    }

    pub(super) fn fleet(&self, now: Timestamp) -> Vec<FleetHost> {
        (0..self.hosts.len())
            .map(|i| self.fleet_host(i, now))
            .collect()
    }

    fn fleet_host(&self, i: usize, now: Timestamp) -> FleetHost {
        let sim = &self.hosts[i];
        let mut h = host(&Self::id(i))
            .tenant(&format!("t{}", sim.tenant))
            .version(sim.version);
        h.window = sim.window.map(|w| WINDOWS[w].clone());
        let planning = now == self.t0;
        h.online = !planning || sim.ready_at_plan; // some are down when planned
        if let Some(off) = sim.offline_at.map(|m| self.at_min(m)) {
            h.online &= now < off;
            h.last_seen = Some(if now < off { now } else { off });
        }
        if let Some((tenant, from, to)) = self.freeze {
            h.frozen = tenant == sim.tenant && self.at_min(from) <= now && now < self.at_min(to);
        }
        let Some(end) = self.job_end(i) else {
            return h;
        };
        h.job = Some(if now < end {
            JobStatus::Running
        } else {
            match sim.outcome {
                Outcome::Succeed => JobStatus::Succeeded,
                Outcome::RollBack => JobStatus::RolledBack {
                    step: "migrate".into(),
                },
                Outcome::RollbackFail => JobStatus::RollbackFailed {
                    step: "restore".into(),
                },
                Outcome::Fail => JobStatus::Failed {
                    step: "preflight".into(),
                },
                Outcome::Hang => JobStatus::Running,
            }
        });
        if matches!(h.job, Some(JobStatus::Succeeded)) {
            h = h.version(TARGET);
            let sick = sim
                .sick_after
                .map(|m| later(end, Duration::from_secs(m * MIN)));
            h.healthy = sick.is_none_or(|s| now < s);
        }
        h
    }

    /// The next instant after `now` at which the world changes by itself.
    pub(super) fn next_event(&self, now: Timestamp) -> Option<Timestamp> {
        let mut events = Vec::new();
        for (i, sim) in self.hosts.iter().enumerate() {
            events.extend(sim.offline_at.map(|m| self.at_min(m)));
            if let Some(end) = self.job_end(i) {
                events.push(end);
                events.extend(
                    sim.sick_after
                        .map(|m| later(end, Duration::from_secs(m * MIN))),
                );
            }
        }
        if let Some((_, from, to)) = self.freeze {
            events.extend([self.at_min(from), self.at_min(to)]);
        }
        events.into_iter().filter(|e| *e > now).min()
    }
}

/// Runs a rollout to its end, checking the invariants at every tick.
fn simulate(world: &mut World, spec: &RolloutSpec) -> Result<RolloutState, TestCaseError> {
    let mut now = world.t0;
    let the_plan = plan(&world.fleet(now), spec, now);
    let mut state = RolloutState::new(spec.clone(), &the_plan);
    state.start(now).unwrap();
    let mut paused_once = false;
    for _ in 0..MAX_TICKS {
        let fleet = world.fleet(now);
        if spec.promotion == Promotion::Manual {
            let _ = state.approve_promotion(); // a prompt operator
        }
        let budget_spent = state.budget_exceeded();
        let d = decide(&state, &fleet, now);
        check_tick(&state, &d.next, &d.start, &fleet, spec, now)?;
        prop_assert!(
            d.start.is_empty() || !(paused_once || budget_spent),
            "started after the budget was spent"
        );
        for id in &d.start {
            prop_assert!(
                world.started.insert(id.clone(), now).is_none(),
                "{id} started twice"
            );
        }
        let again = decide(&d.next, &fleet, now);
        prop_assert!(
            again.start.is_empty() && again.events.is_empty(),
            "not level-triggered"
        );
        state = d.next;
        paused_once |= matches!(state.phase, Phase::Paused { .. });
        let finished = matches!(state.phase, Phase::Completed { .. })
            || (paused_once && state.in_flight() == 0);
        if finished {
            return Ok(state);
        }
        let step = [
            d.next_wake,
            world.next_event(now),
            Some(later(now, MAX_STEP)),
        ];
        now = step
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
            .unwrap();
    }
    Err(TestCaseError::fail(format!(
        "no end after {MAX_TICKS} ticks: {:?}",
        state.phase
    )))
}

fn check_tick(
    before: &RolloutState,
    after: &RolloutState,
    start: &[String],
    fleet: &[FleetHost],
    spec: &RolloutSpec,
    now: Timestamp,
) -> Result<(), TestCaseError> {
    prop_assert!(after.in_flight() <= spec.max_parallel as usize);
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for h in &after.hosts {
        if matches!(h.state, HostState::Running { .. }) {
            *per_tenant.entry(&h.tenant).or_default() += 1;
        }
    }
    if let Some(limit) = spec.max_parallel_per_tenant {
        prop_assert!(
            per_tenant.values().all(|n| *n <= limit as usize),
            "{per_tenant:?}"
        );
    }
    let started: HashSet<&str> = start.iter().map(String::as_str).collect();
    for id in start {
        let h = fleet.iter().find(|h| &h.host_id == id).unwrap();
        let in_window = h.window.as_ref().is_none_or(|w| {
            w.remaining(now)
                .is_some_and(|left| left >= spec.expected_job_duration)
        });
        prop_assert!(in_window, "{id} started outside its window at {now}");
        prop_assert!(
            h.online && h.healthy && !h.frozen,
            "{id} not ready at {now}"
        );
        let pending = matches!(before.host(id).unwrap().state, HostState::Pending { .. });
        prop_assert!(pending, "{id} started but was not pending");
        prop_assert_eq!(after.host(id).unwrap().wave, Some(after.current_wave));
    }
    // Earlier waves are done before a later one starts.
    for h in &after.hosts {
        if h.wave.is_some_and(|w| w < after.current_wave) {
            prop_assert!(
                h.state.is_done(),
                "{} of an earlier wave: {}",
                h.host_id,
                h.state
            );
        }
        if started.contains(h.host_id.as_str()) {
            continue;
        }
        let was_running = matches!(
            before.host(&h.host_id).unwrap().state,
            HostState::Running { .. }
        );
        if matches!(h.state, HostState::Running { .. }) {
            prop_assert!(was_running, "{} running without being started", h.host_id);
        }
    }
    Ok(())
}

pub(super) fn freeze() -> impl Strategy<Value = Option<(usize, u64, u64)>> {
    prop::option::weighted(0.3, (0..3usize, 0..600u64, 60..1440u64))
        .prop_map(|f| f.map(|(tenant, from, len)| (tenant, from, from + len)))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn rollouts_keep_their_limits_and_always_end(
        hosts in prop::collection::vec(sim_host(), 1..16),
        spec in sim_spec(),
        start in 0..STARTS.len(),
        freeze in freeze(),
    ) {
        let mut world = World { hosts, t0: at(STARTS[start]), started: HashMap::new(), freeze };
        let end = simulate(&mut world, &spec)?;
        let eligible = end.hosts.iter().filter(|h| h.wave.is_some()).count();
        prop_assert_eq!(eligible, end.eligible);
        if let Phase::Completed { .. } = end.phase {
            prop_assert!(end.hosts.iter().all(|h| h.state.is_done()));
            prop_assert!(!end.budget_exceeded());
        }
        for h in &end.hosts {
            let ran = world.started.contains_key(&h.host_id);
            let should_have_run = matches!(
                h.state,
                HostState::Succeeded { .. } | HostState::RolledBack { .. } | HostState::RollbackFailed { .. } | HostState::Running { .. }
            );
            prop_assert!(!should_have_run || ran, "{} is {} but never started", h.host_id, h.state);
        }
    }
}
