//! Webhooks on a real App: who may manage them, what is refused, which events reach which
//! hook's outbox where they happen, and what an attempt's outcome does to a delivery.

use std::collections::HashSet;

use boltfleet_common::grant::{Role, Scope};
use boltfleet_common::identity::HostId;
use boltfleet_common::proto::{JobKind, JobState};
use jiff::{SignedDuration, Timestamp};

use super::testkit::{spec, t, Fleet};
use super::webhook_outbox::Attempt;
use super::NewWebhook;
use crate::auth::Caller;
use crate::error::Error;
use crate::state::{Delivery, DeliveryState};

const SECRET: &str = "a-secret-of-some-length";

fn new(events: &[&str], tenant: &str) -> NewWebhook {
    NewWebhook {
        url: "http://127.0.0.1:9/hook".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        tenant: tenant.into(),
        secret: SECRET.into(),
    }
}

fn admin() -> Caller {
    Caller::admin("alice")
}

fn scoped(role: Role, tenant: &str) -> Caller {
    Caller {
        role,
        scope: Scope::Tenants([tenant.to_string()].into()),
        ..Caller::admin("bob")
    }
}

/// Every delivery of `hook`, oldest first, as (type, parsed document).
fn outbox(fleet: &Fleet, hook: &str) -> Vec<(String, serde_json::Value)> {
    let mut all = fleet
        .app
        .webhook_deliveries(&admin(), hook, 1000, "")
        .unwrap();
    all.reverse();
    all.into_iter()
        .map(|d| (d.event_type, serde_json::from_str(&d.body).unwrap()))
        .collect()
}

fn types(fleet: &Fleet, hook: &str) -> Vec<String> {
    outbox(fleet, hook).into_iter().map(|(t, _)| t).collect()
}

fn refused(result: Result<String, Error>) -> String {
    result.expect_err("must be refused").to_string()
}

#[test]
fn only_admins_manage_webhooks_and_bad_input_is_refused_naming_what_is_wrong() {
    let fleet = Fleet::new(&[("web1", "acme")]);
    let app = &fleet.app;
    let now = t(0);
    for role in [Role::Viewer, Role::Operator] {
        let caller = Caller { role, ..admin() };
        let err = app.add_webhook(&caller, new(&["host.offline"], ""), now);
        assert!(matches!(err, Err(Error::Forbidden(_))), "{role}");
        assert!(matches!(
            app.webhook_views(&caller),
            Err(Error::Forbidden(_))
        ));
    }
    let err = refused(app.add_webhook(&admin(), new(&["host.offline", "host.down"], ""), now));
    assert!(
        err.contains("\"host.down\"") && err.contains("rollout.paused"),
        "{err}"
    );
    assert!(refused(app.add_webhook(&admin(), new(&[], ""), now)).contains("events"));
    for (url, why) in [
        ("ftp://x.example/", "http:// or https://"),
        ("https://u:p@x.example/", "user:password@"),
    ] {
        let bad = NewWebhook {
            url: url.into(),
            ..new(&["host.offline"], "")
        };
        let err = refused(app.add_webhook(&admin(), bad, now));
        assert!(err.starts_with("invalid url") && err.contains(why), "{err}");
    }
    let short = NewWebhook {
        secret: "short".into(),
        ..new(&["host.offline"], "")
    };
    assert!(refused(app.add_webhook(&admin(), short, now)).contains("at least 16 bytes"));

    // An admin of one tenant: its own tenant's hooks only, never one for every tenant.
    let acme_admin = scoped(Role::Admin, "acme");
    let err = refused(app.add_webhook(&acme_admin, new(&["host.offline"], ""), now));
    assert!(err.contains("--tenant"), "{err}");
    assert!(app
        .add_webhook(&acme_admin, new(&["host.offline"], "globex"), now)
        .is_err());
    let mine = app
        .add_webhook(&acme_admin, new(&["host.offline"], "acme"), now)
        .unwrap();
    let everyone = app
        .add_webhook(&admin(), new(&["host.offline"], ""), now)
        .unwrap();
    let listed = |caller: &Caller| -> Vec<String> {
        let views = app.webhook_views(caller).unwrap();
        views.into_iter().map(|v| v.hook.id).collect()
    };
    assert_eq!(listed(&acme_admin), std::slice::from_ref(&mine));
    assert_eq!(listed(&admin()).len(), 2);
    assert!(matches!(
        app.remove_webhook(&acme_admin, &everyone, now),
        Err(Error::UnknownWebhook(_))
    ));
    app.remove_webhook(&acme_admin, &mine, now).unwrap();
    assert_eq!(listed(&admin()), [everyone]);
    let actions: Vec<String> = app
        .state()
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.action.starts_with("webhook."))
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["webhook.add", "webhook.add", "webhook.remove"]);
}

