//! Property test of `abort --rollback`: random fleets and specs run as in [`super::sim_tests`],
//! aborted with a rollback at a random minute; rollback jobs take a while and succeed. At every
//! tick the limits hold, nothing new updates, and only hosts the rollout changed are reverted,
//! each once; the rollback always ends, and no changed host is forgotten.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::decide::decide;
use super::plan::{plan, FleetHost, JobStatus};
use super::revert::Revert;
use super::sim_tests::{freeze, sim_host, sim_spec, World, MAX_STEP, MAX_TICKS, MIN, STARTS};
use super::spec::{Promotion, RolloutSpec};
use super::state::{FailReason, HostState, Phase, RolloutState};
use super::testkit::at;
use super::window::later;

/// How long a rollback job runs.
const REVERT_MINUTES: u64 = 25;

/// Updates plus rollbacks in flight, overall and per tenant.
fn busy(state: &RolloutState) -> (usize, HashMap<&str, usize>) {
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    let mut total = 0;
    for h in &state.hosts {
        let updating = matches!(h.state, HostState::Running { .. });
        if updating || matches!(h.revert, Some(Revert::Running { .. })) {
            total += 1;
            *per_tenant.entry(&h.tenant).or_default() += 1;
        }
    }
    (total, per_tenant)
}

/// Whether the host's update left it changed, as the fleet shows it.
fn changed(state: &RolloutState, fleet: &[FleetHost], id: &str) -> bool {
    let job = fleet
        .iter()
        .find(|h| h.host_id == id)
        .and_then(|h| h.job.clone());
    match &state.host(id).unwrap().state {
        HostState::Succeeded { .. } => true,
        HostState::Failed { reason, .. } => match reason {
            FailReason::UnhealthyDuringSoak => true,
            FailReason::HealthyDeadline => job == Some(JobStatus::Succeeded),
            FailReason::Job { .. } => false,
        },
        _ => false,
    }
}

fn simulate(
    world: &mut World,
    spec: &RolloutSpec,
    abort_at: Timestamp,
) -> Result<RolloutState, TestCaseError> {
    let mut now = world.t0;
    let mut state = RolloutState::new(spec.clone(), &plan(&world.fleet(now), spec, now));
    state.start(now).unwrap();
    let mut reverted: HashMap<String, Timestamp> = HashMap::new();
    for _ in 0..MAX_TICKS {
        let mut fleet = world.fleet(now);
        for h in &mut fleet {
            h.rollback_job = reverted.get(&h.host_id).map(|start| {
                if now < later(*start, Duration::from_secs(REVERT_MINUTES * MIN)) {
                    JobStatus::Running
                } else {
                    JobStatus::Succeeded
                }
            });
        }
        if now >= abort_at && state.rollback.is_none() {
            let _ = state.abort_with_rollback("property test", now); // refused once completed
        }
        if spec.promotion == Promotion::Manual {
            let _ = state.approve_promotion();
        }
        let d = decide(&state, &fleet, now);
        let (total, per_tenant) = busy(&d.next);
        prop_assert!(total <= spec.max_parallel as usize, "{total} in flight");
        if let Some(limit) = spec.max_parallel_per_tenant {
            prop_assert!(
                per_tenant.values().all(|n| *n <= limit as usize),
                "{per_tenant:?}"
            );
        }
        prop_assert!(
            d.start.is_empty() || state.rollback.is_none(),
            "an update after the abort"
        );
        for id in &d.revert {
            prop_assert!(
                changed(&d.next, &fleet, id),
                "{id} reverted but not changed"
            );
            prop_assert!(
                reverted.insert(id.clone(), now).is_none(),
                "{id} reverted twice"
            );
        }
        for id in &d.start {
            world.started.insert(id.clone(), now);
        }
        let again = decide(&d.next, &fleet, now);
        prop_assert!(again.start.is_empty() && again.revert.is_empty() && again.events.is_empty());
        state = d.next;
        let rollback_over = state.rollback.as_ref().is_some_and(|r| !r.is_open());
        let completed = matches!(state.phase, Phase::Completed { .. }) && now >= abort_at;
        if rollback_over || completed {
            return Ok(state);
        }
        let revert_ends = reverted
            .values()
            .map(|start| later(*start, Duration::from_secs(REVERT_MINUTES * MIN)));
        now = [
            d.next_wake,
            world.next_event(now),
            Some(abort_at),
            Some(later(now, MAX_STEP)),
        ]
        .into_iter()
        .flatten()
        .chain(revert_ends)
        .filter(|t| *t > now)
        .min()
        .unwrap();
    }
    Err(TestCaseError::fail(format!(
        "no end after {MAX_TICKS} ticks: {:?}",
        state.phase
    )))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn rollbacks_keep_the_limits_revert_only_changed_hosts_and_end(
        hosts in prop::collection::vec(sim_host(), 1..14),
        spec in sim_spec(),
        start in 0..STARTS.len(),
        freeze in freeze(),
        abort_after in 0..1500u64,
    ) {
        let mut world = World { hosts, t0: at(STARTS[start]), started: HashMap::new(), freeze };
        let abort_at = world.at_min(abort_after);
        let end = simulate(&mut world, &spec, abort_at)?;
        if end.rollback.is_none() {
            return Ok(()); // completed before the abort: nothing to roll back
        }
        let mut seen = HashSet::new();
        for h in &end.hosts {
            prop_assert!(seen.insert(&h.host_id));
            prop_assert!(!matches!(h.state, HostState::Running { .. }), "{} still updating", h.host_id);
            let Some(revert) = &h.revert else {
                prop_assert!(!matches!(h.state, HostState::Succeeded { .. }), "{} updated, never reverted", h.host_id);
                continue;
            };
            prop_assert!(revert.is_done(), "{}: {revert}", h.host_id);
        }
    }
}
