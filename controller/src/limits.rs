//! Limits that protect the controller from a misbehaving or hostile peer: message sizes,
//! timeouts, per-connection buffers and streams, and rate limits on enrollment attempts. Each
//! is a key of the config's `[limits]` section.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use boltfleet_common::config::human_duration;
use serde::Deserialize;

/// Addresses remembered at most; the quietest are forgotten first when full.
const MAX_TRACKED: usize = 65_536;

/// What one peer may cost the controller. Defaults suit a fleet of 50,000 agents reporting
/// every 30 s.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message an agent may send (a report with its healthcheck output is a few KiB).
    pub max_agent_message_bytes: usize,
    /// Largest enrollment request (a token and a CSR).
    pub max_enroll_message_bytes: usize,
    /// Largest operator request (bulk enrollment of 1000 CSRs is about 600 KiB).
    pub max_admin_message_bytes: usize,
    /// A connection that has not finished its TLS handshake by then is closed.
    #[serde(deserialize_with = "human_duration")]
    pub handshake_timeout: Duration,
    /// TLS handshakes in progress at once; more connections wait in the accept backlog. Keeps
    /// a reconnecting fleet from slowing every handshake past the timeout.
    pub max_handshakes: usize,
    /// An agent stream with no message for this long is closed (agents report every 30 s by
    /// default; keep this well above their `report_interval`).
    #[serde(deserialize_with = "human_duration")]
    pub agent_idle_timeout: Duration,
    /// HTTP/2 pings on idle connections, and how long an answer may take before the peer is
    /// taken for dead.
    #[serde(deserialize_with = "human_duration")]
    pub keepalive_interval: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub keepalive_timeout: Duration,
    /// Concurrent streams per connection (an agent uses one or two, an operator a few).
    pub max_streams_per_connection: u32,
    /// HTTP/2 flow-control windows: how much a peer may send before the controller reads it,
    /// per stream and per connection. They bound each connection's receive buffers.
    pub stream_window_bytes: u32,
    pub connection_window_bytes: u32,
    /// Enrollment attempts one address may make in a burst, and how fast it earns another.
    pub enroll_burst: u32,
    #[serde(deserialize_with = "human_duration")]
    pub enroll_refill: Duration,
    /// Reports one host may send in a burst, and how fast it earns another (an honest agent
    /// reports at most once per second: its smallest `report_interval`). Reports beyond the
    /// rate are dropped, unacknowledged.
    pub report_burst: u32,
    #[serde(deserialize_with = "human_duration")]
    pub report_refill: Duration,
    /// One host's refused messages are logged at most once per this interval, with a count.
    #[serde(deserialize_with = "human_duration")]
    pub refusal_log_interval: Duration,
    /// Connections one source address may hold open (handshaking or established); more are
    /// closed at once. Agents behind one NAT address share it.
    pub max_connections_per_address: usize,
    /// TLS handshakes one source address may have in progress; more are closed at once, so
    /// that one address cannot take the `max_handshakes` slots from everyone else.
    pub max_handshakes_per_address: usize,
    /// A connection without a client certificate (enrollment only) is closed this long after
    /// its handshake, whether or not it made a call.
    #[serde(deserialize_with = "human_duration")]
    pub anonymous_connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_agent_message_bytes: 512 * 1024,
            max_enroll_message_bytes: 64 * 1024,
            max_admin_message_bytes: 2 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 128,
            agent_idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_streams_per_connection: 16,
            stream_window_bytes: 64 * 1024,
            connection_window_bytes: 256 * 1024,
            enroll_burst: 20,
            enroll_refill: Duration::from_secs(3),
            report_burst: 10,
            report_refill: Duration::from_secs(1),
            refusal_log_interval: Duration::from_secs(60),
            max_connections_per_address: 1024,
            max_handshakes_per_address: 16,
            anonymous_connection_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Checks the values together; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        let at_least = |key: &str, value: u64, min: u64| {
            if value < min {
                Err(format!("limits.{key}: must be at least {min}"))
            } else {
                Ok(())
            }
        };
        at_least(
            "max_agent_message_bytes",
            self.max_agent_message_bytes as u64,
            16 * 1024,
        )?;
        at_least(
            "max_enroll_message_bytes",
            self.max_enroll_message_bytes as u64,
            4 * 1024,
        )?;
        at_least(
            "max_admin_message_bytes",
            self.max_admin_message_bytes as u64,
            16 * 1024,
        )?;
        at_least(
            "max_streams_per_connection",
            self.max_streams_per_connection.into(),
            2,
        )?;
        // HTTP/2's smallest legal window.
        at_least(
            "stream_window_bytes",
            self.stream_window_bytes.into(),
            65_535,
        )?;
        at_least(
            "connection_window_bytes",
            self.connection_window_bytes.into(),
            65_535,
        )?;
        at_least("enroll_burst", self.enroll_burst.into(), 1)?;
        at_least("max_handshakes", self.max_handshakes as u64, 1)?;
        at_least("report_burst", self.report_burst.into(), 1)?;
        at_least(
            "max_connections_per_address",
            self.max_connections_per_address as u64,
            1,
        )?;
        at_least(
            "max_handshakes_per_address",
            self.max_handshakes_per_address as u64,
            1,
        )?;
        for (key, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("agent_idle_timeout", self.agent_idle_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
            ("enroll_refill", self.enroll_refill),
            ("report_refill", self.report_refill),
            ("refusal_log_interval", self.refusal_log_interval),
            (
                "anonymous_connection_timeout",
                self.anonymous_connection_timeout,
            ),
        ] {
            if value < Duration::from_secs(1) {
                return Err(format!("limits.{key}: must be at least 1s"));
            }
        }
        Ok(())
    }

    /// The agent door's share of the limits.
    pub fn door(&self) -> crate::door::DoorLimits {
        crate::door::DoorLimits {
            report_burst: self.report_burst,
            report_refill: self.report_refill,
            refusal_log_interval: self.refusal_log_interval,
        }
    }

    /// The rate limiter for enrollment attempts.
    pub fn enrollment_limiter(&self) -> RateLimiter {
        RateLimiter::new(self.enroll_burst, self.enroll_refill)
    }
}

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
    fn the_defaults_pass_their_own_check_and_a_bad_value_is_named() {
        assert_eq!(Limits::default().check(), Ok(()));
        let tiny = Limits {
            stream_window_bytes: 1024,
            ..Limits::default()
        };
        assert!(tiny
            .check()
            .unwrap_err()
            .starts_with("limits.stream_window_bytes"));
        let instant = Limits {
            handshake_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert!(instant
            .check()
            .unwrap_err()
            .starts_with("limits.handshake_timeout"));
    }

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
