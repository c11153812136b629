//! What the load generator measures: counters, acknowledgement latencies and reconnections,
//! shared by every simulated agent; and the summary printed at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters and histograms, updated by every agent task.
pub struct Stats {
    started: Instant,
    agents: usize,
    pub connected: AtomicUsize,
    ever_connected: AtomicUsize,
    /// Milliseconds since `started` when the last agent first connected (0: not yet).
    all_connected_ms: AtomicU64,
    pub reports_sent: AtomicU64,
    pub reports_acked: AtomicU64,
    pub reconnects: AtomicU64,
    pub jobs_received: AtomicU64,
    pub jobs_succeeded: AtomicU64,
    pub jobs_failed: AtomicU64,
    /// Unix milliseconds of the last (re)connection.
    last_connect_unix_ms: AtomicU64,
    /// Acknowledgement latency (µs) of reports sent once every agent had connected.
    steady: Mutex<Histogram<u64>>,
    /// ... and of reports sent while agents were still connecting for the first time.
    ramp: Mutex<Histogram<u64>>,
    /// Longest time (µs) an agent spent between losing its stream and having it back.
    outage: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Stats {
    pub fn new(agents: usize) -> Self {
        Self {
            started: Instant::now(),
            agents,
            connected: AtomicUsize::new(0),
            ever_connected: AtomicUsize::new(0),
            all_connected_ms: AtomicU64::new(0),
            reports_sent: AtomicU64::new(0),
            reports_acked: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            jobs_received: AtomicU64::new(0),
            jobs_succeeded: AtomicU64::new(0),
            jobs_failed: AtomicU64::new(0),
            last_connect_unix_ms: AtomicU64::new(0),
            steady: Mutex::new(histogram()),
            ramp: Mutex::new(histogram()),
            outage: Mutex::new(histogram()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// True once every agent has connected at least once.
    pub fn all_connected(&self) -> bool {
        self.all_connected_ms.load(Relaxed) > 0
    }

    /// An agent opened its stream; `outage` is how long it was without one (None: first time).
    pub fn connected(&self, outage: Option<Duration>) {
        self.connected.fetch_add(1, Relaxed);
        self.last_connect_unix_ms.store(unix_ms(), Relaxed);
        match outage {
            None => {
                if self.ever_connected.fetch_add(1, Relaxed) + 1 == self.agents {
                    let ms = self.started.elapsed().as_millis().max(1) as u64;
                    self.all_connected_ms.store(ms, Relaxed);
                }
            }
            Some(outage) => {
                self.reconnects.fetch_add(1, Relaxed);
                record(&self.outage, outage);
            }
        }
    }

    pub fn disconnected(&self) {
        self.connected.fetch_sub(1, Relaxed);
    }

    /// A report's acknowledgement arrived `latency` after it was sent; `steady` when it was
    /// sent after every agent had connected.
    pub fn acked(&self, latency: Duration, steady: bool) {
        self.reports_acked.fetch_add(1, Relaxed);
        record(if steady { &self.steady } else { &self.ramp }, latency);
    }

    /// Counts an error by its kind (the message without host-specific parts).
    pub fn error(&self, kind: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind.chars().take(120).collect()).or_default() += 1;
    }

    /// The summary; `connected` is the count of open streams just before the agents stopped.
    pub fn summary(&self, agents: usize, duration: Duration, connected: usize) -> Summary {
        let steady = lock(&self.steady).clone();
        let ramp = lock(&self.ramp).clone();
        // Percentiles of the steady state when there was one, else of everything.
        let main = if steady.is_empty() {
            let mut all = steady.clone();
            all.add(&ramp).expect("same bounds");
            all
        } else {
            steady.clone()
        };
        let outage = lock(&self.outage).clone();
        let errors = lock(&self.errors).clone();
        Summary {
            agents,
            duration_s: duration.as_secs_f64(),
            connected,
            ever_connected: self.ever_connected.load(Relaxed),
            all_connected_s: match self.all_connected_ms.load(Relaxed) {
                0 => None,
                ms => Some(ms as f64 / 1000.0),
            },
            reports_sent: self.reports_sent.load(Relaxed),
            reports_acked: self.reports_acked.load(Relaxed),
            p50_ms: ms(main.value_at_quantile(0.50)),
            p99_ms: ms(main.value_at_quantile(0.99)),
            max_ms: ms(main.max()),
            steady_reports: steady.len(),
            ramp_p99_ms: ms(ramp.value_at_quantile(0.99)),
            ramp_max_ms: ms(ramp.max()),
            reconnects: self.reconnects.load(Relaxed),
            reconnect_p99_ms: ms(outage.value_at_quantile(0.99)),
            reconnect_max_ms: ms(outage.max()),
            last_connect_unix_ms: self.last_connect_unix_ms.load(Relaxed),
            jobs_received: self.jobs_received.load(Relaxed),
            jobs_succeeded: self.jobs_succeeded.load(Relaxed),
            jobs_failed: self.jobs_failed.load(Relaxed),
            errors: errors.values().sum(),
            error_kinds: errors,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
    lock(h).record(us).expect("clamped into bounds");
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// What a run measured; printed as the last line, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub agents: usize,
    pub duration_s: f64,
    /// Agents with an open stream at the end.
    pub connected: usize,
    /// Agents that connected at least once.
    pub ever_connected: usize,
    /// Seconds from the start until every agent had connected once.
    pub all_connected_s: Option<f64>,
    pub reports_sent: u64,
    pub reports_acked: u64,
    /// Acknowledgement latency of steady-state reports (all reports if never steady).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub steady_reports: u64,
    /// Latency of reports sent while agents were still connecting.
    pub ramp_p99_ms: f64,
    pub ramp_max_ms: f64,
    pub reconnects: u64,
    /// Time from losing a stream to having it back.
    pub reconnect_p99_ms: f64,
    pub reconnect_max_ms: f64,
    pub last_connect_unix_ms: u64,
    pub jobs_received: u64,
    pub jobs_succeeded: u64,
    pub jobs_failed: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
}

/// Prints a progress line every `every` until aborted.
pub async fn progress(stats: Arc<Stats>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let errors: u64 = lock(&stats.errors).values().sum();
        eprintln!(
            "t={:.0}s unix_ms={} connected={} sent={} acked={} reconnects={} jobs={} errors={}",
            stats.started.elapsed().as_secs_f64(),
            unix_ms(),
            stats.connected.load(Relaxed),
            stats.reports_sent.load(Relaxed),
            stats.reports_acked.load(Relaxed),
            stats.reconnects.load(Relaxed),
            stats.jobs_received.load(Relaxed),
            errors,
        );
    }
}
