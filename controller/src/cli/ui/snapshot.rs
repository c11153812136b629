//! Reading the fleet for the dashboard: every summary row, page by page from `FleetReport`,
//! kept for a few seconds and shared by every query in that time.
//!
//! A snapshot younger than [`FRESH`] is served as it is. An older one is read again before
//! answering when reading took less than [`QUICK`] (a small fleet: always fresh); for a large
//! fleet, a snapshot younger than [`STALE`] is served while the next one is read in the
//! background (one read at a time), so a click does not wait for 50 pages of the controller's
//! unless the dashboard sat idle. Every page says when its snapshot was taken.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boltfleet_common::proto::FleetReportRequest;

use super::fleet::{Row, Snapshot};
use crate::cli::client::{call, AdminClient};
use crate::cli::error::CliError;
use crate::cli::rows::HostLine;

/// Served as it is.
pub const FRESH: Duration = Duration::from_secs(2);
/// Served while the next one is read, for a fleet whose read is not quick.
pub const STALE: Duration = Duration::from_secs(30);
/// A read this fast is simply done again when the snapshot is no longer fresh.
pub const QUICK: Duration = Duration::from_millis(250);
/// Rows asked for per call (the controller's most).
const PAGE: u32 = 1000;

/// The latest snapshot, and the lock held while one is read.
#[derive(Default)]
pub struct FleetCache {
    /// When the snapshot was taken, how long reading it took, and the snapshot.
    current: Mutex<Option<(Instant, Duration, Arc<Snapshot>)>>,
    reading: tokio::sync::Mutex<()>,
}

impl FleetCache {
    /// A snapshot fresh enough to answer with (see the module's doc).
    pub async fn get(self: &Arc<Self>, admin: &AdminClient) -> Result<Arc<Snapshot>, CliError> {
        let current = self.current();
        match current {
            Some((at, _, snap)) if at.elapsed() < FRESH => Ok(snap),
            Some((at, took, snap)) if took >= QUICK && at.elapsed() < STALE => {
                let (cache, admin) = (self.clone(), admin.clone());
                tokio::spawn(async move {
                    if let Ok(_reading) = cache.reading.try_lock() {
                        if let Err(err) = cache.refresh(&admin).await {
                            tracing::warn!(error = %err, "fleet snapshot not refreshed");
                        }
                    }
                });
                Ok(snap)
            }
            _ => {
                let _reading = self.reading.lock().await;
                // Another request may have read it while this one waited.
                match self.current() {
                    Some((at, _, snap)) if at.elapsed() < FRESH => Ok(snap),
                    _ => self.refresh(admin).await,
                }
            }
        }
    }

    /// Forgets the snapshot, so that the next query reads the fleet (after an action).
    pub fn invalidate(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn current(&self) -> Option<(Instant, Duration, Arc<Snapshot>)> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn refresh(&self, admin: &AdminClient) -> Result<Arc<Snapshot>, CliError> {
        let started = Instant::now();
        let snap = Arc::new(read_fleet(admin.clone()).await?);
        let took = started.elapsed();
        tracing::debug!(hosts = snap.rows.len(), ?took, "fleet snapshot read");
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((started, took, snap.clone()));
        Ok(snap)
    }
}

/// Every host of the operator's scope, with the report's `latest`.
pub async fn read_fleet(mut admin: AdminClient) -> Result<Snapshot, CliError> {
    let mut snap = Snapshot {
        taken_at: boltfleet_common::clock::unix_now(),
        ..Snapshot::default()
    };
    let mut page_token = String::new();
    loop {
        let request = FleetReportRequest {
            latest: String::new(),
            page_size: PAGE,
            page_token: page_token.clone(),
        };
        let page = call("read the fleet report", admin.fleet_report(request)).await?;
        if page_token.is_empty() {
            snap.latest = Some(page.latest).filter(|l| !l.is_empty());
            snap.latest_source = Some(page.latest_source).filter(|l| !l.is_empty());
            snap.tenant_latest = page.tenant_latest.into_iter().collect();
        }
        snap.rows
            .extend(page.hosts.iter().map(|row| Row::new(HostLine::from(row))));
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            return Ok(snap);
        }
        page_token = page.next_page_token;
    }
}
