//! Tests of the rollback phase (`abort --rollback`), tick by tick with a hand-moved clock.

use std::time::Duration;

use jiff::Timestamp;

use super::decide::{decide, Decision, Event};
use super::plan::{plan, FleetHost, JobStatus};
use super::revert::Revert;
use super::spec::{parse_waves, RolloutSpec};
use super::state::{HostState, Phase, RolloutState};
use super::testkit::{at, host, spec};
use super::window::later;

const T0: &str = "2025-01-15T12:00:00Z";

fn t(minutes: u64) -> Timestamp {
    later(at(T0), Duration::from_secs(minutes * 60))
}

/// `n` hosts `h0..` at 1.3.0; one wave, `parallel` at once.
fn setup(n: usize, parallel: u32) -> (RolloutSpec, Vec<FleetHost>) {
    let mut s = spec("1.3.2");
    s.waves = parse_waves("100%").unwrap();
    s.max_parallel = parallel;
    s.max_failures = super::spec::FailureBudget::Count(10);
    let fleet = (0..n)
        .map(|i| host(&format!("h{i}")).version("1.3.0"))
        .collect();
    (s, fleet)
}

fn started(s: &RolloutSpec, fleet: &[FleetHost]) -> RolloutState {
    let mut state = RolloutState::new(s.clone(), &plan(fleet, s, at(T0)));
    state.start(at(T0)).unwrap();
    state
}

/// One tick; deciding again at the same instant changes nothing.
fn tick(state: &RolloutState, fleet: &[FleetHost], now: Timestamp) -> Decision {
    let d = decide(state, fleet, now);
    let again = decide(&d.next, fleet, now);
    assert!(
        again.start.is_empty() && again.revert.is_empty() && again.events.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.next, d.next);
    d
}

fn edit(fleet: &mut [FleetHost], id: &str, f: impl FnOnce(&mut FleetHost)) {
    f(fleet.iter_mut().find(|h| h.host_id == id).unwrap());
}

fn updated(h: &mut FleetHost) {
    h.job = Some(JobStatus::Succeeded);
    h.version = Some(semver::Version::new(1, 3, 2));
}

fn reverted(h: &mut FleetHost) {
    h.rollback_job = Some(JobStatus::Succeeded);
    h.version = Some(semver::Version::new(1, 3, 0));
}

fn revert_of<'a>(state: &'a RolloutState, id: &str) -> Option<&'a Revert> {
    state.host(id).unwrap().revert.as_ref()
}

#[test]
fn updated_hosts_are_rolled_back_within_max_parallel_and_in_flight_ones_after_they_finish() {
    let (s, mut fleet) = setup(5, 2);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    assert_eq!(d.start, ["h0", "h1"]);
    edit(&mut fleet, "h0", updated);
    edit(&mut fleet, "h1", updated);
    let d = tick(&d.next, &fleet, t(10));
    assert_eq!(d.start, ["h2", "h3"]);
    edit(&mut fleet, "h2", updated);
    let d = tick(&d.next, &fleet, t(20)); // h3 still running; h4 starts
    assert_eq!(d.start, ["h4"]);

    let mut aborted = d.next.clone();
    aborted.abort_with_rollback("bad release", t(21)).unwrap();
    assert!(matches!(aborted.phase, Phase::Aborted { .. }));
    let d = tick(&aborted, &fleet, t(21));
    assert!(d.start.is_empty(), "no new update");
    assert!(d.revert.is_empty(), "h3 and h4 still fill both slots");
    for id in ["h0", "h1", "h2"] {
        assert!(matches!(
            revert_of(&d.next, id),
            Some(Revert::Pending { .. })
        ));
    }
    assert_eq!(revert_of(&d.next, "h3"), None, "in flight: not yet");

    edit(&mut fleet, "h3", updated); // ends updated: it will be reverted too
    edit(&mut fleet, "h4", |h| {
        h.job = Some(JobStatus::RolledBack {
            step: "migrate".into(),
        })
    });
    let d = tick(&d.next, &fleet, t(30));
    assert_eq!(d.revert, ["h0", "h1"], "two at once, in rollout order");
    assert!(matches!(
        revert_of(&d.next, "h3"),
        Some(Revert::Pending { .. })
    ));
    assert_eq!(revert_of(&d.next, "h4"), None, "rolled itself back");
    assert_eq!(d.next.in_flight(), 0);
    assert_eq!(d.next_wake, Some(t(90)), "the rollbacks' healthy deadline");

    edit(&mut fleet, "h0", reverted);
    let d = tick(&d.next, &fleet, t(40));
    assert_eq!(d.revert, ["h2"]);
    assert!(matches!(
        revert_of(&d.next, "h0"),
        Some(Revert::Done { .. })
    ));
    assert!(matches!(
        d.next.host("h0").unwrap().state,
        HostState::Succeeded { .. }
    ));

    edit(&mut fleet, "h1", reverted);
    edit(&mut fleet, "h2", |h| {
        h.rollback_job = Some(JobStatus::Failed {
            step: "restore".into(),
        })
    });
    let d = tick(&d.next, &fleet, t(50));
    assert_eq!(d.revert, ["h3"]);
    assert_eq!(
        revert_of(&d.next, "h2"),
        Some(&Revert::Failed {
            at: t(50),
            step: "restore".into()
        })
    );
    assert!(d.next.is_active());

    edit(&mut fleet, "h3", reverted);
    let d = tick(&d.next, &fleet, t(60));
    assert!(d.events.contains(&Event::RollbackFinished));
    assert_eq!(d.next.rollback.as_ref().unwrap().finished_at, Some(t(60)));
    assert!(!d.next.is_active());
    assert_eq!(d.next_wake, None);
    assert_eq!(
        Event::Revert {
            host_id: "h2".into(),
            revert: revert_of(&d.next, "h2").unwrap().clone()
        }
        .to_string(),
        "host h2: ROLLBACK FAILED at restore"
    );
}

