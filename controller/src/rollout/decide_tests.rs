//! Tests of the scheduler's decision, tick by tick with a hand-moved clock.

use std::time::Duration;

use jiff::Timestamp;

use super::decide::{decide, Decision, Event};
use super::plan::{plan, FleetHost, JobStatus, SkipReason};
use super::spec::{parse_waves, FailureBudget, Promotion, RolloutSpec};
use super::state::{FailReason, HostState, PauseReason, Phase, RolloutState};
use super::testkit::{at, host, spec};
use super::window::later;

const T0: &str = "2025-01-15T12:00:00Z";
const MIN: u64 = 60;

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * MIN)
}

fn t(offset_min: u64) -> Timestamp {
    later(at(T0), mins(offset_min))
}

/// `n` hosts `h0..` of tenant acme at 1.3.0.
fn fleet(n: usize) -> Vec<FleetHost> {
    (0..n)
        .map(|i| host(&format!("h{i}")).version("1.3.0"))
        .collect()
}

/// A started rollout of `spec` over `fleet`, planned at T0.
fn started(spec: &RolloutSpec, fleet: &[FleetHost]) -> RolloutState {
    let mut state = RolloutState::new(spec.clone(), &plan(fleet, spec, at(T0)));
    state.start(at(T0)).unwrap();
    state
}

/// One tick; deciding again on its result at the same instant must change nothing.
fn tick(state: &RolloutState, fleet: &[FleetHost], now: Timestamp) -> Decision {
    let d = decide(state, fleet, now);
    assert_eq!(decide(state, fleet, now), d, "same inputs, same decision");
    let again = decide(&d.next, fleet, now);
    assert!(
        again.start.is_empty() && again.events.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.next, d.next);
    d
}

fn edit(fleet: &mut [FleetHost], id: &str, f: impl FnOnce(&mut FleetHost)) {
    f(fleet
        .iter_mut()
        .find(|h| h.host_id == id)
        .expect("a fleet host"));
}

/// The host's job succeeded and it reports the target, healthy.
fn updated(h: &mut FleetHost) {
    h.job = Some(JobStatus::Succeeded);
    h.version = Some(semver::Version::new(1, 3, 2));
}

fn rolled_back(h: &mut FleetHost) {
    h.job = Some(JobStatus::RolledBack {
        step: "migrate".into(),
    });
}

fn state_of<'a>(state: &'a RolloutState, id: &str) -> &'a HostState {
    &state.host(id).unwrap().state
}

fn spec_with(f: impl FnOnce(&mut RolloutSpec)) -> RolloutSpec {
    let mut s = spec("1.3.2");
    f(&mut s);
    s
}

#[test]
fn canary_first_then_the_next_wave_after_the_soak() {
    let s = spec_with(|s| s.min_healthy_time = mins(10));
    let mut fleet = fleet(3); // waves 1,10%,100% over 3 hosts: 1, 1, 1
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    assert_eq!(d.start, ["h0"]);
    assert_eq!(d.next_wake, Some(t(60)), "the canary's healthy deadline");

    edit(&mut fleet, "h0", updated);
    let d = tick(&d.next, &fleet, t(20));
    assert!(matches!(
        state_of(&d.next, "h0"),
        HostState::Succeeded { .. }
    ));
    assert!(d.events.contains(&Event::WaveFinished { wave: 0 }));
    assert!(d.start.is_empty(), "soaking");
    assert_eq!(d.next_wake, Some(t(30)), "the soak end");

    let d = tick(&d.next, &fleet, t(29));
    assert!(d.start.is_empty());
    let d = tick(&d.next, &fleet, t(30));
    assert_eq!(d.start, ["h1"]);
    assert_eq!(d.next.current_wave, 1);
    assert_eq!(d.events[0], Event::WaveStarted { wave: 1 });
    assert_eq!(d.events[0].to_string(), "wave 2 started");
}

