//! What agents tell the controller (hellos, reports, job events, connections), kept in
//! memory, and the fleet as operators see it from there.

use boltfleet_common::identity::HostId;
use boltfleet_common::proto::{Inventory, JobEvent};
use jiff::Timestamp;

use super::App;
use crate::error::Error;
use crate::report::{self, summary, FleetReport, HostView};
use crate::state::{HostRecord, Observed};

/// How much of each host a view copies out of the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Everything: the full report, one host in full.
    Full,
    /// What a list's summary row shows (see [`summary::observed_part`]).
    Summary,
}

impl App {
    /// Applies `change` to what the host's agent reported; the host is seen now. Kept in
    /// memory and stored with the next batch (see [`crate::state::Observations`]). Returns whether
    /// the host's version or health changed, which rollouts act on.
    fn observe(&self, host: &HostId, now: Timestamp, change: impl FnOnce(&mut Observed)) -> bool {
        self.state
            .observations()
            .update(host.as_str(), now.as_second(), change)
    }

    /// A (re)connected agent: record what it says of its last job, then hand it queued jobs.
    pub fn record_hello(
        &self,
        host: &HostId,
        agent_version: &str,
        last_job: Option<JobEvent>,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.observe(host, now, |o| o.agent_version = agent_version.to_string());
        if let Some(event) = last_job.filter(|e| !e.job_id.is_empty()) {
            self.record_job_event(host, event, now)?;
        }
        self.dispatch(host)
    }

    /// A report wakes the scheduler only when it changes what rollouts act on (the version or
    /// health); `last_seen` alone matters only for offline hosts, which do not report.
    pub fn record_report(
        &self,
        host: &HostId,
        inventory: Inventory,
        now: Timestamp,
    ) -> Result<(), Error> {
        let was_healthy = self.is_healthy_now(host);
        // The same inventory again (but for when it was taken) is not written again.
        let changed =
            self.state
                .observations()
                .update_if_changed(host.as_str(), now.as_second(), |o| {
                    let same = o.agent_version == inventory.agent_version
                        && o.inventory.as_ref().is_some_and(|old| {
                            Inventory {
                                collected_at: inventory.collected_at,
                                ..old.clone()
                            } == inventory
                        });
                    o.agent_version = inventory.agent_version.clone();
                    o.inventory = Some(inventory);
                    !same
                });
        if changed {
            self.emit_if_unhealthy(host, was_healthy, now)?;
            self.wake_scheduler();
        }
        Ok(())
    }

    /// The host was seen (stream opened or closed): it may have come online or gone.
    pub fn touch(&self, host: &HostId, now: Timestamp) -> Result<(), Error> {
        self.observe(host, now, |_| {});
        self.emit_if_offline(host, now)?;
        self.wake_scheduler();
        Ok(())
    }

    /// Every enrolled host with what it reported and whether it is online now, from memory.
    pub fn host_views(&self, now: Timestamp) -> Result<Vec<HostView>, Error> {
        let records: Vec<(String, HostRecord)> = self
            .state
            .hosts()
            .iter()
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect();
        self.views_of(records, now, Detail::Full)
    }

    /// The views of `records`, in their order, with the detail they are read for.
    pub(crate) fn views_of(
        &self,
        records: Vec<(String, HostRecord)>,
        now: Timestamp,
        detail: Detail,
    ) -> Result<Vec<HostView>, Error> {
        let windows = self.state.windows()?;
        let freeze = self.state.freeze()?;
        let ids = || records.iter().map(|(id, _)| id.as_str());
        let observed = self.state.observations().get_all(ids());
        let online = self.registry.online_all(ids());
        let last_jobs: Vec<Option<JobEvent>> = {
            let index = self.state.jobs().read();
            ids()
                .map(|id| {
                    let event = index.newest_event(id).flatten()?;
                    Some(match detail {
                        Detail::Full => event.clone(),
                        Detail::Summary => summary::job_part(event),
                    })
                })
                .collect()
        };
        let instant = std::time::Instant::now();
        let mut views = Vec::with_capacity(records.len());
        let each = observed.into_iter().zip(online).zip(last_jobs);
        for ((id, record), ((observed, online), last_job)) in records.into_iter().zip(each) {
            views.push(HostView {
                observed: observed.map(|o| match detail {
                    Detail::Full => Observed::clone(&o),
                    Detail::Summary => summary::observed_part(&o),
                }),
                last_job,
                online,
                window: crate::app::host_window(&windows, &id, &record.tenant, now),
                frozen: freeze.covers(&record.tenant),
                flapping: self.door.is_flapping(&id, instant),
                record,
            });
        }
        Ok(views)
    }