#[test]
fn a_failing_canary_queues_started_rolled_back_and_paused_for_the_hooks_that_asked() {
    let mut fleet = Fleet::new(&[("web1", "acme"), ("web2", "globex")]);
    let app = fleet.app.clone();
    let all_events = [
        "rollout.started",
        "rollout.paused",
        "rollout.completed",
        "rollout.aborted",
        "job.rolled_back",
        "job.rollback_failed",
        "host.offline",
        "host.unhealthy",
    ];
    let every = app
        .add_webhook(&admin(), new(&all_events, ""), t(0))
        .unwrap();
    let globex = app
        .add_webhook(
            &admin(),
            new(&["job.rolled_back", "rollout.paused"], "globex"),
            t(0),
        )
        .unwrap();
    let acme = app
        .add_webhook(&admin(), new(&["job.rolled_back"], "acme"), t(0))
        .unwrap();

    let id = app
        .start_rollout("alice", spec("1,100%", 1, "0"), t(0))
        .unwrap();
    fleet.tick(t(1));
    let canary = fleet.active_jobs(&id).remove(0);
    fleet.finish(&canary, JobState::RolledBack, "migrate");
    fleet.tick(t(2));
    assert!(matches!(
        fleet.state(&id).phase,
        crate::rollout::Phase::Paused { .. }
    ));
    assert_eq!(
        types(&fleet, &every),
        ["rollout.started", "job.rolled_back", "rollout.paused"]
    );
    // The canary is one tenant's; the rollout is both tenants'.
    let canary_tenant = if canary.host_id == "web1" {
        "acme"
    } else {
        "globex"
    };
    let (other, mine) = if canary_tenant == "acme" {
        (&globex, &acme)
    } else {
        (&acme, &globex)
    };
    assert!(types(&fleet, mine).contains(&"job.rolled_back".to_string()));
    assert!(!types(&fleet, other).contains(&"job.rolled_back".to_string()));
    assert_eq!(
        types(&fleet, &globex)
            .iter()
            .filter(|t| *t == "rollout.paused")
            .count(),
        1
    );

    let docs = outbox(&fleet, &every);
    let (_, rolled_back) = &docs[1];
    assert_eq!(rolled_back["host"], canary.host_id.as_str());
    assert_eq!(rolled_back["job_id"], canary.job_id.as_str());
    assert_eq!(rolled_back["rollout_id"], id.as_str());
    assert_eq!(rolled_back["tenant"], canary_tenant);
    let summary = rolled_back["summary"].as_str().unwrap();
    assert!(
        summary.contains("migrate") && summary.contains("rolled back"),
        "{summary}"
    );
    let (_, paused) = &docs[2];
    assert_eq!(paused["rollout"], id.as_str());
    assert_eq!(paused["tenants"], serde_json::json!(["acme", "globex"]));
    assert!(paused["summary"]
        .as_str()
        .unwrap()
        .contains("failure budget"));
    let ids: HashSet<&str> = docs
        .iter()
        .map(|(_, d)| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "unique ids");
    let globex_paused = outbox(&fleet, &globex)
        .into_iter()
        .find(|(t, _)| t == "rollout.paused")
        .unwrap()
        .1;
    assert_eq!(
        globex_paused["id"], paused["id"],
        "one event, one id for every hook"
    );
    assert_eq!(globex_paused["tenants"], serde_json::json!(["globex"]));

    // An operator's abort is the last phase event; the same phase again is none.
    app.abort_rollout("alice", &id, "enough", false, t(3))
        .unwrap();
    fleet.tick(t(4));
    assert_eq!(types(&fleet, &every).last().unwrap(), "rollout.aborted");
    assert_eq!(types(&fleet, &every).len(), 4);

    // A second rollout runs to its end: started, completed.
    let other_host = if canary.host_id == "web1" {
        "web2"
    } else {
        "web1"
    };
    fleet.report(&canary.host_id, super::testkit::TARGET, true);
    let mut one = spec("100%", 1, "0");
    one.min_healthy_time = std::time::Duration::ZERO;
    let done = app.start_rollout("alice", one, t(5)).unwrap();
    fleet.tick(t(6));
    let job = fleet.active_jobs(&done).remove(0);
    assert_eq!(job.host_id, other_host);
    fleet.finish(&job, JobState::Succeeded, "");
    fleet.tick(t(7));
    fleet.tick(t(8));
    let tail: Vec<String> = types(&fleet, &every).into_iter().skip(4).collect();
    assert_eq!(tail, ["rollout.started", "rollout.completed"]);
    fleet.disconnect(other_host);
}