#[test]
fn a_zero_soak_promotes_within_one_tick_and_the_last_wave_completes_after_its_soak() {
    let s = spec_with(|s| {
        s.min_healthy_time = Duration::ZERO;
        s.waves = parse_waves("1,100%").unwrap();
    });
    let mut fleet = fleet(3);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    edit(&mut fleet, "h0", updated);
    let d = tick(&d.next, &fleet, t(5));
    assert_eq!(d.start, ["h1", "h2"], "canary done, wave 2 starts at once");
    edit(&mut fleet, "h1", updated);
    edit(&mut fleet, "h2", updated);
    let d = tick(&d.next, &fleet, t(9));
    assert_eq!(d.next.phase, Phase::Completed { at: t(9) });
    assert_eq!(d.next_wake, None);
    let idle = tick(&d.next, &fleet, t(10));
    assert!(idle.events.is_empty() && idle.start.is_empty());
}

#[test]
fn a_host_turning_unhealthy_during_the_soak_fails_and_spends_the_budget() {
    let s = spec_with(|s| s.min_healthy_time = mins(30)); // max_failures 0
    let mut fleet = fleet(3);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    edit(&mut fleet, "h0", updated);
    let d = tick(&d.next, &fleet, t(10));
    edit(&mut fleet, "h0", |h| h.healthy = false);
    let d = tick(&d.next, &fleet, t(20));
    assert_eq!(
        state_of(&d.next, "h0"),
        &HostState::Failed {
            at: t(20),
            reason: FailReason::UnhealthyDuringSoak
        }
    );
    let Phase::Paused { reason, .. } = &d.next.phase else {
        panic!("{:?}", d.next.phase)
    };
    assert!(matches!(
        reason,
        PauseReason::FailureBudget { failures: 1, .. }
    ));
    assert!(reason
        .to_string()
        .starts_with("failure budget exceeded: 1 failed, at most 0"));
    // Healthy again, soak over: still paused, nothing starts.
    edit(&mut fleet, "h0", |h| h.healthy = true);
    let d = tick(&d.next, &fleet, t(120));
    assert!(d.start.is_empty() && d.next_wake.is_none());
}

#[test]
fn a_count_budget_pauses_on_the_failure_beyond_it_and_in_flight_hosts_finish() {
    let s = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.max_parallel = 3;
        s.max_failures = FailureBudget::Count(1);
    });
    let mut fleet = fleet(5);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    assert_eq!(d.start, ["h0", "h1", "h2"]);

    edit(&mut fleet, "h0", rolled_back);
    let d = tick(&d.next, &fleet, t(10));
    assert_eq!(d.start, ["h3"], "one failure is within the budget");
    assert_eq!(d.next.phase, Phase::Running);

    edit(&mut fleet, "h1", rolled_back);
    let d = tick(&d.next, &fleet, t(11));
    assert!(d.start.is_empty(), "h4 does not start");
    assert!(matches!(d.next.phase, Phase::Paused { .. }));

    // Paused: the hosts in flight are still followed.
    edit(&mut fleet, "h2", updated);
    edit(&mut fleet, "h3", |h| {
        h.job = Some(JobStatus::RollbackFailed {
            step: "restore".into(),
        })
    });
    let d = tick(&d.next, &fleet, t(20));
    assert!(matches!(
        state_of(&d.next, "h2"),
        HostState::Succeeded { .. }
    ));
    assert!(matches!(
        state_of(&d.next, "h3"),
        HostState::RollbackFailed { .. }
    ));
    assert!(d.start.is_empty());
    assert_eq!(d.next.failures(), 3);

    // Resuming accepts the three failures; the budget applies afresh.
    let mut resumed = d.next.clone();
    resumed.resume(t(30)).unwrap();
    let d = tick(&resumed, &fleet, t(30));
    assert_eq!(d.start, ["h4"]);
}