    /// The whole fleet report (full rows), against `latest` (X.Y.Z), else the operators'
    /// settings, else what hosts report (see [`crate::report::latest`]).
    pub fn fleet_report(&self, latest: &str, now: Timestamp) -> Result<FleetReport, Error> {
        let rule = self.latest_rule(latest)?;
        Ok(report::build_with(self.host_views(now)?, &rule))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use boltfleet_common::pki::CertificateAuthority;

    use super::*;
    use crate::app::tests::app_with_host;

    /// Whether the scheduler was woken since last asked (consumes the wake-up).
    fn woken(app: &App) -> bool {
        use std::future::Future;
        let notified = std::pin::pin!(app.woken());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        notified.poll(&mut cx).is_ready()
    }

    fn inventory(version: &str, healthy: bool) -> Inventory {
        Inventory {
            passbolt_version: version.into(),
            health: Some(boltfleet_common::proto::Health {
                healthy,
                ..Default::default()
            }),
            ..Inventory::default()
        }
    }

    #[test]
    fn only_reports_that_change_version_or_health_wake_the_scheduler() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let host = HostId::new("web1").unwrap();
        woken(&app);
        app.record_report(&host, inventory("1.6.9", true), crate::app::ts_now())
            .unwrap();
        assert!(woken(&app), "now healthy");
        app.record_report(&host, inventory("1.6.9", true), crate::app::ts_now())
            .unwrap();
        assert!(!woken(&app), "nothing new but last_seen");
        app.record_report(&host, inventory("1.6.10", true), crate::app::ts_now())
            .unwrap();
        assert!(woken(&app), "updated");
        app.record_hello(&host, "0.2.0", None, crate::app::ts_now())
            .unwrap();
        assert!(!woken(&app));
        app.touch(&host, crate::app::ts_now()).unwrap();
        assert!(woken(&app), "connections always wake it");
    }