#[test]
fn host_events_come_from_a_stream_that_ended_and_from_health_that_turned_bad_outside_a_job() {
    let mut fleet = Fleet::new(&[("web1", "acme")]);
    let app = fleet.app.clone();
    let hook = app
        .add_webhook(
            &admin(),
            new(&["host.offline", "host.unhealthy"], "acme"),
            t(0),
        )
        .unwrap();
    let host = HostId::new("web1").unwrap();

    fleet.report("web1", "1.3.0", false);
    fleet.report("web1", "1.3.0", false);
    assert_eq!(
        types(&fleet, &hook),
        ["host.unhealthy"],
        "once, on the change"
    );
    fleet.report("web1", "1.3.0", true);
    assert_eq!(types(&fleet, &hook).len(), 1, "healthy again is no event");

    // While a job holds the host, its health is the job's business.
    let job = app
        .start_job(
            "alice",
            super::NewJob {
                host_id: "web1".into(),
                kind: JobKind::Healthcheck,
                target_version: String::new(),
                options: Default::default(),
                rollout_id: None,
            },
            t(1),
        )
        .unwrap();
    fleet.report("web1", "1.3.0", false);
    assert_eq!(types(&fleet, &hook).len(), 1);
    let record = app.job(&job).unwrap();
    fleet.finish(&record, JobState::Succeeded, "");
    fleet.report("web1", "1.3.0", true);

    // A stream that opens is no event; one that ends with none other open is.
    app.touch(&host, t(2)).unwrap();
    assert_eq!(types(&fleet, &hook).len(), 1);
    fleet.disconnect("web1");
    app.touch(&host, t(3)).unwrap();
    let docs = outbox(&fleet, &hook);
    assert_eq!(docs.len(), 2);
    let (kind, offline) = &docs[1];
    assert_eq!(kind, "host.offline");
    assert_eq!(
        (&offline["host"], &offline["tenant"]),
        (&"web1".into(), &"acme".into())
    );
}

#[test]
fn a_test_event_goes_to_its_hook_only() {
    let fleet = Fleet::new(&[("web1", "acme")]);
    let app = &fleet.app;
    let a = app
        .add_webhook(&admin(), new(&["host.offline"], ""), t(0))
        .unwrap();
    let b = app
        .add_webhook(&admin(), new(&["host.offline"], ""), t(0))
        .unwrap();
    let event = app.test_webhook(&admin(), &a, t(1)).unwrap();
    let found = app.webhook_deliveries(&admin(), &a, 0, &event).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event_type, "test");
    assert!(
        found[0].body.contains("operator alice"),
        "{}",
        found[0].body
    );
    assert!(app
        .webhook_deliveries(&admin(), &b, 0, "")
        .unwrap()
        .is_empty());
    assert!(matches!(
        app.test_webhook(&admin(), "wh-nope", t(1)),
        Err(Error::UnknownWebhook(_))
    ));
}

/// The only pending delivery of `hook`, as the sender would find it due at `now`.
fn due_one(fleet: &Fleet, now: Timestamp) -> Option<(crate::state::DeliveryKey, Delivery)> {
    let (mut due, _) = fleet.app.due_deliveries(now, &HashSet::new(), 4).unwrap();
    (!due.is_empty()).then(|| {
        let d = due.remove(0);
        (d.key, d.delivery)
    })
}