#[test]
fn a_percentage_budget_is_of_the_eligible_hosts() {
    let s = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.max_parallel = 10;
        s.max_failures = FailureBudget::Percent(10); // of 20: 2 tolerated
    });
    let mut fleet = fleet(20);
    fleet.push(host("done").version("1.3.2")); // skipped: not eligible
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    assert_eq!((d.start.len(), d.next.eligible), (10, 20));
    let first = d.start.clone();
    edit(&mut fleet, &first[0], rolled_back);
    edit(&mut fleet, &first[1], rolled_back);
    let d = tick(&d.next, &fleet, t(5));
    assert_eq!(d.start.len(), 2, "2 of 20 is 10%: within");
    edit(&mut fleet, &first[2], rolled_back);
    let d = tick(&d.next, &fleet, t(6));
    assert!(d.start.is_empty());
    assert!(matches!(
        d.next.phase,
        Phase::Paused {
            reason: PauseReason::FailureBudget {
                failures: 3,
                eligible: 20,
                ..
            },
            ..
        }
    ));
}

#[test]
fn manual_promotion_waits_for_the_soak_and_the_operator() {
    let s = spec_with(|s| {
        s.promotion = Promotion::Manual;
        s.min_healthy_time = mins(10);
        s.waves = parse_waves("1,100%").unwrap();
    });
    let mut fleet = fleet(3);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    edit(&mut fleet, "h0", updated);
    let mut state = tick(&d.next, &fleet, t(5)).next;
    let d = tick(&state, &fleet, t(60));
    assert!(d.start.is_empty(), "soaked but not approved");
    assert_eq!(d.next_wake, None, "nothing to wait for but the operator");

    state.approve_promotion().unwrap(); // approved during the soak: still waits for it
    let d = tick(&state, &fleet, t(10));
    assert!(d.start.is_empty());
    assert_eq!(d.next_wake, Some(t(15)));
    let d = tick(&state, &fleet, t(15));
    assert_eq!(d.start, ["h1", "h2"]);
    assert!(!d.next.promotion_approved, "one approval, one promotion");
}

#[test]
fn frozen_hosts_wait_without_being_skipped() {
    let s = spec_with(|s| s.waves = parse_waves("100%").unwrap());
    let mut fleet = vec![
        host("a1").version("1.3.0"),
        host("g1").tenant("globex").version("1.3.0"),
    ];
    let state = started(&s, &fleet);
    edit(&mut fleet, "a1", |h| h.frozen = true);
    let d = tick(&state, &fleet, t(0));
    assert_eq!(d.start, ["g1"]);
    edit(&mut fleet, "g1", updated);
    let d = tick(&d.next, &fleet, t(600));
    assert_eq!(
        state_of(&d.next, "a1"),
        &HostState::Pending {
            not_ready_since: None
        }
    );
    edit(&mut fleet, "a1", |h| h.frozen = false);
    assert_eq!(tick(&d.next, &fleet, t(601)).start, ["a1"]);
}

#[test]
fn a_host_waits_for_its_window_with_enough_time_left() {
    let s = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.healthy_deadline = mins(12 * 60);
    });
    // 22:00-02:00 Paris = 21:00-01:00Z in January; T0 is 12:00Z.
    let mut fleet = vec![
        host("night")
            .version("1.3.0")
            .window("0 22 * * * 4h Europe/Paris"),
        host("any").version("1.3.0"),
    ];
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    assert_eq!(d.start, ["any"], "no window: any time");
    assert_eq!(d.next_wake, Some(at("2025-01-15T21:00:00Z")));
    edit(&mut fleet, "any", updated);
    let d = tick(&d.next, &fleet, at("2025-01-15T20:59:00Z"));
    assert!(d.start.is_empty());
    let opened = tick(&d.next, &fleet, at("2025-01-15T21:00:00Z"));
    assert_eq!(opened.start, ["night"]);
    // At 01:40 local only 20 minutes are left: not enough for a 30m job; next night.
    let late = tick(&d.next, &fleet, at("2025-01-16T00:40:00Z"));
    assert!(late.start.is_empty());
    assert_eq!(late.next_wake, Some(at("2025-01-16T21:00:00Z")));
}