    #[test]
    fn a_report_that_did_not_change_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        let host = HostId::new("web1").unwrap();
        let at = |collected_at| Inventory {
            collected_at,
            ..inventory("1.6.9", true)
        };
        app.record_report(&host, at(1), crate::app::ts_now())
            .unwrap();
        app.persist().unwrap();
        for t in 2..50 {
            app.record_report(&host, at(t), crate::app::ts_now())
                .unwrap();
        }
        assert_eq!(
            app.state().observations().pending(),
            0,
            "the same report, again"
        );
        app.record_report(&host, inventory("1.6.10", true), crate::app::ts_now())
            .unwrap();
        assert_eq!(
            app.state().observations().pending(),
            1,
            "a change is written"
        );
    }

    #[test]
    fn pages_cover_the_fleet_once_each_within_their_size_bound() {
        use crate::app::{PAGE_BYTES, PAGE_SIZE_MAX};
        use prost::Message;
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web0", "1.6.9");
        let heavy = Inventory {
            errors: vec!["e".repeat(1000); 4],
            ..inventory("1.6.9", false)
        };
        for i in 1..3000 {
            let id = format!("web{i:05}");
            let record = HostRecord {
                host_id: id.clone(),
                tenant: format!("t{}", i % 7),
                ..HostRecord::default()
            };
            let host = HostId::new(&id).unwrap();
            app.put_host(&host, &record).unwrap();
            app.record_report(&host, heavy.clone(), crate::app::ts_now())
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = app
                .fleet_page(
                    &crate::auth::Caller::admin("t"),
                    "",
                    &token,
                    5000,
                    crate::app::ts_now(),
                )
                .unwrap();
            let bytes: usize = page.rows.iter().map(|r| r.encoded_len()).sum();
            assert!(page.rows.len() <= PAGE_SIZE_MAX);
            assert!(bytes <= PAGE_BYTES, "{bytes} bytes in a page");
            assert_eq!(
                page.versions.is_empty(),
                pages > 0,
                "versions on page 1 only"
            );
            seen.extend(page.rows.into_iter().map(|r| r.host_id));
            pages += 1;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((seen.len(), sorted.len()), (3000, 3000));
        assert!(pages >= 3, "{pages} pages");
    }

    /// Later pages reuse the latest release derived for the first, until a host reports a
    /// new version: then the next page derives it again.
    #[test]
    fn a_listing_derives_latest_once_and_again_when_a_version_moves() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_host(dir.path(), "web1", "1.6.9");
        // Latest from what hosts report needs two of them at it (one tenant here).
        let tenant = app.state().host("web1").unwrap().tenant;
        for (id, version) in [("web2", "1.6.10"), ("web3", "1.6.10")] {
            let record = HostRecord {
                host_id: id.into(),
                tenant: tenant.clone(),
                ..HostRecord::default()
            };
            let host = HostId::new(id).unwrap();
            app.put_host(&host, &record).unwrap();
            app.record_report(&host, inventory(version, true), crate::app::ts_now())
                .unwrap();
        }
        let admin = crate::auth::Caller::admin("t");
        let page = |token: &str| {
            app.fleet_page(&admin, "", token, 1, crate::app::ts_now())
                .unwrap()
        };
        let latest = |p: &crate::app::FleetPage| p.latest.as_ref().unwrap().version.to_string();
        let first = page("");
        assert_eq!(latest(&first), "1.6.10");
        let generation = app.state().fleet_generation();
        let second = page(&first.next_page_token);
        assert_eq!(latest(&second), "1.6.10");
        assert_eq!(app.state().fleet_generation(), generation, "nothing moved");

        for id in ["web1", "web2"] {
            let host = HostId::new(id).unwrap();
            app.record_report(&host, inventory("1.7.0", true), crate::app::ts_now())
                .unwrap();
        }
        assert_ne!(app.state().fleet_generation(), generation);
        let third = page(&second.next_page_token);
        assert_eq!(
            latest(&third),
            "1.7.0",
            "derived again after a version moved"
        );

        // Health alone leaves it; a newer tag in the hosts' repositories moves it.
        let generation = app.state().fleet_generation();
        let web3 = HostId::new("web3").unwrap();
        app.record_report(&web3, inventory("1.6.10", false), crate::app::ts_now())
            .unwrap();
        assert_eq!(app.state().fleet_generation(), generation, "health only");
        for id in ["web1", "web2"] {
            let tagged = Inventory {
                newest_tag: "v1.8.0".into(),
                ..inventory("1.7.0", true)
            };
            app.record_report(&HostId::new(id).unwrap(), tagged, crate::app::ts_now())
                .unwrap();
        }
        assert_ne!(app.state().fleet_generation(), generation, "a new tag");
        assert_eq!(latest(&page("web1")), "1.8.0");
    }

    /// The App on `dir` again, as a restarted controller.
    fn reopened(dir: &std::path::Path) -> Arc<App> {
        let keys = CertificateAuthority::generate().unwrap();
        let ca = CertificateAuthority::load(&keys.cert_pem, &keys.key_pem).unwrap();
        App::open(crate::state::reopen(dir), ca, Duration::from_secs(3600))
    }

    #[test]
    fn reports_are_batched_and_still_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let app = app_with_host(dir.path(), "web1", "1.6.9");
            let host = HostId::new("web1").unwrap();
            app.record_report(&host, inventory("1.6.10", true), crate::app::ts_now())
                .unwrap();
            app.persist().unwrap();
            let stored = app.state().stored_observation("web1").unwrap();
            assert_eq!(stored.inventory.unwrap().passbolt_version, "1.6.10");
            app.record_report(&host, inventory("1.6.11", true), crate::app::ts_now())
                .unwrap();
            // Dropped (shut down) before the writer's next batch.
        }
        let app = reopened(dir.path());
        let report = app.fleet_report("", crate::app::ts_now()).unwrap();
        assert_eq!(report.rows[0].version, "1.6.11");
        assert!(report.rows[0].healthy);
        assert_eq!(app.state().host("web1").unwrap().tenant, "acme");
    }
}