#[test]
fn an_attempt_delivers_on_2xx_only_retries_with_backoff_and_gives_up_after_a_day() {
    let fleet = Fleet::new(&[("web1", "acme")]);
    let app = &fleet.app;
    let hook = app
        .add_webhook(&admin(), new(&["host.offline"], ""), t(0))
        .unwrap();
    app.test_webhook(&admin(), &hook, t(0)).unwrap();
    let later = |secs: i64| {
        t(0).saturating_add(SignedDuration::from_secs(secs))
            .unwrap()
    };

    let (key, delivery) = due_one(&fleet, later(0)).expect("due at once");
    let state = app
        .record_attempt(&key, delivery, Attempt::Answered(302), later(0), 0.0)
        .unwrap();
    assert_eq!(state, DeliveryState::Pending);
    assert!(
        due_one(&fleet, later(0)).is_none(),
        "not before the backoff"
    );
    let (_, next) = app.due_deliveries(later(0), &HashSet::new(), 4).unwrap();
    assert_eq!(next, Some(later(0) + SignedDuration::from_millis(500)));
    let listed = &app.webhook_deliveries(&admin(), &hook, 0, "").unwrap()[0];
    assert_eq!(listed.last_status, Some(302));
    assert!(listed
        .last_error
        .as_deref()
        .unwrap()
        .contains("redirects are not followed"));

    let (key, delivery) = due_one(&fleet, later(1)).unwrap();
    let no_answer = Attempt::NoAnswer("cannot connect".into());
    app.record_attempt(&key, delivery, no_answer, later(1), 0.0)
        .unwrap();
    let (key, delivery) = due_one(&fleet, later(10)).unwrap();
    assert_eq!(delivery.attempts, 2);
    let state = app
        .record_attempt(&key, delivery, Attempt::Answered(204), later(10), 0.0)
        .unwrap();
    assert_eq!(state, DeliveryState::Delivered);
    assert!(
        due_one(&fleet, later(100_000)).is_none(),
        "never sent again"
    );

    app.test_webhook(&admin(), &hook, later(20)).unwrap();
    let (key, delivery) = due_one(&fleet, later(20)).unwrap();
    let day = 24 * 3600;
    let state = app
        .record_attempt(&key, delivery, Attempt::Answered(500), later(20 + day), 0.0)
        .unwrap();
    assert_eq!(state, DeliveryState::Failed);
    let views = app.webhook_views(&admin()).unwrap();
    assert_eq!((views[0].pending, views[0].failed), (0, 1));
}

#[test]
fn at_most_per_hook_deliveries_of_one_hook_are_due_at_once_and_in_flight_ones_are_skipped() {
    let fleet = Fleet::new(&[("web1", "acme")]);
    let app = &fleet.app;
    let a = app
        .add_webhook(&admin(), new(&["host.offline"], ""), t(0))
        .unwrap();
    let b = app
        .add_webhook(&admin(), new(&["host.offline"], ""), t(0))
        .unwrap();
    for _ in 0..5 {
        app.test_webhook(&admin(), &a, t(0)).unwrap();
    }
    app.test_webhook(&admin(), &b, t(0)).unwrap();
    let (due, _) = app.due_deliveries(t(0), &HashSet::new(), 2).unwrap();
    let of = |hook: &str, due: &[super::webhook_outbox::Due]| {
        due.iter().filter(|d| d.key.hook == hook).count()
    };
    assert_eq!((of(&a, &due), of(&b, &due)), (2, 1));
    let busy: HashSet<_> = due
        .iter()
        .filter(|d| d.key.hook == a)
        .map(|d| d.key.clone())
        .collect();
    let (again, _) = app.due_deliveries(t(0), &busy, 3).unwrap();
    assert_eq!(of(&a, &again), 1, "3 slots, 2 taken");
    assert!(again.iter().all(|d| !busy.contains(&d.key)));
}

#[test]
fn a_host_that_flaps_raises_one_event_of_a_kind_a_minute() {
    let mut fleet = Fleet::new(&[("web1", "acme")]);
    let app = fleet.app.clone();
    let hook = app
        .add_webhook(&admin(), new(&["host.offline", "host.unhealthy"], ""), t(0))
        .unwrap();
    let host = HostId::new("web1").unwrap();
    fleet.disconnect("web1");
    for second in [0, 10, 59] {
        let at = t(10)
            .saturating_add(SignedDuration::from_secs(second))
            .unwrap();
        app.touch(&host, at).unwrap();
    }
    assert_eq!(types(&fleet, &hook), ["host.offline"]);
    app.touch(&host, t(11)).unwrap();
    assert_eq!(
        types(&fleet, &hook),
        ["host.offline", "host.offline"],
        "a minute later"
    );

    let inventory = |healthy| boltfleet_common::proto::Inventory {
        passbolt_version: "1.3.0".into(),
        health: Some(boltfleet_common::proto::Health {
            healthy,
            ..Default::default()
        }),
        ..Default::default()
    };
    for second in 0..6 {
        let at = t(20)
            .saturating_add(SignedDuration::from_secs(second))
            .unwrap();
        app.record_report(&host, inventory(second % 2 == 1), at)
            .unwrap();
    }
    let unhealthy = types(&fleet, &hook)
        .into_iter()
        .filter(|t| t == "host.unhealthy")
        .count();
    assert_eq!(unhealthy, 1, "three flips to unhealthy within a minute");
}