#[test]
fn limits_hold_across_the_rollout_and_per_tenant() {
    let s = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.max_parallel = 3;
        s.max_parallel_per_tenant = Some(1);
    });
    let mut fleet: Vec<FleetHost> = (0..3)
        .flat_map(|i| {
            [
                host(&format!("a{i}")).version("1.3.0"),
                host(&format!("g{i}")).tenant("globex").version("1.3.0"),
            ]
        })
        .collect();
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    assert_eq!(d.start, ["a0", "g0"], "one per tenant");
    edit(&mut fleet, "a0", updated);
    let d = tick(&d.next, &fleet, t(5));
    assert_eq!(d.start, ["a1"]);
    let loose = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.max_parallel = 3;
    });
    let d = tick(&started(&loose, &fleet), &fleet, t(0));
    assert_eq!(d.start.len(), 3, "max_parallel across the rollout");
}

#[test]
fn an_offline_host_is_skipped_once_its_ready_timeout_has_passed() {
    let s = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.ready_timeout = mins(60);
    });
    let mut fleet = fleet(3);
    let state = started(&s, &fleet);
    edit(&mut fleet, "h0", |h| {
        h.online = false;
        h.last_seen = Some(t(0));
    });
    edit(&mut fleet, "h1", |h| h.healthy = false);
    edit(&mut fleet, "h2", |h| {
        h.online = false;
        h.last_seen = Some(at("2025-01-13T12:00:00Z")); // gone for two days
    });
    let d = tick(&state, &fleet, t(10));
    assert!(d.start.is_empty());
    assert_eq!(
        state_of(&d.next, "h2"),
        &HostState::Skipped {
            at: t(10),
            reason: SkipReason::Offline
        }
    );
    assert_eq!(
        state_of(&d.next, "h0"),
        &HostState::Pending {
            not_ready_since: Some(t(0))
        }
    );
    assert_eq!(d.next_wake, Some(t(60)));
    let d = tick(&d.next, &fleet, t(60));
    assert!(matches!(
        state_of(&d.next, "h0"),
        HostState::Skipped {
            reason: SkipReason::Offline,
            ..
        }
    ));
    assert!(
        matches!(state_of(&d.next, "h1"), HostState::Pending { .. }),
        "unhealthy since 10"
    );
    let d = tick(&d.next, &fleet, t(70));
    assert!(matches!(
        state_of(&d.next, "h1"),
        HostState::Skipped {
            reason: SkipReason::Unhealthy,
            ..
        }
    ));
    assert_eq!(d.next_wake, Some(t(80)), "every host done: the last soak");
    let d = tick(&d.next, &fleet, t(80));
    assert_eq!(d.next.phase, Phase::Completed { at: t(80) });
}

#[test]
fn a_host_back_in_time_starts_and_forgets_it_was_waiting() {
    let s = spec_with(|s| s.waves = parse_waves("100%").unwrap());
    let mut fleet = fleet(1);
    let state = started(&s, &fleet);
    edit(&mut fleet, "h0", |h| h.online = false);
    let d = tick(&state, &fleet, t(10));
    assert!(matches!(
        state_of(&d.next, "h0"),
        HostState::Pending {
            not_ready_since: Some(_)
        }
    ));
    edit(&mut fleet, "h0", |h| h.online = true);
    assert_eq!(tick(&d.next, &fleet, t(20)).start, ["h0"]);
}