#[test]
fn reverts_wait_for_a_thaw_and_offline_hosts_are_skipped_after_the_ready_timeout() {
    let (s, mut fleet) = setup(3, 5);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    for id in ["h0", "h1", "h2"] {
        edit(&mut fleet, id, updated);
    }
    let d = tick(&d.next, &fleet, t(10));
    let mut state = tick(&d.next, &fleet, t(20)).next; // after the soak
    assert!(matches!(state.phase, Phase::Completed { .. }));
    assert!(
        state.abort_with_rollback("late", t(11)).is_err(),
        "completed"
    );

    let d = tick(&started(&s, &fleet_at_start()), &fleet_at_start(), t(0));
    let mut state = d.next;
    state.abort_with_rollback("bad", t(1)).unwrap();
    edit(&mut fleet, "h1", |h| h.frozen = true);
    edit(&mut fleet, "h2", |h| h.frozen = true);
    let d = tick(&state, &fleet, t(2));
    assert_eq!(d.revert, ["h0"], "h1 and h2 frozen");
    assert_eq!(d.next_wake, Some(t(62)), "h0's rollback deadline");
    edit(&mut fleet, "h1", |h| h.frozen = false);
    edit(&mut fleet, "h2", |h| {
        h.frozen = false;
        h.online = false;
        h.last_seen = Some(t(3));
    });
    let d = tick(&d.next, &fleet, t(3));
    assert_eq!(d.revert, ["h1"], "thawed; h2 offline");

    // The healthy deadline fails a rollback that never reports and asks to cancel it.
    let d = tick(&d.next, &fleet, t(62));
    assert_eq!(d.cancel, ["h0"]);
    assert!(matches!(
        revert_of(&d.next, "h0"),
        Some(Revert::Failed { .. })
    ));
    assert!(matches!(
        revert_of(&d.next, "h2"),
        Some(Revert::Pending { .. })
    ));
    let d = tick(&d.next, &fleet, t(63));
    assert!(matches!(
        revert_of(&d.next, "h2"),
        Some(Revert::Skipped { .. })
    ));
    assert!(d.events.contains(&Event::RollbackFinished));
    assert!(!d.next.is_active());
}

/// Three hosts whose updates all started at T0 and are still running.
fn fleet_at_start() -> Vec<FleetHost> {
    setup(3, 5).1
}

#[test]
fn hosts_the_rollout_did_not_change_are_left_alone() {
    let (mut s, mut fleet) = setup(4, 4);
    s.healthy_deadline = Duration::from_secs(3600);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    edit(&mut fleet, "h0", |h| {
        h.job = Some(JobStatus::Failed {
            step: "preflight".into(),
        })
    });
    edit(&mut fleet, "h1", |h| {
        h.job = Some(JobStatus::RollbackFailed {
            step: "restore".into(),
        })
    });
    edit(&mut fleet, "h2", |h| h.job = Some(JobStatus::Succeeded)); // never healthy at target
    let mut d = tick(&d.next, &fleet, t(70)); // h2, h3 past the healthy deadline
    assert_eq!(d.cancel, ["h3"], "h2's job is over: nothing to cancel");
    d.next.abort_with_rollback("bad", t(71)).unwrap();
    let d = tick(&d.next, &fleet, t(71));
    assert_eq!(d.revert, ["h2"], "its job succeeded: the host changed");
    for id in ["h0", "h1", "h3"] {
        assert_eq!(revert_of(&d.next, id), None, "{id}");
    }
}
