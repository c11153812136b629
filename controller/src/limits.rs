//! Limits that protect the controller from a misbehaving or hostile peer: message sizes and
//! rate limits on enrollment attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Largest message an agent may send (a report with its healthcheck output is a few KiB).
pub const MAX_AGENT_MESSAGE: usize = 1024 * 1024;
/// Largest enrollment request (a token and a CSR).
pub const MAX_ENROLL_MESSAGE: usize = 64 * 1024;
/// Largest operator request.
pub const MAX_ADMIN_MESSAGE: usize = 1024 * 1024;

/// Enrollment attempts a single address may make in a burst, and how fast it earns more.
pub const ENROLL_BURST: u32 = 20;
pub const ENROLL_REFILL: Duration = Duration::from_secs(3);

/// Addresses remembered at most; the quietest are forgotten first when full.
const MAX_TRACKED: usize = 65_536;

/// A token bucket per source address.
#[derive(Debug)]
pub struct RateLimiter {
    burst: u32,
    refill: Duration,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst,
            refill,
            buckets: HashMap::new(),
        }
    }

    /// Limits for enrollment attempts.
    pub fn for_enrollment() -> Self {
        Self::new(ENROLL_BURST, ENROLL_REFILL)
    }

    /// Takes one token for `addr` at `now`; false when it has none left.
    pub fn allow(&mut self, addr: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&addr) {
            self.forget_full(now);
        }
        let burst = f64::from(self.burst);
        let refill = self.refill.as_secs_f64();
        let bucket = self.buckets.entry(addr).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let earned = now.saturating_duration_since(bucket.updated).as_secs_f64() / refill;
        bucket.tokens = (bucket.tokens + earned).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops the buckets that have refilled completely: they would start full anyway.
    fn forget_full(&mut self, now: Instant) {
        let full_after = self.refill * self.burst;
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.updated) < full_after);
        if self.buckets.len() >= MAX_TRACKED {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_attempt_per_refill_period() {
        let mut limiter = RateLimiter::new(3, Duration::from_secs(10));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow(a, t0)));
        assert!(!limiter.allow(a, t0), "burst spent");
        assert!(limiter.allow(b, t0), "addresses are limited separately");
        assert!(!limiter.allow(a, t0 + Duration::from_secs(9)));
        assert!(
            limiter.allow(a, t0 + Duration::from_secs(10)),
            "one token per refill period"
        );
        assert!(!limiter.allow(a, t0 + Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(3600);
        assert!(
            (0..3).all(|_| limiter.allow(a, later)),
            "never more than the burst"
        );
        assert!(!limiter.allow(a, later));
    }
}