#[test]
fn deadlines_fail_hosts_and_pause_the_rollout() {
    let s = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.max_failures = FailureBudget::Count(5);
        s.progress_deadline = Some(mins(24 * 60));
    });
    let mut fleet = fleet(2);
    let state = started(&s, &fleet);
    edit(&mut fleet, "h1", |h| h.frozen = true); // keeps the rollout from finishing
    let d = tick(&state, &fleet, t(0));
    assert_eq!(d.start, ["h0"]);
    edit(&mut fleet, "h0", |h| h.job = Some(JobStatus::Running));
    let d = tick(&d.next, &fleet, t(60));
    assert_eq!(
        state_of(&d.next, "h0"),
        &HostState::Failed {
            at: t(60),
            reason: FailReason::HealthyDeadline
        }
    );
    assert_eq!(d.cancel, ["h0"]);
    assert_eq!(d.next_wake, Some(t(24 * 60)));
    let d = tick(&d.next, &fleet, t(24 * 60));
    assert!(matches!(
        d.next.phase,
        Phase::Paused {
            reason: PauseReason::ProgressDeadline { .. },
            ..
        }
    ));
}

#[test]
fn a_succeeded_job_waits_for_the_host_to_report_the_target_healthy() {
    let s = spec_with(|s| s.waves = parse_waves("100%").unwrap());
    let mut fleet = fleet(1);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    edit(&mut fleet, "h0", |h| h.job = Some(JobStatus::Succeeded));
    let d = tick(&d.next, &fleet, t(10));
    assert!(
        matches!(state_of(&d.next, "h0"), HostState::Running { .. }),
        "still 1.3.0"
    );
    edit(&mut fleet, "h0", updated);
    let d = tick(&d.next, &fleet, t(11));
    assert!(matches!(
        state_of(&d.next, "h0"),
        HostState::Succeeded { .. }
    ));
}

#[test]
fn a_host_whose_version_moved_is_skipped_at_its_turn() {
    let s = spec_with(|s| s.waves = parse_waves("1,100%").unwrap());
    let mut fleet = fleet(3);
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    edit(&mut fleet, "h1", |h| {
        h.version = Some(semver::Version::new(1, 3, 2))
    });
    edit(&mut fleet, "h2", |h| {
        h.version = Some(semver::Version::new(1, 4, 0))
    });
    edit(&mut fleet, "h0", updated);
    let d = tick(&d.next, &fleet, t(60));
    let d = tick(&d.next, &fleet, t(70)); // soaked: wave 2's turn
    let reasons: Vec<&HostState> = ["h1", "h2"].iter().map(|h| state_of(&d.next, h)).collect();
    assert!(matches!(
        reasons[0],
        HostState::Skipped {
            reason: SkipReason::AtTarget,
            ..
        }
    ));
    assert!(matches!(
        reasons[1],
        HostState::Skipped {
            reason: SkipReason::Downgrade,
            ..
        }
    ));
    assert!(d.start.is_empty());
}

#[test]
fn planned_and_aborted_rollouts_start_nothing_but_aborted_ones_record_outcomes() {
    let s = spec_with(|s| s.waves = parse_waves("100%").unwrap());
    let mut fleet = fleet(2);
    let planned = RolloutState::new(s.clone(), &plan(&fleet, &s, at(T0)));
    let d = tick(&planned, &fleet, t(0));
    assert!(d.start.is_empty() && d.next_wake.is_none());

    let s = spec_with(|s| {
        s.waves = parse_waves("100%").unwrap();
        s.max_parallel = 1;
    });
    let d = tick(&started(&s, &fleet), &fleet, t(0));
    let mut aborted = d.next.clone();
    aborted.abort("wrong target", t(1)).unwrap();
    edit(&mut fleet, "h0", updated);
    let d = tick(&aborted, &fleet, t(5));
    assert!(d.start.is_empty());
    assert!(matches!(
        state_of(&d.next, "h0"),
        HostState::Succeeded { .. }
    ));
    assert_eq!(
        d.events[0].to_string(),
        "host h0: succeeded",
        "events read well in the audit log"
    );
}
