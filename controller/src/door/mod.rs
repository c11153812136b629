//! The agent door: what an agent may send and how often, checked before anything else reads
//! it. Field limits live in [`fields`], escaping of agent text in [`text`]; [`Door`] keeps, per
//! host, the report rate's token bucket, counts of what was refused, when that was last
//! logged, and how often the host's stream was replaced (two agents with one identity).

pub mod fields;
pub mod text;
pub mod throttle;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use fields::{check_hello, check_job_event, check_report, Refusal};
pub use text::{escape_control, loggable};

/// Stream replacements within [`FLAP_WINDOW`] beyond which a host is said to flap.
pub const FLAP_REPLACEMENTS: usize = 5;
/// See [`FLAP_REPLACEMENTS`].
pub const FLAP_WINDOW: Duration = Duration::from_secs(60);
/// How long a host that flapped keeps its health reason after the last replacement.
pub const FLAP_MEMORY: Duration = Duration::from_secs(600);
/// The health reason of a flapping host.
pub const FLAP_REASON: &str = "two agents with one identity?";

/// The door's own limits (keys of `[limits]`, see [`crate::limits::Limits`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DoorLimits {
    /// Reports one host may send in a burst, and how fast it earns another.
    pub report_burst: u32,
    pub report_refill: Duration,
    /// Refusals of one host are logged at most once per this interval (with a count).
    pub refusal_log_interval: Duration,
}

impl Default for DoorLimits {
    fn default() -> Self {
        Self {
            report_burst: 10,
            report_refill: Duration::from_secs(1),
            refusal_log_interval: Duration::from_secs(60),
        }
    }
}

/// What the door refused of one host since the controller started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages beyond a field limit (each ended the stream).
    pub refused: u64,
    /// Reports beyond the rate, dropped.
    pub over_rate: u64,
    /// Job events for another host's job, a finished job or a different request, dropped.
    pub bad_job_events: u64,
}

#[derive(Debug)]
struct HostDoor {
    tokens: f64,
    updated: Instant,
    counts: Counts,
    /// Refusals since the last log line, and when that was.
    unlogged: u64,
    logged_at: Option<Instant>,
    replacements: VecDeque<Instant>,
    flapped_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    limits: DoorLimits,
    hosts: HashMap<String, HostDoor>,
}

/// Per-host state of the door, in memory (hosts are authenticated: one entry per enrolled
/// host at most).
#[derive(Debug, Default)]
pub struct Door {
    state: Mutex<State>,
}

/// What kind of refusal to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Limit,
    OverRate,
    BadJobEvent,
}

impl Door {
    /// Applies the configured limits (at start).
    pub fn configure(&self, limits: DoorLimits) {
        self.lock().limits = limits;
    }

    /// Takes one report token of `host` at `now`; false when the host reports too fast.
    pub fn allow_report(&self, host: &str, now: Instant) -> bool {
        let mut state = self.lock();
        let limits = state.limits;
        let entry = entry(&mut state, host, now);
        let earned = now.saturating_duration_since(entry.updated).as_secs_f64()
            / limits.report_refill.as_secs_f64();
        entry.tokens = (entry.tokens + earned).min(f64::from(limits.report_burst));
        entry.updated = now;
        if entry.tokens >= 1.0 {
            entry.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Counts a refusal of `host`'s message; returns `Some(n)` when it is time to log (the
    /// refusals since the last log line, this one included), `None` to stay quiet.
    pub fn refused(&self, host: &str, kind: Refused, now: Instant) -> Option<u64> {
        let mut state = self.lock();
        let every = state.limits.refusal_log_interval;
        let entry = entry(&mut state, host, now);
        match kind {
            Refused::Limit => entry.counts.refused += 1,
            Refused::OverRate => entry.counts.over_rate += 1,
            Refused::BadJobEvent => entry.counts.bad_job_events += 1,
        }
        entry.unlogged += 1;
        let due = entry
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= every);
        if !due {
            return None;
        }
        entry.logged_at = Some(now);
        Some(std::mem::take(&mut entry.unlogged))
    }

    /// What was refused of `host` so far.
    pub fn counts(&self, host: &str) -> Counts {
        self.lock()
            .hosts
            .get(host)
            .map(|h| h.counts)
            .unwrap_or_default()
    }

    /// Notes that `host`'s stream was replaced by a newer one at `now`; true when the host
    /// has just started to flap (more than [`FLAP_REPLACEMENTS`] within [`FLAP_WINDOW`]).
    pub fn replaced(&self, host: &str, now: Instant) -> bool {
        let mut state = self.lock();
        let entry = entry(&mut state, host, now);
        entry.replacements.push_back(now);
        while entry
            .replacements
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > FLAP_WINDOW)
        {
            entry.replacements.pop_front();
        }
        if entry.replacements.len() <= FLAP_REPLACEMENTS {
            return false;
        }
        let started = !flapping(entry, now);
        entry.flapped_at = Some(now);
        started
    }

