//! The scheduler on a real App and store, with agents played by the test and a fake clock.

use boltfleet_common::proto::{JobKind, JobState};

use crate::app::testkit::{kind_of, spec, t, Fleet};
use crate::rollout::{HostState, Phase, Revert};

fn eight_hosts() -> Fleet {
    let hosts: Vec<(String, &str)> = (0..8)
        .map(|i| {
            (
                format!("web{i}"),
                if i % 2 == 0 { "acme" } else { "globex" },
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = hosts.iter().map(|(h, t)| (h.as_str(), *t)).collect();
    Fleet::new(&refs)
}

#[test]
fn a_rollout_across_eight_hosts_completes_wave_by_wave_within_max_parallel() {
    let fleet = eight_hosts();
    let id = fleet
        .app
        .start_rollout("alice", spec("1,50%,100%", 2, "0"), t(0))
        .unwrap();
    let mut minute = 0;
    while fleet.state(&id).is_active() {
        assert!(minute < 600, "no end: {:?}", fleet.state(&id).phase);
        fleet.tick(t(minute));
        let active = fleet.active_jobs(&id);
        assert!(active.len() <= 2, "{} jobs at once", active.len());
        let state = fleet.state(&id);
        for job in &active {
            let wave = state.host(&job.host_id).unwrap().wave.unwrap();
            assert_eq!(wave, state.current_wave, "only the current wave runs");
            assert!(job.dispatched, "online hosts get their job at once");
        }
        minute += 5;
        fleet.succeed_all(&id);
    }
    let state = fleet.state(&id);
    assert!(
        matches!(state.phase, Phase::Completed { .. }),
        "{:?}",
        state.phase
    );
    let sizes: Vec<usize> = (0..3)
        .map(|w| state.hosts.iter().filter(|h| h.wave == Some(w)).count())
        .collect();
    assert_eq!(sizes, [1, 3, 4]);
    assert!(state
        .hosts
        .iter()
        .all(|h| matches!(h.state, HostState::Succeeded { .. })));
    assert_eq!(
        fleet.hosts_with(&id, JobKind::Update).len(),
        8,
        "one job each"
    );

    let audit = fleet.app.state().audit_log().unwrap();
    let start = audit.iter().find(|e| e.action == "rollout.start").unwrap();
    assert_eq!(
        (start.actor.as_str(), start.target.as_str()),
        ("operator alice", id.as_str())
    );
    let job_starts = audit.iter().filter(|e| e.action == "job.start").count();
    assert_eq!(job_starts, 8);
    assert!(audit
        .iter()
        .filter(|e| e.action == "job.start")
        .all(|e| e.actor == "operator alice" && e.detail.contains(&id)));
    assert!(audit
        .iter()
        .any(|e| e.action == "rollout.phase" && e.detail.ends_with("completed")));
    assert!(audit
        .iter()
        .any(|e| e.action == "rollout.host" && e.target == "web0"));
}

#[test]
fn a_failing_canary_pauses_the_rollout_before_wave_two_and_says_why() {
    let fleet = eight_hosts();
    let id = fleet
        .app
        .start_rollout("alice", spec("1,50%,100%", 2, "0"), t(0))
        .unwrap();
    fleet.tick(t(0));
    let canary = fleet.active_jobs(&id);
    assert_eq!(canary.len(), 1);
    fleet.finish(&canary[0], JobState::RolledBack, "migrate");
    fleet.tick(t(5));
    fleet.tick(t(30));
    let status = fleet.app.rollout_status(&id).unwrap();
    assert_eq!(status.state, "paused");
    assert!(
        status.reason.contains("failure budget exceeded"),
        "{}",
        status.reason
    );
    let host = &status.waves[0].hosts[0];
    assert_eq!(
        (host.state.as_str(), host.failed_step.as_str()),
        ("rolled_back", "migrate")
    );
    assert_eq!(fleet.jobs(&id).len(), 1, "wave 2 never started");
}

#[test]
fn pause_holds_new_starts_and_resume_goes_on() {
    let fleet = eight_hosts();
    let id = fleet
        .app
        .start_rollout("alice", spec("1,100%", 3, "0"), t(0))
        .unwrap();
    fleet.tick(t(0));
    fleet.app.pause_rollout("bob", &id, "lunch", t(1)).unwrap();
    fleet.succeed_all(&id); // the canary, in flight, finishes
    fleet.tick(t(5));
    fleet.tick(t(60));
    let state = fleet.state(&id);
    assert_eq!(state.phase.to_string(), "paused: by operator bob: lunch");
    assert!(matches!(state.hosts[0].state, HostState::Succeeded { .. }));
    assert_eq!(fleet.jobs(&id).len(), 1);

    fleet.app.resume_rollout("bob", &id, "", t(61)).unwrap();
    fleet.tick(t(61));
    assert_eq!(fleet.active_jobs(&id).len(), 3, "wave 2 up to max_parallel");
    let actions: Vec<(String, String)> = fleet
        .app
        .state()
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "rollout.pause" || e.action == "rollout.resume")
        .map(|e| (e.actor, e.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("operator bob".to_string(), "rollout.pause".to_string()),
            ("operator bob".to_string(), "rollout.resume".to_string())
        ]
    );
}

#[test]
fn abort_stops_new_work_and_cancels_jobs_an_offline_agent_never_got() {
    let mut fleet = eight_hosts();
    let id = fleet
        .app
        .start_rollout("alice", spec("100%", 3, "5"), t(0))
        .unwrap();
    // Decided and stored, then killed before acting; one agent is offline when the job comes.
    let decision = decide_and_store(&fleet, &id, t(0));
    fleet.disconnect(&decision.start[0]);
    fleet.tick(t(1));
    let undelivered = fleet
        .active_jobs(&id)
        .into_iter()
        .find(|j| !j.dispatched)
        .unwrap();
    assert_eq!(undelivered.host_id, decision.start[0]);

    fleet
        .app
        .abort_rollout("carol", &id, "wrong target", false, t(2))
        .unwrap();
    let cancelled = fleet.app.job(&undelivered.job_id).unwrap().event.unwrap();
    assert_eq!(
        (cancelled.state(), cancelled.failed_step.as_str()),
        (JobState::Failed, "cancelled")
    );
    fleet.connect(&undelivered.host_id);
    assert!(
        !fleet.app.job(&undelivered.job_id).unwrap().dispatched,
        "never sent"
    );
    fleet.tick(t(3));
    fleet.succeed_all(&id); // the two in flight finish
    fleet.tick(t(10));
    let status = fleet.app.rollout_status(&id).unwrap();
    assert_eq!(status.state, "aborted");
    assert_eq!(status.reason, "by operator carol: wrong target");
    assert_eq!(
        fleet.hosts_with(&id, JobKind::Update).len(),
        3,
        "no start after the abort"
    );
    assert!(!fleet.state(&id).is_active(), "nothing left in flight");
    let abort = fleet
        .app
        .state()
        .audit_log()
        .unwrap()
        .into_iter()
        .find(|e| e.action == "rollout.abort")
        .unwrap();
    assert_eq!(abort.actor, "operator carol");
}

/// What a tick does up to the store write, without acting: a controller killed right there.
fn decide_and_store(fleet: &Fleet, id: &str, now: jiff::Timestamp) -> crate::rollout::Decision {
    let mut record = fleet.app.rollout(id).unwrap();
    let snapshot = fleet.app.fleet_snapshot().unwrap();
    let decision = crate::rollout::decide(&record.state, &snapshot.for_rollout(id), now);
    record.state = decision.next.clone();
    fleet.app.state().put_rollout(&record).unwrap();
    decision
}

#[test]
fn abort_with_rollback_reverts_the_updated_hosts_within_max_parallel() {
    let fleet = eight_hosts();
    let id = fleet
        .app
        .start_rollout("alice", spec("100%", 2, "0"), t(0))
        .unwrap();
    fleet.tick(t(0));
    fleet.succeed_all(&id);
    fleet.tick(t(5));
    fleet.succeed_all(&id); // four hosts updated
    fleet.tick(t(10)); // two more start
    let in_flight = fleet.active_jobs(&id);
    assert_eq!(in_flight.len(), 2);

    fleet
        .app
        .abort_rollout("bob", &id, "bad release", true, t(11))
        .unwrap();
    fleet.finish(&in_flight[0], JobState::Succeeded, ""); // updated after the abort
    fleet.finish(&in_flight[1], JobState::RolledBack, "migrate"); // rolled itself back
    let mut minute = 12;
    let mut most = 0;
    while fleet.state(&id).is_active() {
        assert!(minute < 300, "rollback never ends");
        fleet.tick(t(minute));
        let active = fleet.active_jobs(&id);
        most = most.max(active.len());
        assert!(active.len() <= 2, "{} rollbacks at once", active.len());
        for job in &active {
            assert_eq!(kind_of(job), JobKind::Rollback);
            assert_eq!(job.created_by, "bob");
        }
        fleet.succeed_all(&id);
        minute += 5;
    }
    assert_eq!(most, 2, "staggered at max_parallel");
    let reverted = fleet.hosts_with(&id, JobKind::Rollback);
    let state = fleet.state(&id);
    let updated: std::collections::BTreeSet<String> = state
        .hosts
        .iter()
        .filter(|h| matches!(h.state, HostState::Succeeded { .. }))
        .map(|h| h.host_id.clone())
        .collect();
    assert_eq!(reverted, updated);
    assert_eq!(reverted.len(), 5);
    assert!(!reverted.contains(&in_flight[1].host_id));
    assert!(state.hosts.iter().all(|h| h
        .revert
        .as_ref()
        .is_none_or(|r| matches!(r, Revert::Done { .. }))));
    let status = fleet.app.rollout_status(&id).unwrap();
    let rolled_back = status.waves[0]
        .hosts
        .iter()
        .filter(|h| h.state == "rolled_back")
        .count();
    assert_eq!(rolled_back, 6, "five reverted, one by itself");
    assert!(status.rollback.unwrap().finished_at > 0);
}

#[test]
fn a_restarted_controller_never_starts_a_host_twice_nor_forgets_one() {
    let mut fleet = eight_hosts();
    let id = fleet
        .app
        .start_rollout("alice", spec("1,100%", 3, "0"), t(0))
        .unwrap();
    fleet.tick(t(0));
    fleet.succeed_all(&id);
    fleet.tick(t(5)); // the canary succeeded; its wave soaks
    fleet = fleet.restart();
    fleet.tick(t(15)); // soaked: wave 2 starts
    assert_eq!(fleet.active_jobs(&id).len(), 3);
    fleet = fleet.restart();
    fleet.tick(t(16));
    fleet.tick(t(16));
    assert_eq!(
        fleet.active_jobs(&id).len(),
        3,
        "restarts start nothing twice"
    );

    // Killed between storing a decision and acting on it: the state says running, no job yet.
    fleet.succeed_all(&id);
    let decision = decide_and_store(&fleet, &id, t(17));
    assert_eq!(decision.start.len(), 3);
    fleet = fleet.restart();
    fleet.tick(t(18));
    let active = fleet.active_jobs(&id);
    assert_eq!(active.len(), 3, "the decided starts get their jobs");
    for host in &decision.start {
        assert!(
            active.iter().any(|j| &j.host_id == host),
            "{host} forgotten"
        );
    }
    let mut minute = 20;
    while fleet.state(&id).is_active() {
        assert!(minute < 300);
        fleet.succeed_all(&id);
        fleet = if minute % 10 == 5 {
            fleet.restart()
        } else {
            fleet
        };
        fleet.tick(t(minute));
        minute += 5;
    }
    assert!(matches!(fleet.state(&id).phase, Phase::Completed { .. }));
    assert_eq!(
        fleet.hosts_with(&id, JobKind::Update).len(),
        8,
        "each host once"
    );
}

#[test]
fn a_host_outside_its_window_waits_for_it() {
    let fleet = Fleet::new(&[("web0", "acme"), ("web1", "globex")]);
    // 12:00 UTC now; acme's window opens at 22:00 Paris (21:00 UTC).
    let window = "0 22 * * * 4h Europe/Paris".parse().unwrap();
    let key = crate::state::WindowKey::Tenant("acme".into());
    fleet
        .app
        .set_window("alice", key, Some(window), crate::app::ts_now())
        .unwrap();
    let id = fleet
        .app
        .start_rollout("alice", spec("100%", 5, "0"), t(0))
        .unwrap();
    let wait = fleet.tick(t(0));
    assert_eq!(
        fleet.hosts_with(&id, JobKind::Update),
        ["web1".to_string()].into()
    );
    assert!(wait <= super::MAX_SLEEP);
    fleet.succeed_all(&id);
    fleet.tick(t(60));
    fleet.tick(t(8 * 60 + 59));
    assert_eq!(
        fleet.hosts_with(&id, JobKind::Update).len(),
        1,
        "20:59 UTC: still closed"
    );
    fleet.tick(t(9 * 60));
    assert_eq!(
        fleet.hosts_with(&id, JobKind::Update).len(),
        2,
        "open at 21:00 UTC"
    );
    let audit = fleet.app.state().audit_log().unwrap();
    let set = audit.iter().find(|e| e.action == "window.set").unwrap();
    assert_eq!(
        (set.actor.as_str(), set.target.as_str()),
        ("operator alice", "tenant/acme")
    );
}

#[test]
fn a_freeze_holds_starts_until_thawed() {
    let fleet = Fleet::new(&[("web0", "acme"), ("web1", "acme")]);
    let id = fleet
        .app
        .start_rollout("alice", spec("100%", 5, "0"), t(0))
        .unwrap();
    fleet
        .app
        .set_freeze("bob", Some("acme"), true, t(0))
        .unwrap();
    fleet.tick(t(1));
    assert!(fleet.jobs(&id).is_empty(), "frozen");
    fleet
        .app
        .set_freeze("bob", Some("acme"), false, t(2))
        .unwrap();
    fleet.tick(t(2));
    assert_eq!(fleet.jobs(&id).len(), 2);
    let actions: Vec<String> = fleet
        .app
        .state()
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == "operator bob")
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["freeze.on", "freeze.off"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_ticks_when_woken_and_stops_with_the_server() {
    use std::time::{Duration, Instant};
    let fleet = Fleet::new(&[("web0", "acme")]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(super::run(
        fleet.app.clone(),
        stopped,
        crate::leadership::Leadership::Sole,
    ));
    let id = fleet
        .app
        .start_rollout("alice", spec("100%", 1, "0"), jiff::Timestamp::now())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fleet.jobs(&id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the scheduler never started the host"
        );
        tokio::task::yield_now().await; // eventually: poll until the deadline
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops promptly")
        .unwrap();

    // Dropping the sender (the server ended on its own) stops it as well.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(super::run(
        fleet.app.clone(),
        stopped,
        crate::leadership::Leadership::Sole,
    ));
    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops promptly")
        .unwrap();
}

#[test]
fn a_host_busy_with_an_operators_job_waits_for_it() {
    let fleet = Fleet::new(&[("web0", "acme")]);
    let manual = crate::app::jobs::NewJob {
        host_id: "web0".into(),
        kind: JobKind::Backup,
        target_version: String::new(),
        options: Default::default(),
        rollout_id: None,
    };
    let backup = fleet
        .app
        .start_job("bob", manual, crate::app::ts(t(0).as_second()))
        .unwrap();
    let id = fleet
        .app
        .start_rollout("alice", spec("100%", 1, "0"), t(0))
        .unwrap();
    fleet.tick(t(1));
    assert!(
        fleet.jobs(&id).is_empty(),
        "the agent runs one job at a time"
    );
    assert!(matches!(
        fleet.state(&id).hosts[0].state,
        HostState::Pending { .. }
    ));
    let done = fleet.app.job(&backup).unwrap();
    fleet.finish(&done, JobState::Succeeded, "");
    fleet.tick(t(2));
    assert_eq!(fleet.jobs(&id).len(), 1);
}

/// On tokio's paused clock: between ticks the scheduler waits its full sleep when nothing
/// happens, and only COALESCE after a wake-up; wake-ups while it waits are not lost, and a burst
/// of them costs at most one more short wait.
#[tokio::test(start_paused = true)]
async fn the_scheduler_sleeps_its_interval_and_coalesces_wake_ups() {
    use std::time::Duration;

    use super::{pause, COALESCE, MAX_SLEEP};
    let dir = tempfile::tempdir().unwrap();
    let app = crate::app::tests::app(dir.path());
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let waiting = |app: std::sync::Arc<crate::app::App>,
                   mut stop: tokio::sync::watch::Receiver<bool>| {
        tokio::spawn(async move { pause(&app, MAX_SLEEP, &mut stop).await })
    };
    let settle = || async {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    };

    let quiet = waiting(app.clone(), stop.clone());
    settle().await;
    tokio::time::advance(MAX_SLEEP - Duration::from_millis(1)).await;
    settle().await;
    assert!(!quiet.is_finished(), "no tick before the interval");
    tokio::time::advance(Duration::from_millis(1)).await;
    quiet.await.unwrap();

    let woken = waiting(app.clone(), stop.clone());
    settle().await;
    for _ in 0..5 {
        app.wake_scheduler();
    }
    settle().await;
    assert!(
        !woken.is_finished(),
        "a wake-up waits COALESCE for more news"
    );
    tokio::time::advance(COALESCE).await;
    woken.await.unwrap();

    // The burst left one wake-up behind: one more short wait, then the full interval again.
    let again = waiting(app.clone(), stop.clone());
    settle().await;
    tokio::time::advance(COALESCE).await;
    again.await.unwrap();
    let quiet = waiting(app.clone(), stop.clone());
    settle().await;
    tokio::time::advance(COALESCE).await;
    settle().await;
    assert!(!quiet.is_finished(), "the burst is used up");
    tokio::time::advance(MAX_SLEEP - COALESCE).await;
    quiet.await.unwrap();
}