    /// Whether `host` flapped within [`FLAP_MEMORY`] of `now`.
    pub fn is_flapping(&self, host: &str, now: Instant) -> bool {
        self.lock()
            .hosts
            .get(host)
            .is_some_and(|h| flapping(h, now))
    }

    /// Drops what is known of `host` (forgotten).
    pub fn forget(&self, host: &str) {
        self.lock().hosts.remove(host);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn flapping(h: &HostDoor, now: Instant) -> bool {
    h.flapped_at
        .is_some_and(|at| now.saturating_duration_since(at) < FLAP_MEMORY)
}

fn entry<'a>(state: &'a mut State, host: &str, now: Instant) -> &'a mut HostDoor {
    let burst = f64::from(state.limits.report_burst);
    state
        .hosts
        .entry(host.to_string())
        .or_insert_with(|| HostDoor {
            tokens: burst,
            updated: now,
            counts: Counts::default(),
            unlogged: 0,
            logged_at: None,
            replacements: VecDeque::new(),
            flapped_at: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_come_at_most_at_the_rate_after_a_small_burst() {
        let door = Door::default();
        door.configure(DoorLimits {
            report_burst: 3,
            report_refill: Duration::from_secs(1),
            ..DoorLimits::default()
        });
        let t0 = Instant::now();
        assert!((0..3).all(|_| door.allow_report("web1", t0)));
        assert!(!door.allow_report("web1", t0), "burst spent");
        assert!(door.allow_report("web2", t0), "hosts are limited apart");
        assert!(!door.allow_report("web1", t0 + Duration::from_millis(900)));
        assert!(door.allow_report("web1", t0 + Duration::from_millis(1900)));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            (0..10).filter(|_| door.allow_report("web1", later)).count(),
            3
        );
    }

    #[test]
    fn refusals_are_all_counted_but_logged_once_per_interval() {
        let door = Door::default();
        let t0 = Instant::now();
        assert_eq!(door.refused("web1", Refused::Limit, t0), Some(1));
        for i in 1..100 {
            let at = t0 + Duration::from_millis(i * 10);
            assert_eq!(door.refused("web1", Refused::OverRate, at), None);
        }
        assert_eq!(door.refused("web2", Refused::Limit, t0), Some(1));
        let next = t0 + Duration::from_secs(60);
        assert_eq!(door.refused("web1", Refused::BadJobEvent, next), Some(100));
        let counts = door.counts("web1");
        assert_eq!(
            (counts.refused, counts.over_rate, counts.bad_job_events),
            (1, 99, 1)
        );
    }

    #[test]
    fn more_than_five_replacements_in_a_minute_is_flapping_for_a_while() {
        let door = Door::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // One replacement every 15 s is an agent restarting now and then: never flapping.
        for i in 0..20 {
            assert!(!door.replaced("calm", at(i * 15)));
        }
        assert!(!door.is_flapping("calm", at(300)));
        for i in 0..5 {
            assert!(!door.replaced("web1", at(i)));
        }
        assert!(door.replaced("web1", at(5)), "the sixth within a minute");
        assert!(!door.replaced("web1", at(6)), "already flapping");
        assert!(door.is_flapping("web1", at(6) + FLAP_MEMORY - Duration::from_secs(1)));
        assert!(!door.is_flapping("web1", at(6) + FLAP_MEMORY));
    }
}
